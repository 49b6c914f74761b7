"""The shipped mini-SAM: loads offline, checked and fast, and follows the prompt on a fixed held-out scene.

Each behaviour test uses thresholds that a SAM ignoring its prompt fails: the same mask for two
prompts cannot have IoU >= 0.5 with one defect and <= 0.05 with it in the other case.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch

from clipsam_lite import models
from clipsam_lite.pretrain.sam_eval import EvalScene, deepest_point, eval_scenes, surface_negatives
from clipsam_lite.sam_features import embed_image, predictor_for

# a fixed scene never trained on: a held-out category (weave), test split, two separate defects A and B
SCENE_CATEGORY, SCENE_INDEX, DEFECT_A, DEFECT_B = "weave", 2, 0, 1
FOLLOW_IOU = 0.5
CASCADE_INDEX = 4  # the image of the stage-IoU test (same category)


@pytest.fixture(scope="module")
def mini_sam():
    return models.load_sam("mini")


@pytest.fixture(scope="module")
def scene() -> EvalScene:
    s = eval_scenes((SCENE_CATEGORY,), 6)[SCENE_INDEX]
    assert not (s.defects[DEFECT_A] & s.defects[DEFECT_B]).any()
    return s


def _iou(a, b):
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_shipped_weights_load_offline_checked_small_and_fast(monkeypatch):
    def no_network(*a, **k):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(models.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(models.socket, "create_connection", no_network)
    path = models.shipped_sam_path("mini")
    assert path.is_file() and path.stat().st_size <= 10 * 2**20
    assert models._sha256(path) == models.SHIPPED_SAM_WEIGHTS["mini"]["sha256"]
    assert (path.parent / "MODEL_CARD.md").is_file()
    import safetensors.torch  # noqa: F401  (imports are not loading: warm them first)
    import segment_anything.modeling  # noqa: F401

    t = time.perf_counter()
    sam = models.load_sam("mini")
    assert time.perf_counter() - t < 2.0
    assert sam.image_encoder.img_size == 256 and not sam.training
    random = models.build_sam("mini")
    assert not torch.equal(sam.mask_decoder.iou_token.weight, random.mask_decoder.iou_token.weight)


def test_damaged_or_missing_weights_are_refused_with_the_fix(tmp_path):
    bad = tmp_path / "mini_sam.safetensors"
    shutil.copy(models.shipped_sam_path("mini"), bad)
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(models.ChecksumMismatchError, match="damaged or was replaced"):
        models.load_shipped_sam_state("mini", path=bad)
    with pytest.raises(models.WeightsUnavailableError, match="missing"):
        models.load_shipped_sam_state("mini", path=tmp_path / "absent.safetensors")


def _point_mask(sam, scene, i):
    pr = predictor_for(sam, embed_image(sam, scene.image))
    neg = surface_negatives(scene, i, 2)
    pts = np.concatenate([deepest_point(scene.defects[i])[None], neg])
    with torch.inference_mode():
        m, _, _ = pr.predict(point_coords=pts, point_labels=np.array([1] + [0] * len(neg)), multimask_output=False)
    return m[0]


def test_the_mask_follows_a_moved_point(mini_sam, scene):
    a, b = scene.defects[DEFECT_A], scene.defects[DEFECT_B]
    on_a = _point_mask(mini_sam, scene, DEFECT_A)
    on_b = _point_mask(mini_sam, scene, DEFECT_B)
    assert _iou(on_a, a) >= FOLLOW_IOU and _iou(on_a, b) <= 0.05
    assert _iou(on_b, b) >= FOLLOW_IOU and _iou(on_b, a) <= 0.05


def test_a_moved_mask_counts_when_it_lies_more_on_the_new_defect():
    from clipsam_lite.pretrain.sam_eval import moved_iou

    old = np.zeros((10, 10), bool)
    old[0:4, 0:4] = True  # 16 px
    new = np.zeros((10, 10), bool)
    new[2:6, 2:6] = True  # 16 px, 4 of them shared with old
    assert moved_iou(new, new, old) == 1.0  # the ground truth passes, though it overlaps old (IoU 4/28)
    assert moved_iou(old, new, old) == 0.0  # the mask stayed where the point was
    both = old | new  # 28 px: IoU 16/28 with each, not more on the new one
    assert moved_iou(both, new, old) == 0.0
    right = new.copy()
    right[6, 2:6] = True  # 20 px: IoU 16/20 with new, 4/32 with old
    assert moved_iou(right, new, old) == pytest.approx(0.8)


def test_exact_boxes_mask_unites_the_answer_to_each_defects_own_box():
    from clipsam_lite.pretrain.sam_eval import exact_boxes_mask

    class BoxFiller:  # a stand-in predictor that answers a box with the filled box, and records the boxes
        def __init__(self):
            self.boxes = []

        def predict(self, box, multimask_output):
            assert multimask_output is False
            self.boxes.append(box.tolist())
            m = np.zeros((1, 12, 12), bool)
            x0, y0, x1, y1 = box.astype(int)
            m[0, y0:y1 + 1, x0:x1 + 1] = True
            return m, np.ones(1), None

    ell = np.zeros((12, 12), bool)
    ell[1:5, 1] = True
    ell[4, 1:4] = True  # an L: its box is rows 1-4, columns 1-3
    dot = np.zeros((12, 12), bool)
    dot[8, 9] = True
    pr = BoxFiller()
    out = exact_boxes_mask(pr, [ell, dot, np.zeros((12, 12), bool)])  # an empty defect asks nothing
    assert pr.boxes == [[1, 1, 3, 4], [9, 8, 9, 8]]
    expected = np.zeros((12, 12), bool)
    expected[1:5, 1:4] = True
    expected[8, 9] = True
    np.testing.assert_array_equal(out, expected)


def test_the_mask_follows_a_moved_box(mini_sam, scene):
    pr = predictor_for(mini_sam, embed_image(mini_sam, scene.image))
    for i, j in ((DEFECT_A, DEFECT_B), (DEFECT_B, DEFECT_A)):
        ys, xs = np.nonzero(scene.defects[i])
        box = np.clip(np.array([xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3], float), 0, 255)
        with torch.inference_mode():
            m, _, _ = pr.predict(box=box, multimask_output=False)
        m = m[0]
        x0, y0, x1, y1 = box.astype(int)
        assert _iou(m, scene.defects[i]) >= FOLLOW_IOU and _iou(m, scene.defects[j]) <= 0.05
        assert m[y0:y1 + 1, x0:x1 + 1].sum() >= 0.8 * m.sum()  # the mask stays in its box (measured 0.89, 0.99)


def test_cascade_stage_ious_on_a_fixed_image(mini_sam):
    """PPG + the three CPS stages from a map of PPG's kind (blurred ground truth + smooth noise) on a held-out
    image: stage 1 already finds most of the defects, and the cascade (secondary points + logit1, then the
    box of M2) keeps them without flooding; a random SAM (dot grids) overlaps nothing.

    The 32 x 32 mini-SAM measured 0.81 -> 0.79 -> 0.80 here: its stage 1 is good, and the cascade holds it
    rather than raising it (the 16 x 16 model it grew from went 0.48 -> 0.70 -> 0.73 from a weaker stage 1).
    Averaged over many images the cascade does not raise IoU (MODEL_CARD.md); this test pins that it does not
    lower it on this image either."""
    from clipsam_lite.config import get_config
    from clipsam_lite.pretrain.sam_eval import cascade_stages

    s = eval_scenes((SCENE_CATEGORY,), 6)[CASCADE_INDEX]
    ious = cascade_stages(mini_sam, [s], get_config("tiny"))
    assert ious["n_images"] == 1
    assert ious["stage1_iou"] >= 0.6 and ious["stage3_iou"] >= 0.6, ious
    assert ious["stage3_iou"] >= ious["stage2_iou"] - 0.02 and ious["stage3_iou"] >= ious["stage1_iou"] - 0.02, ious
    random_sam = models.build_sam("mini")
    assert cascade_stages(random_sam, [s], get_config("tiny"))["stage3_iou"] < 0.2
