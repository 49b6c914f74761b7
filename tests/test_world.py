"""The miniature world (issue 13): determinism, exact masks, no positional prior, 0-4 defects, folds, writer."""

from __future__ import annotations

import numpy as np
import pytest

from clipsam_lite.datasets import load_dataset
from clipsam_lite.synthetic import (
    AUX_CATEGORIES,
    FOLDS,
    HELDOUT_CATEGORIES,
    PRETRAIN_CATEGORIES,
    WORLD,
    fold_split,
    make_world,
    render_world,
    world_region_mask,
)
from clipsam_lite.synthetic.world import P_NORMAL, defect_centre


def test_world_has_twelve_categories_and_disjoint_folds() -> None:
    kinds = [c.kind for c in WORLD.values()]
    assert kinds.count("object") >= 6 and kinds.count("texture") >= 6
    assert len(FOLDS) >= 3
    seen: set[str] = set()
    for fold in FOLDS:
        assert sorted(WORLD[c].kind for c in fold) == ["object", "object", "texture", "texture"]
        assert not seen & set(fold)
        seen |= set(fold)
    assert HELDOUT_CATEGORIES == FOLDS[0]
    assert set(PRETRAIN_CATEGORIES) == set(WORLD) - set(HELDOUT_CATEGORIES)
    assert set(AUX_CATEGORIES) <= set(PRETRAIN_CATEGORIES)
    for k in range(len(FOLDS)):
        held, pre, aux = fold_split(k)
        assert not set(held) & set(pre) and set(aux) <= set(pre)
    with pytest.raises(ValueError, match="fold must be"):
        fold_split(len(FOLDS))


def test_render_world_is_deterministic_and_typed() -> None:
    a = render_world("gear", 5, seed=3, size=96)
    b = render_world("gear", 5, seed=3, size=96)
    c = render_world("gear", 6, seed=3, size=96)
    d = render_world("gear", 5, seed=3, size=96, split="test")
    assert np.array_equal(a.image, b.image) and a.caption == b.caption and a.defect_types == b.defect_types
    assert all(np.array_equal(x, y) for x, y in zip(a.defect_masks, b.defect_masks, strict=True))
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.image, d.image)
    assert a.image.shape == (96, 96, 3) and a.image.dtype == np.uint8
    for m in (a.object_mask, a.region, *a.defect_masks):
        assert m.shape == (96, 96) and m.dtype == bool
    assert "gear" in a.caption or "object" in a.caption
    tex = render_world("marble", 0, size=64)
    assert tex.object_mask.all() and tex.region.all()


@pytest.mark.parametrize("category", sorted(WORLD))
def test_defect_pixels_are_the_only_difference_from_the_clean_render(category: str) -> None:
    for index in range(3):
        s = render_world(category, index, size=96, n_defects=3)
        clean = render_world(category, index, size=96, n_defects=0)
        assert clean.defect_masks == () and " with " not in clean.caption.replace("without", "")
        assert np.array_equal(s.object_mask, clean.object_mask)
        changed = (s.image != clean.image).any(axis=2)
        assert len(s.defect_masks) == len(s.defect_types) == 3
        assert all(t in WORLD[category].defect_types for t in s.defect_types)
        assert changed.any()
        assert not (changed & ~s.mask).any(), "a pixel outside every defect mask changed"
        assert (changed & s.mask).sum() >= 0.9 * s.mask.sum(), "a defect mask claims pixels that did not change"
        assert all(m.sum() >= 6 for m in s.defect_masks)
        assert not (s.mask & ~s.region).any() or WORLD[category].kind == "object"
        assert not (s.mask & ~s.object_mask).any(), "a defect outside the object"


def test_zero_to_four_defects_with_the_documented_normal_rate() -> None:
    counts = [len(render_world("dots", i, size=48).defect_masks) for i in range(120)]
    assert set(counts) == {0, 1, 2, 3, 4}
    assert abs(counts.count(0) / len(counts) - P_NORMAL) < 0.12
    forced = render_world("tile", 1, size=64, defect_types=("hole", "stain"))
    assert forced.defect_types == ("hole", "stain")


