"""The paper's figures, regenerated: ``python -m clipsam_lite figures``.

Taught in notebook 08 (sections 1-4 and 6); the figures show METHOD.md steps 1-5 on the same images.

Three qualitative figures computed from the pipeline on the same images, and the evaluation's tables
rendered as figures and markdown [ours: the layout of every figure]:

- **Figure 1** (the motivation): a CLIP-only anomaly map ``S_a``; SAM prompted naively, by one point
  at the maximum of ``S_a`` (naive prompts let SAM segment the whole object rather than the defect);
  and ours, the final map and mask of PPG + CPS (METHOD.md steps 1-5).
- **Figure 2**: a qualitative grid over categories: image, ground truth, the training-free CLIP map,
  the adapter CLIP map, our final mask.
- **Figure 3**: the three CPS stages on one image (the paper's Figure 3 caption: points alone give
  blurry boundaries, secondary points and ``logit1`` sharpen them, a box then fixes the boundary),
  with the mask input each stage received.
- **Tables**: ``results.json`` and ``ablation.json`` as heat-map tables, stage curves and markdown
  live in :mod:`clipsam_lite.tables`; :func:`make_figures` renders them too.

Every figure is drawn inside the packaged style (``clipsam.mplstyle``) with fixed colours
(:mod:`clipsam_lite.panels`), from deterministic inputs (seeded item selection, seeded models), and saved
as PNG and PDF without timestamps or software versions (:func:`clipsam_lite.panels.save_png_pdf`): the same inputs give
byte-identical files. Every figure made with random backbones (the ``tiny`` profile) says so in its
title, and in the PNG/PDF metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .panels import (
    FIGURE_NAMES,
    GT_COLOR,
    MASK_COLOR,
    caption_suptitle,
    describe,
    draw_box,
    draw_mask_outline,
    draw_points,
    figure_caption,
    legend_handles,
    placeholder,
    row_label,
    save_png_pdf,
    show_image,
    show_map,
    style,
)
from .synthetic import is_synthetic_root
from .tables import render_tables

__all__ = [
    "NAIVE_COLOR", "Case", "select_items", "sample_items", "figure_adapter", "naive_point", "naive_point_mask",
    "mask_iou", "compute_cases", "figure_motivation", "figure_qualitative", "pick_cascade_case", "figure_cascade",
    "render_qualitative", "make_figures", "figures_command",
]

NAIVE_COLOR = "#ff7f0e"
"""The naive single-point SAM mask (Figure 1); ours is :data:`clipsam_lite.panels.MASK_COLOR`."""
SECONDARY_RING = "#000000"
"""The ring drawn around the stage-2 secondary points (Figure 3)."""


# --------------------------------------------------------------------------------------------------
# Which images
# --------------------------------------------------------------------------------------------------

def _round_robin(groups: dict[str, list[Any]]) -> list[Any]:
    out: list[Any] = []
    depth = max((len(v) for v in groups.values()), default=0)
    for i in range(depth):
        out += [v[i] for v in groups.values() if i < len(v)]
    return out


def select_items(dataset: Any, per_category: int = 1, seed: int = 0) -> list[Any]:
    """Deterministic choice of anomalous test items, ``per_category`` per category, interleaved [ours].

    Per category (in the dataset's order): the defect types in a seeded random order, one image per
    type (seeded) until ``per_category`` are chosen, then more from the same types. Images without a
    ground truth (label -1, plain folders) are used only where a category has no anomalous image.
    The result is interleaved over categories (``cat0, cat1, ..., cat0, cat1, ...``) so the first few
    items cover different categories. Returns :class:`clipsam_lite.datasets.Item` objects.
    """
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}.")
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[Any]] = {}
    for cat in dataset.categories:
        recs = [r for r in dataset.records if r.category == cat and r.label == 1]
        if not recs:
            recs = [r for r in dataset.records if r.category == cat and r.label == -1]
        if not recs:
            continue
        by_type: dict[str, list[Any]] = {}
        for r in recs:
            by_type.setdefault(r.defect_type, []).append(r)
        types = sorted(by_type)
        order = [types[i] for i in rng.permutation(len(types))]
        pools = {t: [by_type[t][i] for i in rng.permutation(len(by_type[t]))] for t in order}
        picks = _round_robin(pools)[:per_category]
        chosen[cat] = picks
    if not chosen:
        raise ValueError(f"{dataset!r} has no anomalous test image (label 1) nor unlabelled image to show; "
                         "figures need images with defects (MVTec-AD/VisA test split, or a folder with masks).")
    return [dataset.read(r) for r in _round_robin(chosen)]


def sample_items(profile: str, per_category: int = 2, seed: int = 0) -> list[Any]:
    """Anomalous items of the embedded synthetic sample's held-out categories (the demo's images).

    The tiny profile reads the ``signature`` sample (the one signal random backbones can carry), the
    mini profile the miniature world's held-out categories (:func:`~clipsam_lite.synthetic.world_demo_root`),
    the real profiles the natural-colour sample: :func:`clipsam_lite.course.course_data`, as notebooks 02-07.
    """
    from .course import course_data
    from .datasets import load_dataset

    data = course_data(profile)
    ds = load_dataset("mvtec", data.root, category=list(data.held_out), split="test")
    return select_items(ds, per_category=per_category, seed=seed)


def figure_adapter(models: Any, cfg: Any, adapter: str | Path | Any | None = None, synthetic: bool = True,
                   log: Callable[[str], None] | None = print) -> Any | None:
    """The adapter head of the figures, chosen like :func:`clipsam_lite.evaluate.prepare` does.

    A file is loaded (and checked against the backbone); an ``Adapter`` object is used as is; with
    none, on synthetic data (``synthetic=True``) the tiny profile uses
    :func:`clipsam_lite.demo.synthetic_adapter` and the mini profile
    :func:`clipsam_lite.demo.world_demo_adapter` (cached after their first training); otherwise None
    (the figures then show the training-free head only).
    """
    from .demo import AUX_CATEGORIES, choose_adapter

    if adapter is None and models.profile == "tiny" and synthetic and log:
        log(f"[figures] adapter: trained on the synthetic sample's auxiliary categories {list(AUX_CATEGORIES)} "
            "(cached after the first run)")
    # the figures show the adapter head beside the training-free one, whatever cfg.head says
    return choose_adapter(models, cfg.replace(head="adapter"), adapter, synthetic=synthetic, log=log)[0]


# --------------------------------------------------------------------------------------------------
# Computing what the figures show
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One image and everything the figures draw of it."""

    image: np.ndarray
    mask: np.ndarray
    """Ground truth, H x W bool (all False when unknown)."""
    label: int
    category: str
    defect_type: str
    name: str
    """The image's file name (no folders: figures never show machine paths)."""
    object_name: str
    s_a_free: np.ndarray
    """``S_a`` of the training-free head."""
    s_a_adapter: np.ndarray | None
    """``S_a`` of the adapter head, None without an adapter."""
    result: Any
    """:class:`clipsam_lite.pipeline.Result` of ours (adapter head when there is one, else training-free)."""
    naive_point: np.ndarray
    """(1, 2) the (x, y) of the naive prompt: the maximum of ours' ``S_a``."""
    naive_mask: np.ndarray
    naive_predicted_iou: float

    @property
    def label_text(self) -> str:
        return f"{self.category} / {self.defect_type}"


