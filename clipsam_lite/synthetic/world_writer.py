"""Writing the miniature world in the MVTec-AD layout, with its object and region masks. [ours]

Taught in notebook 00 (section "The miniature world"). :func:`make_world` writes world categories so
that :func:`clipsam_lite.datasets.load_dataset` reads them like MVTec-AD: ``test/<type>/NNN.png`` holds
images whose first defect is ``<type>`` (1-4 defects of mixed types; the ground truth is the union of
all of them). Beside the MVTec folders, ``<category>/world_masks/<split>/<type>/NNN_object.png`` and
``NNN_region.png`` keep the object and region masks (the loaders ignore that folder); the evaluation
reads them back with :func:`world_region_mask` for the region-restricted AUROC.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..images import read_image, write_png
from .scenes import rng_for
from .world import MAX_DEFECTS, WORLD, check_world_category, render_world

WORLD_MASKS = "world_masks"
WORLD_FORMAT = "clipsam-lite-world"
WORLD_VERSION = 1


def _world_jobs(category: str, seed: int, n_train: int, n_test_good: int, n_test_per_defect: int
                ) -> list[tuple[str, str, int, tuple[str, ...]]]:
    """(split, folder, index, defect types) of every image of a category; indices never collide."""
    spec = WORLD[category]
    jobs: list[tuple[str, str, int, tuple[str, ...]]] = [("train", "good", i, ()) for i in range(n_train)]
    jobs += [("test", "good", i, ()) for i in range(n_test_good)]
    for j, t in enumerate(spec.defect_types):
        for i in range(n_test_per_defect):
            rng = rng_for(seed, "world-writer", category, t, i)
            extra = rng.integers(len(spec.defect_types), size=int(rng.integers(0, MAX_DEFECTS)))
            jobs.append(("test", t, 10_000 * (j + 1) + i, (t, *(spec.defect_types[int(k)] for k in extra))))
    return jobs


def make_world(root: str | os.PathLike[str], categories: Sequence[str] | None = None, *, seed: int = 0,
               image_size: int = 256, n_train: int = 8, n_test_good: int = 4, n_test_per_defect: int = 3) -> Path:
    """Write world categories in the MVTec-AD layout (plus object/region masks) and return the root. [ours]

    Args:
        root: a new or empty folder, or one written before by this function (it is replaced).
        categories: keys of :data:`~.world.WORLD` (default: all twelve).
        n_test_per_defect: anomalous test images per defect type of each category.

    Written under a temporary name and renamed into place, so an interrupted run leaves nothing behind.
    """
    from .writer import is_synthetic_root

    cats = list(WORLD) if categories is None else ([categories] if isinstance(categories, str) else list(categories))
    if not cats:
        raise ValueError(f"make_world: categories is empty; pass None for all of {list(WORLD)}.")
    for c in cats:
        check_world_category(c)
    for name, value in (("seed", seed), ("n_train", n_train), ("n_test_good", n_test_good),
                        ("n_test_per_defect", n_test_per_defect)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"make_world: {name} must be an integer >= 0, got {value!r}.")
    root = Path(root).expanduser()
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not is_synthetic_root(root))):
        raise FileExistsError(f"make_world: {root} is a file or a non-empty folder not written by clipsam-lite; "
                              "choose a new or empty folder so nothing is overwritten.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for cat in cats:
            for split, folder, index, types in _world_jobs(cat, seed, n_train, n_test_good, n_test_per_defect):
                s = render_world(cat, index, seed=seed, size=image_size, split=split,
                                 n_defects=len(types), defect_types=types)
                name = f"{index % 10_000:03d}"
                img_dir = tmp / cat / split / folder
                img_dir.mkdir(parents=True, exist_ok=True)
                write_png(s.image, img_dir / f"{name}.png")
                if folder != "good":
                    gt = tmp / cat / "ground_truth" / folder
                    gt.mkdir(parents=True, exist_ok=True)
                    write_png(s.mask.astype(np.uint8) * 255, gt / f"{name}_mask.png")
                wm = tmp / cat / WORLD_MASKS / split / folder
                wm.mkdir(parents=True, exist_ok=True)
                write_png(s.object_mask.astype(np.uint8) * 255, wm / f"{name}_object.png")
                write_png(s.region.astype(np.uint8) * 255, wm / f"{name}_region.png")
        meta = {"synthetic": True, "world": True, "format": WORLD_FORMAT, "world_version": WORLD_VERSION,
                "generator": "clipsam_lite.synthetic.make_world", "layout": "MVTec-AD", "seed": seed,
                "image_size": image_size, "n_train": n_train, "n_test_good": n_test_good,
                "n_test_per_defect": n_test_per_defect,
                "categories": {c: {"kind": WORLD[c].kind, "defect_types": list(WORLD[c].defect_types)} for c in cats}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / "README.txt").write_text(
            "SYNTHETIC DATA - the clipsam-lite miniature world, not a real inspection dataset.\n"
            "MVTec-AD layout; test/<type>/ holds images whose first defect is <type> (1-4 defects each, the\n"
            f"mask is their union). {WORLD_MASKS}/<split>/<type>/NNN_object.png and NNN_region.png hold the\n"
            "object mask and the region where defects can occur (for the region-restricted AUROC).\n"
            f"seed={seed} image_size={image_size} categories={cats}\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def world_region_mask(image_path: str | os.PathLike[str], kind: str = "region") -> np.ndarray | None:
    """The region (or ``kind="object"``) mask written beside a world image by :func:`make_world`, or None.

    ``image_path`` is ``<root>/<category>/<split>/<type>/NNN.png``; the mask is read from
    ``<root>/<category>/world_masks/<split>/<type>/NNN_<kind>.png``.
    """
    if kind not in ("region", "object"):
        raise ValueError(f"world_region_mask: kind must be 'region' or 'object', got {kind!r}.")
    p = Path(image_path)
    mp = p.parents[2] / WORLD_MASKS / p.parent.parent.name / p.parent.name / f"{p.stem}_{kind}.png"
    if not mp.is_file():
        return None
    m = np.asarray(read_image(mp))
    return (m[..., 0] if m.ndim == 3 else m) > 127


__all__ = ["make_world", "world_region_mask", "WORLD_MASKS"]
