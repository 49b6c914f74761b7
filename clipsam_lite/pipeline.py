"""The whole method on one image: ``segment(image, object_name, models, cfg) -> Result``.

Taught in notebook 06 (section 5, "The whole method in one call: `segment`"); METHOD.md steps 1-5:
CLIP map ``S_a`` (step 1) -> PPG prompts (step 3, on SAM's embedding from step 2) -> CPS cascade per
prompt set (step 4) -> fused score map and binary mask (step 5). Every intermediate is kept for
teaching. The SAM image encoder runs at most once per image, whatever the stages and components,
and not at all when ``M_apa`` is empty (no prompts: the image is treated as normal and ``S_a`` is the
output) **[paper: CPS re-runs only the lightweight decoder]**.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .cps import CascadeResult, fuse, run_cascade

__all__ = ["Result", "segment", "segment_batch", "finish_from_maps", "final_mask_and_logits", "needs_sam", "result_dict", "write_outputs"]


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

    @property
    def is_normal(self) -> bool:
        """True when no prompt was generated (the image was treated as normal; SAM was skipped)."""
        return not self.cascades

    def stage_masks(self) -> list[np.ndarray]:
        """The union over prompt sets of each stage's mask (stage 1, 2, 3 as run)."""
        n = max((len(c.stages) for c in self.cascades), default=0)
        out = []
        for i in range(n):
            m = np.zeros(self.size, dtype=bool)
            for c in self.cascades:
                if i < len(c.stages):
                    m |= c.stages[i].mask
            out.append(m)
        return out


def final_mask_and_logits(cascades: list[CascadeResult], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The union of the cascades' final masks (M3, or the last non-empty stage) and the max of their logits."""
    mask = np.zeros(size, dtype=bool)
    logits: np.ndarray | None = None
    for c in cascades:
        final = c.final
        if final is None:
            continue
        mask |= final.mask
        logits = final.logits if logits is None else np.maximum(logits, final.logits)
    return mask, logits


def needs_sam(s_a: np.ndarray, cfg: Config) -> tuple[float, bool]:
    """(tau, whether PPG will prompt): SAM runs only if ``M_apa`` has a component of ``min_component_area``."""
    from . import ppg

    tau = float(ppg.threshold(s_a, cfg))
    return tau, bool(ppg.components(ppg.apa_mask(s_a, tau), cfg.min_component_area))


def finish_from_maps(s_a: np.ndarray, image_score: float, object_name: str, embedding: Any | None, models: Any,
                     cfg: Config, timings_ms: dict[str, float] | None = None) -> Result:
    """PPG + CPS + fusion (steps 3-5) from a ready ``S_a`` and SAM embedding (None when not needed).

    This is the part of :func:`segment` that depends on the PPG/CPS/fusion settings: evaluations and
    ablations call it many times on one image's cached ``S_a`` and embedding. It never runs SAM's
    image encoder (``sam_encoder_calls`` counts 1 for the given embedding plus any pass made here).
    """
    from . import ppg
    from .sam_features import EncoderCounter, predictor_for

    with EncoderCounter(models.sam) as later:  # PPG and CPS must not run the encoder again
        t = time.perf_counter()
        if embedding is None:  # only an image without prompts may come without its embedding
            tau, prompt = needs_sam(s_a, cfg)
            if prompt:
                raise ValueError("finish_from_maps: M_apa is not empty, so PPG/CPS need the image's SAM embedding.")
            prompts = None
        else:  # PPG thresholds and labels the components itself: no separate needs_sam pass
            prompts = ppg.generate_prompts(s_a, cfg, embedding)
            tau, prompt = prompts.tau_value, not prompts.is_normal
        r = Result(object_name=object_name, size=tuple(s_a.shape[:2]), s_a=s_a, image_score=float(image_score),
                   ppg=prompts if prompt else None, tau_value=float(tau), timings_ms=dict(timings_ms or {}))
        predictor = predictor_for(models.sam, embedding) if prompt else None
        r.timings_ms["ppg"] = 1000 * (time.perf_counter() - t)
        t = time.perf_counter()
        if predictor is not None:
            for ps in r.ppg.prompt_sets:
                r.cascades.append(run_cascade(predictor, s_a, ps.points, ps.labels, cfg))
        r.timings_ms["cps"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    mask, logits = final_mask_and_logits(r.cascades, r.size)
    r.final_mask = mask
    r.final_map = fuse(s_a, mask, logits, cfg)
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

    t = time.perf_counter()
    clip = anomaly_maps(models, images, names, cfg, adapter=adapter)
    t_clip = 1000 * (time.perf_counter() - t) / max(len(images), 1)

    need = [i for i, s_a in enumerate(clip.maps) if needs_sam(s_a, cfg)[1]]
    t = time.perf_counter()
    with EncoderCounter(models.sam) as count:
        embeddings = embed_images(models.sam, [images[i] for i in need], batch_size=cfg.batch_size)
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
    return {
        "size": list(result.size),
        "object": result.object_name,
        "profile": profile,
        "config": cfg.to_dict(),
        "tau_value": result.tau_value,
        "image_score": result.image_score,
        "prompts": {
            "positive": [] if ppg is None else np.asarray(ppg.positives).astype(int).tolist(),
            "negative": [] if ppg is None else np.asarray(ppg.negatives).astype(int).tolist(),
        },
        "prompt_sets": len(result.cascades),
        "stages": stages,
        "stopped": [c.stopped for c in result.cascades if c.stopped],
        "final_mask_area": int(result.final_mask.sum()) if result.final_mask is not None else 0,
        "sam_encoder_calls": result.sam_encoder_calls,
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
    }


def write_outputs(result: Result, image: np.ndarray, cfg: Config, out: Path | str, profile: str) -> list[Path]:
    """``anomaly_map.npy``, ``final_map.npy``, ``stageN.png``, ``mask.png``, ``overlay.png``, ``result.json``."""
    import json

    from PIL import Image

    from .panels import save_figure, tiny_caption
    from .viz import result_figure, stage_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, arr in (("anomaly_map.npy", result.s_a), ("final_map.npy", result.final_map)):
        np.save(out / name, np.asarray(arr, dtype=np.float32))
        written.append(out / name)
    caption = tiny_caption(profile)
    for i in range(len(result.stage_masks())):
        title = f"CPS stage {i + 1}" + (f" [{caption}]" if caption else "")
        written += save_figure(stage_figure(image, result, i + 1, title=title), out / f"stage{i + 1}.png")
    Image.fromarray(result.final_mask.astype(np.uint8) * 255).save(out / "mask.png")
    written.append(out / "mask.png")
    title = f"{result.object_name}" + (f" [{caption}]" if caption else "")
    written += save_figure(result_figure(image, result, suptitle=title), out / "overlay.png")
    (out / "result.json").write_text(json.dumps(result_dict(result, cfg, profile), indent=2) + "\n")
    written.append(out / "result.json")
    return written
