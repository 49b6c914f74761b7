"""Exact anomaly-detection metrics: AUROC, AP, F1-max and AUPRO at pixel and image level [ours].

METHOD.md, "Evaluation protocol": pixel AUROC, AP, F1-max (the maximum over the precision-recall
curve of 2PR/(P+R)) and AUPRO integrated to FPR 0.3 and divided by 0.3 (the MVTec AD reference
definition); image AUROC, AP and F1-max. These are the field's conventions, not the paper's
contribution, so everything here is **[ours]**.

Inputs
    Pixel functions take score maps and boolean masks as an ``N x H x W`` array pair, a single
    ``H x W`` pair, or two sequences of ``H_i x W_i`` arrays (maps of different sizes). Masks may be
    ``bool`` or numbers that are exactly 0/1. :func:`image_metrics` takes 1-D scores and labels.

Exactness
    * AUROC equals scikit-learn's ``roc_auc_score`` (computed here in exact integer arithmetic:
      the trapezoid area of the ROC curve over every distinct threshold, ties grouped as sklearn
      groups them, i.e. the Mann-Whitney statistic with ties counted one half).
    * AP equals ``average_precision_score``: sum over distinct thresholds of
      (R_k - R_{k-1}) P_k, no interpolation.
    * F1-max equals the maximum over ``precision_recall_curve`` of 2PR/(P+R), taken as 0 where
      P + R = 0.
    * :func:`aupro` follows the MVTec AD reference evaluation code (``compute_pro`` and
      ``trapezoid``): ground-truth regions are the connected components of each mask under
      ``scipy.ndimage.label`` with a 3 x 3 structure of ones (8-connectivity); FPR is measured on
      the normal pixels (outside every mask) of all images; PRO is the mean over all regions of all
      images of the fraction of the region at or above the threshold; the curve has one point per
      distinct threshold and starts at (0, 0); it is integrated with the trapezoid rule up to
      ``fpr_limit``, with the point at exactly ``fpr_limit`` linearly interpolated, and divided by
      ``fpr_limit``. (The reference code keeps FPRs in float32; we use float64, so results agree
      to ~1e-7.)
    * Scores are never quantised: float16/float32 maps are ranked as float32, everything wider
      (float64, int32, int64) as float64. Rounding float64 scores to float32 would create ties
      and could move AUROC from about the 7th digit on, so pass float32 maps if you want the
      smaller footprint.

How it is fast: one sort per call
    Every curve above changes only at the distinct scores taken by *anomalous* pixels: between
    two such scores only normal pixels enter, which moves the ROC and PRO curves horizontally at a
    constant height (exact area: height x width) and can only lower precision and F1. So each call
    sorts the normal pixels' scores once (one in-place, vectorised sort of a float32 buffer), sorts
    the few anomalous pixels' scores once (with their region weights), and then reads, with two
    binary searches per distinct anomalous score, how many normal pixels score at or above it.
    Everything after the sorts is O(number of anomalous pixels), and :func:`pixel_metrics`
    computes all four metrics from that single shared result.

Memory
    Beyond the caller's arrays: one buffer of the normal pixels' scores (4 bytes per normal pixel
    for float32 maps, 8 for float64), about 60 bytes per anomalous pixel (scores, region weights,
    sort order, counts, the curve), and one map's temporaries (a boolean complement and an int32
    region label image). Non-bool masks are converted to one bool copy (1 byte per pixel).
    Measured (benchmarks/metrics_speed.py, float32, ~1.5% anomalous pixels): 4.8 bytes per pixel,
    i.e. about 0.15 GB per MVTec AD category (~31 M pixels), or about 2.3 GB if all 1725 maps of
    518 x 518 (463 M pixels) are pooled in one call.

Undefined values (raise :class:`UndefinedMetricError`, a ``ValueError``; the dict functions can
return NaN instead with ``on_undefined="nan"``)
    * no anomalous pixel / positive label: AUROC, AP, F1-max and every AUPRO are undefined;
    * no normal pixel / negative label: AUROC and every AUPRO are undefined; AP and F1-max are
      1.0 (precision is 1 at every threshold), as in scikit-learn;
    * constant scores are *not* an error: they give the chance values AUROC 0.5, AP = prevalence
      p, F1-max = 2p/(1+p), AUPRO = fpr_limit / 2 (the curve is the straight line from (0, 0) to
      (1, 1)); :func:`aupro_fixed_steps` and :func:`aupro_truncated` have no curve point inside
      (0, fpr_limit] then and raise.
    * NaN or infinite scores, shape mismatches, non-binary masks, empty inputs: ``ValueError``
      naming the map index and what was found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "AUPRO_DEFINITION",
    "AUPRO_VARIANTS",
    "REGION_STRUCTURE",
    "UndefinedMetricError",
    "aupro",
    "aupro_fixed_steps",
    "aupro_truncated",
    "f1_max",
    "image_metrics",
    "pixel_ap",
    "pixel_auroc",
    "pixel_metrics",
    "region_auroc",
]

AUPRO_DEFINITION = (
    "MVTec AD reference AUPRO: mean overlap of 8-connected ground-truth regions vs FPR on normal "
    "pixels, one point per distinct threshold, trapezoid integral up to FPR 0.3 (interpolated at "
    "0.3) divided by 0.3"
)
"""One-line description of :func:`aupro` for results tables."""

AUPRO_VARIANTS: dict[str, str] = {
    "aupro": AUPRO_DEFINITION,
    "aupro_fixed_steps": (
        "fixed-step AUPRO (cal_pro_score of CFlow-AD, as copied into APRIL-GAN and AnomalyCLIP): "
        "200 evenly spaced thresholds from min to max score, points with FPR < 0.3, FPRs rescaled "
        "to [0, 1] by (fpr - min) / (max - min), trapezoid area"
    ),
    "aupro_truncated": (
        "truncated AUPRO: the reference curve (every distinct threshold) cut at its last point with "
        "FPR <= 0.3, no interpolated point at 0.3, area divided by that last point's FPR"
    ),
}
"""The three AUPRO definitions this module implements, for the evaluation notebook's comparison."""