def test_defect_centres_spread_over_the_region_no_positional_prior() -> None:
    size = 96
    tex = [defect_centre(m) for c in ("stripes", "weave") for i in range(40)
           for m in render_world(c, i, size=size, n_defects=2).defect_masks]
    xs, ys = np.array(tex).T / size
    # the old generator never centred a texture defect within 12 % of the border: here about half are
    border = (np.minimum(np.minimum(xs, 1 - xs), np.minimum(ys, 1 - ys)) < 0.15).mean()
    assert border > 0.3
    for qx in (xs < 0.5, xs >= 0.5):
        for qy in (ys < 0.5, ys >= 0.5):
            assert (qx & qy).mean() > 0.12
    # objects: relative to the object's own centre and size, defects reach its outer part in all directions
    rel = []
    for i in range(40):
        s = render_world("tile", i, size=size, n_defects=2, defect_types=("stain", "hole"))
        oy, ox = np.nonzero(s.object_mask)
        r = np.sqrt(s.object_mask.sum() / np.pi)
        for m in s.defect_masks:
            x, y = defect_centre(m)
            rel.append(((x - ox.mean()) / r, (y - oy.mean()) / r))
    rx, ry = np.array(rel).T
    assert (np.hypot(rx, ry) > 0.5).mean() > 0.4
    assert min((rx < 0).mean(), (rx > 0).mean(), (ry < 0).mean(), (ry > 0).mean()) > 0.25


def test_render_world_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="Unknown world category 'sprocket'"):
        render_world("sprocket", 0)
    with pytest.raises(ValueError, match="n_defects"):
        render_world("gear", 0, n_defects=5)
    with pytest.raises(ValueError, match="defect_types"):
        render_world("weave", 0, defect_types=("missing_piece",))


def test_make_world_writes_the_mvtec_layout_with_region_masks(tmp_path) -> None:
    root = make_world(tmp_path / "w", ["nut", "checker"], image_size=64, n_train=2, n_test_good=1,
                      n_test_per_defect=1)
    test = load_dataset("mvtec", root, category=["nut", "checker"], split="test")
    assert len(test) == 2 * 1 + 6 + 5
    assert len(load_dataset("mvtec", root, category="nut", split="train")) == 2
    item = next(it for it in test if it.label == 1 and it.category == "nut")
    region = world_region_mask(item.path)
    obj = world_region_mask(item.path, "object")
    assert region is not None and obj is not None and region.shape == (64, 64)
    assert item.mask is not None and not (item.mask & ~obj).any() and obj.sum() < 64 * 64


def test_synth_cli_writes_world_categories(tmp_path) -> None:
    from clipsam_lite.__main__ import main

    assert main(["synth", "--out", str(tmp_path / "w"), "--categories", "gear", "--image-size", "64",
                 "--n-train", "1", "--n-test-good", "1", "--n-test-per-defect", "1"]) == 0
    assert (tmp_path / "w" / "gear" / "world_masks" / "test" / "hole" / "000_region.png").is_file()
    assert len(load_dataset("mvtec", tmp_path / "w", category="gear", split="test")) == 1 + 6


def test_synth_world_over_a_folder_with_user_files_refuses_and_keeps_them(tmp_path) -> None:
    """Issue 12.12 for the world writer: replacing a folder may delete only what make_world wrote."""
    from clipsam_lite.synthetic import make_world

    small = dict(image_size=64, n_train=1, n_test_good=1, n_test_per_defect=0)
    root = tmp_path / "w"
    make_world(root, ["gear"], **small)
    make_world(root, ["gear"], **small)  # its own output: replaced
    (root / "gear" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt") as e:
        make_world(root, ["gear"], **small)
    assert "Nothing was deleted" in str(e.value) and (root / "gear" / "notes.txt").read_text() == "mine"
    other = tmp_path / "o"
    other.mkdir()
    (other / "a.png").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="a.png"):
        make_world(other, ["gear"], **small)
    assert (other / "a.png").read_bytes() == b"not ours"
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folder left behind
