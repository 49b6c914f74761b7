"""CPS with known answers: a recording predictor whose masks we plant, then SAM's own predictor."""

from __future__ import annotations

import numpy as np
import pytest

from clipsam_lite.config import get_config
from clipsam_lite.cps import box_from_mask, fuse, run_cascade, secondary_points


class PlantedPredictor:
    """Stands in for SamPredictor: returns planted rectangles as logits and records every call.

    Each call returns 3 candidate masks (1 when multimask_output=False) with known predicted IoUs,
    and low-res logits that are fresh random arrays, so a test can tell exactly which one came back.
    """

    def __init__(self, shape, rects, ious=(0.2, 0.9, 0.5), low_res=16):
        self.shape, self.rects, self.ious, self.low_res = shape, rects, np.array(ious, np.float32), low_res
        self.calls: list[dict] = []
        self.returned_low_res: list[np.ndarray] = []
        self.rng = np.random.default_rng(0)

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output=True, return_logits=False):
        self.calls.append(dict(points=None if point_coords is None else point_coords.copy(),
                               labels=None if point_labels is None else point_labels.copy(),
                               box=None if box is None else np.array(box), mask_input=mask_input,
                               multimask=multimask_output))
        x0, y0, x1, y1 = self.rects[min(len(self.calls), len(self.rects)) - 1]
        n = 3 if multimask_output else 1
        logits = np.full((n, *self.shape), -4.0, np.float32)
        for i in range(n):
            logits[i, y0:y1 + 1, x0:x1 + 1] = 4.0 + i  # each candidate distinguishable by its value
        low = self.rng.normal(size=(n, self.low_res, self.low_res)).astype(np.float32)
        self.returned_low_res.append(low)
        ious = self.ious[:n] if multimask_output else self.ious[:1]
        return (logits if return_logits else logits > 0), ious, low


def _cfg(**kw):
    # lengths in the planted maps' own pixels (the SAM-1024-frame unit has its own tests)
    return get_config("tiny", secondary_points=False, box_margin=5, **{"length_unit": "original", **kw})


def test_logits_pass_unchanged_from_stage_to_stage():
    pred = PlantedPredictor((64, 80), rects=[(10, 10, 30, 30), (12, 8, 40, 33), (11, 9, 39, 32)])
    s_a = np.zeros((64, 80), np.float32)
    res = run_cascade(pred, s_a, np.array([[20, 20]]), np.array([1]), _cfg())
    assert [c["mask_input"] is None for c in pred.calls] == [True, False, False]
    # stage 1 is single-mask: logit1 is SAM's only output; stage 2 keeps the best IoU (index 1)
    np.testing.assert_array_equal(pred.calls[1]["mask_input"], pred.returned_low_res[0][0:1])
    np.testing.assert_array_equal(pred.calls[2]["mask_input"], pred.returned_low_res[1][1:2])
    assert pred.calls[1]["mask_input"].shape == (1, 16, 16)
    assert res.stages[1].mask_input is res.stages[0].low_res_logits
    assert res.stages[2].mask_input is res.stages[1].low_res_logits
    assert [c["multimask"] for c in pred.calls] == [False, True, True]
    assert [s.chosen for s in res.stages] == [0, 1, 1]
    assert res.stages[2].predicted_iou == pytest.approx(0.9)


def test_stage3_box_is_bbox_of_m2_plus_margin_clipped():
    # M2 spans x 12..40, y 8..33; margin 5 -> [7, 3, 45, 38]
    pred = PlantedPredictor((64, 80), rects=[(10, 10, 30, 30), (12, 8, 40, 33), (11, 9, 39, 32)])
    run_cascade(pred, np.zeros((64, 80), np.float32), np.array([[20, 20]]), np.array([1]), _cfg())
    assert pred.calls[0]["box"] is None and pred.calls[1]["box"] is None
    np.testing.assert_array_equal(pred.calls[2]["box"], [7, 3, 45, 38])
    # near the border the box is clipped to the image: M2 spans x 2..78, y 60..63 -> [0, 55, 79, 63]
    pred = PlantedPredictor((64, 80), rects=[(10, 10, 30, 30), (2, 60, 78, 63), (2, 60, 78, 63)])
    run_cascade(pred, np.zeros((64, 80), np.float32), np.array([[20, 20]]), np.array([1]), _cfg())
    np.testing.assert_array_equal(pred.calls[2]["box"], [0, 55, 79, 63])


def test_box_from_mask_known_values():
    m = np.zeros((10, 12), bool)
    m[3:6, 4:9] = True  # rows 3..5, cols 4..8
    np.testing.assert_array_equal(box_from_mask(m, 0), [4, 3, 8, 5])
    np.testing.assert_array_equal(box_from_mask(m, 2), [2, 1, 10, 7])
    np.testing.assert_array_equal(box_from_mask(m, 50), [0, 0, 11, 9])
    assert box_from_mask(np.zeros((4, 4), bool), 3) is None


def test_stages_setting_limits_the_decoder_calls():
    rects = [(10, 10, 30, 30)] * 3
    for stages in (1, 2, 3):
        pred = PlantedPredictor((64, 80), rects)
        res = run_cascade(pred, np.zeros((64, 80), np.float32), np.array([[20, 20]]), np.array([1]),
                          _cfg(stages=stages))
        assert len(pred.calls) == len(res.stages) == stages


def test_empty_mask_stops_the_cascade_and_says_so():
    pred = PlantedPredictor((64, 80), rects=[(10, 10, 30, 30), (0, 0, -1, -1)])  # stage 2: empty slice
    res = run_cascade(pred, np.zeros((64, 80), np.float32), np.array([[20, 20]]), np.array([1]), _cfg())
    assert len(res.stages) == 2 and res.stopped == "stage 2 returned an empty mask"
    assert res.final is res.stages[0]


