"""CPS: Cascaded Prompts for SAM (METHOD.md step 4) and the final score map (step 5).

Taught in notebooks 04 (stage 1), 05 (stage 2) and 06 (stage 3, section 4: the five fusions).

Three passes of SAM's lightweight mask decoder on one image embedding **[paper]**:

1. points (PPG's positives, label 1, and negatives, label 0) -> ``M1`` and SAM's low-res ``logit1``;
2. the points, secondary points **[ours]** and ``mask_input = logit1`` -> ``M2``, ``logit2``;
3. ``box = bbox(M2)`` grown by ``box_margin`` and clipped **[ours: margin]**, the points and
   ``mask_input = logit2`` -> ``M3``.

Mask selection **[ours, from PerSAM's cascade]**: stage 1 asks for a single mask; stages 2 and 3 ask
for three and keep the one with the highest predicted IoU. The low-res logits are passed back
exactly as SAM returned them (1 x 256 x 256 for the real models): any other mask prompt misbehaves.

The cascade talks to SAM only through a ``segment_anything.SamPredictor`` whose image is already
set (``sam_features.predictor_for``), so it never runs the image encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .config import Config
from .ppg import dilate_disc, ring, spaced_topk

__all__ = [
    "StageResult", "CascadeResult", "run_cascade", "box_from_mask", "secondary_points", "fuse", "Predictor",
]


class Predictor(Protocol):
    """What the cascade needs of ``segment_anything.SamPredictor`` (image already set)."""

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output=True, return_logits=False): ...


@dataclass
class StageResult:
    """One decoder pass: its prompts and what SAM returned (the selected mask among its outputs)."""

    stage: int
    points: np.ndarray
    """(n, 2) float (x, y) in original image pixels."""
    labels: np.ndarray
    """(n,) int, 1 = positive, 0 = negative (SAM's convention)."""
    box: np.ndarray | None
    """[x0, y0, x1, y1] in original image pixels, or None."""
    mask_input: np.ndarray | None
    """The low-res logits fed in (the previous stage's ``low_res_logits``, the same array), or None."""
    mask: np.ndarray
    """H x W bool, the selected mask."""
    logits: np.ndarray
    """H x W float32, SAM's logits of the selected mask at the image's size (mask = logits > 0)."""
    low_res_logits: np.ndarray
    """1 x h x w float32, SAM's low-res logits of the selected mask, exactly as returned."""
    predicted_iou: float
    all_ious: np.ndarray
    chosen: int
    n_secondary: int = 0
    """How many of ``points`` are stage-2 secondary points (the last ones)."""

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class CascadeResult:
    """All stages run for one prompt set; ``stopped`` says why the cascade ended early, if it did."""

    stages: list[StageResult] = field(default_factory=list)
    stopped: str | None = None

    @property
    def final(self) -> StageResult | None:
        """The last stage whose mask is not empty [ours], or None if no stage produced one."""
        for s in reversed(self.stages):
            if s.area > 0:
                return s
        return None


def box_from_mask(mask: np.ndarray, margin: int) -> np.ndarray | None:
    """``bbox(M2)`` grown by ``margin`` pixels on every side and clipped to the image, as [x0, y0, x1, y1].

    Coordinates are inclusive pixel indices (x1 = W - 1 at most); None for an empty mask.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = mask.shape
    return np.array([max(xs.min() - margin, 0), max(ys.min() - margin, 0),
                     min(xs.max() + margin, w - 1), min(ys.max() + margin, h - 1)], dtype=np.float64)


def _far_from(points: np.ndarray, shape: tuple[int, int], d_min: float) -> np.ndarray:
    """Pixels at distance >= d_min from every given point (so new points keep the spacing)."""
    keep = np.ones(shape, dtype=bool)
    if len(points) == 0 or d_min <= 0:
        return keep
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    for x, y in points:
        keep &= (xx - x) ** 2 + (yy - y) ** 2 >= d_min ** 2
    return keep


def secondary_points(s_a: np.ndarray, m1: np.ndarray, points: np.ndarray, labels: np.ndarray,
                     cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Stage-2 secondary points **[ours]** (METHOD.md step 4).

    New positives: the highest ``S_a`` inside ``M1``, at least ``d_min`` from every existing positive
    and from each other (``k_secondary_pos`` of them). New negatives: the lowest ``S_a`` in the ring
    ``dilate(M1, secondary_ring) - M1``, at least ``d_min`` from existing negatives
    (``k_secondary_neg``). Returns (points (m, 2) x, y; labels (m,)).
    """
    shape = s_a.shape
    pos_cand = m1 & _far_from(points[labels == 1], shape, cfg.d_min)
    new_pos = spaced_topk(s_a, cfg.k_secondary_pos, cfg.d_min, pos_cand)
    neg_cand = ring(m1, cfg.secondary_ring) & _far_from(points[labels == 0], shape, cfg.d_min)
    new_neg = spaced_topk(s_a, cfg.k_secondary_neg, cfg.d_min, neg_cand, largest=False)
    pts = np.concatenate([np.asarray(new_pos, float).reshape(-1, 2), np.asarray(new_neg, float).reshape(-1, 2)])
    lab = np.concatenate([np.ones(len(new_pos), int), np.zeros(len(new_neg), int)])
    return pts, lab


def _decode(predictor: Predictor, stage: int, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None,
            mask_input: np.ndarray | None, multimask: bool, n_secondary: int = 0) -> StageResult:
    logits, ious, low_res = predictor.predict(
        point_coords=points.astype(np.float32) if len(points) else None,
        point_labels=labels.astype(np.int32) if len(points) else None,
        box=box, mask_input=mask_input, multimask_output=multimask, return_logits=True,
    )
    logits = np.asarray(logits)
    ious = np.asarray(ious, dtype=np.float32)
    best = int(np.argmax(ious)) if multimask else 0
    return StageResult(
        stage=stage, points=points, labels=labels, box=box, mask_input=mask_input,
        mask=logits[best] > 0.0, logits=logits[best].astype(np.float32),
        low_res_logits=np.asarray(low_res)[best: best + 1], predicted_iou=float(ious[best]),
        all_ious=ious, chosen=best, n_secondary=n_secondary,
    )


def run_cascade(predictor: Predictor, s_a: np.ndarray, points: np.ndarray, labels: np.ndarray,
                cfg: Config) -> CascadeResult:
    """Run ``cfg.stages`` decoder passes for one prompt set (METHOD.md step 4).

    A stage whose mask comes back empty stops the cascade; ``CascadeResult.stopped`` says which.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(points) != len(labels):
        raise ValueError(f"run_cascade: {len(points)} points but {len(labels)} labels.")
    if not (labels == 1).any():
        raise ValueError("run_cascade needs at least one positive point (label 1); PPG gave none.")
    result = CascadeResult()

    s1 = _decode(predictor, 1, points, labels, None, None, multimask=cfg.multimask_stage1)
    result.stages.append(s1)
    if s1.area == 0:
        result.stopped = "stage 1 returned an empty mask"
        return result
    if cfg.stages == 1:
        return result

    n_sec = 0
    pts2, lab2 = points, labels
    if cfg.secondary_points:
        extra_pts, extra_lab = secondary_points(s_a, s1.mask, points, labels, cfg)
        n_sec = len(extra_pts)
        pts2, lab2 = np.concatenate([points, extra_pts]), np.concatenate([labels, extra_lab])
    s2 = _decode(predictor, 2, pts2, lab2, None, s1.low_res_logits, multimask=True, n_secondary=n_sec)
    result.stages.append(s2)
    if s2.area == 0:
        result.stopped = "stage 2 returned an empty mask"
        return result
    if cfg.stages == 2:
        return result

    box = box_from_mask(s2.mask, cfg.box_margin)
    s3 = _decode(predictor, 3, pts2, lab2, box, s2.low_res_logits, multimask=True, n_secondary=n_sec)
    result.stages.append(s3)
    if s3.area == 0:
        result.stopped = "stage 3 returned an empty mask"
    return result


def fuse(s_a: np.ndarray, mask: np.ndarray | None, logits: np.ndarray | None, cfg: Config) -> np.ndarray:
    """The final score map (METHOD.md step 5) [ours].

    ``gate``: ``S_a * M3`` (default); ``mask``: ``M3``; ``sigmoid_logits``: ``sigmoid(logit3)``;
    ``blend``: ``alpha * S_a + (1 - alpha) * M3``; ``gate_dilated``: ``S_a * dilate(M3, gate_dilation)``.
    Every mode falls back to ``S_a`` when ``M3`` is empty or absent (no prompts: a normal image).
    """
    s_a = np.asarray(s_a, dtype=np.float32)
    if mask is None or not mask.any():
        return s_a.copy()
    m = mask.astype(np.float32)
    if cfg.fusion == "gate":
        return s_a * m
    if cfg.fusion == "mask":
        return m
    if cfg.fusion == "sigmoid_logits":
        if logits is None:
            raise ValueError("fusion='sigmoid_logits' needs SAM's logits of the final mask.")
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))).astype(np.float32)
    if cfg.fusion == "blend":
        return (cfg.alpha * s_a + (1.0 - cfg.alpha) * m).astype(np.float32)
    if cfg.fusion == "gate_dilated":
        return s_a * dilate_disc(mask, cfg.gate_dilation).astype(np.float32)
    raise ValueError(f"Unknown fusion {cfg.fusion!r}.")
