"""The whole method on one image: ``segment(image, object_name, models, cfg) -> Result``.

Taught in notebook 06 (section 5, "The whole method in one call: `segment`"); METHOD.md steps 1-5:
CLIP map ``S_a`` (step 1) -> PPG prompts (step 3, on SAM's embedding from step 2) -> CPS cascade per
prompt set (step 4) -> fused score map and binary mask (step 5). Every intermediate is kept for
teaching. The SAM image encoder runs at most once per image, whatever the stages and components,
and not at all when ``M_apa`` is empty (no prompts: the image is treated as normal and ``S_a`` is the
output) **[paper: CPS re-runs only the lightweight decoder]**.

Memory is bounded [ours, issue 12.1]: PPG and the cascade work on ``S_a`` resized to SAM's input frame
(``Config.ppg_resolution``; at most ``img_size`` = 1024 pixels a side for the real SAMs); only what the
result needs is kept at the image's size (``S_a``, the final map and mask, computed from SAM's low-res
logits exactly as ``SamPredictor`` would). Images above ``Config.max_image_pixels`` are refused before
any work (:func:`check_image_pixels`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .cps import CascadeFrame, CascadeResult, fuse, run_cascades

__all__ = ["Result", "segment", "segment_batch", "finish_from_maps", "final_mask_and_logits", "needs_sam", "result_dict",
           "write_outputs", "check_image_pixels", "ppg_frame", "ImageTooLargeError"]


class ImageTooLargeError(ValueError):
    """An image has more pixels than ``Config.max_image_pixels``."""


def check_image_pixels(size: tuple[int, int], cfg: Config, what: str = "the image") -> None:
    """Refuse (never downscale silently) an image of more than ``cfg.max_image_pixels`` pixels, before any work.

    The limit keeps peak memory bounded (``benchmarks/memory_scaling.py`` measures it against image area);
    the message says how to downscale or raise it.
    """
    h, w = int(size[0]), int(size[1])
    limit = int(cfg.max_image_pixels)
    if limit and h * w > limit:
        side = int((limit * w / h) ** 0.5)
        raise ImageTooLargeError(
            f"{what} is {w} x {h} = {h * w / 1e6:.1f} megapixels, above the limit of {limit / 1e6:.1f} megapixels "
            f"(Config.max_image_pixels): it is refused, not downscaled. Downscale it first (e.g. to {side} x "
            f"{max(1, side * h // max(w, 1))}: SAM sees it at 1024 px a side anyway), or raise the limit with "
            f"--set max_image_pixels={h * w} (0 = no limit; memory grows with the image's area).")


def _sam_img_size(cfg: Config, models: Any | None = None) -> int:
    if models is not None and getattr(models, "sam", None) is not None:
        return int(models.sam.image_encoder.img_size)
    from .models import SAM_ARCHS

    arch = SAM_ARCHS.get(cfg.sam_model)
    return int(arch.img_size) if arch is not None else 1024


def ppg_frame(size: tuple[int, int], cfg: Config, models: Any | None = None) -> tuple[int, int]:
    """The working frame of PPG and the cascade for an ``H x W`` image: SAM's input frame (``ppg_resolution=
    'sam_input'``, long side ``img_size``) or the image itself (``'original'``)."""
    from .sam_features import input_frame_size

    if cfg.ppg_resolution == "original":
        return int(size[0]), int(size[1])
    return input_frame_size(size, _sam_img_size(cfg, models))


def _to_frame(s_a: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """``S_a`` resized to the working frame (bilinear, antialiased when shrinking; itself when equal)."""
    if tuple(s_a.shape[:2]) == tuple(frame):
        return s_a
    import torch

    from .clip_maps import resize_map

    with torch.no_grad():
        return resize_map(torch.from_numpy(np.ascontiguousarray(s_a, dtype=np.float32)), frame).clamp(0, 1).numpy()


@dataclass
class Result:
    """Everything one image went through; fields named after METHOD.md's symbols."""

    object_name: str
    size: tuple[int, int]
    s_a: np.ndarray
    """CLIP anomaly map at the image's size, float32 in [0, 1] (step 1)."""
    image_score: float
    ppg: Any | None
    """The PPG result (``ppg.PPGResult``), None when ``M_apa`` was empty."""
    tau_value: float
    cascades: list[CascadeResult] = field(default_factory=list)
    """One cascade per prompt set (per connected component of M_apa when ``per_component``)."""
    final_map: np.ndarray | None = None
    final_mask: np.ndarray | None = None
    sam_encoder_calls: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    frame: tuple[int, int] | None = None
    """PPG's working frame ``(h, w)`` (``ppg.m_apa``, stage masks); None when it is the image's size."""

    @property
    def is_normal(self) -> bool:
        """True when no prompt was generated (the image was treated as normal; SAM was skipped)."""
        return not self.cascades

    def stage_masks(self) -> list[np.ndarray]:
        """The union over prompt sets of each stage's mask (stage 1, 2, 3 as run), at the image's size."""
        n = max((len(c.stages) for c in self.cascades), default=0)
        out = []
        for i in range(n):
            m = np.zeros(self.size, dtype=bool)
            for c in self.cascades:
                if i < len(c.stages):
                    m |= c.full_mask(c.stages[i])
            out.append(m)
        return out


