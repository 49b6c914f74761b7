"""The miniature world and mini-CLIP in front of students: contact sheet, split, live heads and prior. [ours]

Taught in notebook 00 (section "The miniature world": :func:`world_contact_sheet`, :func:`split_rows`,
:func:`render_cost_ms`) and notebook 01 (in the ``mini`` profile, section 1 and 5's adapter training
images :func:`world_aux_items`; sections "A CLIP that has learned something" and "Metrics a prior
cannot game": :func:`heads_figure`, :func:`prior_rows`, :func:`model_card_table`). :func:`world_items`
serves its exercise 01.5 and :func:`world_adapter` :func:`clipsam_lite.demo.world_demo_adapter`. No
METHOD.md step of its own: drawing and bookkeeping around the world (:mod:`clipsam_lite.synthetic.world`),
METHOD.md step 1's maps (:mod:`clipsam_lite.clip_maps`) and the prior baseline (:mod:`clipsam_lite.prior`),
kept here so that the notebooks' cells stay short.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .synthetic.world import WORLD, WorldSample, fold_split, render_world

__all__ = ["DEFECT_COLORS", "world_role", "split_rows", "contact_samples", "world_contact_sheet", "render_cost_ms",
           "world_items", "world_aux_items", "world_adapter", "heads_figure", "prior_rows", "model_card_table"]

DEFECT_COLORS: tuple[str, ...] = ("#e41a1c", "#ffd700", "#00e5ff", "#ff7f00")
"""One colour per defect of an image (at most four), in the order they were painted."""


def world_role(category: str, fold: int = 0) -> str:
    """``"held-out"``, ``"pretraining + auxiliary"`` or ``"pretraining"``: a category's role in ``fold``."""
    held, _, aux = fold_split(fold)
    if category not in WORLD:
        raise ValueError(f"Unknown world category {category!r}; choose one of {list(WORLD)}.")
    return "held-out" if category in held else ("pretraining + auxiliary" if category in aux else "pretraining")


def split_rows(fold: int = 0) -> list[list[str]]:
    """One row per category: name, kind, its defect types and its role in ``fold`` (the shipped split: 0)."""
    return [[c, spec.kind, ", ".join(spec.defect_types), world_role(c, fold)] for c, spec in WORLD.items()]


def contact_samples(size: int = 96, seed: int = 0, index: int = 0) -> list[WorldSample]:
    """One test image per category with 1-4 defects (category k gets ``k % 4 + 1``): every type is seen."""
    return [render_world(c, index, seed=seed, size=size, split="test", n_defects=k % 4 + 1)
            for k, c in enumerate(WORLD)]


def _targets_rgb(s: WorldSample) -> np.ndarray:
    """Black outside the object, grey object, the region lighter, each defect in its colour."""
    from matplotlib.colors import to_rgb

    out = np.zeros((*s.object_mask.shape, 3), np.float32)
    out[s.object_mask] = 0.35
    out[s.region] = 0.6
    for m, color in zip(s.defect_masks, DEFECT_COLORS, strict=False):
        out[m] = to_rgb(color)
    return out


