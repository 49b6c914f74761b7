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
set (``sam_features.predictor_for``), or through ``sam_features.FramePredictor`` (the pipeline's: the
same decoder, with prompts and masks in PPG's working frame, SAM's input frame by default), so it never
runs the image encoder. Lengths (``d_min``, ``secondary_ring``, ``box_margin``) are in
``Config.length_unit`` pixels, converted to the map's pixels by ``length_scale`` (``ppg.length_scale``).
:func:`run_cascades` runs all prompt sets of an image stage by stage, so a predictor with
``predict_many`` decodes every set of a stage in one batched call (``Config.batch_prompt_sets``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .config import Config
from .ppg import dilate_disc, ring, spaced_topk

__all__ = [
    "StageResult", "CascadeResult", "run_cascade", "run_cascades", "box_from_mask", "secondary_points", "fuse",
    "Predictor", "CascadeFrame",
]


@dataclass(frozen=True)
class CascadeFrame:
    """Where a cascade's masks live: the working frame ``work_size`` of an ``original_size`` image whose SAM
    input frame is ``input_size`` in an ``img_size`` square (what :meth:`CascadeResult.full_mask` needs)."""

    original_size: tuple[int, int]
    work_size: tuple[int, int]
    input_size: tuple[int, int]
    img_size: int


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
    points_work: np.ndarray | None = None
    """``points`` in the cascade's working frame (where ``mask`` lives); None when that is the image itself."""

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class CascadeResult:
    """All stages run for one prompt set; ``stopped`` says why the cascade ended early, if it did."""

    stages: list[StageResult] = field(default_factory=list)
    stopped: str | None = None
    frame: CascadeFrame | None = None
    """Set when the masks are in a working frame other than the image (see :meth:`full_mask`)."""

    def prefix(self, n_stages: int) -> CascadeResult:
        """This cascade as if ``cfg.stages`` had been ``n_stages``: its first stages (a stage never depends on the
        later ones, so this equals a separate run with fewer stages) [ours, the ablation's stage rows]."""
        stages = self.stages[:n_stages]
        stopped = self.stopped if len(stages) == len(self.stages) else None
        return CascadeResult(stages=stages, stopped=stopped, frame=self.frame)

    def full_mask(self, stage: StageResult | None = None, logits: bool = False) -> np.ndarray | None:
        """A stage's mask (default: :attr:`final`) at the image's size, or its logits with ``logits=True``.

        In a working frame, computed from the stage's low-res logits with ``Sam.postprocess_masks``'
        operations at the original size: exactly the mask ``SamPredictor.predict`` would return.
        """
        from .sam_features import low_res_to_size

        stage = self.final if stage is None else stage
        if stage is None:
            return None
        if self.frame is None or tuple(stage.mask.shape) == tuple(self.frame.original_size):
            return stage.logits if logits else stage.mask
        full = low_res_to_size(stage.low_res_logits, self.frame.input_size, self.frame.img_size,
                               self.frame.original_size)[0].numpy()
        return full if logits else full > 0.0

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
                     cfg: Config, tau: float | None = None, m_apa: np.ndarray | None = None,
                     length_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Stage-2 secondary points **[ours]** (METHOD.md step 4).

    New positives: the highest ``S_a`` inside ``M1``, at least ``d_min`` from every existing positive
    and from each other (``k_secondary_pos`` of them). New negatives: the lowest ``S_a`` in the ring
    ``dilate(M1, secondary_ring) - M1``, at least ``d_min`` from existing negatives
    (``k_secondary_neg``). With ``cfg.secondary_tau`` and ``tau`` given, positives need ``S_a > tau``
    and negatives ``S_a <= tau`` and lie outside ``m_apa`` (default ``S_a > tau``): a negative is never
    put on the region PPG called anomalous (issue 11.8). Lengths are scaled by ``length_scale``.
    Returns (points (m, 2) x, y; labels (m,)).
    """
    shape = s_a.shape
    d_min = cfg.d_min * length_scale
    pos_cand = m1 & _far_from(points[labels == 1], shape, d_min)
    neg_cand = ring(m1, cfg.secondary_ring * length_scale) & _far_from(points[labels == 0], shape, d_min)
    if cfg.secondary_tau and tau is not None:
        above = np.asarray(s_a) > tau
        pos_cand &= above
        neg_cand &= ~above & ~(above if m_apa is None else np.asarray(m_apa, dtype=bool))
    new_pos = spaced_topk(s_a, cfg.k_secondary_pos, d_min, pos_cand)
    new_neg = spaced_topk(s_a, cfg.k_secondary_neg, d_min, neg_cand, largest=False)
    pts = np.concatenate([np.asarray(new_pos, float).reshape(-1, 2), np.asarray(new_neg, float).reshape(-1, 2)])
    lab = np.concatenate([np.ones(len(new_pos), int), np.zeros(len(new_neg), int)])
    return pts, lab


def _stage_result(predictor: Predictor, stage: int, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None,
                  mask_input: np.ndarray | None, multimask: bool, n_secondary: int, out: tuple) -> StageResult:
    logits, ious, low_res = out
    logits = np.asarray(logits)
    ious = np.asarray(ious, dtype=np.float32)
    best = int(np.argmax(ious)) if multimask else 0
    to_original = getattr(predictor, "to_original", None)
    framed = to_original is not None and tuple(getattr(predictor, "work_size", ())) != \
        tuple(getattr(predictor, "original_size", ()))
    return StageResult(
        stage=stage, points=to_original(points) if framed else points, labels=labels,
        box=predictor.box_to_original(box) if framed else box, mask_input=mask_input,
        mask=logits[best] > 0.0, logits=logits[best].astype(np.float32),
        low_res_logits=np.asarray(low_res)[best: best + 1], predicted_iou=float(ious[best]),
        all_ious=ious, chosen=best, n_secondary=n_secondary, points_work=points if framed else None,
    )


def _decode_all(predictor: Predictor, requests: list[tuple], multimask: bool, batched: bool) -> list[tuple]:
    """One ``predict`` per request, or ``predict_many`` (one decoder call per group of equal-sized sets)."""
    if batched and hasattr(predictor, "predict_many") and len(requests) > 1:
        return predictor.predict_many(requests, multimask)
    out = []
    for points, labels, box, mask_input in requests:
        out.append(predictor.predict(
            point_coords=points.astype(np.float32) if len(points) else None,
            point_labels=labels.astype(np.int32) if len(points) else None,
            box=box, mask_input=mask_input, multimask_output=multimask, return_logits=True,
        ))
    return out


def run_cascade(predictor: Predictor, s_a: np.ndarray, points: np.ndarray, labels: np.ndarray,
                cfg: Config, *, tau: float | None = None, m_apa: np.ndarray | None = None,
                length_scale: float = 1.0) -> CascadeResult:
    """Run ``cfg.stages`` decoder passes for one prompt set (METHOD.md step 4); see :func:`run_cascades`.

    A stage whose mask comes back empty stops the cascade; ``CascadeResult.stopped`` says which.
    """
    return run_cascades(predictor, s_a, [(points, labels)], cfg, tau=tau, m_apa=m_apa, length_scale=length_scale)[0]


def run_cascades(predictor: Predictor, s_a: np.ndarray, prompt_sets: Sequence[tuple[np.ndarray, np.ndarray]],
                 cfg: Config, *, tau: float | None = None, m_apa: np.ndarray | None = None,
                 length_scale: float = 1.0, frame: CascadeFrame | None = None) -> list[CascadeResult]:
    """One cascade per ``(points, labels)`` prompt set, run stage by stage (METHOD.md step 4).

    ``s_a``, the points and the masks are in one frame (the predictor's working frame). Stage ``k`` of
    every still-running set is decoded before stage ``k + 1``: with ``cfg.batch_prompt_sets`` and a
    predictor offering ``predict_many`` (``sam_features.FramePredictor``) that is one decoder call per
    group of sets with equal point counts [ours, issue 11.11]; otherwise one ``predict`` per set, as
    ``SamPredictor``. ``tau`` / ``m_apa`` constrain secondary points (``cfg.secondary_tau``);
    ``length_scale`` converts ``cfg``'s lengths to the map's pixels.
    """
    sets = []
    for points, labels in prompt_sets:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(points) != len(labels):
            raise ValueError(f"run_cascade: {len(points)} points but {len(labels)} labels.")
        if not (labels == 1).any():
            raise ValueError("run_cascade needs at least one positive point (label 1); PPG gave none.")
        sets.append((points, labels))
    results = [CascadeResult(frame=frame) for _ in sets]
    batched = cfg.batch_prompt_sets
    live = list(range(len(sets)))
    prompts: dict[int, tuple[np.ndarray, np.ndarray, int]] = {i: (p, lab, 0) for i, (p, lab) in enumerate(sets)}
    for stage in range(1, cfg.stages + 1):
        if not live:
            break
        multimask = cfg.multimask_stage1 if stage == 1 else True
        requests = []
        for i in live:
            prev = results[i].stages[-1] if results[i].stages else None
            points, labels, n_sec = prompts[i]
            if stage == 2 and cfg.secondary_points:
                extra_pts, extra_lab = secondary_points(s_a, prev.mask, points, labels, cfg, tau, m_apa, length_scale)
                n_sec = len(extra_pts)
                points, labels = np.concatenate([points, extra_pts]), np.concatenate([labels, extra_lab])
                prompts[i] = (points, labels, n_sec)
            box = box_from_mask(prev.mask, int(round(cfg.box_margin * length_scale))) if stage == 3 else None
            requests.append((points, labels, box, None if prev is None else prev.low_res_logits))
        outs = _decode_all(predictor, requests, multimask, batched)
        still = []
        for i, (points, labels, box, mask_input), out in zip(live, requests, outs, strict=True):
            st = _stage_result(predictor, stage, points, labels, box, mask_input, multimask, prompts[i][2], out)
            results[i].stages.append(st)
            if st.area == 0:
                results[i].stopped = f"stage {stage} returned an empty mask"
            else:
                still.append(i)
        live = still
    return results


def fuse(s_a: np.ndarray, mask: np.ndarray | None, logits: np.ndarray | None, cfg: Config,
         length_scale: float = 1.0) -> np.ndarray:
    """The final score map (METHOD.md step 5) [ours].

    ``gate``: ``S_a * M3`` (default); ``mask``: ``M3``; ``sigmoid_logits``: ``sigmoid(logit3)``;
    ``blend``: ``alpha * S_a + (1 - alpha) * M3``; ``gate_dilated``: ``S_a * dilate(M3, gate_dilation)``.
    Every mode falls back to ``S_a`` when ``M3`` is empty or absent (no prompts: a normal image).
    ``length_scale``: pixels of ``s_a`` per ``cfg.length_unit`` pixel (``gate_dilation``).
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
        return s_a * dilate_disc(mask, cfg.gate_dilation * length_scale).astype(np.float32)
    raise ValueError(f"Unknown fusion {cfg.fusion!r}.")