REGION_STRUCTURE: NDArray[np.bool_] = np.ones((3, 3), dtype=bool)
"""Connectivity of ground-truth regions: 8-connectivity, as in the MVTec AD reference code."""

OnUndefined = Literal["raise", "nan"]
Maps = ArrayLike | Sequence[ArrayLike]

_BINARISE_HINT = "binarise it first, e.g. mask > 0.5 (MVTec AD) or mask != 0 (VisA)"


class UndefinedMetricError(ValueError):
    """The metric has no value for this input (e.g. no anomalous pixel); see the module docstring."""


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------


def _as_items(x: Maps, what: str) -> list[np.ndarray]:
    """Split ``x`` into a list of 2-D arrays: an N x H x W array, one H x W array, or a sequence."""
    if isinstance(x, (list, tuple)):
        items = [np.asarray(e) for e in x]
        for i, a in enumerate(items):
            if a.ndim != 2:
                raise ValueError(
                    f"{what} {i} has shape {a.shape}; expected a 2-D H x W array "
                    "(squeeze channel axes first, e.g. a[0] or a.squeeze())"
                )
        return items
    arr = np.asarray(x)
    if arr.ndim == 3:
        return list(arr)
    if arr.ndim == 2:
        return [arr]
    raise ValueError(
        f"{what}s have shape {arr.shape}; expected an N x H x W array, one H x W array, or a "
        "list of H_i x W_i arrays (squeeze channel axes first, e.g. maps[:, 0])"
    )


def _check_scores(s: np.ndarray, i: int, what: str) -> None:
    """Raise ``ValueError`` unless ``s`` is real-valued and finite."""
    if s.dtype.kind not in "biuf":
        raise ValueError(f"{what} {i} has dtype {s.dtype}; expected real numbers (float32 is best)")
    if s.dtype.kind == "f":
        finite = np.isfinite(s)
        if not finite.all():
            n_nan = int(np.count_nonzero(np.isnan(s)))
            n_inf = int(s.size - np.count_nonzero(finite)) - n_nan
            raise ValueError(
                f"{what} {i} contains {n_nan} NaN and {n_inf} infinite values; scores must be "
                "finite (fix the model output, or replace them, e.g. with np.nan_to_num)"
            )