def test_points_and_labels_reach_sam_in_its_convention():
    pred = PlantedPredictor((64, 80), [(10, 10, 30, 30)] * 3)
    pts, labels = np.array([[20, 21], [50, 5], [70, 60]]), np.array([1, 0, 0])
    run_cascade(pred, np.zeros((64, 80), np.float32), pts, labels, _cfg())
    for call in pred.calls:
        np.testing.assert_array_equal(call["points"], pts)
        np.testing.assert_array_equal(call["labels"], labels)
    with pytest.raises(ValueError, match="at least one positive"):
        run_cascade(pred, np.zeros((64, 80)), np.array([[1, 1]]), np.array([0]), _cfg())


def test_secondary_points_inside_m1_and_in_its_ring():
    cfg = get_config("tiny", k_secondary_pos=2, k_secondary_neg=2, d_min=5.0, secondary_ring=4, length_unit="original")
    s_a = np.full((40, 40), 0.5, np.float32)
    m1 = np.zeros((40, 40), bool)
    m1[10:20, 10:20] = True
    s_a[12, 17] = 0.99  # the best new positive
    s_a[18, 11] = 0.95  # the second one, far enough from the first
    s_a[12, 16] = 0.98  # too close (distance 1) to (17, 12): skipped
    s_a[22, 25] = 0.0   # outside the ring (dilation 4 of the square reaches x <= 23): never chosen
    s_a[8, 10] = 0.01   # lowest in the ring -> first negative
    s_a[21, 21] = 0.02  # second negative
    existing = np.array([[19.0, 19.0]])  # >= d_min from every planted point
    pts, labels = secondary_points(s_a, m1, existing, np.array([1]), cfg)
    np.testing.assert_array_equal(pts[labels == 1], [[17, 12], [11, 18]])
    np.testing.assert_array_equal(pts[labels == 0], [[10, 8], [21, 21]])


@pytest.mark.parametrize("fusion", ["gate", "mask", "sigmoid_logits", "blend", "gate_dilated"])
def test_fusion_modes_give_their_documented_maps(fusion):
    cfg = get_config("tiny", fusion=fusion, alpha=0.25, gate_dilation=1, length_unit="original")
    s_a = np.array([[0.2, 0.4, 0.6], [0.8, 1.0, 0.1], [0.3, 0.5, 0.7]], np.float32)
    m3 = np.zeros((3, 3), bool)
    m3[1, 1] = True
    logits = np.array([[-2, 0, 2], [1, 3, -1], [0, 0, 0]], np.float32)
    expected = {
        "gate": np.where(m3, s_a, 0),
        "mask": m3.astype(float),
        "sigmoid_logits": 1 / (1 + np.exp(-logits)),
        "blend": 0.25 * s_a + 0.75 * m3,
        # dilation by a disc of radius 1 is the 4-neighbourhood cross
        "gate_dilated": s_a * np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]]),
    }[fusion]
    np.testing.assert_allclose(fuse(s_a, m3, logits, cfg), expected, rtol=0, atol=1e-6)
    # no mask (a normal image, or every stage empty): S_a itself
    np.testing.assert_array_equal(fuse(s_a, None, None, cfg), s_a)
    np.testing.assert_array_equal(fuse(s_a, np.zeros((3, 3), bool), logits, cfg), s_a)


def test_secondary_points_respect_tau_and_m_apa():
    """Issue 11.8: secondary negatives below tau and outside M_apa; secondary positives above tau."""
    cfg = get_config("tiny", k_secondary_pos=2, k_secondary_neg=2, d_min=3.0, secondary_ring=4, length_unit="original")
    s_a = np.full((40, 40), 0.8, np.float32)   # the ring around M1 is above tau everywhere...
    m1 = np.zeros((40, 40), bool)
    m1[10:20, 10:20] = True
    s_a[10:20, 10:20] = 0.3                     # ...M1 is below it except two pixels
    s_a[12, 12], s_a[17, 17] = 0.9, 0.45        # one above tau, one below (but the highest after it)
    s_a[8, 15] = 0.2                            # the only ring pixel below tau
    s_a[21, 12] = 0.1                           # below tau but inside M_apa (planted below)
    m_apa = s_a > 0.5
    m_apa[21, 12] = True
    existing = np.array([[35.0, 35.0]])
    pts, labels = secondary_points(s_a, m1, existing, np.array([1]), cfg, tau=0.5, m_apa=m_apa)
    np.testing.assert_array_equal(pts[labels == 1], [[12, 12]])  # 0.45 < tau is no positive
    np.testing.assert_array_equal(pts[labels == 0], [[15, 8]])   # never a pixel of M_apa or above tau
    old = cfg.replace(secondary_tau=False)
    pts, labels = secondary_points(s_a, m1, existing, np.array([1]), old, tau=0.5, m_apa=m_apa)
    np.testing.assert_array_equal(pts[labels == 1], [[12, 12], [17, 17]])
    np.testing.assert_array_equal(pts[labels == 0], [[12, 21], [15, 8]])  # the M_apa pixel (0.1) comes first


def test_cascade_lengths_scale_with_the_frame():
    """box_margin is in length units: scaled to the map's pixels (issue 11.7)."""
    pred = PlantedPredictor((64, 80), rects=[(10, 10, 30, 30), (12, 8, 40, 33), (11, 9, 39, 32)])
    run_cascade(pred, np.zeros((64, 80), np.float32), np.array([[20, 20]]), np.array([1]), _cfg().replace(box_margin=20),
                length_scale=0.25)
    np.testing.assert_array_equal(pred.calls[2]["box"], [7, 3, 45, 38])  # margin 20 * 0.25 = 5 map pixels