def naive_point(s_a: np.ndarray) -> np.ndarray:
    """The naive prompt: the pixel of maximum ``S_a`` as a (1, 2) (x, y) array (first in row-major order on ties)."""
    s_a = np.asarray(s_a)
    if s_a.ndim != 2 or s_a.size == 0:
        raise ValueError(f"naive_point needs a non-empty H x W map, got shape {s_a.shape}.")
    y, x = np.unravel_index(int(np.argmax(s_a)), s_a.shape)
    return np.array([[x, y]], dtype=np.float64)


def naive_point_mask(models: Any, embedding: Any, s_a: np.ndarray, multimask: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """SAM from one positive point at the maximum of ``S_a``: the baseline the paper argues against.

    **[paper]** prompts that do not say where the anomaly ends let SAM segment the whole object
    (METHOD.md states it of negatives at the globally lowest ``S_a``). **[ours]** this baseline: the
    simplest such prompt, one positive point, with SAM's usual set-up for one ambiguous point
    (``multimask_output=True``, the mask of highest predicted IoU). Runs only the decoder on the
    given embedding. Returns (mask, point, predicted IoU).
    """
    from .sam_features import predictor_for

    point = naive_point(s_a)
    predictor = predictor_for(models.sam, embedding)
    masks, ious, _ = predictor.predict(point_coords=point.astype(np.float32), point_labels=np.array([1], np.int32),
                                       multimask_output=multimask)
    best = int(np.argmax(ious)) if multimask else 0
    return np.asarray(masks[best], dtype=bool), point, float(ious[best])


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two boolean masks; NaN when both are empty."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask_iou: shapes differ, {pred.shape} vs {gt.shape}.")
    union = int((pred | gt).sum())
    return float("nan") if union == 0 else int((pred & gt).sum()) / union


