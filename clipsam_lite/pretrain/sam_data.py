"""Training scenes and interactive prompts for the mini-SAM (SAM's interactive recipe). [ours]

Taught in notebook 00 (section "9. The miniature world", "The mini profile"); it trains the SAM that METHOD.md step 4 prompts.

A :class:`TrainScene` is an image with targets and their nesting: dead-leaves scenes
(:mod:`clipsam_lite.synthetic.shapes`: a shape's visible region, a mark inside it) and world scenes
with 2-4 defects (a defect, whose parent is the whole object). Prompts follow SAM's training
(Kirillov et al. 2023, sec. 3 and appendix A): a first prompt per target (one point, several points
in and out, or a jittered box), then correction points sampled from the error of the model's own
previous mask, with its previous low-res logits as ``mask_input``. Two additions for CPS
(METHOD.md step 4): PPG-like prompts (up to 3 positives and 3 negatives on the surrounding surface),
and a last pass whose box is the bounding box of the model's own previous mask, as CPS stage 3 does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..synthetic.scenes import rng_for
from ..synthetic.shapes import TRAIN_FAMILIES, render_shapes

__all__ = [
    "TrainScene", "Prompt", "world_render", "world_categories", "world_scene", "shapes_scene",
    "training_scene", "first_prompt", "correction_point", "own_box", "sample_inside",
]


@dataclass
class TrainScene:
    """An image (``S x S x 3`` uint8) and its targets (``S x S`` bool), with ``parents[i]`` = the index of
    the target containing target ``i`` (-1: none), ``kinds[i]`` in shape / mark / defect / object."""

    image: np.ndarray
    targets: list[np.ndarray]
    parents: list[int]
    kinds: list[str]
    source: str = ""

    def children(self, i: int) -> list[int]:
        return [j for j, p in enumerate(self.parents) if p == i]


@dataclass
class Prompt:
    """One prompt in original image pixels: points ``(n, 2)`` (x, y), labels ``(n,)`` 1/0, box or None.

    ``valid`` lists the targets that count as a right answer: one, or two nested ones (the small one
    first) for a single ambiguous point.
    """

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None
    valid: list[int]
    mode: str
    extra: dict = field(default_factory=dict)

    @property
    def single_point(self) -> bool:
        return self.box is None and len(self.labels) == 1


# --------------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------------

def world_render():
    """The world's ``render_world`` (helper "clip"'s ``clipsam_lite.synthetic.world``)."""
    from ..synthetic.world import render_world

    return render_world


def world_categories() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(categories to train on, held-out categories never trained on)."""
    from ..synthetic.world import HELDOUT_CATEGORIES, PRETRAIN_CATEGORIES

    return tuple(PRETRAIN_CATEGORIES), tuple(HELDOUT_CATEGORIES)


def world_scene(category: str, index: int, *, seed: int = 0, split: str = "train", n_defects: int | None = None,
                min_area: int = 6, size: int = 256, render_size: int | None = None) -> TrainScene:
    """A world image as targets: each visible defect (parent: the object), and the object itself.

    Defects smaller than ``min_area`` pixels (at ``render_size``) are dropped. The object is a target
    for object categories; for textures the whole image plays the object's part (a parent, never
    prompted alone). ``render_size < size``: rendered small and brought to ``size`` the way SAM's
    ``ResizeLongestSide`` does (the mini profile runs on 128 px images), masks by nearest neighbour.
    """
    from ..synthetic.world import WORLD

    rs = render_size or size
    s = world_render()(category, index, seed=seed, split=split, size=rs,
                       n_defects=int(np.random.default_rng(index).integers(2, 5)) if n_defects is None else n_defects)
    image = np.asarray(s.image)
    masks = [np.asarray(s.object_mask, bool)] + [np.asarray(m, bool) for m in s.defect_masks]
    keep = [True] + [m.sum() >= min_area for m in masks[1:]]
    if rs != size:
        from segment_anything.utils.transforms import ResizeLongestSide

        image = ResizeLongestSide(size).apply_image(image)
        idx = (np.arange(size) * rs) // size
        masks = [m[idx][:, idx] for m in masks]
    obj = masks[0]
    targets, parents, kinds = [obj], [-1], ["object" if WORLD[category].kind == "object" else "surface"]
    for m, k in zip(masks[1:], keep[1:], strict=True):
        if k:
            targets.append(m)
            parents.append(0)
            kinds.append("defect")
    return TrainScene(image, targets, parents, kinds, source=f"world:{category}")


