"""Panel primitives: one axes is one panel (image, map, points, box, mask outline, legend), the figure
style, and files with the same bytes every time (DESIGN.md, "Figures").

Taught in notebooks 00 and 04-06 (every overlay they draw) and 08 (the style and deterministic files).
No METHOD.md step: this is how every step is *shown* **[ours]**. :mod:`clipsam_lite.viz`,
:mod:`clipsam_lite.widgets`, :mod:`clipsam_lite.figures`, :mod:`clipsam_lite.tables` and
:mod:`clipsam_lite.pipeline` draw with these functions.

Colours are fixed so every notebook and figure reads the same way: positive points green stars,
negative points red crosses, the stage-3 box yellow, predicted masks cyan, ground truth white.
Figures are saved without timestamps or software versions (:func:`save_figure`, :func:`save_png_pdf`)
so regenerated figures are byte-identical.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "POS_COLOR", "NEG_COLOR", "BOX_COLOR", "MASK_COLOR", "GT_COLOR", "MAP_CMAP", "PLACEHOLDER_COLOR", "STYLE_PATH",
    "FIGURE_NAMES", "show_image", "show_map", "draw_points", "draw_box", "draw_mask_outline", "row_label",
    "placeholder", "legend_handles", "offline_caption", "figure_caption", "caption_title", "caption_suptitle",
    "describe", "style", "save_figure", "save_png_pdf",
]

POS_COLOR = "#2ca02c"
NEG_COLOR = "#d62728"
BOX_COLOR = "#ffd700"
MASK_COLOR = "#17becf"
GT_COLOR = "#ffffff"
MAP_CMAP = "inferno"
PLACEHOLDER_COLOR = "#eeeeee"
"""The grey of a panel with nothing to show (no adapter, no mask input)."""

STYLE_PATH: Path = Path(__file__).with_name("clipsam.mplstyle")
"""The packaged matplotlib style the paper's figures and tables are drawn in."""

FIGURE_NAMES: dict[str, str] = {
    "motivation": "fig1_motivation",
    "qualitative": "fig2_qualitative",
    "cascade": "fig3_cascade",
    "results": "table_results",
    "ablation_table": "table_ablation",
    "ablation_stages": "ablation_stages",
}
"""File stems (``OUT/<stem>.png`` and ``.pdf``) of each figure :func:`clipsam_lite.figures.make_figures` writes."""


# --------------------------------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------------------------------

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


def draw_points(ax: Any, points: np.ndarray, labels: np.ndarray, size: float = 80, *, pos_color: str = POS_COLOR,
                neg_color: str = NEG_COLOR, pos_edge: str = "white", pos_scale: float = 1.6, neg_scale: float = 1.0,
                linewidths: float = 0.8, legend: bool = False, zorder: float | None = None) -> None:
    """Positive points (label 1) as stars, negatives (label 0) as crosses; (x, y) pixels.

    The defaults are the figure style (green stars of area ``1.6 * size``, red crosses of ``size``,
    white edges). ``legend=True`` labels them for ``ax.legend``; ``zorder`` lifts them above contours.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    pos, neg = points[labels == 1], points[labels == 0]
    extra: dict[str, Any] = {} if zorder is None else {"zorder": zorder}
    if len(pos):
        ax.scatter(pos[:, 0], pos[:, 1], marker="*", s=size * pos_scale, c=pos_color, edgecolors=pos_edge,
                   linewidths=linewidths, **({"label": "positive (1)"} if legend else {}), **extra)
    if len(neg):
        ax.scatter(neg[:, 0], neg[:, 1], marker="X", s=size * neg_scale, c=neg_color, edgecolors="white",
                   linewidths=linewidths, **({"label": "negative (0)"} if legend else {}), **extra)


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


def row_label(ax: Any, text: str, fontsize: float = 7) -> None:
    """An image panel that names its row: no ticks, no frame, ``text`` as the y label."""
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_ylabel(text, fontsize=fontsize)


def placeholder(ax: Any, text: str, fontsize: float = 7, wrap: bool = False) -> None:
    """A grey panel with ``text`` in its centre, for something that does not exist (no adapter, no input)."""
    ax.set_facecolor(PLACEHOLDER_COLOR)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize, transform=ax.transAxes, wrap=wrap)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_handles(secondary_ring: str | None = None) -> list[Any]:
    """Legend entries of the prompt vocabulary: positive and negative points (and CPS stage 2's
    secondary points, ringed in ``secondary_ring``, when given), the box, a stage mask, the ground truth."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="*", ms=9, mfc=POS_COLOR, mec="white", label="positive point"),
        Line2D([], [], ls="", marker="X", ms=7, mfc=NEG_COLOR, mec="white", label="negative point"),
    ]
    if secondary_ring is not None:
        handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec=secondary_ring,
                              label="secondary (stage 2)"))
    return handles + [
        Line2D([], [], color=BOX_COLOR, lw=1.8, label="box (stage 3)"),
        Line2D([], [], color=MASK_COLOR, lw=1.5, label="stage mask"),
        Line2D([], [], color=GT_COLOR, lw=1.0, label="ground truth"),
    ]


