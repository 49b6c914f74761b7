"""ipywidgets explorers for the notebooks (core widgets only), each with a static figure beside it.

Taught in notebooks 03 (section 8, "Explore": PPG, METHOD.md step 3) and 06 (section 6, "Explore": CPS and
the final map, steps 4-5). The panels are drawn with :mod:`clipsam_lite.panels`.

Every explorer is one self-contained function: a figure builder that also works without widgets
(static, headless) and an ``ipywidgets.interactive`` around it that never fails headless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["live_figure", "ppg_figure", "ppg_explorer"]


# --------------------------------------------------------------------------------------------------
# PPG (notebook 03)
# --------------------------------------------------------------------------------------------------

def _draw_points(ax: Any, points: np.ndarray, labels: np.ndarray) -> None:
    """The explorers' points: lime stars and red crosses that stand out on the ``jet`` map, with a legend."""
    from .panels import draw_points

    draw_points(ax, points, labels, size=90, pos_color="lime", neg_color="red", pos_edge="black", pos_scale=1.0,
                neg_scale=0.7, linewidths=0.7, legend=True, zorder=3)


def ppg_figure(s_a: np.ndarray, result: Any, image: np.ndarray | None = None, title: str | None = None):
    """Three panels of a PPG result: ``S_a`` with ``M_apa`` (eq. 1), ``R_a`` with the positives (eq. 2),
    the ring ``N_a`` (eq. 3) over the similarity map (co-feature) or ``S_a``, with all points.

    ``result`` is a :class:`clipsam_lite.ppg.PPGResult` of ``s_a``. Returns the matplotlib figure
    (the caller shows or closes it).
    """
    import matplotlib.pyplot as plt

    from .panels import draw_mask_outline

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), constrained_layout=True)
    ax = axes[0]
    if image is not None:
        ax.imshow(image)
        ax.imshow(s_a, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    else:
        ax.imshow(s_a, cmap="jet", vmin=0, vmax=1)
    draw_mask_outline(ax, result.m_apa, color="white", lw=1.2)
    ax.set_title(f"S_a and M_apa = S_a > {result.tau_value:.3f}")
    ax = axes[1]
    ax.imshow(result.r_a, cmap="magma", vmin=0, vmax=max(float(result.r_a.max()), 1e-6))
    pos = result.positives
    _draw_points(ax, pos, np.ones(len(pos)))
    ax.set_title(f"R_a = S_a * M_apa, {len(pos)} positive(s)")
    ax = axes[2]
    base = result.similarity if result.similarity is not None else s_a
    ax.imshow(base, cmap="viridis")
    draw_mask_outline(ax, result.ring, color="orange", lw=1.0)
    _draw_points(ax, np.concatenate([result.positives, result.negatives]),
                 np.r_[np.ones(len(result.positives)), np.zeros(len(result.negatives))])
    what = "cos(f+, F)" if result.similarity is not None else "S_a"
    ax.set_title(f"ring N_a (orange) on {what}\n{result.negative_strategy}: {len(result.negatives)} negative(s)")
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
    if len(pos) or len(result.negatives):
        axes[2].legend(loc="lower right", fontsize=8, framealpha=0.8)
    if title:
        fig.suptitle(title)
    return fig


def live_figure(render: Callable[..., tuple[Any, str, Any]], controls: dict[str, Any]):
    """Core ipywidgets controls above a figure that redraws when any control changes.

    ``render(**values) -> (matplotlib figure, status text, result)``. The figure is shown as PNG bytes
    in a ``widgets.Image`` and the text in a ``widgets.HTML``, never through an ``Output`` widget:
    under headless nbclient/nbmake (CI) a cell drawing into an ``Output`` widget (as
    ``widgets.interactive`` does) sometimes never finishes. Returns a ``VBox`` whose children are the
    controls then the display; ``.kwargs_widgets`` lists the controls (each with ``._kwarg``, its
    name) and ``.result`` holds the latest result [ours].
    """
    import io

    import ipywidgets as w
    import matplotlib.pyplot as plt

    image, status = w.Image(format="png"), w.HTML()
    box = w.VBox([*controls.values(), w.VBox([image, status])])
    box.kwargs_widgets = list(controls.values())
    for name, control in controls.items():
        control._kwarg = name

    def update(_change: Any = None) -> None:
        fig, text, result = render(**{k: c.value for k, c in controls.items()})
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        plt.close(fig)
        image.value, status.value, box.result = buf.getvalue(), f"<pre>{text}</pre>", result

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box


def ppg_explorer(s_a: np.ndarray, cfg: Any, embedding: Any | None = None, image: np.ndarray | None = None):
    """An explorer (:func:`live_figure`) over PPG's ``tau`` (absolute), ``k_pos``, ``k_neg``, ``d_min`` and the
    negative strategy; each change re-runs :func:`clipsam_lite.ppg.generate_prompts` and redraws
    :func:`ppg_figure`. ``cofeature`` is offered only when ``embedding`` is given.

    Returns the widget (display it, or let the notebook cell's last expression show it). Headless
    (nbmake, CI) it builds and renders once without a frontend.
    """
    import ipywidgets as w

    from .ppg import generate_prompts

    strategies = ["cofeature", "ring_low_score", "global_low_score", "none"]
    if embedding is None:
        strategies.remove("cofeature")
    start = cfg.negative_strategy if cfg.negative_strategy in strategies else strategies[0]
    H, W = np.shape(s_a)
    tau0 = float(cfg.tau) if cfg.tau_mode == "absolute" else 0.5

    def show(tau: float, k_pos: int, k_neg: int, d_min: float, negative_strategy: str) -> tuple[Any, str, Any]:
        c = cfg.replace(tau_mode="absolute", tau=tau, k_pos=k_pos, k_neg=k_neg, d_min=d_min,
                        negative_strategy=negative_strategy)
        result = generate_prompts(s_a, c, embedding)
        n_sets = len(result.prompt_sets)
        text = (f"tau = {result.tau_value:.2f}: {int(result.m_apa.sum())} px in M_apa, {n_sets} prompt set(s), "
                f"{len(result.positives)} positive(s), {len(result.negatives)} negative(s)"
                + (" -> normal image, SAM skipped" if result.is_normal else ""))
        return ppg_figure(s_a, result, image), text, result

    style = {"description_width": "initial"}
    return live_figure(show, dict(
        tau=w.FloatSlider(value=tau0, min=0.0, max=1.0, step=0.01, description="tau", style=style,
                          continuous_update=False),
        k_pos=w.IntSlider(value=int(cfg.k_pos), min=1, max=10, description="k_pos", continuous_update=False),
        k_neg=w.IntSlider(value=int(cfg.k_neg), min=0, max=10, description="k_neg", continuous_update=False),
        d_min=w.FloatSlider(value=float(cfg.d_min), min=0.0, max=float(max(H, W)) / 2, step=1.0,
                            description="d_min (px)", style=style, continuous_update=False),
        negative_strategy=w.Dropdown(options=strategies, value=start, description="negatives", style=style),
    ))


# --------------------------------------------------------------------------------------------------
# CPS and the final map (notebook 06)
# --------------------------------------------------------------------------------------------------

def cps_figure(image: np.ndarray, result: Any, gt_mask: np.ndarray | None = None, fusion: str | None = None,
               title: str | None = None):
    """Four panels of a pipeline ``Result`` (METHOD.md steps 3-5): the image (and ground truth),
    ``S_a`` with ``M_apa`` and PPG's points, the last CPS stage's prompts (points with the secondary
    ones, the box) over its mask, and the final map (``fusion`` names it in the title).

    Several prompt sets (one per component of ``M_apa``) are drawn together, their masks united.
    Returns the matplotlib figure (the caller shows or closes it).
    """
    import matplotlib.pyplot as plt

    from .panels import GT_COLOR, draw_box, draw_mask_outline, draw_points, show_image, show_map

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.9), constrained_layout=True)
    show_image(axes[0], image, "image" + (" + ground truth (white)" if gt_mask is not None else ""))
    if gt_mask is not None:
        draw_mask_outline(axes[0], gt_mask, color=GT_COLOR, lw=1.0)

    show_map(axes[1], result.s_a, image, f"S_a, M_apa = S_a > {result.tau_value:.2f} (white)")
    if result.ppg is not None:
        draw_mask_outline(axes[1], result.ppg.mask_to_original(result.ppg.m_apa), color="white", lw=1.0)
        draw_points(axes[1], *result.ppg.points_original())

    masks = result.stage_masks()
    show_image(axes[2], image)
    if masks:
        n = len(masks)
        draw_mask_outline(axes[2], masks[-1], fill_alpha=0.35)
        for c in result.cascades:
            if len(c.stages) >= n:
                s = c.stages[n - 1]
                draw_points(axes[2], s.points, s.labels)
                draw_box(axes[2], s.box)
        ious = ", ".join(f"{c.stages[-1].predicted_iou:.2f}" for c in result.cascades)
        axes[2].set_title(f"stage {n}: M{n} = {int(masks[-1].sum())} px\n"
                          f"{len(result.cascades)} prompt set(s), predicted IoU {ious}", fontsize=9)
    else:
        axes[2].set_title("no prompts: the image is normal,\nSAM is skipped", fontsize=9)

    what = "= S_a (no prompts)" if result.is_normal else (f"fusion '{fusion}'" if fusion else "")
    handle = show_map(axes[3], result.final_map, None, f"final map {what}".strip())
    fig.colorbar(handle, ax=axes[3], shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def cps_explorer(s_a: np.ndarray, image_score: float, object_name: str, embedding: Any, models: Any, cfg: Any,
                 image: np.ndarray, gt_mask: np.ndarray | None = None, caption: str = ""):
    """An explorer (:func:`live_figure`) over the number of CPS stages (1-3), the fusion mode and ``tau``
    (absolute; it starts at the value ``cfg`` resolves to on ``s_a``).

    Each change re-runs only what depends on these settings, through
    :func:`clipsam_lite.pipeline.finish_from_maps`: PPG, SAM's prompt encoder and mask decoder (one
    pass per stage and prompt set) and the fusion. CLIP and SAM's image encoder never run again: the
    given ``s_a`` (CLIP's map at the image's size), ``image_score`` and ``embedding``
    (:func:`clipsam_lite.sam_features.embed_image` of ``image``) are reused, and each update prints
    the encoder passes it counted (0). The callback returns the :class:`~clipsam_lite.pipeline.Result`
    (``explorer.result``). Headless (nbmake, CI) it builds and renders once without a frontend.
    """
    import ipywidgets as w

    from .config import FUSIONS
    from .pipeline import finish_from_maps
    from .ppg import threshold
    from .sam_features import EncoderCounter

    s_a = np.asarray(s_a, dtype=np.float32)
    if s_a.ndim != 2:
        raise ValueError(f"cps_explorer: s_a must be one H x W map, got shape {s_a.shape}.")
    if np.shape(image)[:2] != s_a.shape:
        raise ValueError(f"cps_explorer: the image is {np.shape(image)[:2]} but s_a is {s_a.shape}; pass S_a at the "
                         f"image's size (clip_maps.anomaly_maps(...).maps[i] already is).")
    if embedding is None:
        raise ValueError("cps_explorer needs the image's SAM embedding: embedding = "
                         "clipsam_lite.sam_features.embed_image(models.sam, image).")
    if tuple(embedding.original_size) != s_a.shape:
        raise ValueError(f"cps_explorer: the SAM embedding is of a {tuple(embedding.original_size)} image but s_a is "
                         f"{s_a.shape}: embed the same image whose map you pass.")
    tau0 = float(np.clip(threshold(s_a, cfg), 0.0, 1.0))

    def show(stages: int, fusion: str, tau: float) -> tuple[Any, str, Any]:
        c = cfg.replace(stages=stages, fusion=fusion, tau_mode="absolute", tau=tau)
        with EncoderCounter(models.sam) as encoder:
            result = finish_from_maps(s_a, image_score, object_name, embedding, models, c)
        fig = cps_figure(image, result, gt_mask, fusion=fusion, title=caption or None)
        decoder_passes = sum(len(k.stages) for k in result.cascades)
        text = (f"tau = {tau:.2f}: {len(result.cascades)} prompt set(s), {decoder_passes} decoder pass(es), "
              f"{encoder.images} SAM image-encoder pass(es) in this update (the embedding is reused); "
              f"final mask {int(result.final_mask.sum())} px"
              + ("; stopped: " + "; ".join(k.stopped for k in result.cascades if k.stopped)
                 if any(k.stopped for k in result.cascades) else ""))
        return fig, text, result

    style = {"description_width": "initial"}
    return live_figure(show, dict(
        stages=w.IntSlider(value=int(cfg.stages), min=1, max=3, description="CPS stages", style=style,
                           continuous_update=False),
        fusion=w.Dropdown(options=list(FUSIONS), value=cfg.fusion, description="fusion", style=style),
        tau=w.FloatSlider(value=tau0, min=0.0, max=1.0, step=0.01, description="tau (absolute)",
                          style=style, continuous_update=False),
    ))


__all__ += ["cps_figure", "cps_explorer"]
