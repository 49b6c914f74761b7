"""Whole-pipeline figures of one image: one CPS stage (:func:`stage_figure`) or the whole method on one
row (:func:`result_figure`), as ``segment`` and the demo write them.

Taught in notebook 06 (section 5, "The whole method in one call: `segment`"); draws METHOD.md steps
1-5 of a :class:`clipsam_lite.pipeline.Result`. The panels are drawn with :mod:`clipsam_lite.panels`
(fixed colours: positive points green stars, negatives red crosses, the stage-3 box yellow, predicted
masks cyan, ground truth white).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .panels import GT_COLOR, draw_box, draw_mask_outline, draw_points, show_image, show_map

__all__ = ["stage_figure", "result_figure"]


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
        draw_points(axes[1], *result.ppg.points_original())
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