def compute_cases(items: Sequence[Any], models: Any, cfg: Any, adapter: Any | None = None) -> list[Case]:
    """Run everything the figures show on ``items`` (``datasets.Item``-like: image, mask, label, category...).

    CLIP runs once per head (training-free, and adapter when given), SAM's encoder once per image;
    ours is :func:`clipsam_lite.pipeline.finish_from_maps` on the adapter map (or the training-free
    one without an adapter), and the naive baseline one decoder pass (:func:`naive_point_mask`).
    """
    import torch

    from .clip_maps import anomaly_maps, object_name_for
    from .pipeline import finish_from_maps
    from .sam_features import embed_images

    items = list(items)
    if not items:
        raise ValueError("compute_cases got no items.")
    images = [it.image for it in items]
    names = [object_name_for(it.category) for it in items]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        free = anomaly_maps(models, images, names, cfg.replace(head="training_free"))
        ours_cfg = cfg.replace(head="adapter") if adapter is not None else cfg.replace(head="training_free")
        adapted = anomaly_maps(models, images, names, ours_cfg, adapter=adapter) if adapter is not None else free
        embeddings = embed_images(models.sam, images, batch_size=cfg.sam_batch_size, precision=cfg.precision)
        cases = []
        for i, it in enumerate(items):
            result = finish_from_maps(adapted.maps[i], float(adapted.image_scores[i]), names[i], embeddings[i],
                                      models, ours_cfg)
            mask, point, iou = naive_point_mask(models, embeddings[i], adapted.maps[i])
            cases.append(Case(image=it.image, mask=np.asarray(it.mask, bool), label=int(it.label),
                              category=it.category, defect_type=it.defect_type, name=Path(str(it.path)).name,
                              object_name=names[i], s_a_free=free.maps[i],
                              s_a_adapter=adapted.maps[i] if adapter is not None else None, result=result,
                              naive_point=point, naive_mask=mask, naive_predicted_iou=iou))
    return cases


# --------------------------------------------------------------------------------------------------
# Figure 1, 2, 3
# --------------------------------------------------------------------------------------------------

def _mask_note(mask: np.ndarray, gt: np.ndarray) -> str:
    iou = mask_iou(mask, gt) if gt.any() else float("nan")
    iou_text = "n/a" if math.isnan(iou) else f"{iou:.2f}"
    return f"{100 * float(np.mean(mask)):.0f}% of image, IoU {iou_text}"


def _overlay_mask(ax: Any, image: np.ndarray, mask: np.ndarray, color: str, gt: np.ndarray | None) -> None:
    show_image(ax, image)
    draw_mask_outline(ax, mask, color=color, fill_alpha=0.4)
    if gt is not None and gt.any():
        draw_mask_outline(ax, gt, color=GT_COLOR, lw=1.0)


def figure_motivation(cases: Sequence[Case], caption: str = "", n: int = 3) -> Figure:
    """Figure 1: per image, CLIP's map alone, SAM from one naive point, and ours (final map and mask).

    Mask panels state the mask's share of the image and its IoU with the ground truth (white outline).
    """
    cases = list(cases)[:n]
    if not cases:
        raise ValueError("figure_motivation needs at least one case.")
    cols = ["image + ground truth", "CLIP only: S_a", "SAM, 1 point at max S_a", "ours: final map S",
            "ours: final mask"]
    fig, axes = plt.subplots(len(cases), len(cols), figsize=(1.75 * len(cols), 1.85 * len(cases) + 0.5),
                             squeeze=False)
    handle = None
    for r, c in enumerate(cases):
        res = c.result
        ax = axes[r, 0]
        show_image(ax, c.image)
        draw_mask_outline(ax, c.mask, color=GT_COLOR, lw=1.0)
        row_label(ax, c.label_text)
        handle = show_map(axes[r, 1], res.s_a, c.image)
        draw_points(axes[r, 1], c.naive_point, np.ones(1), size=50)
        ax = axes[r, 2]
        _overlay_mask(ax, c.image, c.naive_mask, NAIVE_COLOR, c.mask)
        draw_points(ax, c.naive_point, np.ones(1), size=50)
        ax.set_title(_mask_note(c.naive_mask, c.mask), fontsize=6.5)
        show_map(axes[r, 3], res.final_map, c.image)
        ax = axes[r, 4]
        _overlay_mask(ax, c.image, res.final_mask, MASK_COLOR, c.mask)
        ax.set_title(("no prompts: normal" if res.is_normal else _mask_note(res.final_mask, c.mask)), fontsize=6.5)
    for j, name in enumerate(cols):
        top = axes[0, j]
        top.set_title(f"{name}\n{top.get_title()}".rstrip(), fontsize=7.5)
    if handle is not None:
        fig.colorbar(handle, ax=axes[:, 1], shrink=0.6, location="bottom", label="anomaly score")
    caption_suptitle(fig, "Figure 1. One point at the CLIP maximum vs. co-feature prompts and the CPS cascade", caption)
    return fig


