"""Rendering items and writing a synthetic dataset in the MVTec-AD layout. [ours]

Taught in notebook 00 (section 4, "The embedded synthetic sample"); no METHOD.md step: the offline
stand-in for MVTec-AD / VisA (METHOD.md, "Evaluation protocol"). :func:`make_synthetic` writes a small,
deterministic dataset that the real MVTec-AD loader (:mod:`clipsam_lite.datasets`) reads, so every
notebook and test runs offline. With ``signature=True`` every defect carries one hue
(:data:`SIGNATURE_RGB`) that no normal surface uses.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import UnknownCategoryError
from ..images import write_png
from ..paths import writable_cache_dir
from ..safe_io import replace_folder
from .defects import DEFECT_PAINTERS
from .scenes import (
    CATEGORIES,
    DEFAULT_CATEGORIES,
    DEFECT_TYPES,
    GENERATOR_VERSION,
    RENDERERS,
    SIGNATURE_RGB,
    CategorySpec,
    rng_for,
)

# ------------------------------------------------------------------------------------------------
# Synthetic generator: public API
# ------------------------------------------------------------------------------------------------


def _category_spec(category: str) -> CategorySpec:
    if category not in CATEGORIES:
        raise UnknownCategoryError(
            f"Unknown synthetic category {category!r}; available: {list(CATEGORIES)}."
        )
    return CATEGORIES[category]


def render_item(category: str, index: int, defect: str | None = None, *, split: str = "test", seed: int = 0,
                image_size: int = 256, signature: bool = False, clean: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic image and its mask, exactly as :func:`make_synthetic` writes it. [ours]

    Args:
        category: one of :data:`CATEGORIES`.
        index: the image number (``000.png`` is index 0).
        defect: ``None`` for a normal image, else one of the category's defect types.
        split: ``"train"`` (normal images only) or ``"test"``; train and test images differ.
        seed: the dataset seed.
        image_size: side of the square image in pixels (>= 64).
        signature: draw the defect in :data:`SIGNATURE_RGB` instead of a natural colour.
        clean: return the same image *without* its defect (mask all False): the defect's pixels
            are then the only difference between ``clean=False`` and ``clean=True``.

    Returns:
        ``(image, mask)``: ``H x W x 3`` uint8 RGB and ``H x W`` bool (True = defect pixel).

    The scene and the defect each have their own random stream, seeded by (seed, category, split,
    defect type, index), so no image depends on any other and the clean image is exact.
    """
    spec = _category_spec(category)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if defect is not None and split == "train":
        raise ValueError("The train split holds normal images only: use defect=None with split='train'.")
    if defect is not None and defect not in spec.defects:
        raise ValueError(f"Category {category!r} has no defect type {defect!r}; it has {list(spec.defects)}.")
    _check_int("index", index, 0)
    _check_int("seed", seed, 0)
    _check_int("image_size", image_size, 64)
    kind = defect or "good"
    scene = RENDERERS[category](rng_for(seed, "scene", category, split, kind, index), image_size)
    mask = np.zeros((image_size, image_size), dtype=bool)
    if defect is not None and not clean:
        mask = DEFECT_PAINTERS[defect](scene, rng_for(seed, "defect", category, split, kind, index), signature)
    return scene.compose(), mask


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def signature_pixels(image: np.ndarray, hue_tolerance: float = 30.0, min_saturation: float = 0.35,
                     min_value: float = 0.2) -> np.ndarray:
    """Pixels whose colour is close to :data:`SIGNATURE_RGB` in hue (H x W bool). [ours]

    A pixel counts when its HSV hue is within ``hue_tolerance`` degrees of the signature's hue and
    it is saturated and bright enough for the hue to mean something. Normal synthetic surfaces have
    no such pixel; with ``signature=True`` every defect is made of them.
    """
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = hue * 60.0
    sig_hue = colorsys.rgb_to_hsv(*(c / 255.0 for c in SIGNATURE_RGB))[0] * 360.0
    dist = np.abs((hue - sig_hue + 180.0) % 360.0 - 180.0)
    return (dist <= hue_tolerance) & (sat >= min_saturation) & (mx >= min_value) & (chroma > 0)