def _as_bool(m: np.ndarray, i: int, what: str, hint: str = _BINARISE_HINT) -> np.ndarray:
    """``m`` as a bool array; numbers must be exactly 0 or 1."""
    if m.dtype == np.bool_:
        return m
    if m.dtype.kind not in "iuf":
        raise ValueError(f"{what} {i} has dtype {m.dtype}; expected bool ({hint})")
    bad = (m != 0) & (m != 1)
    if bad.any():
        raise ValueError(f"{what} {i} has values other than 0 and 1 (e.g. {m[bad].flat[0]!r}); {hint}")
    return m != 0


def _pair_up(
    scores: Maps, masks: Maps, names: tuple[str, str] = ("score map", "mask")
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validated (score map, bool mask) pairs; raises ``ValueError`` naming the index and shapes."""
    s_items = _as_items(scores, names[0])
    m_items = _as_items(masks, names[1])
    if len(s_items) != len(m_items):
        raise ValueError(f"got {len(s_items)} {names[0]}s but {len(m_items)} {names[1]}s; pass one per image")
    if not s_items or all(s.size == 0 for s in s_items):
        raise ValueError(f"no pixels to evaluate: the {names[0]}s are empty")
    pairs = []
    for i, (s, m) in enumerate(zip(s_items, m_items, strict=True)):
        if s.shape != m.shape:
            raise ValueError(
                f"{names[0]} {i} has shape {s.shape} but its {names[1]} has shape {m.shape}; "
                "resize one to the other (evaluate maps and masks at the same resolution)"
            )
        _check_scores(s, i, names[0])
        pairs.append((s, _as_bool(m, i, names[1])))
    return pairs


def _vector_pair(scores: ArrayLike, labels: ArrayLike) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validated (image scores, bool labels) as a single pair of 1-D arrays."""
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"image scores have shape {s.shape} and labels have shape {y.shape}; expected two 1-D "
            "arrays of the same length (one score and one 0/1 label per image)"
        )
    if s.size == 0:
        raise ValueError("no images to evaluate: the image scores are empty")
    _check_scores(s, 0, "image score array")
    return [(s, _as_bool(y, 0, "label array", "use 1 (or True) for anomalous, 0 for normal images"))]


def _check_fpr_limit(fpr_limit: float) -> float:
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r} (the convention is 0.3)")
    return limit


# --------------------------------------------------------------------------------------------
# the shared work: one sort of the normal pixels, one of the anomalous pixels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Split:
    """Scores split by ground truth and sorted ascending."""

    neg: np.ndarray
    """Scores of the normal pixels (outside every mask), sorted ascending."""
    pos: np.ndarray
    """Scores of the anomalous pixels, sorted ascending."""
    pos_weight: np.ndarray | None
    """1 / |region| of each anomalous pixel's ground-truth region, in ``pos`` order (AUPRO only)."""
    n_regions: int
    """Number of ground-truth regions over all maps (0 when regions were not computed)."""


def _split(pairs: list[tuple[np.ndarray, np.ndarray]], *, regions: bool) -> _Split:
    """Copy each pixel's score into the normal or the anomalous buffer, then sort each buffer once."""
    dtype = np.result_type(np.float32, *(s.dtype for s, _ in pairs))
    counts = [int(np.count_nonzero(m)) for _, m in pairs]
    n_pos = sum(counts)
    n_neg = sum(m.size for _, m in pairs) - n_pos
    neg = np.empty(n_neg, dtype=dtype)
    pos = np.empty(n_pos, dtype=dtype)
    weight = np.empty(n_pos, dtype=np.float64) if regions else None
    n_regions = 0
    a = b = 0
    for (s, m), k in zip(pairs, counts, strict=True):
        if k == 0:
            neg[a : a + s.size] = s.ravel()
            a += s.size
            continue
        neg[a : a + s.size - k] = s[~m]
        pos[b : b + k] = s[m]
        if weight is not None:
            labels, n = ndimage.label(m, structure=REGION_STRUCTURE)
            region_of_pixel = labels[m]
            inverse_size = np.zeros(n + 1)
            inverse_size[1:] = 1.0 / np.bincount(region_of_pixel, minlength=n + 1)[1:]
            weight[b : b + k] = inverse_size[region_of_pixel]
            n_regions += n
        a += s.size - k
        b += k
    neg.sort()
    if weight is not None:
        order = np.argsort(pos)
        pos = pos[order]
        weight = weight[order]
    else:
        pos.sort()
    return _Split(neg=neg, pos=pos, pos_weight=weight, n_regions=n_regions)