def final_mask_and_logits(cascades: list[CascadeResult], size: tuple[int, int], with_logits: bool = True
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """The union of the cascades' final masks (M3, or the last non-empty stage) and the max of their logits,
    at the image's ``size`` (from SAM's low-res logits when the cascades ran in a working frame)."""
    mask = np.zeros(size, dtype=bool)
    logits: np.ndarray | None = None
    for c in cascades:
        if c.final is None:
            continue
        full = c.full_mask(logits=True)
        mask |= full > 0.0
        if with_logits:
            logits = full if logits is None else np.maximum(logits, full)
        del full
    return mask, logits


def needs_sam(s_a: np.ndarray, cfg: Config, models: Any | None = None) -> tuple[float, bool]:
    """(tau, whether PPG will prompt): SAM runs only if ``M_apa`` has a component of ``min_component_area``.

    Decided in PPG's working frame (:func:`ppg_frame`), exactly as :func:`finish_from_maps` will."""
    from . import ppg

    frame = ppg_frame(s_a.shape[:2], cfg, models)
    s = _to_frame(s_a, frame)
    tau = float(ppg.threshold(s, cfg))
    scale = ppg.length_scale(cfg, frame, s_a.shape[:2])
    comps, _ = ppg.select_components(ppg.apa_mask(s, tau), s, cfg.min_component_area * scale ** 2, 1)
    return tau, bool(comps)


def finish_from_maps(s_a: np.ndarray, image_score: float, object_name: str, embedding: Any | None, models: Any,
                     cfg: Config, timings_ms: dict[str, float] | None = None) -> Result:
    """PPG + CPS + fusion (steps 3-5) from a ready ``S_a`` and SAM embedding (None when not needed).

    This is the part of :func:`segment` that depends on the PPG/CPS/fusion settings: evaluations and
    ablations call it many times on one image's cached ``S_a`` and embedding. It never runs SAM's
    image encoder (``sam_encoder_calls`` counts 1 for the given embedding plus any pass made here).
    """
    from . import ppg
    from .sam_features import EncoderCounter, FramePredictor

    size = tuple(int(v) for v in s_a.shape[:2])
    check_image_pixels(size, cfg)
    frame = ppg_frame(size, cfg, models)
    with EncoderCounter(models.sam) as later:  # PPG and CPS must not run the encoder again
        t = time.perf_counter()
        if embedding is None:  # only an image without prompts may come without its embedding
            tau, prompt = needs_sam(s_a, cfg, models)
            if prompt:
                raise ValueError("finish_from_maps: M_apa is not empty, so PPG/CPS need the image's SAM embedding.")
            prompts, s_work = None, None
        else:  # PPG thresholds and labels the components itself: no separate needs_sam pass
            s_work = _to_frame(s_a, frame)
            prompts = ppg.generate_prompts(s_work, cfg, embedding)
            tau, prompt = prompts.tau_value, not prompts.is_normal
        r = Result(object_name=object_name, size=size, s_a=s_a, image_score=float(image_score),
                   ppg=prompts if prompt else None, tau_value=float(tau), timings_ms=dict(timings_ms or {}),
                   frame=None if frame == size else frame)
        predictor = FramePredictor(models.sam, embedding, frame) if prompt else None
        r.timings_ms["ppg"] = 1000 * (time.perf_counter() - t)
        t = time.perf_counter()
        if predictor is not None:
            cframe = None if frame == size else CascadeFrame(size, frame, tuple(embedding.input_size),
                                                             int(embedding.img_size))
            r.cascades = run_cascades(predictor, s_work, [(ps.points, ps.labels) for ps in r.ppg.prompt_sets], cfg,
                                      tau=prompts.tau_value, m_apa=prompts.m_apa, length_scale=prompts.length_scale,
                                      frame=cframe)
        r.timings_ms["cps"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    from .ppg import length_scale

    mask, logits = final_mask_and_logits(r.cascades, r.size, with_logits=cfg.fusion == "sigmoid_logits")
    r.final_mask = mask
    r.final_map = fuse(s_a, mask, logits, cfg, length_scale(cfg, size, size))
    r.timings_ms["fusion"] = 1000 * (time.perf_counter() - t)
    r.sam_encoder_calls = (1 if prompt else 0) + later.images
    r.timings_ms["total"] = sum(v for k, v in r.timings_ms.items() if k != "total")
    return r


def segment_batch(images: Sequence[np.ndarray], object_names: str | Sequence[str], models: Any, cfg: Config,
                  adapter: Any | None = None) -> list[Result]:
    """:func:`segment` for many images: CLIP and the SAM encoder each run batched.

    Per-image timings of the batched steps are the batch's time divided by the number of images.
    """
    from .clip_maps import anomaly_maps
    from .sam_features import EncoderCounter, embed_images

    images = list(images)
    names = [object_names] * len(images) if isinstance(object_names, str) else list(object_names)
    if len(names) != len(images):
        raise ValueError(f"segment_batch: {len(images)} images but {len(names)} object names.")
    for i, im in enumerate(images):
        check_image_pixels(np.shape(im)[:2], cfg, f"image {i}")
    from .models import resolve_precision

    resolve_precision(cfg.precision, getattr(models, "device", "cpu"))  # fp16 on a CPU: refused before any work

    t = time.perf_counter()
    clip = anomaly_maps(models, images, names, cfg, adapter=adapter)
    t_clip = 1000 * (time.perf_counter() - t) / max(len(images), 1)

    need = [i for i, s_a in enumerate(clip.maps) if needs_sam(s_a, cfg, models)[1]]
    t = time.perf_counter()
    with EncoderCounter(models.sam) as count:
        embeddings = embed_images(models.sam, [images[i] for i in need], batch_size=cfg.sam_batch_size,
                                  precision=cfg.precision)
    if count.images != len(need):  # each image is in exactly one encoder batch
        raise RuntimeError(f"SAM's encoder saw {count.images} images for {len(need)} embeddings.")
    t_sam = 1000 * (time.perf_counter() - t) / max(len(need), 1)
    by_index = dict(zip(need, embeddings, strict=True))

    return [finish_from_maps(clip.maps[i], float(clip.image_scores[i]), names[i], by_index.get(i), models, cfg,
                             {"clip": t_clip, "sam_encoder": t_sam if i in by_index else 0.0})
            for i in range(len(images))]


def segment(image: np.ndarray, object_name: str, models: Any, cfg: Config, adapter: Any | None = None) -> Result:
    """The method on one image (METHOD.md steps 1-5); see :class:`Result` for what is kept."""
    return segment_batch([image], object_name, models, cfg, adapter=adapter)[0]


def result_dict(result: Result, cfg: Config, profile: str) -> dict[str, Any]:
    """The JSON summary ``segment`` writes (``result.json``): prompts, stages, encoder calls, timings."""
    stages = []
    for c in result.cascades:
        for s in c.stages:
            stages.append({
                "stage": s.stage,
                "points": np.asarray(s.points).round(2).tolist(),
                "labels": np.asarray(s.labels).astype(int).tolist(),
                "box": None if s.box is None else [float(v) for v in s.box],
                "used_mask_input": s.mask_input is not None,
                "mask_area": s.area,
                "predicted_iou": round(float(s.predicted_iou), 6),
            })
    ppg = result.ppg
    to_original = ppg.to_original if ppg is not None else (lambda p: np.zeros((0, 2)))
    return {
        "size": list(result.size),
        "object": result.object_name,
        "profile": profile,
        "config": cfg.to_dict(),
        "tau_value": result.tau_value,
        "image_score": result.image_score,
        "prompts": {
            "positive": [] if ppg is None else to_original(ppg.positives).round(2).tolist(),
            "negative": [] if ppg is None else to_original(ppg.negatives).round(2).tolist(),
        },
        "ppg_frame": list(result.frame or result.size),
        "prompt_sets": len(result.cascades),
        "stages": stages,
        "stopped": [c.stopped for c in result.cascades if c.stopped],
        "final_mask_area": int(result.final_mask.sum()) if result.final_mask is not None else 0,
        "sam_encoder_calls": result.sam_encoder_calls,
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
    }


DISPLAY_MAX_SIDE = 1024
"""Figures of ``write_outputs`` are drawn from copies at most this many pixels a side [ours, issue 12.1]."""


def display_copy(result: Result, image: np.ndarray, cfg: Config, max_side: int = DISPLAY_MAX_SIDE
                 ) -> tuple[Result, np.ndarray]:
    """``(result, image)`` brought down to at most ``max_side`` pixels a side, for drawing only [ours].

    A figure is a few hundred pixels wide, but matplotlib converts every full-size array it is given to
    RGBA float64 (over 500 MB for a 4096^2 image, per panel). The copy holds the image, ``S_a`` and the
    final map resized, the final mask (nearest), every point and box scaled to the display frame (PPG's
    too, so they land on the drawn map), and each stage's mask recomputed from SAM's low-res logits at
    the display size (``CascadeResult.full_mask``). The ``.npy`` and ``mask.png`` outputs keep full size.
    """
    import copy
    import dataclasses

    import torch

    from .clip_maps import resize_map
    from .cps import CascadeFrame
    from .sam_features import input_frame_size

    H, W = result.size
    if max(H, W) <= max_side:
        return result, image
    k = max_side / max(H, W)
    size = (max(1, round(H * k)), max(1, round(W * k)))
    sx, sy = size[1] / W, size[0] / H

    def small(m: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return resize_map(torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)), size).numpy()

    def pts(p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64).reshape(-1, 2) * np.array([sx, sy])

    from PIL import Image

    img = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
    img_size = _sam_img_size(cfg)
    cascades = []
    for c in result.cascades:
        frame = c.frame or CascadeFrame(result.size, result.size, input_frame_size(result.size, img_size), img_size)
        stages = [dataclasses.replace(st, points=pts(st.points), box=None if st.box is None else pts(st.box).reshape(4))
                  for st in c.stages]
        cascades.append(dataclasses.replace(c, stages=stages, frame=dataclasses.replace(frame, original_size=size)))
    out = copy.copy(result)
    out.size, out.s_a, out.cascades = size, small(result.s_a), cascades
    out.final_map = None if result.final_map is None else small(result.final_map)
    if result.final_mask is not None:
        out.final_mask = np.asarray(Image.fromarray(result.final_mask).resize((size[1], size[0]), Image.NEAREST))
    if result.ppg is not None:
        p = result.ppg
        sets = [dataclasses.replace(ps, points=pts(p.to_original(ps.points))) for ps in p.prompt_sets]
        out.ppg = dataclasses.replace(p, prompt_sets=sets, original_size=None)
    return out, img


def write_outputs(result: Result, image: np.ndarray, cfg: Config, out: Path | str, profile: str) -> list[Path]:
    """``anomaly_map.npy``, ``final_map.npy``, ``stageN.png``, ``mask.png``, ``overlay.png``, ``result.json``.

    ``stageN.png`` files of an earlier run into the same folder with more stages are removed, so the
    folder never shows stages this result does not have. [ours]
    The ``.npy`` maps and ``mask.png`` are at the image's size; the figures are drawn from
    :func:`display_copy` (at most ``DISPLAY_MAX_SIDE`` pixels a side)."""
    import json

    from PIL import Image

    from .panels import offline_caption, save_figure
    from .viz import result_figure, stage_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_stages = len(result.stage_masks())
    for old in out.glob("stage*.png"):  # an earlier run with more stages: its figures would look like ours
        if old.name[5:-4].isdigit() and int(old.name[5:-4]) > n_stages:
            old.unlink()
    written = []
    for name, arr in (("anomaly_map.npy", result.s_a), ("final_map.npy", result.final_map)):
        np.save(out / name, np.asarray(arr, dtype=np.float32))
        written.append(out / name)
    caption = offline_caption(profile)
    Image.fromarray(result.final_mask.astype(np.uint8) * 255).save(out / "mask.png")
    shown, shown_image = display_copy(result, image, cfg)
    n_stages = max((len(c.stages) for c in result.cascades), default=0)
    for i in range(n_stages):
        title = f"CPS stage {i + 1}" + (f" [{caption}]" if caption else "")
        written += save_figure(stage_figure(shown_image, shown, i + 1, title=title), out / f"stage{i + 1}.png")
    written.append(out / "mask.png")
    title = f"{result.object_name}" + (f" [{caption}]" if caption else "")
    written += save_figure(result_figure(shown_image, shown, suptitle=title), out / "overlay.png")
    (out / "result.json").write_text(json.dumps(result_dict(result, cfg, profile), indent=2) + "\n")
    written.append(out / "result.json")
    return written
