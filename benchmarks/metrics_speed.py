"""Speed and agreement of ``clipsam_lite.metrics`` against scikit-learn and the MVTec AD reference AUPRO.

Builds MVTec-AD-sized synthetic data (the 15 categories with MVTec AD's test-set sizes, 1725 maps
of 518 x 518 in all; blobby defect regions in about half of the images; scores = smoothed noise
plus a bump on the defects, float32), then for each category, as the evaluation does, times

* ours:      ``pixel_metrics`` (AUROC, AP, F1-max and AUPRO@0.3 from one shared sort), and
* reference: scikit-learn's ``roc_auc_score`` + ``average_precision_score`` +
  ``precision_recall_curve`` (F1-max = max 2PR/(P+R)) plus :func:`reference_aupro`, a faithful
  port of the MVTec AD evaluation code's ``compute_pro`` + ``trapezoid``,

and prints both times, their ratio and the largest absolute difference in each value, all
measured in this one run. Data generation is not timed.

Run time: ``--quick`` takes seconds. At full size our side takes ~10 s but the reference side
takes 10-15 minutes on 2 cores (scikit-learn sorts all pixels three times with a stable sort and
re-checks the labels each call), so use ``--categories 3`` for a shorter full-resolution run.

    python benchmarks/metrics_speed.py            # full size: 15 categories, 1725 maps of 518 x 518
    python benchmarks/metrics_speed.py --quick    # smoke run: 3 categories, a quarter of the maps, 256 px
    python benchmarks/metrics_speed.py --categories 5 --size 518 --scale 0.5
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from bisect import bisect
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from clipsam_lite.metrics import pixel_metrics

MVTEC_TEST_COUNTS: dict[str, int] = {
    "bottle": 83, "cable": 150, "capsule": 132, "carpet": 117, "grid": 78,
    "hazelnut": 110, "leather": 124, "metal_nut": 115, "pill": 167, "screw": 160,
    "tile": 117, "toothbrush": 42, "transistor": 100, "wood": 79, "zipper": 151,
}  # fmt: skip
"""Test images per MVTec AD category (1725 in all)."""

KEYS = ("pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro")


# --------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation, float32."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), sigma)
    return field / field.std()


def make_defect_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """1 to 3 blobby regions: rotated ellipses with a wobbly, noise-perturbed border."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    wobble = _smooth_noise(rng, size, size / 40)
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        a, b = rng.uniform(0.03, 0.12, 2) * size
        angle = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        mask |= (u / a) ** 2 + (v / b) ** 2 + 0.35 * wobble < 1.0
    return mask