def world_contact_sheet(samples: Sequence[WorldSample] | None = None, fold: int = 0, cols: int = 6) -> Any:
    """The twelve categories: each image above its targets (object, region, one colour per defect).

    Titles give the category, its role in ``fold`` and its defects. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    from .panels import draw_mask_outline

    samples = list(samples) if samples is not None else contact_samples()
    if not samples:
        raise ValueError("world_contact_sheet needs at least one WorldSample (see contact_samples()).")
    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.9 * cols, 2.05 * 2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, s in enumerate(samples):
        r, c = 2 * (k // cols), k % cols
        axes[r, c].imshow(s.image)
        for m, color in zip(s.defect_masks, DEFECT_COLORS, strict=False):
            draw_mask_outline(axes[r, c], m, color=color, lw=0.9)
        role = world_role(s.category, fold)
        axes[r, c].set_title(f"{s.category} ({role.split(' ')[0]})", fontsize=8,
                             color="#b00000" if role == "held-out" else "black")
        axes[r + 1, c].imshow(_targets_rgb(s))
        axes[r + 1, c].set_title(", ".join(t.replace("_", " ") for t in s.defect_types), fontsize=6.5)
    fig.tight_layout()
    fig.text(0.995, 0.005, "data only (no model): the miniature world", ha="right", va="bottom", fontsize=7, color="0.35")
    return fig


def render_cost_ms(size: int = 128, n: int = 24, seed: int = 0) -> float:
    """Mean CPU milliseconds to render one world image (defects included), over ``n`` images of all categories."""
    if n < 1:
        raise ValueError(f"render_cost_ms: n must be >= 1, got {n}.")
    cats = list(WORLD)
    t0 = time.process_time()
    for i in range(n):
        render_world(cats[i % len(cats)], 1000 + i, seed=seed, size=size, split="cost")
    return 1000.0 * (time.process_time() - t0) / n


# ------------------------------------------------------------------------------------------------
# Notebook 01: mini-CLIP on held-out categories, the adapter trained on AUX ones, and the prior row
# ------------------------------------------------------------------------------------------------

def world_items(categories: Sequence[str], n: int, split: str, size: int = 128, seed: int = 0,
                n_defects: int | None = None) -> list[Any]:
    """``n`` world images per category as :class:`~clipsam_lite.datasets.Item` (path = ``category/split/i``).

    The item's ``region`` and ``object_mask`` ride along as attributes for the region AUROC.
    """
    from .datasets import Item

    items = []
    for c in categories:
        for i in range(n):
            s = render_world(c, i, seed=seed, size=size, split=split, n_defects=n_defects)
            it = Item(image=s.image, mask=s.mask, label=int(s.is_anomalous), category=c,
                      defect_type="+".join(s.defect_types) or "good", path=f"{c}/{split}/{i}")
            it.region = s.region  # type: ignore[attr-defined]  (Item is a plain dataclass)
            items.append(it)
    return items


def world_aux_items(fold: int = 0, n_per_category: int = 8, size: int = 128,
                    categories: Sequence[str] | None = None) -> list[Any]:
    """The adapter's training images: ``n_per_category`` rendered images of each auxiliary category. [ours]

    ``categories`` defaults to ``fold``'s auxiliary categories (:func:`~clipsam_lite.synthetic.world.fold_split`;
    fold 0: :data:`~clipsam_lite.synthetic.AUX_CATEGORIES`). Image ``i`` of a category is
    ``render_world(c, i, size=size, split="aux", n_defects=1 + i % 4)``: every image has 1-4 defects (the
    adapter learns from masks). A category of ``fold``'s held-out set is refused: training on it would
    break the zero-shot protocol (METHOD.md, "Task") the held-out numbers rely on.
    """
    from .datasets import Item

    held, _, aux = fold_split(fold)
    if isinstance(n_per_category, bool) or not isinstance(n_per_category, int) or n_per_category < 1:
        raise ValueError(f"world_aux_items: n_per_category must be an integer >= 1, got {n_per_category!r}.")
    cats = list(aux if categories is None else categories)
    unknown = [c for c in cats if c not in WORLD]
    if unknown or not cats:
        raise ValueError(f"world_aux_items: unknown world categories {unknown or cats}; choose from {list(WORLD)} "
                         f"(fold {fold}'s auxiliary ones: {list(aux)}).")
    leaked = [c for c in cats if c in held]
    if leaked:
        raise ValueError(f"world_aux_items: {leaked} are fold {fold}'s held-out categories, which no adapter may be "
                         f"trained on; use its auxiliary categories {list(aux)} (or other pretraining ones).")
    items = []
    for c in cats:
        for i in range(n_per_category):
            s = render_world(c, i, size=size, split="aux", n_defects=1 + i % 4)
            items.append(Item(image=s.image, mask=s.mask, label=1, category=c, defect_type="mixed", path=f"{c}/aux/{i}"))
    return items


def world_adapter(models: Any, cfg: Any, fold: int = 0, n_per_category: int = 8, epochs: int = 2,
                  size: int = 128, log: Any = None) -> Any:
    """The APRIL-GAN adapter trained on ``fold``'s auxiliary categories only (never on its held-out ones).

    Trained on :func:`world_aux_items` (every image has 1-4 defects). Small by default, so a notebook
    trains it in seconds on one CPU thread.
    """
    from .adapter import train_adapter

    _, _, aux = fold_split(fold)
    items = world_aux_items(fold, n_per_category, size)
    adapter, _ = train_adapter(models, items, cfg.replace(head="adapter"), epochs=epochs, progress=False, log=log,
                               description=f"miniature world, auxiliary categories {list(aux)} (fold {fold})")
    return adapter


def heads_figure(items: Sequence[Any], tf_maps: Sequence[np.ndarray], ad_maps: Sequence[np.ndarray],
                 ) -> Any:
    """One row per image: image with its defects, training-free ``S_a``, adapter ``S_a`` (both in [0, 1]).

    The caller names the profile (:func:`clipsam_lite.course.profile_label`).
    """
    import matplotlib.pyplot as plt

    from .panels import GT_COLOR, draw_mask_outline

    if not (len(items) == len(tf_maps) == len(ad_maps)) or not items:
        raise ValueError(f"heads_figure needs as many maps as items (got {len(items)} items, {len(tf_maps)} "
                         f"training-free and {len(ad_maps)} adapter maps), and at least one.")
    fig, axes = plt.subplots(len(items), 3, figsize=(7.2, 2.35 * len(items)), squeeze=False)
    for r, it in enumerate(items):
        for c, (img, title) in enumerate([(it.image, f"{it.category}: {it.defect_type}"),
                                          (tf_maps[r], "training-free S_a"), (ad_maps[r], "adapter S_a")]):
            ax = axes[r, c]
            ax.imshow(img, **({} if c == 0 else {"cmap": "inferno", "vmin": 0, "vmax": 1}))
            draw_mask_outline(ax, it.mask, color=GT_COLOR, lw=0.8)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig


def prior_rows(items: Sequence[Any], maps: Sequence[np.ndarray], normal_maps: dict[str, Sequence[np.ndarray]]
               ) -> dict[str, dict[str, float]]:
    """Pixel AUROC and region AUROC of a head's maps and of its prior baseline, on the same ``items``."""
    from .metrics import pixel_auroc, region_auroc
    from .prior import prior_maps_for

    masks = [it.mask for it in items]
    regions = [it.region for it in items]
    priors = prior_maps_for([it.category for it in items], normal_maps)
    return {name: {"pixel_auroc": pixel_auroc(list(m), masks), "region_auroc": region_auroc(list(m), masks, regions)}
            for name, m in (("head", maps), ("prior", priors))}


def model_card_table(section: str = "## Held-out numbers") -> str:
    """The markdown table of one section of mini-CLIP's ``MODEL_CARD.md`` (the shipped, measured numbers)."""
    from .mini_clip import WEIGHTS_DIR

    text = (WEIGHTS_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    _, sep, rest = text.partition(section)
    if not sep:
        raise ValueError(f"MODEL_CARD.md has no section {section!r}.")
    return "\n".join(line for line in rest.split("\n## ")[0].splitlines() if line.startswith("|"))