def _suffix_sums(w: np.ndarray) -> np.ndarray:
    """``out[i] = w[i:].sum()`` for i in 0..len(w) (so ``out[len(w)] = 0``), summed from the top."""
    out = np.zeros(w.size + 1)
    out[:-1] = np.cumsum(w[::-1])[::-1]
    return out


@dataclass(frozen=True)
class _Curve:
    """Counts at every distinct score taken by an anomalous pixel, in *descending* score order."""

    tp: np.ndarray
    """Anomalous pixels with score >= v (int64)."""
    fp_ge: np.ndarray
    """Normal pixels with score >= v (int64)."""
    fp_gt: np.ndarray
    """Normal pixels with score > v (int64)."""
    pro: np.ndarray | None
    """Mean over ground-truth regions of the fraction of the region with score >= v."""
    n_pos: int
    n_neg: int
    n_regions: int


def _curve(sp: _Split) -> _Curve:
    """Read TP, FP and PRO at each distinct anomalous score with two binary searches."""
    n_pos, n_neg = sp.pos.size, sp.neg.size
    if n_pos:
        first = np.flatnonzero(np.concatenate(([True], sp.pos[1:] != sp.pos[:-1])))
    else:
        first = np.zeros(0, dtype=np.intp)
    values = sp.pos[first]
    tp = (n_pos - first.astype(np.int64))[::-1]
    fp_ge = (n_neg - np.searchsorted(sp.neg, values, side="left").astype(np.int64))[::-1]
    fp_gt = (n_neg - np.searchsorted(sp.neg, values, side="right").astype(np.int64))[::-1]
    pro = None
    if sp.pos_weight is not None and sp.n_regions > 0:
        pro = np.minimum(_suffix_sums(sp.pos_weight)[first] / sp.n_regions, 1.0)[::-1]
    return _Curve(tp=tp, fp_ge=fp_ge, fp_gt=fp_gt, pro=pro, n_pos=n_pos, n_neg=n_neg, n_regions=sp.n_regions)


# --------------------------------------------------------------------------------------------
# metrics from the shared curve
# --------------------------------------------------------------------------------------------


def _auroc(c: _Curve) -> float:
    """Trapezoid area under the ROC curve, in exact integer arithmetic (ties count one half)."""
    if c.n_pos == 0 or c.n_neg == 0:
        missing = "anomalous" if c.n_pos == 0 else "normal"
        raise UndefinedMetricError(f"AUROC is undefined: there is no {missing} pixel/image (only one class)")
    tp_prev = np.concatenate(([0], c.tp[:-1]))
    fp_gt_next = np.concatenate((c.fp_gt[1:], [c.n_neg]))
    # The ROC polyline visits (fp_gt, tp_prev) -> (fp_ge, tp) at each distinct anomalous score and
    # runs horizontally at height tp up to the next one. Twice its area in count units:
    diagonal = (c.fp_ge - c.fp_gt) * (tp_prev + c.tp)
    flat = (fp_gt_next - c.fp_ge) * c.tp
    if 2 * c.n_pos * c.n_neg < 2**62:  # every partial sum fits in int64: exact
        twice_area = int(diagonal.sum()) + 2 * int(flat.sum())
    else:  # > 4e9 pixels: float64 sums, still accurate to ~1e-15
        twice_area = float(diagonal.sum(dtype=np.float64)) + 2.0 * float(flat.sum(dtype=np.float64))
    return twice_area / (2 * c.n_pos * c.n_neg)


def _ap(c: _Curve) -> float:
    """Sum over distinct thresholds of (recall gain) x precision, as sklearn's average precision."""
    if c.n_pos == 0:
        raise UndefinedMetricError("AP is undefined: there is no anomalous pixel/image (recall is 0/0)")
    gain = np.diff(c.tp, prepend=0)
    precision = c.tp / (c.tp + c.fp_ge)
    return float(np.sum(gain * precision) / c.n_pos)


def _f1_max(c: _Curve) -> float:
    """max 2PR/(P+R) = max 2 TP / (TP + FP + n_pos); only anomalous scores can be maxima."""
    if c.n_pos == 0:
        raise UndefinedMetricError("F1-max is undefined: there is no anomalous pixel/image (recall is 0/0)")
    return float(np.max(2.0 * c.tp / (c.tp + c.fp_ge + c.n_pos)))


