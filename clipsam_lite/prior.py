"""The prior-map baseline: one fixed map per category, the mean anomaly map of its normal training images. [ours]

Taught in notebook 01 (section "Metrics a prior cannot game"); no METHOD.md step: it is the baseline
row of every table on the miniature world (issue 13). A map that is the same for every image cannot
know where this image's defect is; whatever it scores comes from *where defects usually are* (an object's
silhouette, the centre of a texture). A head is only useful where it beats this row, above all on the
region-restricted AUROC (:func:`clipsam_lite.metrics.region_auroc`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prior_map(normal_maps: Sequence[np.ndarray]) -> np.ndarray:
    """The pixel-wise mean of the anomaly maps of normal training images (all of one shape). [ours]"""
    maps = [np.asarray(m, dtype=np.float32) for m in normal_maps]
    if not maps:
        raise ValueError("prior_map needs at least one normal training map (got none); render or load some "
                         "normal training images of the category and compute their anomaly maps first.")
    shapes = {m.shape for m in maps}
    if len(shapes) != 1 or maps[0].ndim != 2:
        raise ValueError(f"prior_map needs 2-D maps of one shape; got shapes {sorted(shapes)}. Resize them to "
                         "one size first (e.g. the evaluation resolution).")
    return np.mean(np.stack(maps), axis=0)


def prior_maps_for(categories: Sequence[str], normal_maps: dict[str, Sequence[np.ndarray]]) -> list[np.ndarray]:
    """One prior map per test image: the prior of each image's category (``categories[i]``)."""
    missing = sorted(set(categories) - set(normal_maps))
    if missing:
        raise ValueError(f"No normal training maps for categories {missing}: the prior baseline needs some of each.")
    priors = {c: prior_map(normal_maps[c]) for c in set(categories)}
    return [priors[c] for c in categories]


__all__ = ["prior_map", "prior_maps_for"]