def shapes_scene(index: int, *, seed: int = 0, split: str = "train", families: tuple[str, ...] = TRAIN_FAMILIES
                 ) -> TrainScene:
    """A dead-leaves scene (:func:`clipsam_lite.synthetic.shapes.render_shapes`) as targets."""
    s = render_shapes(index, seed=seed, split=split, families=families)
    return TrainScene(s.image, list(s.targets), list(s.parents), list(s.kinds), source="shapes")


def training_scene(step: int, slot: int, seed: int, world_share: float = 0.5) -> TrainScene:
    """The scene of batch slot ``slot`` at training step ``step`` (deterministic, so a resumed run
    sees the same data): a world scene of a pretraining category with probability ``world_share``
    (35 % of them rendered at 128 px and upsampled, as the mini profile's images reach SAM), else a
    dead-leaves scene [ours: 50/50]."""
    rng = rng_for(seed, "scene-choice", step, slot)
    index = step * 64 + slot
    if rng.random() < world_share:
        train, _ = world_categories()
        small = rng.random() < 0.35  # [ours] the mini profile's 128 px images, upsampled as SAM does
        return world_scene(train[int(rng.integers(len(train)))], index, seed=seed, split="train",
                           render_size=128 if small else None)
    return shapes_scene(index, seed=seed)


# --------------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------------

def sample_inside(rng: np.random.Generator, mask: np.ndarray, n: int = 1, erode: int = 0) -> np.ndarray:
    """``n`` pixels (x, y) drawn uniformly from ``mask`` (from its erosion by ``erode`` px when that is
    not empty); ``(0, 2)`` for an empty mask."""
    m = np.asarray(mask, bool)
    if erode > 0:
        e = ndimage.binary_erosion(m, iterations=erode)
        if e.any():
            m = e
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return np.zeros((0, 2), np.float64)
    k = rng.integers(len(ys), size=n)
    return np.stack([xs[k], ys[k]], 1).astype(np.float64)


def _bbox(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)


def jitter_box(rng: np.random.Generator, box: np.ndarray, size: int, frac: float = 0.1, cap: float = 20.0) -> np.ndarray:
    """SAM's box noise: each side moved by N(0, frac * side length), at most ``cap`` px, clipped to the image."""
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    sd = np.array([w, h, w, h]) * frac
    out = box + np.clip(rng.normal(0, 1, 4) * sd, -cap, cap)
    out = np.clip(out, 0, size - 1)
    return np.array([min(out[0], out[2]), min(out[1], out[3]), max(out[0], out[2]), max(out[1], out[3])])


def _negatives(rng: np.random.Generator, scene: TrainScene, t: int, n: int) -> np.ndarray:
    """``n`` negative points outside target ``t``: 40 % on other targets, 30 % in a ring 3-16 px around
    it (the surrounding surface: co-feature negatives), 30 % anywhere else [ours]."""
    target = scene.targets[t]
    outside = ~target
    others = np.zeros_like(target)
    for j, m in enumerate(scene.targets):
        if j != t and scene.parents[j] != t and j != scene.parents[t]:  # not its parent nor its children
            others |= m
    others &= outside
    r = int(rng.integers(3, 17))
    ring = ndimage.binary_dilation(target, iterations=r) & outside
    pts = []
    for _ in range(n):
        u = rng.random()
        region = others if u < 0.4 and others.any() else ring if u < 0.7 and ring.any() else outside
        pts.append(sample_inside(rng, region, 1))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