def _pro_polyline(c: _Curve) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) points with the same area and interpolation as the reference's full curve.

    The reference curve has a point per distinct threshold; between two distinct anomalous
    scores only normal pixels enter, so those points lie on a horizontal line and can be dropped.
    Kept: (0, 0), then per anomalous score v the points (FPR(>v), PRO before v) and
    (FPR(>=v), PRO(>=v)), then (1, 1).
    """
    _require_pro(c.n_regions, c.n_neg)
    assert c.pro is not None
    m = c.tp.size
    x = np.empty(2 * m + 2)
    y = np.empty(2 * m + 2)
    x[0] = y[0] = 0.0
    x[1:-1:2] = c.fp_gt / c.n_neg
    x[2:-1:2] = c.fp_ge / c.n_neg
    y[1:-1:2] = np.concatenate(([0.0], c.pro[:-1]))
    y[2:-1:2] = c.pro
    x[-1] = y[-1] = 1.0
    return x, y


def _require_pro(n_regions: int, n_neg: int) -> None:
    """Raise :class:`UndefinedMetricError` when a PRO curve does not exist."""
    if n_regions == 0:
        raise UndefinedMetricError("AUPRO is undefined: the masks contain no anomalous region")
    if n_neg == 0:
        raise UndefinedMetricError("AUPRO is undefined: there is no normal pixel (the FPR is 0/0)")


def _trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under (x, y) for x in [0, x_max], interpolating y at x_max.

    Same rule as ``trapezoid(x, y, x_max)`` of the MVTec AD evaluation code; ``x`` must be
    non-decreasing, start at 0 and end at >= ``x_max``.
    """
    ins = int(np.searchsorted(x, x_max, side="right"))  # x[ins - 1] <= x_max < x[ins]
    xs, ys = x[:ins], y[:ins]
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1])))
    if xs[-1] < x_max:
        x0, x1, y0, y1 = x[ins - 1], x[ins], y[ins - 1], y[ins]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += 0.5 * (y_at + y0) * (x_max - x0)
    return area


def _aupro(c: _Curve, fpr_limit: float) -> float:
    x, y = _pro_polyline(c)
    return _trapezoid_to(x, y, fpr_limit) / fpr_limit


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def pixel_auroc(scores: Maps, masks: Maps) -> float:
    """Pixel-level area under the ROC curve, equal to sklearn's ``roc_auc_score`` on all pixels [ours].

    Raises :class:`UndefinedMetricError` without anomalous or without normal pixels.
    """
    return _auroc(_curve(_split(_pair_up(scores, masks), regions=False)))


def pixel_ap(scores: Maps, masks: Maps) -> float:
    """Pixel-level average precision, equal to sklearn's ``average_precision_score`` [ours].

    Raises :class:`UndefinedMetricError` without anomalous pixels; 1.0 without normal pixels.
    """
    return _ap(_curve(_split(_pair_up(scores, masks), regions=False)))


def f1_max(scores: Maps, masks: Maps) -> float:
    """Maximum over the precision-recall curve of 2PR/(P+R) (0 where P+R=0), pixel level [ours].

    Equals the max over sklearn's ``precision_recall_curve``. Raises :class:`UndefinedMetricError`
    without anomalous pixels; 1.0 without normal pixels. For image level use :func:`image_metrics`.
    """
    return _f1_max(_curve(_split(_pair_up(scores, masks), regions=False)))