def _map_or_placeholder(ax: Any, score: np.ndarray | None, image: np.ndarray, text: str) -> Any:
    if score is None:
        placeholder(ax, text, fontsize=6.5, wrap=True)
        return None
    return show_map(ax, score, image)


def figure_qualitative(cases: Sequence[Case], caption: str = "") -> Figure:
    """Figure 2: a grid, one row per image (grouped by category): image, ground truth, training-free
    ``S_a``, adapter ``S_a`` (a grey placeholder without an adapter), our final mask."""
    cases = sorted(cases, key=lambda c: c.category)  # stable: keeps the seeded order within a category
    if not cases:
        raise ValueError("figure_qualitative needs at least one case.")
    cols = ["image", "ground truth", "CLIP map, training-free", "CLIP map, adapter", "ours: final mask"]
    fig, axes = plt.subplots(len(cases), len(cols), figsize=(1.6 * len(cols) + 0.6, 1.6 * len(cases) + 0.6),
                             squeeze=False)
    handle = None
    for r, c in enumerate(cases):
        ax = axes[r, 0]
        show_image(ax, c.image)
        row_label(ax, c.label_text)
        ax = axes[r, 1]
        if c.label == -1:
            _map_or_placeholder(ax, None, c.image, "no ground truth")
        else:
            ax.imshow(c.mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
        handle = show_map(axes[r, 2], c.s_a_free, c.image) or handle
        h = _map_or_placeholder(axes[r, 3], c.s_a_adapter, c.image, "no adapter\n(--adapter FILE)")
        handle = h or handle
        _overlay_mask(axes[r, 4], c.image, c.result.final_mask, MASK_COLOR, c.mask)
    for j, name in enumerate(cols):
        axes[0, j].set_title(name, fontsize=7.5)
    if handle is not None:
        fig.colorbar(handle, ax=axes[:, 2:4], shrink=0.5, location="bottom", label="anomaly score")
    caption_suptitle(fig, "Figure 2. Qualitative results over categories", caption)
    return fig


def pick_cascade_case(cases: Sequence[Case]) -> Case:
    """The image for Figure 3: the first with one prompt set that ran all three stages, else the first
    with three stages, else the first with any cascade, else the first image (drawn as "no prompts")."""
    cases = list(cases)
    if not cases:
        raise ValueError("pick_cascade_case needs at least one case.")
    for ok in (lambda r: len(r.cascades) == 1 and len(r.cascades[0].stages) == 3,
               lambda r: any(len(c.stages) == 3 for c in r.cascades),
               lambda r: bool(r.cascades)):
        for c in cases:
            if ok(c.result):
                return c
    return cases[0]


def _logit_panel(ax: Any, logits: np.ndarray | None, title: str) -> Any:
    if logits is None:
        placeholder(ax, "no mask input")
        ax.set_title(title, fontsize=7)
        return None
    lr = np.asarray(logits, dtype=np.float32).reshape(np.asarray(logits).shape[-2:])
    m = float(max(np.abs(lr).max(), 1e-6))
    h = ax.imshow(lr, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=7)
    return h


def _cascade_legend(fig: Figure) -> None:
    leg = fig.legend(handles=legend_handles(SECONDARY_RING), loc="outside lower center", ncols=3, fontsize=6.5,
                     facecolor="#bbbbbb")
    leg.get_frame().set_linewidth(0)


def figure_cascade(case: Case, caption: str = "") -> Figure:
    """Figure 3: the CPS stages on one image.

    Top row: each stage's prompts over the image (positives green stars, negatives red crosses,
    stage-2 secondary points ringed in black, the stage-3 box yellow) and its mask (cyan), with the
    ground truth in white. Bottom row: what went in besides the points: ``S_a`` and ``M_apa`` (PPG's
    input) for stage 1, SAM's low-res ``logit1`` for stage 2 and ``logit2`` for stage 3, exactly as SAM
    returned them (the first prompt set's, when there are several).
    """
    res = case.result
    masks = res.stage_masks()
    titles = ["stage 1: points -> M1", "stage 2: + secondary points\n+ mask input logit1 -> M2",
              "stage 3: + box of M2\n+ mask input logit2 -> M3"]
    fig, axes = plt.subplots(2, 3, figsize=(6.6, 5.0), squeeze=False)
    first_stages = res.cascades[0].stages if res.cascades else []
    for k in range(3):
        ax = axes[0, k]
        show_image(ax, case.image)
        if k < len(masks):
            draw_mask_outline(ax, masks[k], fill_alpha=0.35)
            for c in res.cascades:
                if k < len(c.stages):
                    s = c.stages[k]
                    draw_points(ax, s.points, s.labels, size=45)
                    if s.n_secondary:
                        sec = np.asarray(s.points)[-s.n_secondary:]
                        ax.scatter(sec[:, 0], sec[:, 1], s=150, facecolors="none", edgecolors=SECONDARY_RING,
                                   linewidths=1.0)
                    draw_box(ax, s.box)
            note = f"{int(masks[k].sum())} px, IoU {mask_iou(masks[k], case.mask):.2f}" if case.mask.any() else \
                f"{int(masks[k].sum())} px"
        elif not res.cascades:
            note = "not run: no prompts (M_apa empty, image treated as normal)"
        else:
            note = "not run: " + ("; ".join(c.stopped for c in res.cascades if c.stopped) or "Config.stages")
        draw_mask_outline(ax, case.mask, color=GT_COLOR, lw=1.0)
        ax.set_title(f"{titles[k]}\n{note}", fontsize=7)
    ax = axes[1, 0]
    show_map(ax, res.s_a, case.image)
    if res.ppg is not None:
        draw_mask_outline(ax, res.ppg.mask_to_original(res.ppg.m_apa), color="white", lw=0.8)
    ax.set_title(f"PPG input: S_a, M_apa = S_a > {res.tau_value:.2f}", fontsize=7)
    handle = None
    for k in (1, 2):
        inp = first_stages[k].mask_input if k < len(first_stages) else None
        what = f"(SAM low-res, {'x'.join(str(v) for v in np.asarray(inp).shape[-2:])})" if inp is not None else \
            "(stage not run)"
        handle = _logit_panel(axes[1, k], inp, f"mask input of stage {k + 1}: logit{k}\n{what}") or handle
    if handle is not None:
        fig.colorbar(handle, ax=axes[1, 1:], shrink=0.7, location="bottom", label="SAM logit")
    _cascade_legend(fig)
    more = f"; {len(res.cascades)} prompt sets, logits of the first" if len(res.cascades) > 1 else ""
    caption_suptitle(fig, f"Figure 3. The CPS cascade on {case.label_text} ({case.name}){more}", caption)
    return fig


# --------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------

def render_qualitative(cases: Sequence[Case], profile: str, out: str | Path, random_backbones: bool | None = None,
                       formats: Sequence[str] = ("png", "pdf"), dpi: float | None = None) -> dict[str, list[Path]]:
    """Figures 1-3 of ``cases`` into ``out`` (PNG + PDF each), in the packaged style."""
    caption = figure_caption(profile, random_backbones if random_backbones is not None else profile == "tiny")
    written: dict[str, list[Path]] = {}
    with style():
        for key, build, what in (
            ("motivation", lambda: figure_motivation(cases, caption), "CLIP only vs one naive SAM point vs ours"),
            ("qualitative", lambda: figure_qualitative(cases, caption), "qualitative grid over categories"),
            ("cascade", lambda: figure_cascade(pick_cascade_case(cases), caption), "the CPS stages on one image"),
        ):
            stem = FIGURE_NAMES[key]
            written[stem] = save_png_pdf(build(), out, stem, describe(stem, what, caption), formats, dpi)
    return written


def make_figures(out: str | Path, profile: str | None = None, dataset: str | None = None,
                 root: str | Path | None = None, categories: Sequence[str] | None = None,
                 per_category: int | None = None, adapter: str | Path | Any | None = None,
                 results: str | Path | None = None, tables_only: bool = False, seed: int = 0,
                 models: Any | None = None, formats: Sequence[str] = ("png", "pdf"), dpi: float | None = None,
                 clip_checkpoint: str | Path | None = None, sam_checkpoint: str | Path | None = None,
                 overrides: Sequence[str] | dict[str, Any] | None = None,
                 log: Callable[[str], None] | None = print) -> dict[str, list[Path]]:
    """What ``python -m clipsam_lite figures`` does: Figures 1-3 (unless ``tables_only``) and, with
    ``results`` (a folder holding ``results.json`` and/or ``ablation.json``), the tables.

    Profile: ``profile``, else ``$CLIPSAM_PROFILE``, else ``base`` when its weights are cached, else
    ``tiny`` (the demo's rule, so ``make figures`` runs offline). Images: the embedded synthetic
    sample's held-out categories (``per_category`` default 2), or
    ``dataset`` / ``root`` (``mvtec``, ``visa``, ``folder``; ``per_category`` default 1).
    ``overrides``: Config fields for the method (a dict, or ``--set FIELD=VALUE`` strings read by
    :func:`clipsam_lite.evaluate.parse_overrides`). Returns ``{file stem: [written paths]}``.
    """
    say = log or (lambda _s: None)
    out = Path(out)
    if (dataset is None) != (root is None):
        raise ValueError("Give --dataset and --root together (e.g. --dataset mvtec --root /data/mvtec), or neither "
                         "for the embedded synthetic sample.")
    if tables_only and results is None:
        raise ValueError("--tables-only needs --results DIR (a folder holding results.json and/or ablation.json).")
    written: dict[str, list[Path]] = {}
    if results is not None:  # read the tables first: a bad file fails before any model loads
        written.update(render_tables(results, out, formats, dpi))
    if tables_only:
        return written

    from .config import get_config, resolve_profile
    from .datasets import load_dataset

    ds = None
    if dataset is not None:
        ds = load_dataset(dataset, root, category=list(categories) if categories else None, split="test")
    elif categories:
        raise ValueError("--categories selects categories of --dataset/--root; the synthetic sample always shows its "
                         "held-out categories.")
    if models is not None and profile and resolve_profile(profile) != models.profile:
        raise ValueError(f"profile {profile!r} was asked for but the given models are {models.profile!r}'s.")
    if models is None:
        from .demo import choose_demo_profile

        profile = choose_demo_profile(profile)  # asked for, else base if cached, else mini
    cfg = models.cfg if models is not None else get_config(profile)
    if overrides and not isinstance(overrides, dict):  # a typo fails before any model loads
        from .evaluate import parse_overrides

        overrides = parse_overrides(overrides, cfg)
    cfg = cfg.replace(**{**dict(overrides or {}), "seed": seed})
    if models is None:
        from .models import load_models

        models = load_models(cfg, clip_checkpoint=clip_checkpoint, sam_checkpoint=sam_checkpoint, seed=seed)
    say(models.banner())
    if ds is None:
        items = sample_items(models.profile, per_category=per_category or 2, seed=seed)
        source = "the synthetic sample's held-out categories"
    else:
        items = select_items(ds, per_category=per_category or 1, seed=seed)
        source = f"{ds.name} at {ds.root}"
    synthetic = ds is None or is_synthetic_root(root)
    adapter_obj = figure_adapter(models, cfg, adapter, synthetic=synthetic, log=say)
    if adapter_obj is None:
        say("[figures] no adapter: Figure 2's adapter column is left empty and ours uses the training-free head "
            "(pass --adapter FILE from `train-adapter`).")
    say(f"[figures] {len(items)} images from {source}: "
        + ", ".join(f"{it.category}/{it.defect_type}/{Path(it.path).name}" for it in items))
    cases = compute_cases(items, models, cfg, adapter_obj)
    written.update(render_qualitative(cases, models.profile, out, models.random_weights, formats, dpi))
    files = [p for paths in written.values() for p in paths]
    say(f"[figures] wrote {len(files)} files to {out}: " + ", ".join(p.name for p in files))
    return written


def figures_command(args: Any) -> int:
    """``python -m clipsam_lite figures`` (arguments as :func:`make_figures`)."""
    from .paths import figures_dir

    make_figures(Path(args.out) if args.out else figures_dir(), profile=args.profile, dataset=args.dataset,
                 root=args.root, categories=args.categories, per_category=args.per_category, adapter=args.adapter,
                 results=args.results, tables_only=args.tables_only, seed=args.seed, formats=args.formats,
                 dpi=args.dpi, clip_checkpoint=args.clip_checkpoint, sam_checkpoint=args.sam_checkpoint,
                 overrides=args.set)
    return 0
