"""The miniature world: twelve categories, 0-4 defects per image, exact masks, captions, folds. [ours]

Taught in notebook 00 (section "The miniature world"); no METHOD.md step: it is the data on which the
``mini`` profile's CLIP is pretrained (:mod:`clipsam_lite.pretrain.clip`) and on which it is evaluated
(issue 13). :func:`render_world` draws one image from (seed, category, split, index, size) alone:

- a scene from :data:`~.world_categories.WORLD_RENDERERS` (random colour, pose, scale),
- a random light (gain and a linear gradient) over the whole image,
- 0-4 defects of mixed types painted by :mod:`.defects`, centred uniformly over ``region`` (the whole
  object, or the whole texture): no positional prior. ``P(0 defects)`` = :data:`P_NORMAL`; otherwise
  1-4 with equal probability.

Each defect's mask is exact: it holds every pixel that painting the defect changed (in the final uint8
image) plus the painter's own mask, so a defect's pixels are the only difference from the clean render
(``n_defects=0`` with the same arguments gives that clean render). The split between categories is
fixed: :data:`FOLDS` are disjoint held-out sets; :data:`HELDOUT_CATEGORIES` (fold 0) is never trained
on by anything the package ships.

Cost (one thread, averaged over the twelve categories, defects included): about 8 ms of CPU per image at
128 px and 30 ms at 256 px, so pretraining streams fresh images instead of storing a dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .captions import make_caption
from .defects import DEFECT_PAINTERS
from .scenes import Scene, pixel_grid, rng_for
from .world_categories import WORLD_RENDERERS

_OBJ = ("scratch", "hole", "stain", "crack", "missing_piece", "contamination")
_TEX = ("scratch", "hole", "stain", "crack", "contamination")


@dataclass(frozen=True)
class WorldCategory:
    """A category of the world: its noun (the CLIP object name), kind and the defects it can show."""

    name: str
    kind: str  # "object" or "texture"
    defect_types: tuple[str, ...]


WORLD: dict[str, WorldCategory] = {
    **{n: WorldCategory(n, "object", _OBJ) for n in ("disc", "tablet", "ring", "nut", "tile", "gear")},
    "weave": WorldCategory("weave", "texture", ("scratch", "hole", "stain", "contamination")),
    **{n: WorldCategory(n, "texture", _TEX) for n in ("grain", "stripes", "dots", "marble", "checker")},
}
"""The twelve categories: six objects on a table, six textures filling the frame."""

FOLDS: tuple[tuple[str, ...], ...] = (
    ("gear", "tablet", "marble", "weave"),
    ("ring", "disc", "dots", "grain"),
    ("nut", "tile", "stripes", "checker"),
)
"""Three disjoint held-out sets of 2 objects + 2 textures; together they cover the world. [ours]"""

HELDOUT_CATEGORIES: tuple[str, ...] = FOLDS[0]
PRETRAIN_CATEGORIES: tuple[str, ...] = tuple(c for c in WORLD if c not in HELDOUT_CATEGORIES)
AUX_CATEGORIES: tuple[str, ...] = FOLDS[1]
"""The adapter's auxiliary categories for the shipped split: the next fold (pretraining categories)."""

P_NORMAL = 0.25
"""Probability that an image has no defect when ``n_defects=None`` [ours]."""
MAX_DEFECTS = 4


