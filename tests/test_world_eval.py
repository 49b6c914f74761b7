"""Evaluation on the miniature world: region-restricted AUROC beside the pixel metrics, and the prior row.

A one-category world dataset (gear, 64 px) evaluated with the tiny profile's training-free head at
48 x 48; hand-computed region AUROCs of planted maps; the old sample's tables get no new column.
"""

from __future__ import annotations

import numpy as np
import pytest

from clipsam_lite import evaluate as ev
from clipsam_lite import tables
from clipsam_lite import world_eval as we
from clipsam_lite.datasets import load_dataset
from clipsam_lite.eval_cache import eval_mask
from clipsam_lite.synthetic import make_synthetic, make_world

RES = 48


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one CPU thread


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("w") / "world", ["gear"], image_size=64, n_train=2, n_test_good=1,
                      n_test_per_defect=1)


def test_region_score_hand_computed():
    scores = [np.array([[0.3, 0.5], [0.2, 0.9]], np.float32)]
    mask = [np.array([[1, 0], [0, 0]], bool)]
    region = [np.array([[1, 1], [1, 0]], bool)]
    # inside the region: defect 0.3 against 0.5 and 0.2 -> 1 of 2 pairs won = 0.5
    assert we.region_score(scores, mask, region) == pytest.approx(0.5)
    # nothing anomalous inside the regions: undefined, reported as NaN (n/a in the tables)
    assert np.isnan(we.region_score(scores, [np.zeros((2, 2), bool)], region))


def test_planted_maps_on_a_world_dataset(world_root):
    ds = load_dataset("mvtec", world_root, category="gear", split="test")
    recs = [r for r in ds.records if r.label == 1]
    masks = [eval_mask(r, ds.mask_rule, RES) for r in recs]
    regions = [we.eval_region(r, RES) for r in recs]
    assert all(not (m & ~g).any() for m, g in zip(masks, regions, strict=True))  # resized masks stay inside
    # the silhouette (the region itself) is constant inside the region: exactly chance there
    assert we.region_score([g.astype(np.float32) for g in regions], masks, regions) == pytest.approx(0.5)
    # the truth itself is perfect
    assert we.region_score([m.astype(np.float32) for m in masks], masks, regions) == pytest.approx(1.0)


def test_world_tables_have_region_auroc_and_a_prior_row(world_root, tiny_models, tmp_path):
    out = tmp_path / "res"
    res = ev.evaluate("mvtec", world_root, out, models=tiny_models, resolution=RES, batch_size=4,
                      overrides=["head=training_free"], progress=False, log=None).results
    assert we.REGION_KEY in res["categories"]["gear"] and we.REGION_KEY in res["clip_map_only"]["categories"]["gear"]
    prior = res["prior_map"]
    assert prior["train_images"] == {"gear": 2} and we.REGION_KEY in prior["categories"]["gear"]
    assert 0.0 <= prior["categories"]["gear"]["pixel_auroc"] <= 1.0 and we.REGION_KEY in prior["mean"]
    md = (out / "results.md").read_text()
    assert "region AUROC" in md and "Baseline, prior-map baseline" in md
    assert (out / "results.csv").read_text().splitlines()[0].split(",")[:3] == ["category", "pixel_auroc", "region_auroc"]
    loaded = tables.load_results(out / "results.json")
    text = tables.results_markdown(loaded)
    assert "region AUROC" in text and "Baseline" in text


def test_other_datasets_get_no_new_column(tmp_path, tiny_models):
    root = make_synthetic(tmp_path / "s", categories=["tablet"], image_size=64, n_train=0, n_test_good=1,
                          n_test_per_defect=1, defect_types=["stain"], signature=True)
    assert not we.is_world_root(root)
    res = ev.evaluate("mvtec", root, tmp_path / "o", models=tiny_models, resolution=RES, batch_size=4,
                      overrides=["head=training_free"], progress=False, log=None).results
    assert "prior_map" not in res and we.REGION_KEY not in res["mean"]
    md = (tmp_path / "o" / "results.md").read_text()
    assert "region AUROC" not in md and "Baseline" not in md
    assert we.with_region_key(["pixel_auroc", "pixel_ap"], [{}]) == ["pixel_auroc", "pixel_ap"]
