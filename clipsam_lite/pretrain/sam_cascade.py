"""Training prompts taken from the CPS cascade itself: PPG's points, then stages 2 and 3. [ours]

Taught in notebook 00 (section "9. The miniature world", "The mini profile"); it trains the SAM that
METHOD.md step 4 (CPS) prompts. SAM's interactive recipe (:mod:`.sam`) teaches refinement with a
*correction click* beside the previous logits. CPS never clicks: stage 2 adds secondary points chosen
from ``S_a`` and passes ``logit1`` back, stage 3 adds the box of ``M2`` and passes ``logit2``
back. A model that never saw those prompts has no reason to improve on stage 1 (measured: the
shipped mini-SAM's three stages were within 0.02 IoU of each other). Here a step also runs
PPG + CPS (:func:`clipsam_lite.ppg.generate_prompts`, :func:`clipsam_lite.cps.run_cascade`, through
``SamPredictor`` on the step's own embeddings, without gradient) on a stand-in anomaly map of each
world scene, and trains all three stages' prompts, each with its own previous logits, against the
defects its positive points fall on (teacher forcing, as SAM's iterative passes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from .sam_data import Prompt, TrainScene

__all__ = ["noisy_map", "stand_in_map", "CascadePrompts", "cascade_prompts"]


def noisy_map(gt: np.ndarray, rng: np.random.Generator, blur: float, noise: float, gain: float = 1.6) -> np.ndarray:
    """A stand-in anomaly map in [0, 1]: ``gain * blur(gt) + noise * smooth`` clipped, where ``smooth`` is
    Gaussian noise blurred by 8 px and scaled to a maximum of 1 (spurious blobs, missed thin parts) [ours]."""
    smooth = ndimage.gaussian_filter(rng.normal(0, 1, gt.shape).astype(np.float32), 8.0)
    smooth /= max(float(np.abs(smooth).max()), 1e-6)
    s = ndimage.gaussian_filter(gt.astype(np.float32), blur) * gain + noise * smooth
    return np.clip(s, 0, 1).astype(np.float32)


def stand_in_map(defects: list[np.ndarray], rng: np.random.Generator, miss: float = 0.15) -> np.ndarray:
    """A training stand-in for mini-CLIP's ``S_a`` over ``defects`` [ours]: each defect is missed by the
    map with probability ``miss``; blur 2-6 px, noise 0.1-0.35, gain 1.0-2.0 (so that PPG sees blurred
    edges, spurious regions and defects it must leave alone, as on a learned map)."""
    gt = np.zeros(defects[0].shape, np.float32)
    for d in defects:
        if rng.random() >= miss:
            gt = np.maximum(gt, d.astype(np.float32))
    return noisy_map(gt, rng, float(rng.uniform(2, 6)), float(rng.uniform(0.1, 0.35)), float(rng.uniform(1.0, 2.0)))


@dataclass
class CascadePrompts:
    """The stage prompts of the cascades run on a batch: for prompt ``i``, ``stage[i]`` (1-3), the
    ``mask_input[i]`` it was given (``1 x m x m`` logits, None for stage 1), the ``target[i]`` (the union
    of the defects its positive points fall on) and the embedding row ``image_index[i]``."""

    prompts: list[Prompt]
    mask_input: list[np.ndarray | None]
    target: list[np.ndarray]
    image_index: list[int]
    stage: list[int]


def cascade_prompts(sam: torch.nn.Module, feats: torch.Tensor, scenes: list[TrainScene], rng: np.random.Generator,
                    cfg, max_sets: int = 2) -> CascadePrompts:
    """PPG + CPS (``cfg``: a :class:`clipsam_lite.config.Config`, ``stages`` = 3) on each world scene of the
    batch, from :func:`stand_in_map`; at most ``max_sets`` prompt sets per image; prompt sets whose
    positives fall on no defect are left out (nothing to learn there). Runs without gradient."""
    from ..cps import run_cascade
    from ..ppg import generate_prompts
    from ..sam_features import SamEmbedding, predictor_for

    out = CascadePrompts([], [], [], [], [])
    cfg3 = cfg.replace(stages=3)
    img = int(sam.image_encoder.img_size)
    for j, s in enumerate(scenes):
        defects = [m for m, k in zip(s.targets, s.kinds, strict=True) if k == "defect"]
        if not defects or s.image.shape[:2] != (img, img):
            continue
        s_a = stand_in_map(defects, rng)
        emb = SamEmbedding(features=feats[j].detach(), original_size=(img, img), input_size=(img, img), img_size=img)
        ppg = generate_prompts(s_a, cfg3, emb)
        sets = list(ppg.prompt_sets)
        if len(sets) > max_sets:
            sets = [sets[k] for k in rng.choice(len(sets), max_sets, replace=False)]
        pred = predictor_for(sam, emb)
        for ps in sets:
            pos = np.asarray(ps.points)[np.asarray(ps.labels) == 1]
            hit = [d for d in defects if any(d[int(y), int(x)] for x, y in pos)]
            if not hit:
                continue
            target = np.any(np.stack(hit), axis=0)
            with torch.no_grad():
                casc = run_cascade(pred, s_a, ps.points, ps.labels, cfg3)
            for st in casc.stages:
                out.prompts.append(Prompt(np.asarray(st.points, np.float64).reshape(-1, 2),
                                          np.asarray(st.labels, np.int64), st.box, [0], f"cascade{st.stage}"))
                out.mask_input.append(None if st.mask_input is None else np.asarray(st.mask_input, np.float32))
                out.target.append(target)
                out.image_index.append(j)
                out.stage.append(st.stage)
    return out