def make_category(rng: np.random.Generator, n_maps: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_maps`` float32 score maps and bool masks; about half the images have defects."""
    scores = np.empty((n_maps, size, size), dtype=np.float32)
    masks = np.zeros((n_maps, size, size), dtype=bool)
    for i in range(n_maps):
        background = 0.5 * _smooth_noise(rng, size, size / 64)
        if rng.random() < 0.5:
            masks[i] = make_defect_mask(rng, size)
            bump = ndimage.gaussian_filter(masks[i].astype(np.float32), size / 128)
            background += np.float32(rng.uniform(0.5, 2.0)) * bump
        scores[i] = background
    return scores, masks


# --------------------------------------------------------------------------------------------
# the reference side
# --------------------------------------------------------------------------------------------


def _reference_trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """``trapezoid`` of the MVTec AD evaluation code (generic_util.py), without its warnings."""
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + ((y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]))
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    mask = x <= x_max
    x, y = x[mask], y[mask]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def reference_pro_curve(anomaly_maps: Sequence[np.ndarray], ground_truth_maps: Sequence[np.ndarray]):
    """``compute_pro`` of the MVTec AD evaluation code (pro_curve_util.py), ported faithfully.

    Changes: maps may differ in size (scores are concatenated instead of stacked), FP counts are
    int64 and FPRs float64 (the original uses uint32 counts and float32 FPRs).
    """
    structure = np.ones((3, 3), dtype=int)
    num_ok_pixels = 0
    num_gt_regions = 0
    fp_changes, pro_changes = [], []
    for gt_map in ground_truth_maps:
        labeled, n_components = ndimage.label(gt_map, structure)
        num_gt_regions += n_components
        ok_mask = labeled == 0
        num_ok_pixels += int(np.sum(ok_mask))
        fp_change = np.zeros(gt_map.shape, dtype=np.int64)
        fp_change[ok_mask] = 1
        pro_change = np.zeros(gt_map.shape, dtype=np.float64)
        for k in range(n_components):
            region_mask = labeled == (k + 1)
            pro_change[region_mask] = 1.0 / np.sum(region_mask)
        fp_changes.append(fp_change.ravel())
        pro_changes.append(pro_change.ravel())
    scores = np.concatenate([np.asarray(a).ravel() for a in anomaly_maps])
    fp_flat = np.concatenate(fp_changes)
    pro_flat = np.concatenate(pro_changes)
    del fp_changes, pro_changes
    sort_idxs = np.argsort(scores)[::-1]
    scores = scores[sort_idxs]
    fp_flat = fp_flat[sort_idxs]
    pro_flat = pro_flat[sort_idxs]
    del sort_idxs
    fprs = np.cumsum(fp_flat) / num_ok_pixels
    pros = np.cumsum(pro_flat) / num_gt_regions
    keep_mask = np.append(np.diff(scores) != 0, np.True_)
    fprs = np.clip(fprs[keep_mask], None, 1.0)
    pros = np.clip(pros[keep_mask], None, 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def reference_aupro(
    anomaly_maps: Sequence[np.ndarray], ground_truth_maps: Sequence[np.ndarray], fpr_limit: float = 0.3
) -> float:
    """AUPRO as the MVTec AD evaluation script computes it: trapezoid to ``fpr_limit`` / ``fpr_limit``."""
    fprs, pros = reference_pro_curve(anomaly_maps, ground_truth_maps)
    return _reference_trapezoid(fprs, pros, fpr_limit) / fpr_limit


def sklearn_pixel_metrics(scores: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict[str, float]:
    """Pixel AUROC, AP and F1-max the usual way: scikit-learn on all pixels of all maps."""
    y_score = np.concatenate([np.asarray(s).ravel() for s in scores])
    y_true = np.concatenate([np.asarray(m).ravel() for m in masks])
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return {
        "pixel_auroc": float(roc_auc_score(y_true, y_score)),
        "pixel_ap": float(average_precision_score(y_true, y_score)),
        "pixel_f1_max": float(f1.max()),
    }


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def _peak_extra_bytes(scores: np.ndarray, masks: np.ndarray) -> int:
    """Peak memory allocated by one ``pixel_metrics`` call (numpy reports to tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    pixel_metrics(scores, masks)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 categories, a quarter of the maps, 256 px")
    parser.add_argument(
        "--categories",
        nargs="+",
        default=None,
        help="how many categories (a number) or their names (default: all 15)",
    )
    parser.add_argument("--size", type=int, default=None, help="map side in pixels (default 518)")
    parser.add_argument(
        "--scale", type=float, default=None, help="fraction of each category's maps (default 1)"
    )
    parser.add_argument("--fpr-limit", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    names = list(MVTEC_TEST_COUNTS)
    size, scale = 518, 1.0
    if args.quick:
        names, size, scale = names[:3], 256, 0.25
    if args.categories:
        if len(args.categories) == 1 and args.categories[0].isdigit():
            names = list(MVTEC_TEST_COUNTS)[: int(args.categories[0])]
        else:
            unknown = sorted(set(args.categories) - set(MVTEC_TEST_COUNTS))
            if unknown:
                parser.error(f"unknown categories {unknown}; choose from {list(MVTEC_TEST_COUNTS)}")
            names = list(args.categories)
    size = args.size or size
    scale = args.scale if args.scale is not None else scale

    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    print(
        f"metrics benchmark: {len(names)} categories, map size {size} x {size}, scale {scale}, "
        f"fpr_limit {args.fpr_limit}, seed {args.seed}"
    )
    header = f"{'category':<11} {'maps':>5} {'Mpx':>6} {'anom%':>6} {'ours s':>7} {'sklearn s':>9} {'refPRO s':>8} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    t_ours = t_sk = t_pro = 0.0
    n_px_total = n_maps_total = 0
    max_diff = dict.fromkeys(KEYS, 0.0)
    means = {"ours": dict.fromkeys(KEYS, 0.0), "ref": dict.fromkeys(KEYS, 0.0)}
    memory_line = ""
    for name in names:
        n_maps = max(2, round(MVTEC_TEST_COUNTS[name] * scale))
        scores, masks = make_category(rng, n_maps, size)
        if not memory_line:
            peak = _peak_extra_bytes(scores, masks)
            memory_line = (
                f"peak memory allocated inside pixel_metrics ({name}, {scores.size / 1e6:.1f} M px, "
                f"float32): {peak / 2**20:.0f} MiB = {peak / scores.size:.1f} bytes per pixel"
            )
        gc.collect()
        t0 = time.perf_counter()
        ours = pixel_metrics(scores, masks, fpr_limit=args.fpr_limit)
        t1 = time.perf_counter()
        ref = sklearn_pixel_metrics(scores, masks)
        t2 = time.perf_counter()
        ref["pixel_aupro"] = reference_aupro(scores, masks, args.fpr_limit)
        t3 = time.perf_counter()
        sk = t2 - t1
        t_ours += t1 - t0
        t_sk += sk
        t_pro += t3 - t2
        for key in KEYS:
            max_diff[key] = max(max_diff[key], abs(ours[key] - ref[key]))
            means["ours"][key] += ours[key] / len(names)
            means["ref"][key] += ref[key] / len(names)
        n_px_total += scores.size
        n_maps_total += n_maps
        print(
            f"{name:<11} {n_maps:>5} {scores.size / 1e6:>6.1f} {100 * masks.mean():>6.2f} {t1 - t0:>7.2f} "
            f"{sk:>9.2f} {t3 - t2:>8.2f} {(sk + t3 - t2) / (t1 - t0):>6.1f}",
            flush=True,
        )
        del scores, masks
    print("-" * len(header))
    print(
        f"{'total':<11} {n_maps_total:>5} {n_px_total / 1e6:>6.0f} {'':>6} {t_ours:>7.2f} {t_sk:>9.2f} "
        f"{t_pro:>8.2f} {(t_sk + t_pro) / t_ours:>6.1f}"
    )
    print(
        f"\nours {t_ours:.2f} s vs reference {t_sk + t_pro:.2f} s (sklearn {t_sk:.2f} s + MVTec AUPRO "
        f"{t_pro:.2f} s): {(t_sk + t_pro) / t_ours:.1f}x faster; AUROC+AP+F1 alone vs sklearn "
        f"{t_sk / t_ours:.1f}x (ours includes AUPRO)"
    )
    print(memory_line)
    print(f"whole run including data generation: {time.perf_counter() - t_start:.0f} s")
    print("\nmean over categories (ours / reference) and the largest |difference| in any category:")
    for key in KEYS:
        print(
            f"  {key:<13} {means['ours'][key]:.6f} / {means['ref'][key]:.6f}   max |diff| {max_diff[key]:.2e}"
        )


if __name__ == "__main__":
    main()