FIRST_PROMPT_MIXES = ("mixed", "sam")
"""``mixed`` [ours]: single points, PPG-like point sets and boxes; ``sam``: SAM's own first prompts
(Kirillov et al. 2023, appendix A: a foreground point or a box with equal probability), so that several
points reach the model only in later passes, beside its previous logits as ``mask_input``."""


def first_prompt(rng: np.random.Generator, scene: TrainScene, t: int, mix: str = "mixed") -> Prompt:
    """The first prompt for target ``t``.

    ``mix="mixed"`` [ours: the mix]:

    - 30 %: one positive point (ambiguous when ``t`` has a parent: both are valid answers; for a
      parent-level target, its children are also valid when the point falls in one);
    - 40 %: 1-3 positives and 0-3 negatives (PPG-like when the negatives fall in the ring);
    - 30 %: the target's box jittered by 10 % of its sides, with one positive point 30 % of the time.

    ``mix="sam"`` (SAM's recipe): 50 % one positive point (ambiguous as above), 50 % the jittered box alone.
    """
    if mix not in FIRST_PROMPT_MIXES:
        raise ValueError(f"first-prompt mix must be one of {FIRST_PROMPT_MIXES}, got {mix!r}.")
    size = scene.image.shape[0]
    target = scene.targets[t]
    u = rng.random()
    erode = 2 if rng.random() < 0.7 else 0
    if mix == "sam":
        kind = "single" if u < 0.5 else "box"
    else:
        kind = "single" if u < 0.3 else "points" if u < 0.7 else "box"
    if kind == "single":
        p = sample_inside(rng, target, 1, erode)
        valid = [t]
        if scene.parents[t] >= 0:
            valid = [t, scene.parents[t]]
        else:
            kids = [c for c in scene.children(t) if scene.targets[c][int(p[0, 1]), int(p[0, 0])]]
            if kids:
                valid = [kids[0], t]
        return Prompt(p, np.ones(1, np.int64), None, valid, "single")
    if kind == "points":
        pos = sample_inside(rng, target, int(rng.integers(1, 4)), erode)
        neg = _negatives(rng, scene, t, int(rng.integers(0, 4)))
        if len(pos) == 1 and len(neg) == 0:
            neg = _negatives(rng, scene, t, 1)
        pts = np.concatenate([pos, neg])
        lab = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
        return Prompt(pts, lab, None, [t], "points")
    box = jitter_box(rng, _bbox(target), size)
    if mix == "mixed" and rng.random() < 0.3:  # SAM's recipe gives the box alone
        return Prompt(sample_inside(rng, target, 1, erode), np.ones(1, np.int64), box, [t], "box+point")
    return Prompt(np.zeros((0, 2)), np.zeros(0, np.int64), box, [t], "box")


def correction_point(rng: np.random.Generator, pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int] | None:
    """A correction click from the error of ``pred`` against ``target`` (SAM's iterative sampling).

    The error pixel is drawn uniformly (50 %) or is the one farthest inside the error region (50 %,
    the click a careful user makes) [ours: the mix]. Label 1 on a missed pixel, 0 on a false one.
    None when the prediction is exact.
    """
    err = pred ^ target
    if not err.any():
        return None
    if rng.random() < 0.5:
        p = sample_inside(rng, err, 1)[0]
    else:
        d = ndimage.distance_transform_edt(np.pad(err, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(d)), d.shape)
        p = np.array([x, y], np.float64)
    return p, int(target[int(p[1]), int(p[0])])


def own_box(pred: np.ndarray, margin: int) -> np.ndarray | None:
    """CPS stage 3's box: ``bbox(pred)`` grown by ``margin`` and clipped (as ``cps.box_from_mask``)."""
    from ..cps import box_from_mask

    return box_from_mask(pred, margin)