# --------------------------------------------------------------------------------------------------
# Captions, style and deterministic files
# --------------------------------------------------------------------------------------------------

OFFLINE_CAPTIONS: dict[str, str] = {
    "tiny": "tiny profile: RANDOM backbones, mechanics only",
    "mini": "mini profile: models trained on a synthetic world",
}


def offline_caption(profile: str) -> str:
    """The words every figure of an offline profile carries: random backbones (tiny), or models trained
    on the synthetic world (mini); empty for the real profiles."""
    return OFFLINE_CAPTIONS.get(profile, "")


@contextmanager
def style():
    """``plt.style.context`` of the packaged style: build *and save* figures inside it."""
    with plt.style.context(str(STYLE_PATH)):
        yield


def figure_caption(profile: str, random_backbones: bool | None = None) -> str:
    """The offline label (:func:`offline_caption`), also for other profiles run with random weights."""
    caption = offline_caption(profile)
    if not caption and random_backbones:
        caption = f"{profile} profile with RANDOM backbones: mechanics only"
    return caption


def caption_title(text: str, caption: str, width: int | None = None) -> str:
    """``text`` (wrapped to ``width`` characters when given), then ``[caption]`` on its own line."""
    if width:
        text = textwrap.fill(text, width=width)
    return f"{text}\n[{caption}]" if caption else text


def caption_suptitle(fig: Figure, text: str, caption: str) -> None:
    """The figure's title, wrapped to its width, with the tiny label on its own line."""
    fig.suptitle(caption_title(text, caption, width=max(40, int(fig.get_figwidth() * 12.5))))


def save_png_pdf(fig: Figure, out_dir: str | Path, stem: str, description: str = "",
                 formats: Sequence[str] = ("png", "pdf"), dpi: float | None = None, close: bool = True) -> list[Path]:
    """Save ``fig`` as ``out_dir/stem.png`` and ``.pdf`` with deterministic metadata [ours].

    No timestamp and no software version is written (PNG ``Software``; PDF ``Creator``, ``Producer``,
    ``CreationDate``), so the same figure gives the same bytes. ``description`` (the figure's caption,
    including the tiny label) is stored in the PNG ``Description`` and the PDF ``Subject``.
    """
    unknown = [f for f in formats if f not in ("png", "pdf")]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of ['png', 'pdf'], got {list(formats)}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "png":
            meta: dict[str, Any] = {"Software": None, "Title": stem, "Description": description}
        else:
            meta = {"Creator": None, "Producer": None, "CreationDate": None, "Title": stem, "Subject": description}
        fig.savefig(path, format=fmt, metadata=meta, dpi=dpi if dpi is not None else "figure")
        written.append(path)
    if close:
        plt.close(fig)
    return written


def describe(stem: str, what: str, caption: str) -> str:
    return f"clipsam-lite {stem}: {what}" + (f" [{caption}]" if caption else "")


def save_figure(fig: Figure, path: str | Path, close: bool = True) -> list[Path]:
    """Save as PNG (and PDF when ``path`` ends in .pdf) with no timestamps: the same figure gives the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Software": None} if path.suffix == ".png" else {"Creator": None, "Producer": None, "CreationDate": None}
    fig.savefig(path, metadata=meta)
    if close:
        plt.close(fig)
    return [path]
