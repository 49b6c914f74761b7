"""``clipsam_lite.world_course``: the miniature world's notebook helpers give known answers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from clipsam_lite import world_course as wc
from clipsam_lite.datasets import Item
from clipsam_lite.synthetic import FOLDS, WORLD


def _item(mask, region, category="a"):
    it = Item(image=np.zeros((*np.shape(mask), 3), np.uint8), mask=np.asarray(mask, bool), label=1,
              category=category, defect_type="x", path="p")
    it.region = np.asarray(region, bool)
    return it


def test_prior_rows_hand_computed():
    # one image: defect at (0, 0), region = top row
    it = _item([[1, 0], [0, 0]], [[1, 1], [0, 0]])
    head = [np.array([[0.9, 0.1], [0.5, 0.5]], np.float32)]
    normal = {"a": [np.array([[0.6, 0.6], [0, 0]], np.float32), np.array([[0.4, 0.8], [0, 0]], np.float32)]}
    rows = wc.prior_rows([it], head, normal)  # prior = [[0.5, 0.7], [0, 0]]
    assert rows["head"] == pytest.approx({"pixel_auroc": 1.0, "region_auroc": 1.0})
    # prior: defect 0.5 vs negatives 0.7, 0, 0 -> 2/3; inside the region: 0.5 vs 0.7 -> 0
    assert rows["prior"] == pytest.approx({"pixel_auroc": 2 / 3, "region_auroc": 0.0})


def test_prior_rows_needs_normal_maps_of_every_category():
    it = _item([[1, 0]], [[1, 1]], category="b")
    with pytest.raises(ValueError, match="No normal training maps"):
        wc.prior_rows([it], [np.zeros((1, 2), np.float32)], {"a": [np.zeros((1, 2), np.float32)]})


def test_split_rows_follow_the_folds():
    rows = wc.split_rows(0)
    assert [r[0] for r in rows] == list(WORLD)
    roles = {r[0]: r[3] for r in rows}
    assert {c for c, r in roles.items() if r == "held-out"} == set(FOLDS[0])
    assert {c for c, r in roles.items() if r == "pretraining + auxiliary"} == set(FOLDS[1])
    assert wc.world_role("gear", 1) == "pretraining"
    with pytest.raises(ValueError, match="Unknown world category"):
        wc.world_role("teapot")


def test_contact_sheet_shows_every_category_with_its_defects():
    samples = wc.contact_samples(size=48)
    assert [s.category for s in samples] == list(WORLD)
    assert [len(s.defect_masks) for s in samples] == [k % 4 + 1 for k in range(len(WORLD))]
    fig = wc.world_contact_sheet(samples)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titled) == 2 * len(WORLD) and "gear (held-out)" in titled
    targets = wc._targets_rgb(samples[0])  # defect pixels in the first defect colour, background black
    assert (targets[samples[0].defect_masks[-1]] > 0).any() and (targets[~samples[0].object_mask] == 0).all()


def test_world_items_carry_region_and_truth():
    items = wc.world_items(["gear", "weave"], 2, "test", size=48)
    assert len(items) == 4 and all(it.region.shape == it.mask.shape for it in items)
    assert all(not (it.mask & ~it.region).any() for it in items)
    assert all(it.label == int(it.mask.any()) for it in items)
    assert items[2].region.all()  # a texture: defects can occur anywhere


def test_model_card_table_is_the_measured_one():
    table = wc.model_card_table()
    assert table.startswith("| fold | head") and table.count("\n") >= 10
    with pytest.raises(ValueError, match="no section"):
        wc.model_card_table("## Nothing")


def test_world_aux_items_are_the_folds_auxiliary_categories_each_with_defects():
    from clipsam_lite.synthetic import AUX_CATEGORIES, render_world

    items = wc.world_aux_items(n_per_category=5, size=48)  # fold 0
    assert [it.category for it in items] == [c for c in AUX_CATEGORIES for _ in range(5)]
    assert all(it.label == 1 and it.mask.any() and it.image.shape == (48, 48, 3) for it in items)
    # image i of a category has 1 + i % 4 defects: item 4 (i = 4) has one, item 3 (i = 3) four
    for it, i in ((items[3], 3), (items[4], 4)):
        ref = render_world(it.category, i, size=48, split="aux", n_defects=1 + i % 4)
        assert len(ref.defect_masks) == 1 + i % 4 and np.array_equal(ref.image, it.image)
        assert np.array_equal(np.logical_or.reduce(ref.defect_masks), it.mask)
    assert {it.category for it in wc.world_aux_items(fold=1, n_per_category=1, size=32)} == set(FOLDS[2])
    chosen = wc.world_aux_items(n_per_category=2, size=32, categories=["nut"])  # another pretraining category
    assert [it.path for it in chosen] == ["nut/aux/0", "nut/aux/1"]


def test_world_aux_items_refuse_held_out_unknown_and_empty_requests():
    with pytest.raises(ValueError, match=r"\['gear'\] are fold 0's held-out categories"):
        wc.world_aux_items(categories=["ring", "gear"], n_per_category=1, size=32)
    with pytest.raises(ValueError, match="unknown world categories"):
        wc.world_aux_items(categories=["teapot"], n_per_category=1, size=32)
    with pytest.raises(ValueError, match="n_per_category must be an integer >= 1"):
        wc.world_aux_items(n_per_category=0)
    with pytest.raises(ValueError, match="fold must be"):
        wc.world_aux_items(fold=3)


def test_world_adapter_trains_on_world_aux_items(monkeypatch):
    import clipsam_lite.adapter as adapter_mod

    seen = {}

    def fake_train(models, items, cfg, **kw):
        seen.update(items=items, head=cfg.head, **kw)
        return "adapter", None

    class Cfg:
        head = "training_free"

        def replace(self, **kw):
            c = Cfg()
            c.head = kw["head"]
            return c

    monkeypatch.setattr(adapter_mod, "train_adapter", fake_train)
    assert wc.world_adapter(None, Cfg(), fold=2, n_per_category=2, epochs=3, size=32) == "adapter"
    want = wc.world_aux_items(fold=2, n_per_category=2, size=32)
    assert [it.path for it in seen["items"]] == [it.path for it in want]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(seen["items"], want, strict=True))
    assert seen["head"] == "adapter" and seen["epochs"] == 3 and str(list(FOLDS[0])) in seen["description"]


def test_notebook_01s_recipe_trains_the_demos_world_adapter(tiny_models, isolated_cache, monkeypatch, one_torch_thread):
    """Notebook 01 (mini) trains on world_aux_items(n=WORLD_ADAPTER_IMAGES) with the profile's epochs and says
    that this is the adapter `demo` and notebooks 04-07 use: the two must stay bit-identical."""
    import torch

    from clipsam_lite import demo
    from clipsam_lite.adapter import train_adapter

    monkeypatch.setattr(demo, "WORLD_ADAPTER_IMAGES", 2)  # small and fast; the recipe is what is compared
    cfg = tiny_models.cfg.replace(adapter_epochs=2, seed=3)
    items = wc.world_aux_items(n_per_category=demo.WORLD_ADAPTER_IMAGES, size=cfg.clip_image_size)
    mine, history = train_adapter(tiny_models, items, cfg, progress=False, log=None)
    theirs = demo.world_demo_adapter(tiny_models, cfg, log=None)
    assert history.n_images == 2 * len(FOLDS[1]) and len(history.loss) == 2
    a, b = mine.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other, _ = train_adapter(tiny_models, items, cfg.replace(seed=4), progress=False, log=None)  # the test can fail
    assert not all(torch.equal(a[k], other.state_dict()[k]) for k in a)