def _synthetic_plan(categories: Sequence[str] | None, defect_types: Sequence[str] | None
                    ) -> dict[str, tuple[str, ...]]:
    cats = list(DEFAULT_CATEGORIES) if categories is None else (
        [categories] if isinstance(categories, str) else list(categories))
    if not cats:
        raise ValueError("make_synthetic: categories is empty; pass None for all of " f"{list(CATEGORIES)}.")
    for c in cats:
        _category_spec(c)
    if len(set(cats)) != len(cats):
        raise ValueError(f"make_synthetic: categories has duplicates: {cats}.")
    if defect_types is not None:
        wanted = [defect_types] if isinstance(defect_types, str) else list(defect_types)
        unknown = [d for d in wanted if d not in DEFECT_TYPES]
        if unknown or not wanted:
            raise ValueError(f"Unknown defect type(s) {unknown or wanted}; choose from {list(DEFECT_TYPES)}.")
    plan = {}
    for c in cats:
        spec = CATEGORIES[c]
        types = spec.defects if defect_types is None else tuple(d for d in spec.defects if d in wanted)
        if not types:
            raise ValueError(f"None of the defect types {wanted} applies to category {c!r} "
                             f"(it supports {list(spec.defects)}); add one of those or drop the category.")
        plan[c] = types
    return plan


def _synthetic_meta(plan: dict[str, tuple[str, ...]], seed: int, image_size: int, n_train: int,
                    n_test_good: int, n_test_per_defect: int, signature: bool) -> dict[str, object]:
    return {
        "synthetic": True,
        "generator": "clipsam_lite.synthetic.make_synthetic",
        "generator_version": GENERATOR_VERSION,
        "layout": "MVTec-AD",
        "seed": seed,
        "image_size": image_size,
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_test_per_defect": n_test_per_defect,
        "signature": signature,
        "signature_rgb": list(SIGNATURE_RGB) if signature else None,
        "categories": {c: {"kind": CATEGORIES[c].kind, "description": CATEGORIES[c].description,
                           "defect_types": list(types)} for c, types in plan.items()},
    }


def _synthetic_readme(meta: dict[str, object]) -> str:
    cats = meta["categories"]
    assert isinstance(cats, dict)
    lines = [
        "SYNTHETIC DATA - not a real inspection dataset.",
        "",
        "Written by clipsam_lite.synthetic.make_synthetic (generator version "
        f"{meta['generator_version']}) in the MVTec-AD folder layout:",
        "  <category>/train/good/NNN.png, <category>/test/<type>/NNN.png,",
        "  <category>/ground_truth/<type>/NNN_mask.png (0/255 masks of the defect pixels).",
        "",
        f"seed={meta['seed']} image_size={meta['image_size']} n_train={meta['n_train']} "
        f"n_test_good={meta['n_test_good']} n_test_per_defect={meta['n_test_per_defect']} "
        f"signature={meta['signature']}",
        "The same parameters always give byte-identical files; meta.json lists them too.",
        "",
    ]
    for c, info in cats.items():
        lines.append(f"{c} ({info['kind']}): {info['description']}; defects: {', '.join(info['defect_types'])}")
    if meta["signature"]:
        lines += ["", f"signature=True: every defect is drawn in the hue of RGB {tuple(SIGNATURE_RGB)}, which no",
                  "normal surface uses, so that a head trained on random backbones can learn to find it."]
    return "\n".join(lines) + "\n"


def _write_synthetic(out: Path, plan: dict[str, tuple[str, ...]], seed: int, image_size: int, n_train: int,
                     n_test_good: int, n_test_per_defect: int, signature: bool) -> None:
    meta = _synthetic_meta(plan, seed, image_size, n_train, n_test_good, n_test_per_defect, signature)
    for cat, types in plan.items():
        jobs: list[tuple[str, str | None, int]] = [("train", None, i) for i in range(n_train)]
        jobs += [("test", None, i) for i in range(n_test_good)]
        jobs += [("test", d, i) for d in types for i in range(n_test_per_defect)]
        for split, defect, i in jobs:
            img, mask = render_item(cat, i, defect, split=split, seed=seed, image_size=image_size,
                                    signature=signature)
            folder = out / cat / split / (defect or "good")
            folder.mkdir(parents=True, exist_ok=True)
            write_png(img, folder / f"{i:03d}.png")
            if defect is not None:
                gt = out / cat / "ground_truth" / defect
                gt.mkdir(parents=True, exist_ok=True)
                write_png(mask.astype(np.uint8) * 255, gt / f"{i:03d}_mask.png")
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.txt").write_text(_synthetic_readme(meta), encoding="utf-8")


