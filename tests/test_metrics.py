"""Tests for clipsam_lite.metrics: hand-computed cases, scikit-learn equality, reference AUPROs.

The straightforward references below (a PRO curve that counts pixels at every distinct threshold,
a literal copy of the fixed-step ``cal_pro_score`` loop) live here on purpose: the package's fast
path must agree with them, never share code with them.
"""

from __future__ import annotations

import importlib.util
import math
from bisect import bisect
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from clipsam_lite import metrics
from clipsam_lite.metrics import (
    AUPRO_VARIANTS,
    UndefinedMetricError,
    aupro,
    aupro_fixed_steps,
    aupro_truncated,
    f1_max,
    image_metrics,
    pixel_ap,
    pixel_auroc,
    pixel_metrics,
)

# Any RuntimeWarning (e.g. a division by zero) inside the metrics is a test failure.
pytestmark = pytest.mark.filterwarnings("error")

EIGHT = np.ones((3, 3), dtype=bool)


# --------------------------------------------------------------------------------------------
# straightforward references (slow, obviously correct)
# --------------------------------------------------------------------------------------------



_trapz = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2 / NumPy 1 (requirements say numpy>=1.24)

def ref_pro_curve(maps: list[np.ndarray], masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The MVTec definition counted directly: (0, 0), one point per distinct threshold t (pixels
    with score >= t are positive), then (1, 1). FPR over all normal pixels; PRO = mean over every
    8-connected region of every image of the fraction of the region at or above t."""
    regions = []
    for i, m in enumerate(masks):
        labels, n = ndimage.label(m, structure=EIGHT)
        regions += [(i, labels == k) for k in range(1, n + 1)]
    n_normal = sum(int((~m).sum()) for m in masks)
    xs, ys = [0.0], [0.0]
    for t in np.unique(np.concatenate([s.ravel() for s in maps]))[::-1]:
        fp = sum(int(((s >= t) & ~m).sum()) for s, m in zip(maps, masks, strict=True))
        overlaps = [np.count_nonzero(maps[i][r] >= t) / r.sum() for i, r in regions]
        xs.append(fp / n_normal)
        ys.append(float(np.mean(overlaps)))
    xs.append(1.0)
    ys.append(1.0)
    return np.array(xs), np.array(ys)


def ref_trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area for x <= x_max with y linearly interpolated at x_max (MVTec's rule)."""
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        y_at = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_at + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    return float(_trapz(y[keep], x[keep]) + correction)


def ref_aupro(maps, masks, fpr_limit=0.3) -> float:
    x, y = ref_pro_curve(maps, masks)
    return ref_trapezoid(x, y, fpr_limit) / fpr_limit


def ref_aupro_truncated(maps, masks, fpr_limit=0.3) -> float:
    """The full curve cut at FPR <= limit (no interpolation), area / largest FPR kept."""
    x, y = ref_pro_curve(maps, masks)
    keep = x <= fpr_limit
    return float(_trapz(y[keep], x[keep]) / x[keep].max())


def ref_cal_pro_score(masks: np.ndarray, amaps: np.ndarray, max_step=200, expect_fpr=0.3) -> float:
    """The fixed-step loop of APRIL-GAN / AnomalyCLIP's cal_pro_score, line by line (skimage's
    8-connected regionprops replaced by scipy.ndimage.label with a 3 x 3 structure)."""
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / max_step
    pros, fprs = [], []
    for th in np.arange(min_th, max_th, delta):
        binary_amaps[amaps <= th], binary_amaps[amaps > th] = 0, 1
        pro = []
        for binary_amap, mask in zip(binary_amaps, masks, strict=True):
            labels, n = ndimage.label(mask, structure=EIGHT)
            for k in range(1, n + 1):
                region = labels == k
                pro.append(binary_amap[region].sum() / region.sum())
        inverse_masks = 1 - masks
        fp_pixels = np.logical_and(inverse_masks, binary_amaps).sum()
        fprs.append(fp_pixels / inverse_masks.sum())
        pros.append(np.array(pro).mean())
    pros, fprs = np.array(pros), np.array(fprs)
    idxes = fprs < expect_fpr
    fprs = fprs[idxes]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return float(auc(fprs, pros[idxes]))


def sk_f1_max(y_true, y_score) -> float:
    p, r, _ = precision_recall_curve(y_true, y_score)
    denom = p + r
    return float(np.max(np.divide(2 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)))


def sk_all(maps, masks) -> dict[str, float]:
    y = np.concatenate([np.asarray(m).ravel() for m in masks])
    s = np.concatenate([np.asarray(a).ravel() for a in maps])
    return {
        "pixel_auroc": roc_auc_score(y, s),
        "pixel_ap": average_precision_score(y, s),
        "pixel_f1_max": sk_f1_max(y, s),
    }


def random_masks(rng: np.random.Generator, shapes, p_defect=0.6) -> list[np.ndarray]:
    """Masks with 1-3 square or disk regions (which may merge) in ~60% of images; the rest clean."""
    out = []
    for h, w in shapes:
        m = np.zeros((h, w), dtype=bool)
        if rng.random() < p_defect:
            yy, xx = np.mgrid[0:h, 0:w]
            for _ in range(int(rng.integers(1, 4))):
                cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(1, 4)
                if rng.random() < 0.5:
                    m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                else:
                    m[cy : cy + r, cx : cx + r + 1] = True
        out.append(m)
    if not any(m.any() for m in out):
        out[0][1:3, 1:3] = True
    return out


def random_maps(rng, masks, decimals=None, dtype=np.float64) -> list[np.ndarray]:
    """Noise plus a bump on the defects; rounding to ``decimals`` creates heavy ties."""
    maps = []
    for m in masks:
        s = rng.random(m.shape) + 0.6 * m * rng.random(m.shape)
        maps.append((np.round(s, decimals) if decimals is not None else s).astype(dtype))
    return maps


# --------------------------------------------------------------------------------------------
# hand-computed cases
# --------------------------------------------------------------------------------------------


def test_hand_computed_auroc_ap_f1():
    # Normal pixels score {0.1, 0.4}, anomalous {0.35, 0.8}.
    # AUROC = P(anomalous > normal) over the 4 pairs: 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3/4.
    # Thresholds, high to low: 0.8 -> TP 1 FP 0 (P 1, R 1/2); 0.4 -> TP 1 FP 1; 0.35 -> TP 2 FP 1
    # (P 2/3, R 1). AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # F1 = 2PR/(P+R): at 0.8: 2 * 1 * .5 / 1.5 = 2/3; at 0.35: 2 * 2/3 * 1 / (5/3) = 4/5 -> 0.8.
    s = np.array([[0.1, 0.4], [0.35, 0.8]])
    m = np.array([[False, False], [True, True]])
    assert pixel_auroc(s, m) == pytest.approx(0.75, abs=1e-15)
    assert pixel_ap(s, m) == pytest.approx(5 / 6, abs=1e-15)
    assert f1_max(s, m) == pytest.approx(0.8, abs=1e-15)


def test_hand_computed_ties():
    # Normal {0.2, 0.5}, anomalous {0.5, 0.9}: the tie 0.5 vs 0.5 counts one half.
    # AUROC = (1 [0.5>0.2] + 0.5 [0.5=0.5] + 1 + 1 [0.9 > both]) / 4 = 3.5 / 4 = 0.875.
    # Thresholds: 0.9 -> TP 1 FP 0 (P 1, R 1/2); 0.5 -> TP 2 FP 1 (P 2/3, R 1), the tied pair
    # enters together. AP = 1/2 * 1 + 1/2 * 2/3 = 5/6; F1-max = max(2/3, 4/5) = 0.8.
    s = np.array([[0.2, 0.5, 0.5, 0.9]])
    m = np.array([[0, 0, 1, 1]], dtype=np.uint8)
    assert pixel_auroc(s, m) == pytest.approx(0.875, abs=1e-15)
    assert pixel_ap(s, m) == pytest.approx(5 / 6, abs=1e-15)
    assert f1_max(s, m) == pytest.approx(0.8, abs=1e-15)
    # Image level, same numbers as 1-D scores and labels.
    out = image_metrics([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1])
    assert out == pytest.approx({"auroc": 0.875, "ap": 5 / 6, "f1_max": 0.8}, abs=1e-15)


# Two images, ten normal pixels (FPR steps of 0.1), two regions:
#   image A scores [0.9, 0.6 | 0.8, 0.7, 0.1, 0.2], region R1 = the first two pixels (size 2)
#   image B scores [0.6, 0.3, 0.4, 0.05, 0.95 | 0.0, 0.15], region R2 = pixel 4 (size 1)
# Normal scores sorted: 0.8 0.7 0.6 0.4 0.3 0.2 0.15 0.1 0.05 0.0.
# Curve (FPR, PRO), threshold high to low:
#   0.95: R2 full -> (0, 1/2);   0.9: R1 half -> (0, 3/4);   0.8 -> (0.1, 3/4);   0.7 -> (0.2, 3/4)
#   0.6: a normal and R1's second pixel together -> (0.3, 1)   (a diagonal step)
# Area to 0.3 = 0.2 * 3/4 + 0.1 * (3/4 + 1) / 2 = 0.15 + 0.0875 = 0.2375 -> AUPRO = 0.2375/0.3.
# To 0.25 the point at 0.25 is interpolated on the diagonal: PRO = 7/8, so
# area = 0.15 + 0.05 * (3/4 + 7/8) / 2 = 0.190625 -> AUPRO@0.25 = 0.7625.
# Truncated at 0.25: last point with FPR <= 0.25 is (0.2, 3/4): area 0.15 / 0.2 = 0.75.
HAND_MAPS = [np.array([[0.9, 0.6, 0.8, 0.7, 0.1, 0.2]]), np.array([[0.6, 0.3, 0.4, 0.05, 0.95, 0.0, 0.15]])]
HAND_MASKS = [np.array([[1, 1, 0, 0, 0, 0]], bool), np.array([[0, 0, 0, 0, 1, 0, 0]], bool)]


def test_hand_computed_aupro():
    assert aupro(HAND_MAPS, HAND_MASKS) == pytest.approx(0.2375 / 0.3, abs=1e-12)
    assert aupro(HAND_MAPS, HAND_MASKS, fpr_limit=0.25) == pytest.approx(0.7625, abs=1e-12)
    assert aupro_truncated(HAND_MAPS, HAND_MASKS, fpr_limit=0.25) == pytest.approx(0.75, abs=1e-12)
    assert aupro_truncated(HAND_MAPS, HAND_MASKS) == pytest.approx(0.2375 / 0.3, abs=1e-12)
    assert pixel_metrics(HAND_MAPS, HAND_MASKS)["pixel_aupro"] == pytest.approx(0.2375 / 0.3, abs=1e-12)


def test_aupro_regions_are_8_connected():
    # Mask pixels (0,0), (1,1), (1,2): one region of 3 under 8-connectivity (two under 4).
    # Only (0,0) scores high; the six normal pixels all score 0.5.
    # Curve: (0, 0) -> t=0.9: (0, 1/3) -> t=0.5: (1, 1/3) -> t=0.2: (1, 1); AUPRO@0.3 = 1/3.
    # (With 4-connectivity PRO would be (1 + 0) / 2 = 1/2.)
    s = np.full((3, 3), 0.5)
    m = np.zeros((3, 3), dtype=bool)
    m[0, 0] = m[1, 1] = m[1, 2] = True
    s[0, 0], s[1, 1], s[1, 2] = 0.9, 0.2, 0.2
    assert aupro(s, m) == pytest.approx(1 / 3, abs=1e-12)


def test_fixed_steps_hand_computed():
    # One row of scores 0..9; the region is {7, 8} (size 2); the 8 normal pixels are 0..6 and 9.
    # steps=10: thresholds arange(0, 9, 0.9) = 0, 0.9, ..., 8.1; a pixel is positive if score > t.
    # Thresholds with FPR < 0.3:  t=5.4: normals 6, 9 -> FPR 2/8, region 7, 8 -> PRO 1
    #                             t=6.3: normal 9 -> 1/8, PRO 1;  t=7.2: 1/8, PRO 1/2 (only 8)
    #                             t=8.1: 1/8, PRO 0
    # "minmax" rescale: x = (fpr - 1/8) / (1/8) = 1, 0, 0, 0 -> area = 1 * 1 (+ vertical steps) = 1.
    # "max" rescale:    x = fpr / (2/8) = 1, 1/2, 1/2, 1/2 -> area = 1/2 * 1 = 0.5.
    # The exact MVTec curve instead: (0,0) -> (1/8, 0) [t=9] -> (1/8, 1/2) -> (1/8, 1) -> (2/8, 1)
    # -> ...; area to 0.3 = (0.3 - 1/8) * 1 = 0.175 -> AUPRO = 0.175 / 0.3.
    s = np.arange(10, dtype=np.float64)[None, :]
    m = (s == 7) | (s == 8)
    assert aupro_fixed_steps(s, m, steps=10) == pytest.approx(1.0, abs=1e-12)
    assert aupro_fixed_steps(s, m, steps=10, rescale="max") == pytest.approx(0.5, abs=1e-12)
    assert ref_cal_pro_score(m[None].astype(int), s[None], 10) == pytest.approx(1.0, abs=1e-12)
    assert aupro(s, m) == pytest.approx(0.175 / 0.3, abs=1e-12)


# --------------------------------------------------------------------------------------------
# scikit-learn equality
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [1, 2, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_sklearn_with_ties(decimals, dtype):
    rng = np.random.default_rng(7 if decimals is None else decimals)
    masks = random_masks(rng, [(24, 24)] * 8)
    maps = random_maps(rng, masks, decimals, dtype)
    stacked_s, stacked_m = np.stack(maps), np.stack(masks)
    got = pixel_metrics(stacked_s, stacked_m)
    want = sk_all(maps, masks)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert pixel_auroc(stacked_s, stacked_m) == pytest.approx(want["pixel_auroc"], abs=1e-9)
    assert pixel_ap(stacked_s, stacked_m) == pytest.approx(want["pixel_ap"], abs=1e-9)
    assert f1_max(stacked_s, stacked_m) == pytest.approx(want["pixel_f1_max"], abs=1e-9)


def test_differently_sized_maps_equal_sklearn_and_reference():
    rng = np.random.default_rng(3)
    shapes = [(10, 17), (23, 9), (16, 16), (5, 30), (12, 12)]
    masks = random_masks(rng, shapes, p_defect=0.8)
    maps = random_maps(rng, masks, decimals=2)
    got = pixel_metrics(maps, masks)
    for key, value in sk_all(maps, masks).items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert got["pixel_aupro"] == pytest.approx(ref_aupro(maps, masks), abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_image_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(60) < 0.4
    scores = np.round(rng.random(60) + 0.3 * labels, 1)  # heavy ties
    got = image_metrics(scores, labels)
    assert got["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert got["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert got["f1_max"] == pytest.approx(sk_f1_max(labels, scores), abs=1e-9)


# --------------------------------------------------------------------------------------------
# AUPRO against the straightforward references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,decimals", [(0, 1), (1, 2), (3, None), (4, None)])
def test_aupro_equals_reference(seed, decimals):
    rng = np.random.default_rng(seed)
    masks = random_masks(rng, [(14, 14)] * 9)
    masks[-1][:] = False  # always at least one image without any defect
    maps = random_maps(rng, masks, decimals)
    n_regions = [ndimage.label(m, structure=EIGHT)[1] for m in masks]
    assert max(n_regions) >= 2 and n_regions.count(0) >= 2  # several regions per image; clean images
    for limit in (0.3, 0.05, 1.0):
        assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(ref_aupro(maps, masks, limit), abs=1e-6)
        got_t = aupro_truncated(maps, masks, fpr_limit=limit)
        assert got_t == pytest.approx(ref_aupro_truncated(maps, masks, limit), abs=1e-6)


def test_benchmark_reference_port_equals_straightforward_reference():
    """The MVTec port the benchmark times against must itself match the direct count."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "metrics_speed.py"
    spec = importlib.util.spec_from_file_location("metrics_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(11)
    masks = random_masks(rng, [(14, 14)] * 6)
    maps = random_maps(rng, masks, decimals=1)
    assert bench.reference_aupro(maps, masks, 0.3) == pytest.approx(ref_aupro(maps, masks, 0.3), abs=1e-9)
    # and the benchmark's data look like the brief: float32, about half of the images defective
    s, m = bench.make_category(np.random.default_rng(0), 12, 64)
    assert s.dtype == np.float32 and m.dtype == np.bool_ and 0 < m.any(axis=(1, 2)).sum() < 12


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_steps_equals_cal_pro_score(seed):
    rng = np.random.default_rng(seed)
    masks = np.stack(random_masks(rng, [(12, 12)] * 5))
    maps = np.stack(random_maps(rng, list(masks), dtype=np.float32))
    want = ref_cal_pro_score(masks.astype(int), maps)
    assert aupro_fixed_steps(maps, masks) == pytest.approx(want, abs=1e-9)


def test_aupro_variants_are_documented_functions():
    for name, text in AUPRO_VARIANTS.items():
        assert callable(getattr(metrics, name)) and "0.3" in text


# --------------------------------------------------------------------------------------------
# invariances
# --------------------------------------------------------------------------------------------


def _all_metrics(maps, masks) -> dict[str, float]:
    out = pixel_metrics(maps, masks)
    out["truncated"] = aupro_truncated(maps, masks)
    return out


def test_strictly_monotone_transform_changes_nothing():
    # Fixed-step AUPRO is deliberately left out: its thresholds are evenly spaced in score units,
    # so it is not invariant to a non-linear monotone transform (one of its flaws).
    rng = np.random.default_rng(5)
    masks = random_masks(rng, [(16, 16)] * 6)
    maps = random_maps(rng, masks, decimals=2)
    before = _all_metrics(maps, masks)
    transformed = [s**3 + 2 * s - 7 for s in maps]  # strictly increasing; 0.01 steps stay distinct
    assert _all_metrics(transformed, masks) == pytest.approx(before, abs=1e-12)
    labels = rng.random(40) < 0.5
    scores = np.round(rng.random(40), 1)
    assert image_metrics(np.exp(scores), labels) == pytest.approx(image_metrics(scores, labels), abs=1e-12)


def test_map_order_and_container_change_nothing():
    rng = np.random.default_rng(6)
    masks = random_masks(rng, [(16, 16)] * 6)
    maps = random_maps(rng, masks, decimals=2)
    order = rng.permutation(6)
    listed = _all_metrics(maps, masks)
    assert _all_metrics(np.stack(maps)[order], np.stack(masks)[order]) == pytest.approx(listed, abs=1e-12)


def test_pixel_metrics_sorts_once_and_matches_single_functions(monkeypatch):
    rng = np.random.default_rng(8)
    masks = random_masks(rng, [(16, 16)] * 4)
    maps = random_maps(rng, masks, decimals=1)
    single = {
        "pixel_auroc": pixel_auroc(maps, masks),
        "pixel_ap": pixel_ap(maps, masks),
        "pixel_f1_max": f1_max(maps, masks),
        "pixel_aupro": aupro(maps, masks),
    }
    calls = []
    original = metrics._split
    monkeypatch.setattr(metrics, "_split", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert pixel_metrics(maps, masks) == single
    assert len(calls) == 1


# --------------------------------------------------------------------------------------------
# degenerate cases and bad input
# --------------------------------------------------------------------------------------------


def test_no_anomalous_pixel_is_undefined():
    s = np.random.default_rng(0).random((2, 5, 5))
    m = np.zeros((2, 5, 5), dtype=bool)
    for fn in (pixel_auroc, pixel_ap, f1_max, aupro, aupro_truncated, aupro_fixed_steps):
        with pytest.raises(UndefinedMetricError, match="no anomalous"):
            fn(s, m)
    with pytest.raises(UndefinedMetricError):
        pixel_metrics(s, m)
    out = pixel_metrics(s, m, on_undefined="nan")
    assert set(out) == {"pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro"}
    assert all(math.isnan(v) for v in out.values())
    out = image_metrics([0.1, 0.2], [0, 0], on_undefined="nan")
    assert all(math.isnan(v) for v in out.values())


def test_no_normal_pixel():
    # Every pixel anomalous: AUROC and AUPRO have no FPR axis; precision is 1 everywhere, so
    # AP = 1 and F1-max = 1 (sklearn agrees for AP).
    s = np.array([[0.3, 0.1], [0.2, 0.2]])
    m = np.ones((2, 2), dtype=bool)
    with pytest.raises(UndefinedMetricError, match="no normal"):
        pixel_auroc(s, m)
    with pytest.raises(UndefinedMetricError, match="no normal pixel"):
        aupro(s, m)
    assert pixel_ap(s, m) == 1.0 == average_precision_score(m.ravel(), s.ravel())
    assert f1_max(s, m) == 1.0
    out = pixel_metrics(s, m, on_undefined="nan")
    assert math.isnan(out["pixel_auroc"]) and math.isnan(out["pixel_aupro"]) and out["pixel_ap"] == 1.0


def test_constant_scores_give_chance_values():
    # 4 anomalous of 16 pixels (p = 1/4), all scores equal: one threshold takes every pixel.
    # AUROC = 0.5; AP = precision at that threshold = p = 0.25; F1-max = 2p/(1+p) = 0.4;
    # PRO curve (0,0) -> (1,1), area to 0.3 = 0.3^2 / 2 -> AUPRO = 0.15.
    s = np.full((4, 4), 0.7, dtype=np.float32)
    m = np.zeros((4, 4), dtype=bool)
    m[0, :] = True
    out = pixel_metrics(s, m)
    assert out == pytest.approx(
        {"pixel_auroc": 0.5, "pixel_ap": 0.25, "pixel_f1_max": 0.4, "pixel_aupro": 0.15}
    )
    assert out["pixel_auroc"] == roc_auc_score(m.ravel(), s.ravel())
    assert out["pixel_ap"] == pytest.approx(average_precision_score(m.ravel(), s.ravel()), abs=1e-12)
    with pytest.raises(UndefinedMetricError, match="constant"):
        aupro_fixed_steps(s, m)
    with pytest.raises(UndefinedMetricError, match="constant"):
        aupro_truncated(s, m)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise(bad):
    s = [np.zeros((3, 3)), np.zeros((4, 4))]
    s[1][2, 2] = bad
    m = [np.eye(3, dtype=bool), np.eye(4, dtype=bool)]
    with pytest.raises(ValueError, match="score map 1 contains .*finite"):
        pixel_metrics(s, m)
    with pytest.raises(ValueError, match="image score array 0 contains"):
        image_metrics([0.1, bad], [0, 1])


def test_shape_mismatch_names_both_shapes_and_index():
    s = [np.zeros((4, 4)), np.zeros((5, 6))]
    m = [np.zeros((4, 4), bool), np.zeros((6, 5), bool)]
    with pytest.raises(ValueError, match=r"score map 1 has shape \(5, 6\) but its mask has shape \(6, 5\)"):
        pixel_auroc(s, m)
    with pytest.raises(ValueError, match="got 2 score maps but 1 masks"):
        pixel_auroc(s, m[:1])
    with pytest.raises(ValueError, match="expected two 1-D arrays"):
        image_metrics([0.1, 0.2, 0.3], [0, 1])


def test_masks_must_be_binary():
    s = np.random.default_rng(0).random((2, 4, 4))
    m = np.zeros((2, 4, 4), dtype=np.uint8)
    m[1, :2] = 1
    assert pixel_metrics(s, m) == pixel_metrics(s, m.astype(bool))  # exact 0/1 numbers are fine
    m[1, 0, 0] = 255
    with pytest.raises(ValueError, match="mask 1 has values other than 0 and 1 .*mask > 0.5"):
        pixel_metrics(s, m)


def test_other_bad_input():
    with pytest.raises(ValueError, match="empty"):
        pixel_auroc([], [])
    with pytest.raises(ValueError, match=r"expected an N x H x W array"):
        pixel_auroc(np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 4, 4), bool))
    with pytest.raises(ValueError, match="fpr_limit must be in"):
        aupro(HAND_MAPS, HAND_MASKS, fpr_limit=30)
    with pytest.raises(ValueError, match="on_undefined"):
        pixel_metrics(HAND_MAPS, HAND_MASKS, on_undefined="ignore")
    with pytest.raises(ValueError, match="dtype"):
        pixel_auroc(np.array([["a", "b"]]), np.array([[0, 1]]))


def test_metrics_run_without_numpy2_only_functions(monkeypatch):
    """requirements.txt promises numpy>=1.24: nothing in metrics may need NumPy 2's np.trapezoid (issue 11.4)."""
    s = np.arange(10, dtype=np.float64)[None, :]  # test_fixed_steps_hand_computed's case: 1 and 0.5
    m = (s == 7) | (s == 8)
    monkeypatch.delattr(np, "trapezoid", raising=False)
    assert aupro_fixed_steps(s, m, steps=10) == pytest.approx(1.0, abs=1e-12)
    assert aupro_fixed_steps(s, m, steps=10, rescale="max") == pytest.approx(0.5, abs=1e-12)


def test_requirements_numpy_floor_matches_the_code():
    """The numpy floor in requirements.txt and pyproject.toml is the same, and the package source calls no
    NumPy-2-only function when the floor is below 2 (issue 11.4: np.trapezoid crashed on numpy 1.x)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    floors = {re.search(r"numpy>=([0-9.]+)", (root / f).read_text()).group(1) for f in ("requirements.txt", "pyproject.toml")}
    assert len(floors) == 1, floors
    if int(floors.pop().split(".")[0]) < 2:
        for path in (root / "clipsam_lite").rglob("*.py"):
            assert "np.trapezoid(" not in path.read_text(), path
