"""Figures: overlays of maps, points, boxes and masks, and the figure style (DESIGN.md).

Colours are fixed so every notebook and figure reads the same way: positive points green stars,
negative points red crosses, the stage-3 box yellow, predicted masks cyan, ground truth white.
PNGs are written without timestamps (:func:`save_figure`) so regenerated figures are byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "POS_COLOR", "NEG_COLOR", "BOX_COLOR", "MASK_COLOR", "GT_COLOR", "MAP_CMAP", "show_image", "show_map",
    "draw_points", "draw_box", "draw_mask_outline", "stage_figure", "result_figure", "save_figure",
    "tiny_caption",
]

POS_COLOR = "#2ca02c"
NEG_COLOR = "#d62728"
BOX_COLOR = "#ffd700"
MASK_COLOR = "#17becf"
GT_COLOR = "#ffffff"
MAP_CMAP = "inferno"


def show_image(ax: Any, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_map(ax: Any, score_map: np.ndarray, image: np.ndarray | None = None, title: str | None = None,
             alpha: float = 0.55, vmin: float = 0.0, vmax: float = 1.0) -> Any:
    """A score map in [vmin, vmax], over the image when given."""
    if image is not None:
        ax.imshow(image)
        handle = ax.imshow(score_map, cmap=MAP_CMAP, alpha=alpha, vmin=vmin, vmax=vmax)
    else:
        handle = ax.imshow(score_map, cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return handle


def draw_points(ax: Any, points: np.ndarray, labels: np.ndarray, size: float = 80) -> None:
    """Positive points (label 1) as green stars, negatives (label 0) as red crosses; (x, y) pixels."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    pos, neg = points[labels == 1], points[labels == 0]
    if len(pos):
        ax.scatter(pos[:, 0], pos[:, 1], marker="*", s=size * 1.6, c=POS_COLOR, edgecolors="white", linewidths=0.8)
    if len(neg):
        ax.scatter(neg[:, 0], neg[:, 1], marker="X", s=size, c=NEG_COLOR, edgecolors="white", linewidths=0.8)


def draw_box(ax: Any, box: Sequence[float] | None, color: str = BOX_COLOR) -> None:
    """An [x0, y0, x1, y1] box (inclusive pixel indices)."""
    if box is None:
        return
    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec=color, lw=1.8))


def draw_mask_outline(ax: Any, mask: np.ndarray | None, color: str = MASK_COLOR, lw: float = 1.5,
                      fill_alpha: float = 0.0) -> None:
    """The outline of a boolean mask (and an optional translucent fill)."""
    if mask is None or not np.any(mask):
        return
    m = np.asarray(mask, dtype=float)
    if fill_alpha > 0:
        rgba = np.zeros((*m.shape, 4))
        rgba[..., :3] = matplotlib.colors.to_rgb(color)
        rgba[..., 3] = m * fill_alpha
        ax.imshow(rgba)
    ax.contour(m, levels=[0.5], colors=[color], linewidths=lw)


def stage_figure(image: np.ndarray, result: Any, stage: int, gt_mask: np.ndarray | None = None,
                 title: str | None = None) -> Figure:
    """One CPS stage of a pipeline ``Result``: its prompts (points, box) and its mask, over the image."""
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    show_image(ax, image)
    masks = result.stage_masks()
    if stage <= len(masks):
        draw_mask_outline(ax, masks[stage - 1], fill_alpha=0.35)
    for c in result.cascades:
        if stage <= len(c.stages):
            s = c.stages[stage - 1]
            draw_points(ax, s.points, s.labels)
            draw_box(ax, s.box)
    if gt_mask is not None:
        draw_mask_outline(ax, gt_mask, color=GT_COLOR, lw=1.0)
    ax.set_title(title or f"stage {stage}", fontsize=9)
    fig.tight_layout()
    return fig


def result_figure(image: np.ndarray, result: Any, gt_mask: np.ndarray | None = None,
                  suptitle: str | None = None) -> Figure:
    """Image | S_a with prompts | each stage's mask | final map: the whole method on one row."""
    masks = result.stage_masks()
    n = 3 + len(masks)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), dpi=100)
    show_image(axes[0], image, "image" + (" + ground truth" if gt_mask is not None else ""))
    if gt_mask is not None:
        draw_mask_outline(axes[0], gt_mask, color=GT_COLOR, lw=1.0)
    show_map(axes[1], result.s_a, image, "S_a (CLIP) + PPG points")
    if result.ppg is not None:
        draw_points(axes[1], np.concatenate([result.ppg.positives, result.ppg.negatives]),
                    np.r_[np.ones(len(result.ppg.positives)), np.zeros(len(result.ppg.negatives))])
    for i, m in enumerate(masks):
        ax = axes[2 + i]
        show_image(ax, image, f"stage {i + 1} mask")
        draw_mask_outline(ax, m, fill_alpha=0.35)
        for c in result.cascades:
            if i < len(c.stages):
                draw_box(ax, c.stages[i].box)
    show_map(axes[-1], result.final_map, None, "final map" + (" (= S_a: no prompts)" if result.is_normal else ""))
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def tiny_caption(profile: str) -> str:
    """The words every figure made with random backbones carries."""
    return "tiny profile: RANDOM backbones, mechanics only" if profile == "tiny" else ""


def save_figure(fig: Figure, path: str | Path, close: bool = True) -> list[Path]:
    """Save as PNG (and PDF when ``path`` ends in .pdf) with no timestamps: the same figure gives the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Software": None} if path.suffix == ".png" else {"Creator": None, "Producer": None, "CreationDate": None}
    fig.savefig(path, metadata=meta)
    if close:
        plt.close(fig)
    return [path]
