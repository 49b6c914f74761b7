"""Evaluation on the miniature world: region-restricted AUROC and the prior-map baseline row. [ours]

Taught in notebook 01 (section "Metrics a prior cannot game"), where the same two numbers are computed
live; no METHOD.md step: issue 13's rule that every table on the synthetic world reports, beside
pixel AUROC / AP / F1-max, the AUROC restricted to where defects can occur
(:func:`clipsam_lite.metrics.region_auroc`) and the score of a trivial prior map
(:func:`clipsam_lite.prior.prior_map`: the mean ``S_a`` of a category's normal training images, of the
same CLIP head) as a baseline row. :func:`clipsam_lite.evaluate.evaluate` calls these when the dataset
root is a world dataset (``<category>/world_masks/`` written by ``synth --world``); every other dataset's
tables are unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .eval_cache import EvaluationError, eval_map, eval_mask
from .synthetic.world_writer import WORLD_MASKS, world_region_mask

if TYPE_CHECKING:  # pragma: no cover
    from .datasets import Record

__all__ = ["REGION_KEY", "PRIOR_TRAIN_IMAGES", "is_world_root", "eval_region", "region_score", "with_region_key",
           "prior_section"]

REGION_KEY = "region_auroc"
"""The metric key of the region-restricted pixel AUROC in results.json and the tables."""
PRIOR_TRAIN_IMAGES = 8
"""Normal training images per category whose mean ``S_a`` is the prior map (the benchmark's number). [ours]"""


def is_world_root(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` holds a world dataset: some ``<category>/world_masks/`` folder (``synth --world``)."""
    return any(p.is_dir() for p in Path(root).glob(f"*/{WORLD_MASKS}"))


def eval_region(record: Record, resolution: int) -> np.ndarray:
    """The region mask of a world image at the evaluation resolution (area resize + ``>= 0.5``, centre crop).

    A mask inside its region stays inside after this resize (a block at least half defect is at least
    half region), so :func:`~clipsam_lite.metrics.region_auroc`'s check holds on the resized pair.
    """
    from .images import resize_center_crop

    region = world_region_mask(record.path)
    if region is None:
        raise EvaluationError(f"{record.path} is in a world dataset but has no region mask under "
                              f"{WORLD_MASKS}/; rewrite the dataset with `python -m clipsam_lite synth --world`.")
    return resize_center_crop(region, resolution, is_mask=True)


def region_score(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> float:
    """Region-restricted pixel AUROC, NaN when undefined (no defect pixel, or no normal one, in the regions)."""
    from .metrics import UndefinedMetricError, region_auroc

    try:
        return float(region_auroc(list(maps), list(masks), list(regions)))
    except UndefinedMetricError:
        return math.nan


def with_region_key(keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    """``keys`` with :data:`REGION_KEY` after ``pixel_auroc`` when some row has it (else ``keys`` unchanged)."""
    keys = list(keys)
    if not any(REGION_KEY in r for r in rows):
        return keys
    at = keys.index("pixel_auroc") + 1 if "pixel_auroc" in keys else 0
    return keys[:at] + [REGION_KEY] + keys[at:]


def prior_section(setup: Any, n_train: int = PRIOR_TRAIN_IMAGES) -> dict[str, Any]:
    """The prior-map baseline of every evaluated category: metrics of one fixed map per category. [ours]

    ``setup`` is :class:`clipsam_lite.evaluate.EvalSetup` (not imported here: evaluate imports this module).

    The prior is the pixel-wise mean of ``S_a`` (the evaluated CLIP head, adapter included) over the
    first ``n_train`` normal training images of the category, at the evaluation resolution; it is
    scored on exactly the evaluated test images, with the same masks and regions.
    """
    from .clip_maps import anomaly_maps, object_name_for
    from .datasets import load_dataset
    from .metrics import pixel_metrics
    from .prior import prior_map

    ds, res = setup.dataset, setup.resolution
    cats: dict[str, dict[str, float]] = {}
    used: dict[str, int] = {}
    for cat, idx in setup.selection.items():
        train = load_dataset(ds.name, ds.root, category=cat, split="train")
        normal = [train.read(r).image for r in train.records if r.label == 0][:n_train]
        if not normal:
            raise EvaluationError(f"The world dataset at {ds.root} has no normal training image of {cat!r}: the "
                                  "prior baseline needs some (rewrite it with `synth --world` and n_train >= 1).")
        maps = anomaly_maps(setup.models, normal, object_name_for(cat), setup.cfg, adapter=setup.adapter).maps
        prior = prior_map([eval_map(m, res) for m in maps])
        records = [ds.records[i] for i in idx]
        masks = [eval_mask(r, ds.mask_rule, res) for r in records]
        row = pixel_metrics([prior] * len(records), masks, on_undefined="nan")
        row[REGION_KEY] = region_score([prior] * len(records), masks, [eval_region(r, res) for r in records])
        cats[cat], used[cat] = row, len(normal)
    return {"description": (f"prior-map baseline: per category, the mean S_a of up to {n_train} normal training "
                            f"images (head {setup.cfg.head}), the same map for every test image"),
            "train_images": used, "categories": cats}
