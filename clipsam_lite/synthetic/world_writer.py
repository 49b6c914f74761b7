"""Writing the miniature world in the MVTec-AD layout, with its object and region masks. [ours]

Taught in notebook 00 (section "The miniature world"); no METHOD.md step (the layout is METHOD.md's "Evaluation
protocol" one). :func:`make_world` writes world categories so
that :func:`clipsam_lite.datasets.load_dataset` reads them like MVTec-AD: ``test/<type>/NNN.png`` holds
images whose first defect is ``<type>`` (1-4 defects of mixed types; the ground truth is the union of
all of them). Beside the MVTec folders, ``<category>/world_masks/<split>/<type>/NNN_object.png`` and
``NNN_region.png`` keep the object and region masks (the loaders ignore that folder); the evaluation
reads them back with :func:`world_region_mask` for the region-restricted AUROC.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..images import read_image, write_png
from ..safe_io import replace_folder
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

    cats = list(WORLD) if categories is None else ([categories] if isinstance(categories, str) else list(categories))
    if not cats:
        raise ValueError(f"make_world: categories is empty; pass None for all of {list(WORLD)}.")
    for c in cats:
        check_world_category(c)
    for name, value in (("seed", seed), ("n_train", n_train), ("n_test_good", n_test_good),
                        ("n_test_per_defect", n_test_per_defect)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"make_world: {name} must be an integer >= 0, got {value!r}.")
    return replace_folder(Path(root).expanduser(), lambda tmp: _write_world(
        tmp, cats, seed, image_size, n_train, n_test_good, n_test_per_defect), who="make_world", foreign=_foreign_world_files)


def _foreign_world_files(root: Path) -> list[str]:
    """Files and links under ``root`` that an earlier :func:`make_world` did not write (sorted, relative). [ours]

    Ours: ``meta.json``, ``README.txt`` and, for the categories the folder's own world ``meta.json``
    lists, the images, masks and world masks of the layout. Anything else (a user's file, a link, another
    generator's dataset) would be lost if the folder were replaced, so it is reported instead.
    """
    import re

    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
        cats = [c for c in meta["categories"] if isinstance(c, str)] if meta.get("world") is True else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        cats = []
    alt = "|".join(re.escape(c) for c in cats) or "(?!)"
    ours = re.compile(rf"^(meta\.json|README\.txt|({alt})/(train|test)/[^/]+/\d+\.png|({alt})/ground_truth/[^/]+/"
                      rf"\d+_mask\.png|({alt})/{WORLD_MASKS}/(train|test)/[^/]+/\d+_(object|region)\.png)$")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            rel = (base / name).relative_to(root).as_posix()
            if (base / name).is_symlink() or not ours.match(rel):
                found.append(rel)
    return sorted(found)


def _write_world(tmp: Path, cats: list[str], seed: int, image_size: int, n_train: int, n_test_good: int,
                 n_test_per_defect: int) -> None:
    """Render and write every image, mask and world mask of :func:`make_world` into ``tmp``."""
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


DEMO_WORLD_PARAMS: dict = {"seed": 0, "image_size": 128, "n_train": 4, "n_test_good": 2, "n_test_per_defect": 1}
"""The demo's world dataset: held-out categories only, 128 px (the ``mini`` profile's size), a few images each. [ours]"""


def world_demo_root() -> Path:
    """The ``mini`` demo's world dataset (held-out categories, :data:`DEMO_WORLD_PARAMS`), written once into the cache.

    As :func:`~clipsam_lite.synthetic.sample_root` for the old sample: the folder name hashes the
    parameters and the world's source files, so an edited generator never reuses a stale copy.
    """
    from ..paths import writable_cache_dir
    from .world import HELDOUT_CATEGORIES

    h = hashlib.sha256(json.dumps({**DEMO_WORLD_PARAMS, "categories": list(HELDOUT_CATEGORIES),
                                   "version": WORLD_VERSION}, sort_keys=True).encode())
    for name in ("world.py", "world_categories.py", "defects.py", "scenes.py", "captions.py", "world_writer.py"):
        try:
            h.update((Path(__file__).parent / name).read_bytes())
        except OSError:  # e.g. imported from a zip: the version number alone must do
            pass
    final = writable_cache_dir() / f"world-demo-v{WORLD_VERSION}-{h.hexdigest()[:10]}"
    if not (final / "meta.json").is_file():
        make_world(final, list(HELDOUT_CATEGORIES), **DEMO_WORLD_PARAMS)
    return final


__all__ = ["make_world", "world_region_mask", "world_demo_root", "DEMO_WORLD_PARAMS", "WORLD_MASKS"]