def aupro(scores: Maps, masks: Maps, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, divided by it (MVTec AD reference) [ours].

    See :data:`AUPRO_DEFINITION` and the module docstring for the exact definition. Raises
    :class:`UndefinedMetricError` when the masks have no region or no normal pixel.
    """
    limit = _check_fpr_limit(fpr_limit)
    return _aupro(_curve(_split(_pair_up(scores, masks), regions=True)), limit)


def aupro_fixed_steps(
    scores: Maps,
    masks: Maps,
    fpr_limit: float = 0.3,
    steps: int = 200,
    rescale: Literal["minmax", "max"] = "minmax",
) -> float:
    """Fixed-threshold AUPRO as computed by ``cal_pro_score`` in peer code (for comparisons only) [ours].

    This reproduces, exactly but without the per-threshold loop, the function ``cal_pro_score``
    of APRIL-GAN's and AnomalyCLIP's evaluation code (credited there to CFlow-AD,
    gudovskiy/cflow-ad, ``train.py``); by what it computes:
    thresholds ``np.arange(min, max, (max - min) / steps)`` in the scores' dtype (``steps`` or
    ``steps + 1`` of them), a pixel is positive when its score is ``> threshold``; FPR on normal
    pixels and PRO = mean over all regions (8-connected) of their overlap, as in :func:`aupro`;
    points with ``FPR < fpr_limit`` are kept; their FPRs are rescaled to [0, 1] with
    ``(fpr - min) / (max - min)`` (``rescale="minmax"``, the APRIL-GAN / AnomalyCLIP copy) or
    divided by their maximum (``rescale="max"``, CFlow-AD's own version); the area is the
    trapezoid rule (``sklearn.metrics.auc``). It is *not* comparable with :func:`aupro`.

    Raises :class:`UndefinedMetricError` when fewer than two distinct kept FPRs exist (e.g.
    constant scores), besides the cases of :func:`aupro`.
    """
    limit = _check_fpr_limit(fpr_limit)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r} (peer code uses 200)")
    if rescale not in ("minmax", "max"):
        raise ValueError(f"rescale must be 'minmax' or 'max', got {rescale!r}")
    steps = int(steps)
    sp = _split(_pair_up(scores, masks), regions=True)
    _require_pro(sp.n_regions, sp.neg.size)
    assert sp.pos_weight is not None
    ends = [a[[0, -1]] for a in (sp.neg, sp.pos) if a.size]
    lo, hi = np.min(ends), np.max(ends)  # numpy scalars of the ranking dtype, as amaps.min() / max()
    if hi == lo:
        raise UndefinedMetricError("fixed-step AUPRO is undefined for constant scores (no thresholds)")
    thresholds = np.arange(lo, hi, (hi - lo) / steps)
    fpr = (sp.neg.size - np.searchsorted(sp.neg, thresholds, side="right")) / sp.neg.size
    pro = _suffix_sums(sp.pos_weight)[np.searchsorted(sp.pos, thresholds, side="right")] / sp.n_regions
    keep = fpr < limit
    fpr, pro = fpr[keep], pro[keep]
    low = fpr.min() if (rescale == "minmax" and fpr.size) else 0.0
    if fpr.size < 2 or fpr.max() == low:
        raise UndefinedMetricError(
            f"fixed-step AUPRO is undefined: fewer than two distinct FPRs below {limit} among the "
            f"{thresholds.size} thresholds"
        )
    fpr = (fpr - low) / (fpr.max() - low)
    return float(-np.trapezoid(pro, fpr))  # FPR decreases along the thresholds, as auc() handles


def aupro_truncated(scores: Maps, masks: Maps, fpr_limit: float = 0.3) -> float:
    """The reference PRO curve cut at its last point with FPR <= ``fpr_limit``, without interpolation [ours].

    Same curve as :func:`aupro` (every distinct threshold), but the area runs only to the last
    curve point whose FPR is ``<= fpr_limit`` and is divided by that point's FPR instead of by
    ``fpr_limit``. This is the variant one gets by masking ``fpr <= limit`` and normalising by the
    largest FPR kept; we describe it by what it computes and do not attribute it to a code base.
    On dense curves it differs from :func:`aupro` only slightly.

    Raises :class:`UndefinedMetricError` when no curve point has 0 < FPR <= ``fpr_limit`` (e.g.
    constant scores), besides the cases of :func:`aupro`.
    """
    limit = _check_fpr_limit(fpr_limit)
    sp = _split(_pair_up(scores, masks), regions=True)
    c = _curve(sp)
    x, y = _pro_polyline(c)
    n_neg = sp.neg.size
    # The largest false-positive count k reachable by a threshold with k / n_neg <= limit:
    # thresholds include or exclude whole groups of tied normal scores.
    k = min(int(math.floor(limit * n_neg)), n_neg)
    while k < n_neg and (k + 1) / n_neg <= limit:
        k += 1
    while k > 0 and k / n_neg > limit:
        k -= 1
    if 0 < k < n_neg and sp.neg[n_neg - k] == sp.neg[n_neg - k - 1]:  # a tie group straddles k
        k = n_neg - int(np.searchsorted(sp.neg, sp.neg[n_neg - k], side="right"))
    if k == 0:
        raise UndefinedMetricError(
            f"truncated AUPRO is undefined: no threshold gives 0 < FPR <= {limit} (e.g. constant scores)"
        )
    x_last = k / n_neg
    return _trapezoid_to(x, y, x_last) / x_last


def _collect(
    metrics: dict[str, object], c: _Curve, on_undefined: OnUndefined, **extra: float
) -> dict[str, float]:
    """Evaluate ``metrics`` (name -> function of the curve) with the ``on_undefined`` policy."""
    if on_undefined not in ("raise", "nan"):
        raise ValueError(f"on_undefined must be 'raise' or 'nan', got {on_undefined!r}")
    out: dict[str, float] = {}
    for name, fn in metrics.items():
        try:
            out[name] = float(fn(c, **extra))  # type: ignore[operator]
        except UndefinedMetricError:
            if on_undefined == "raise":
                raise
            out[name] = math.nan
    return out


def pixel_metrics(
    scores: Maps, masks: Maps, *, fpr_limit: float = 0.3, on_undefined: OnUndefined = "raise"
) -> dict[str, float]:
    """All pixel metrics from one shared sort (METHOD.md, evaluation protocol) [ours].

    Returns ``{"pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro"}``; AUPRO is
    :func:`aupro` (:data:`AUPRO_DEFINITION`). With ``on_undefined="nan"`` an undefined metric (see
    the module docstring) is NaN instead of raising :class:`UndefinedMetricError`.
    """
    limit = _check_fpr_limit(fpr_limit)
    c = _curve(_split(_pair_up(scores, masks), regions=True))
    out = _collect({"pixel_auroc": _auroc, "pixel_ap": _ap, "pixel_f1_max": _f1_max}, c, on_undefined)
    out.update(_collect({"pixel_aupro": _aupro}, c, on_undefined, fpr_limit=limit))
    return out


def image_metrics(
    scores: ArrayLike, labels: ArrayLike, *, on_undefined: OnUndefined = "raise"
) -> dict[str, float]:
    """Image-level AUROC, AP and F1-max from 1-D scores and 0/1 labels (1 = anomalous) [ours].

    Returns ``{"auroc", "ap", "f1_max"}``, each equal to its scikit-learn counterpart. With
    ``on_undefined="nan"`` an undefined metric is NaN instead of raising
    :class:`UndefinedMetricError`.
    """
    c = _curve(_split(_vector_pair(scores, labels), regions=False))
    return _collect({"auroc": _auroc, "ap": _ap, "f1_max": _f1_max}, c, on_undefined)


def region_auroc(scores: Maps, masks: Maps, regions: Maps) -> float:
    """Pixel AUROC over the pixels inside ``regions`` only (where a defect can physically occur) [ours].

    A fixed prior (a foreground silhouette, a "defects are in the centre" blob) scores high on all-pixel
    AUROC because background pixels are easy negatives; restricted to the region where defects occur,
    such a prior is near chance (issue 13). ``regions`` are bool maps of the same shapes as ``masks``;
    every defect pixel must lie inside its region. Raises :class:`UndefinedMetricError` when the regions
    hold no anomalous or no normal pixel.
    """
    pairs = _pair_up(scores, masks)
    r_items = _as_items(regions, "region")
    if len(r_items) != len(pairs):
        raise ValueError(f"got {len(pairs)} score maps but {len(r_items)} regions; pass one region per image")
    flat_s, flat_m = [], []
    for i, ((s, m), r) in enumerate(zip(pairs, r_items, strict=True)):
        if r.shape != m.shape:
            raise ValueError(f"region {i} has shape {r.shape} but its mask has shape {m.shape}; resize one to the other")
        r = _as_bool(r, i, "region", "regions are bool maps (True = a defect can occur here)")
        if (m & ~r).any():
            raise ValueError(f"mask {i} has {int((m & ~r).sum())} defect pixels outside its region; the region must "
                             "contain every place a defect can occur (e.g. the object mask, or all True for textures)")
        flat_s.append(s[r][None, :])
        flat_m.append(m[r][None, :])
    return pixel_auroc(flat_s, flat_m)