def synthetic_meta(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``meta.json`` of a dataset written by :func:`make_synthetic`, else None (a real dataset)."""
    try:
        meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("synthetic") is True else None


def is_synthetic_root(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` was written by :func:`make_synthetic` (its ``meta.json`` says so)."""
    return synthetic_meta(root) is not None


def _expected_files(meta: dict[str, Any]) -> set[str] | None:
    """The relative paths :func:`make_synthetic` wrote for this ``meta.json``, or None if it is unreadable."""
    try:
        names = {"meta.json", "README.txt"}
        for cat, info in meta["categories"].items():
            names |= {f"{cat}/train/good/{i:03d}.png" for i in range(int(meta["n_train"]))}
            names |= {f"{cat}/test/good/{i:03d}.png" for i in range(int(meta["n_test_good"]))}
            for d in info["defect_types"]:
                for i in range(int(meta["n_test_per_defect"])):
                    names |= {f"{cat}/test/{d}/{i:03d}.png", f"{cat}/ground_truth/{d}/{i:03d}_mask.png"}
        return names
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _foreign_files(root: Path) -> list[str]:
    """Files and links under ``root`` that an earlier :func:`make_synthetic` did not write (sorted, relative).

    Only what the folder's own ``meta.json`` lists counts as ours: anything else (a user's notes, an
    extra image, a link) would be lost if the folder were replaced, so it is reported instead. [ours]
    """
    meta = synthetic_meta(root)
    expected = _expected_files(meta) if meta is not None else set()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            found.append((base / name).relative_to(root).as_posix())
    return sorted(f for f in found if expected is None or f not in expected)


def make_synthetic(root: str | os.PathLike[str], seed: int = 0, categories: Sequence[str] | None = None,
                   image_size: int = 256, n_train: int = 8, n_test_good: int = 4, n_test_per_defect: int = 3,
                   defect_types: Sequence[str] | None = None, signature: bool = False) -> Path:
    """Write a synthetic dataset in the MVTec-AD layout and return its root. [ours]

    ``root/<category>/train/good/000.png``, ``root/<category>/test/good/000.png``,
    ``root/<category>/test/<defect>/000.png``, ``root/<category>/ground_truth/<defect>/000_mask.png``
    (0/255, L mode), plus ``root/meta.json`` and ``root/README.txt`` stating the parameters and that
    the data is synthetic. Same arguments -> byte-identical files (on a given platform; numpy's
    vectorised math may differ in the last bit across CPUs).

    Args:
        root: a new or empty folder, or one written before by this function (it is replaced, unless
            it holds anything that function did not write: then nothing is touched and the error lists it).
        seed: any integer >= 0.
        categories: names from :data:`CATEGORIES` (default: all of :data:`DEFAULT_CATEGORIES`).
        defect_types: restrict to these types (each category keeps the ones it supports).
        signature: draw every defect in :data:`SIGNATURE_RGB` (see :func:`signature_pixels`).

    The folder is written under a temporary name next to ``root`` and renamed into place at the
    end, so an interrupted run never leaves a half-written dataset behind.
    """
    for name, value, minimum in (("seed", seed, 0), ("image_size", image_size, 64), ("n_train", n_train, 0),
                                 ("n_test_good", n_test_good, 0), ("n_test_per_defect", n_test_per_defect, 0)):
        _check_int(name, value, minimum)
    plan = _synthetic_plan(categories, defect_types)
    root = Path(os.path.abspath(Path(root).expanduser()))  # "." has no name: the temporary sibling needs one
    if root == root.parent:
        raise FileExistsError(f"make_synthetic: {root} is the filesystem root; choose a new or empty folder.")
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise FileExistsError(f"make_synthetic: {root} exists and is {'a link' if root.is_symlink() else 'a file'}; "
                              "choose a new or empty folder path.")
    return replace_folder(root, lambda tmp: _write_synthetic(tmp, plan, seed, image_size, n_train, n_test_good,
                                                             n_test_per_defect, signature),
                          who="make_synthetic", foreign=_foreign_files)


_SAMPLE_PARAMS: dict[str, object] = dict(seed=0, image_size=256, n_train=8, n_test_good=4, n_test_per_defect=3)


def sample_root(signature: bool = True) -> Path:
    """The embedded default dataset (used by the demo and the notebooks), generated on first use. [ours]

    It is :func:`make_synthetic` with its defaults (seed 0, all default categories, 256 px), written
    once into ``cache_dir()/synthetic-sample-v<version>-<signature|natural>-<hash>``. The hash
    covers the parameters and the source of this module, so an edited generator never reuses a
    stale sample. Generation writes a temporary folder next to it and renames it into place; if
    another process finished first, its copy is used and ours is discarded.
    """
    params = {**_SAMPLE_PARAMS, "categories": list(DEFAULT_CATEGORIES), "signature": bool(signature),
              "generator_version": GENERATOR_VERSION}
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    try:
        h.update(Path(__file__).read_bytes())
    except OSError:  # e.g. imported from a zip: the version number alone must do
        pass
    digest = h.hexdigest()[:10]
    final = writable_cache_dir() / f"synthetic-sample-v{GENERATOR_VERSION}-{'signature' if signature else 'natural'}-{digest}"
    if (final / "meta.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        plan = _synthetic_plan(None, None)
        _write_synthetic(tmp, plan, signature=bool(signature), **_SAMPLE_PARAMS)  # type: ignore[arg-type]
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