def fold_split(fold: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(held_out, pretrain, aux)`` of a fold: aux is the next fold, a subset of pretrain. [ours]"""
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(FOLDS):
        raise ValueError(f"fold must be an integer in [0, {len(FOLDS) - 1}], got {fold!r}.")
    held = FOLDS[fold]
    return held, tuple(c for c in WORLD if c not in held), FOLDS[(fold + 1) % len(FOLDS)]


@dataclass(frozen=True)
class WorldSample:
    """One image of the world with every target: object, region, each defect, and its caption."""

    image: np.ndarray  # S x S x 3 uint8 RGB
    object_mask: np.ndarray  # S x S bool: pixels the clean object covers at all (textures: all True)
    region: np.ndarray  # S x S bool: where a defect can physically occur
    defect_masks: tuple[np.ndarray, ...]  # one exact S x S bool mask per defect
    defect_types: tuple[str, ...]
    category: str
    caption: str

    @property
    def mask(self) -> np.ndarray:
        """The union of the defect masks (S x S bool): the image's anomaly ground truth."""
        out = np.zeros(self.image.shape[:2], dtype=bool)
        for m in self.defect_masks:
            out |= m
        return out

    @property
    def is_anomalous(self) -> bool:
        return bool(self.defect_masks)


def check_world_category(category: str) -> WorldCategory:
    if category not in WORLD:
        raise ValueError(f"Unknown world category {category!r}; choose one of {list(WORLD)}.")
    return WORLD[category]


def _light(rng: np.random.Generator, size: int) -> np.ndarray:
    """A light field: overall gain in [0.8, 1.15] times a linear gradient of up to +-15 %. [ours]"""
    yy, xx = pixel_grid(size)
    a = rng.uniform(0.0, 2.0 * np.pi)
    amp = rng.uniform(0.0, 0.3)
    grad = ((xx - size / 2) * np.cos(a) + (yy - size / 2) * np.sin(a)) / size
    return (rng.uniform(0.8, 1.15) * (1.0 + amp * grad)).astype(np.float32)


def _compose(scene: Scene, light: np.ndarray) -> np.ndarray:
    if scene.background is None:
        img = scene.surface
    else:
        c = scene.cover[:, :, None]
        img = scene.background * (1.0 - c) + scene.surface * c
    return np.floor(np.clip(img * light[:, :, None], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_args(category: str, index: int, seed: int, size: int, n_defects: int | None, split: str) -> WorldCategory:
    spec = check_world_category(category)
    for name, value, lo in (("index", index, 0), ("seed", seed, 0), ("size", size, 32)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"render_world: {name} must be an integer >= {lo}, got {value!r}.")
    if n_defects is not None and (isinstance(n_defects, bool) or not isinstance(n_defects, (int, np.integer))
                                  or not 0 <= n_defects <= MAX_DEFECTS):
        raise ValueError(f"render_world: n_defects must be None (random) or an integer in 0-{MAX_DEFECTS}, "
                         f"got {n_defects!r}.")
    if not isinstance(split, str) or not split:
        raise ValueError(f"render_world: split must be a non-empty string such as 'train' or 'test', got {split!r}.")
    return spec


def render_world(category: str, index: int, *, seed: int = 0, size: int = 256, n_defects: int | None = None,
                 split: str = "train", defect_types: Sequence[str] | None = None) -> WorldSample:
    """Render one image of the world with exact masks and a caption. [ours]

    Args:
        category: a key of :data:`WORLD`.
        index: the image number; any integer >= 0.
        seed: the world's seed.
        size: side of the square image (>= 32 pixels).
        n_defects: ``None`` draws 0 (probability :data:`P_NORMAL`) or 1-4 defects; an int forces that many.
        split: a name that separates image streams (``"train"``, ``"test"``, ...): same index, other image.
        defect_types: force these types (in this order), instead of drawing them from the category's.

    Deterministic from (seed, category, split, index, size). The scene and the defects draw from
    separate random streams, so ``n_defects=0`` renders exactly the clean image of the same scene.
    """
    spec = _check_args(category, index, seed, size, n_defects, split)
    keys = (category, split, int(index), int(size))
    scene_rng = rng_for(seed, "world-scene", *keys)
    scene = WORLD_RENDERERS[category](scene_rng, int(size))
    light = _light(scene_rng, int(size))
    # every pixel the object touches (anti-aliased edges included: a defect there changes them too)
    object_mask = scene.cover > 0.0
    region = object_mask.copy() if scene.background is not None else scene.region.copy()
    image = _compose(scene, light)

    rng = rng_for(seed, "world-defects", *keys)
    if defect_types is not None:
        types = tuple(defect_types)
        bad = [t for t in types if t not in spec.defect_types]
        if bad or len(types) > MAX_DEFECTS or (n_defects is not None and n_defects != len(types)):
            raise ValueError(f"render_world: defect_types {list(types)} must be at most {MAX_DEFECTS} of "
                             f"{list(spec.defect_types)} (category {category!r}) and agree with n_defects={n_defects}.")
    else:
        n = n_defects if n_defects is not None else (0 if rng.random() < P_NORMAL else int(rng.integers(1, 5)))
        types = tuple(spec.defect_types[int(i)] for i in rng.integers(len(spec.defect_types), size=n))
    min_pixels = max(6, int(0.0006 * size * size))
    masks: list[np.ndarray] = []
    kept: list[str] = []
    for t in types:
        for attempt in range(8):
            saved = (scene.surface.copy(), scene.cover.copy())
            painted = DEFECT_PAINTERS[t](scene, rng, False)
            new = _compose(scene, light)
            mask = painted | (new != image).any(axis=2)
            if mask.sum() >= min_pixels or (attempt == 7 and mask.any()):
                masks.append(mask)
                kept.append(t)
                image = new
                break
            scene.surface, scene.cover = saved  # too small (e.g. clipped at the image edge): draw again
    caption = make_caption(spec.name, spec.kind, kept, rng_for(seed, "world-caption", *keys))
    return WorldSample(image, object_mask, region, tuple(masks), tuple(kept), category, caption)


def defect_centre(mask: np.ndarray) -> tuple[float, float]:
    """The centroid (x, y) of a mask, in pixels."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("defect_centre: the mask is empty.")
    return float(xs.mean()), float(ys.mean())


__all__ = ["WorldCategory", "WorldSample", "WORLD", "FOLDS", "HELDOUT_CATEGORIES", "PRETRAIN_CATEGORIES",
           "AUX_CATEGORIES", "P_NORMAL", "MAX_DEFECTS", "fold_split", "render_world", "defect_centre",
           "check_world_category"]
