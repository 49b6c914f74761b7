"""Pretraining the mini-SAM on the synthetic world: ``python -m clipsam_lite pretrain sam --out DIR``. [ours]

Taught in notebook 00 (section "9. The miniature world", "The mini profile"); it trains the SAM that METHOD.md steps 2-4 use
(one encoder pass per image, PPG's co-feature negatives, the CPS cascade). SAM's interactive recipe
(Kirillov et al. 2023, appendix A) on :mod:`.sam_data`'s scenes, 8 images x 3 targets per step
sharing one encoder pass:

- pass 1: a first prompt per target (one point, points in and out, or a jittered box);
- passes 2-3 (1-3 passes per step): one correction point from the error of the model's own mask,
  its own previous low-res logits as ``mask_input``; half the time the last pass adds the box of the
  model's own previous mask (what CPS stage 3 does, so that the cascade learns not to flood);
- loss: ``20 * focal + dice`` (SAM's 20:1), at ``loss_res`` against area fractions of the targets; a single point
  is scored by the best of the three multimask outputs, or, when it is ambiguous (a defect and its
  object, a mark and its shape), by the best assignment of both answers to two distinct outputs
  (:func:`.sam_batch.assign_nested`); other prompts train the single-mask output 0 and the best of
  outputs 1-3 (CPS asks for one mask in stage 1 and three in stages 2-3); the IoU head regresses
  each output's actual IoU (MSE).

Seeded (the data of step ``s`` depends only on the seed and ``s``), resumable from ``DIR/last.pt``
(kill and restart continues), CPU seconds counted across restarts and logged per 1,000 steps.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..synthetic.scenes import rng_for
from .sam_batch import PromptBatch, assign_nested, decode_batch, mask_losses
from .sam_cascade import cascade_prompts
from .sam_data import (
    FIRST_PROMPT_MIXES,
    Prompt,
    TrainScene,
    correction_point,
    first_prompt,
    own_box,
    training_scene,
)

__all__ = ["SamTrainConfig", "ScenePool", "train_sam", "pack_scene", "unpack_scene", "lr_at", "export_sam_weights",
           "load_checkpoint"]


@dataclass
class SamTrainConfig:
    """Every knob of the mini-SAM pretraining [ours]."""

    arch: str = "mini"
    steps: int = 4000
    batch_images: int = 8
    targets_per_image: int = 3
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0
    world_share: float = 0.5
    new_scenes_per_step: int = 2
    """Scenes rendered per step; the other slots reuse recent scenes (rendering costs as much as a step)."""
    pool_window: int = 160
    """Batch slots draw from the last ``pool_window`` rendered scenes."""
    loss_res: int | None = None
    """Side at which the loss compares logits with area-fraction targets; ``None``: the architecture's
    low-res logits (4 x its token grid: 64 for ``tiny``, 128 for ``mini``). On the 16 x 16 grid, 64 was
    measured at 0.40 CPU-s a step against 0.55 at 128 and 1.5 at 256."""
    pass_probs: tuple[float, float, float] = (0.25, 0.35, 0.4)
    own_box_prob: float = 0.5
    checkpoint_every: int = 50
    eval_every: int = 250
    log_every: int = 25
    eval_images: int = 8
    first_prompts: str = "mixed"
    """First-prompt mix (:data:`.sam_data.FIRST_PROMPT_MIXES`): ``mixed`` [ours] in the shipped recipe;
    ``sam`` for SAM's own (one point or one box), the experiment in the model card."""
    cascade_share: float = 0.0
    """Share of steps that also train CPS's own three stages (:mod:`.sam_cascade`); 0 in the first stages
    of the shipped recipe, 0.5 in its last."""
    warm_start: str | None = None
    """A checkpoint of a SAM of the same width and depth on another token grid to start from
    (:func:`.sam_grow.grow_sam_state`); used only when ``out`` holds no ``last.pt`` yet."""
    extra: dict = field(default_factory=dict)


def lr_at(step: int, cfg: SamTrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 5 % of ``lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


# --------------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------------

def pack_scene(s: TrainScene) -> tuple:
    """A compact copy (targets bit-packed: ~8 KB each instead of 64 KB)."""
    return (s.image, [np.packbits(m) for m in s.targets], list(s.parents), list(s.kinds), s.source, s.image.shape[:2])


def unpack_scene(p: tuple) -> TrainScene:
    image, packed, parents, kinds, source, shape = p
    n = shape[0] * shape[1]
    return TrainScene(image, [np.unpackbits(m)[:n].reshape(shape).astype(bool) for m in packed], parents, kinds, source)


class ScenePool:
    """Scene ``k`` is ``training_scene(k // 64, k % 64)``, rendered once and kept while recent.

    At step ``s`` the scenes ``s * new .. s * new + new - 1`` are new; the other slots draw
    (seeded by ``s``) from the last ``pool_window`` scenes, so each scene serves about
    ``batch_images / new`` times over nearby steps. The choice depends only on (seed, step): a
    resumed run sees the same batches (it re-renders what it needs).
    """

    def __init__(self, cfg: SamTrainConfig, render=training_scene) -> None:
        self.cfg = cfg
        self.render = render
        self.cache: dict[int, tuple] = {}

    def ids(self, step: int) -> list[int]:
        c = self.cfg
        new = [step * c.new_scenes_per_step + i for i in range(c.new_scenes_per_step)]
        lo = max(0, new[0] - c.pool_window)
        rng = rng_for(c.seed, "pool", step)
        old = [int(rng.integers(lo, new[0])) if new[0] > 0 else new[i % len(new)]
               for i in range(c.batch_images - len(new))]
        return new + old

    def scene(self, k: int) -> TrainScene:
        if k not in self.cache:
            self.cache[k] = pack_scene(self.render(k // 64, k % 64, self.cfg.seed, self.cfg.world_share))
        return unpack_scene(self.cache[k])

    def batch(self, step: int) -> list[TrainScene]:
        ids = self.ids(step)
        out = [self.scene(k) for k in ids]
        floor = ids[0] - self.cfg.pool_window
        for k in [k for k in self.cache if k < floor]:
            del self.cache[k]
        return out


def _pick_targets(rng: np.random.Generator, scene: TrainScene, n: int) -> list[int]:
    """``n`` targets of a scene: defects 80 % / the object 20 % in world scenes, uniform in shapes [ours]."""
    idx = list(range(len(scene.targets)))
    defects = [i for i in idx if scene.kinds[i] == "defect"]
    objects = [i for i in idx if scene.kinds[i] == "object"]
    out = []
    for _ in range(n):
        if scene.source.startswith("world"):
            if defects and (not objects or rng.random() < 0.8):
                out.append(defects[int(rng.integers(len(defects)))])
            elif objects:
                out.append(objects[0])
            else:
                out.append(0)
        else:
            out.append(idx[int(rng.integers(len(idx)))])
    return out


# --------------------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------------------

def _prompt_batch(prompts: list[Prompt], masks: torch.Tensor | None, image_index: list[int]) -> PromptBatch:
    n = len(prompts)
    p_max = max(1, max(len(p.labels) for p in prompts))
    coords = torch.zeros(n, p_max, 2)
    labels = torch.full((n, p_max), -1, dtype=torch.long)
    boxes = torch.zeros(n, 4)
    has_box = torch.zeros(n, dtype=torch.bool)
    for i, p in enumerate(prompts):
        k = len(p.labels)
        if k:
            coords[i, :k] = torch.as_tensor(p.points, dtype=torch.float32)
            labels[i, :k] = torch.as_tensor(p.labels)
        if p.box is not None:
            boxes[i] = torch.as_tensor(p.box, dtype=torch.float32)
            has_box[i] = True
    has_mask = torch.full((n,), masks is not None)
    return PromptBatch(coords, labels, boxes, has_box, masks if masks is not None else torch.zeros(n, 1, 1, 1),
                       has_mask, torch.as_tensor(image_index))


def _soft_iou(pred: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """IoU of a binary prediction with an area-fraction target (both ``(..., h, w)``)."""
    inter = (pred * soft).flatten(-2).sum(-1)
    union = torch.maximum(pred, soft).flatten(-2).sum(-1)
    return torch.where(union > 0, inter / union.clamp(min=1e-6), torch.ones_like(union))


def _areas_at(full: torch.Tensor, r: int) -> torch.Tensor:
    """Full-size binary targets ``(..., S, S)`` as area fractions on the ``r x r`` loss grid."""
    return F.adaptive_avg_pool2d(full, r) if full.shape[-1] != r else full


def _logits_at(lo: torch.Tensor, r: int) -> torch.Tensor:
    """Low-res logits ``(N, K, m, m)`` brought to the ``r x r`` loss grid (bilinear, as SAM upsamples)."""
    return F.interpolate(lo, (r, r), mode="bilinear", align_corners=False) if lo.shape[-1] != r else lo


def _encode(sam: torch.nn.Module, images: list[np.ndarray]) -> torch.Tensor:
    size = int(sam.image_encoder.img_size)
    bad = [im.shape for im in images if im.shape[:2] != (size, size)]
    if bad:
        raise ValueError(f"Training images must be {size} x {size} (the SAM's img_size); got {bad[0][:2]}.")
    x = torch.stack([torch.as_tensor(im).permute(2, 0, 1).float() for im in images])
    return sam.image_encoder(sam.preprocess(x))


def train_step(sam: torch.nn.Module, scenes: list[TrainScene], step: int, cfg: SamTrainConfig) -> dict[str, float]:
    """Forward and backward of one step (no optimiser step); returns the step's statistics."""
    rng = rng_for(cfg.seed, "prompts", step)
    size = scenes[0].image.shape[0]
    feats = _encode(sam, [s.image for s in scenes])
    prompts: list[Prompt] = []
    image_index: list[int] = []
    targets_full: list[list[np.ndarray]] = []
    for j, s in enumerate(scenes):
        for t in _pick_targets(rng, s, cfg.targets_per_image):
            p = first_prompt(rng, s, t, cfg.first_prompts)
            prompts.append(p)
            image_index.append(j)
            targets_full.append([s.targets[v] for v in p.valid])
    n = len(prompts)
    lr_ = cfg.loss_res
    full = torch.zeros(n, 2, size, size)
    for i, ts in enumerate(targets_full):
        for k in range(2):
            full[i, k] = torch.as_tensor(ts[min(k, len(ts) - 1)], dtype=torch.float32)
    soft = _areas_at(full, lr_)  # (n, 2, r, r) area fractions
    n_valid = torch.tensor([len(ts) for ts in targets_full])
    single = torch.tensor([p.single_point for p in prompts])
    passes = int(rng.choice([1, 2, 3], p=list(cfg.pass_probs)))
    total = torch.zeros(())
    stats: dict[str, float] = {"passes": passes}
    masks_in = None
    for it in range(passes):
        lo, iou_pred = decode_batch(sam, feats, _prompt_batch(prompts, masks_in, image_index))
        up = _logits_at(lo, lr_)
        l_small = mask_losses(up, soft[:, :1])  # (n, 4)
        nested = n_valid == 2
        with torch.no_grad():
            binary = (up > 0).float()
            iou_small = _soft_iou(binary, soft[:, :1])
            iou_large = _soft_iou(binary, soft[:, 1:2]) if bool(nested.any()) else iou_small
            actual = torch.where(nested[:, None], torch.maximum(iou_small, iou_large), iou_small)
        min3 = l_small[:, 1:].min(dim=1).values
        mask_loss = torch.where(single, min3, l_small[:, 0] + min3)
        if bool(nested.any()):  # only the first pass of an ambiguous click has two answers
            l_large = mask_losses(up[nested, 1:], soft[nested, 1:2])
            nested_loss, _, _ = assign_nested(l_small[nested, 1:], l_large)
            mask_loss = mask_loss.clone()
            mask_loss[nested] = nested_loss
        iou_loss = F.mse_loss(iou_pred, actual, reduction="none").mean(dim=1)
        total = total + (mask_loss + iou_loss).mean()
        if it == 0:
            stats["iou_first"] = float(actual[:, 1:].max(dim=1).values.mean())
        stats["iou_last"] = float(actual[:, 1:].max(dim=1).values.mean())
        if it == passes - 1:
            break
        # the next pass: the model's own mask, a correction click, its logits as mask_input
        with torch.no_grad():
            best_pred = iou_pred[:, 1:].argmax(dim=1) + 1
            use_multi = single | torch.as_tensor(rng.random(n) < 0.5)
            chosen = torch.where(use_multi, best_pred, torch.zeros_like(best_pred))
            sel = lo[torch.arange(n), chosen]
            pred_full = F.interpolate(sel[:, None], (size, size), mode="bilinear", align_corners=False)[:, 0] > 0
            masks_in = sel[:, None].detach()
            # the answer an ambiguous click was given decides the target from now on
            chosen_iou_small = iou_small[torch.arange(n), chosen]
            chosen_iou_large = iou_large[torch.arange(n), chosen]
        soft = soft.clone()  # the losses above saved the old one for backward
        for i, p in enumerate(prompts):
            if n_valid[i] == 2:
                k = 1 if chosen_iou_large[i] > chosen_iou_small[i] else 0
                soft[i, 0] = soft[i, k]
                targets_full[i] = [targets_full[i][k]]
                n_valid[i] = 1
            target = targets_full[i][0]
            pr = pred_full[i].numpy()
            click = correction_point(rng, pr, target)
            pts, lab, box = p.points, p.labels, p.box
            if click is not None:
                pts = np.concatenate([pts.reshape(-1, 2), click[0][None]])
                lab = np.concatenate([lab, [click[1]]])
            if it == passes - 2 and rng.random() < cfg.own_box_prob and pr.any():
                box = own_box(pr, int(rng.integers(0, 9)))
            prompts[i] = Prompt(pts, lab.astype(np.int64), box, [0], p.mode)
        single = torch.tensor([p.single_point for p in prompts])
    loss = total / passes
    if cfg.cascade_share > 0:
        crng = rng_for(cfg.seed, "cascade", step)
        if crng.random() < cfg.cascade_share:
            c_loss, c_stats = _cascade_loss(sam, feats, scenes, crng, cfg)
            loss = loss + c_loss
            stats |= c_stats
    loss.backward()
    stats["loss"] = float(loss.detach())
    return stats


def _cascade_loss(sam: torch.nn.Module, feats: torch.Tensor, scenes: list[TrainScene], rng: np.random.Generator,
                  cfg: SamTrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of CPS's three stages on the batch's world scenes (:func:`.sam_cascade.cascade_prompts`):
    per stage, output 0 (stage 1's mask) plus the best of outputs 1-3 (stages 2-3 keep the one with the
    highest predicted IoU), and the IoU head; the mean over all stage prompts. Stats: each stage's IoU
    of the mask CPS would keep."""
    from ..config import get_config

    cp = cascade_prompts(sam, feats, scenes, rng, get_config("mini"))
    if not cp.prompts:
        return torch.zeros(()), {}
    r = cfg.loss_res
    losses, stats = [], {}
    for stage in (1, 2, 3):
        rows = [i for i, k in enumerate(cp.stage) if k == stage]
        if not rows:
            continue
        masks = None if stage == 1 else torch.stack([torch.as_tensor(cp.mask_input[i]) for i in rows])
        lo, iou_pred = decode_batch(sam, feats, _prompt_batch([cp.prompts[i] for i in rows], masks,
                                                              [cp.image_index[i] for i in rows]))
        full = torch.stack([torch.as_tensor(cp.target[i], dtype=torch.float32) for i in rows])[:, None]
        soft, up = _areas_at(full, r), _logits_at(lo, r)
        ls = mask_losses(up, soft)
        with torch.no_grad():
            actual = _soft_iou((up > 0).float(), soft)
            idx = torch.zeros(len(rows), dtype=torch.long) if stage == 1 else iou_pred[:, 1:].argmax(dim=1) + 1
            stats[f"casc_iou{stage}"] = float(actual[torch.arange(len(rows)), idx].mean())
        iou_loss = F.mse_loss(iou_pred, actual, reduction="none").mean(dim=1)
        losses.append(ls[:, 0] + ls[:, 1:].min(dim=1).values + iou_loss)
    return torch.cat(losses).mean(), stats


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------

def load_checkpoint(path: str | Path, what: str, needs: tuple[str, ...] = ("model",)) -> dict:
    """A ``pretrain sam`` checkpoint or snapshot (a dict holding the entries ``needs``), or a ``ValueError``
    that names the file, says what is wrong with it and what to do (``what``: where it was given)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated, not a torch file, a folder...
        raise ValueError(f"{what} {path}: cannot be read as a checkpoint ({type(e).__name__}: {str(e)[:120]}); "
                         "it may be damaged or half-written: use another snapshot (snapshots/stepN.pt) or start "
                         "a new --out.") from None
    _require(state, needs, what, path)
    return state


def _require(state: object, needs: tuple[str, ...], what: str, path: str | Path) -> None:
    missing = [k for k in needs if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{what} {path}: not a checkpoint of `pretrain sam` (no {missing} entry); give a run's "
                         "last.pt or one of its snapshots/stepN.pt.")


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_sam(out: str | Path, cfg: SamTrainConfig, *, log=print, evaluate=None, threads: int = 1,
              stop_at: int | None = None) -> Path:
    """Train (or resume) into ``out``: ``last.pt`` (checkpoint), ``metrics.jsonl`` (one line per 25 steps),
    ``snapshots/stepNNNNNN.pt`` (the model every ``eval_every`` steps, for the curve of the targets).

    ``stop_at`` ends the run at that step with the learning-rate schedule of ``cfg.steps`` (a later run
    may resume it, with the same or another schedule). A new run with ``cfg.warm_start`` starts from that
    checkpoint's model grown to ``cfg.arch``'s token grid, at step 0, its CPU time carried over.

    ``evaluate(sam) -> dict`` (optional) runs every ``cfg.eval_every`` steps on held-out scenes; its
    numbers go to ``metrics.jsonl`` beside the CPU time, so the curve of each target can be drawn.
    """
    from tqdm.auto import tqdm

    from ..models import build_sam

    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        sam = build_sam(cfg.arch)
    if cfg.loss_res is None:  # the arch's low-res logits; the caller's config is left as it was
        cfg = replace(cfg, loss_res=4 * int(sam.prompt_encoder.image_embedding_size[0]))
    opt = torch.optim.AdamW(sam.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, cpu = 0, 0.0
    carried = 0.0  # CPU seconds of the warm start's own training, counted in ``cpu`` but not run here
    if not ckpt_path.is_file() and cfg.warm_start:
        from .sam_grow import grow_sam_state

        src = load_checkpoint(cfg.warm_start, "--warm-start")
        sam.load_state_dict(grow_sam_state(src["model"], sam))
        cpu = carried = float(src.get("cpu_seconds", 0.0))
        log(f"Warm start from {cfg.warm_start} (step {src.get('step')}, {cpu / 60:.1f} CPU-minutes), grown to "
            f"{cfg.arch!r}'s {sam.prompt_encoder.image_embedding_size[0]}-token grid.")
    elif ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, "Resuming from", needs=("config",))
        if state["config"].get("arch") != cfg.arch:
            raise ValueError(f"{ckpt_path} was trained with arch {state['config']['arch']!r}, not {cfg.arch!r}: "
                             f"use another --out or the same arch.")
        _require(state, ("model", "optimizer", "step", "cpu_seconds"), "Resuming from", ckpt_path)
        sam.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, cpu = int(state["step"]), float(state["cpu_seconds"])
        carried = float(state.get("cpu_carried", 0.0))
        log(f"Resuming from {ckpt_path} at step {step} ({cpu / 60:.1f} CPU-minutes so far).")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    sam.train()
    pool = ScenePool(cfg)
    metrics = open(out / "metrics.jsonl", "a")
    step_start, cpu_start = step, cpu
    last_loss: list[float] = []
    casc_log: list[dict[str, float]] = []
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    bar = tqdm(total=end, initial=step, desc="pretrain sam", mininterval=10)
    try:
        while step < end:
            t0 = time.process_time()
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            stats = train_step(sam, pool.batch(step), step, cfg)
            torch.nn.utils.clip_grad_norm_(sam.parameters(), 1.0)
            opt.step()
            cpu += time.process_time() - t0
            step += 1
            last_loss.append(stats["loss"])
            casc_log.append({k: v for k, v in stats.items() if k.startswith("casc_")})
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(last_loss[-50:]):.3f}", cpu_min=f"{cpu / 60:.1f}")
            if step % 1000 == 0:
                log(f"step {step}: {1000 * (cpu - cpu_start) / (step - step_start):.0f} CPU-s per 1,000 steps "
                    f"(since step {step_start}), {cpu / 60:.1f} CPU-minutes in all")
            row = None
            if step % cfg.log_every == 0:
                row = {"step": step, "cpu_s": round(cpu, 1), "wall": time.strftime("%H:%M:%S"), "lr": lr_at(step, cfg),
                       "loss": float(np.mean(last_loss[-cfg.log_every:])), "iou_first": stats["iou_first"],
                       "iou_last": stats["iou_last"]}
                casc = [c for c in casc_log[-cfg.log_every:] if c]
                if casc:  # CPS's stages on the stand-in maps, mean over the window's cascade steps
                    row |= {k: round(float(np.mean([c[k] for c in casc if k in c])), 4) for k in casc[-1]}
            if step % cfg.eval_every == 0 or step == end:  # a snapshot per point of the curve
                (out / "snapshots").mkdir(exist_ok=True)
                _save_atomic({"model": sam.state_dict(), "step": step, "cpu_seconds": cpu},
                             out / "snapshots" / f"step{step:06d}.pt")
            if evaluate is not None and (step % cfg.eval_every == 0 or step == end):
                sam.eval()
                te = time.process_time()
                row = {**(row or {"step": step, "cpu_s": round(cpu, 1)}), "eval": evaluate(sam),
                       "eval_cpu_s": round(time.process_time() - te, 1)}
                sam.train()
                log(f"step {step} ({cpu / 60:.1f} CPU-min): {json.dumps(row['eval'])}")
            if row is not None:
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
            if step % cfg.checkpoint_every == 0 or step == end:
                _save_atomic({"model": sam.state_dict(), "optimizer": opt.state_dict(), "step": step,
                              "cpu_seconds": cpu, "cpu_carried": carried, "config": asdict(cfg)}, ckpt_path)
    finally:
        bar.close()
        metrics.close()
    run_cpu = cpu - carried
    log(f"Done: {step} steps, {run_cpu / 60:.1f} CPU-minutes ({1000 * run_cpu / max(step, 1):.0f} CPU-s per 1,000 "
        f"steps on average){f'; {cpu / 60:.1f} with the warm start' if carried else ''}. Checkpoint: {ckpt_path}")
    return ckpt_path


def pretrain_sam_command(out: str, steps: int | None, seed: int, threads: int = 1, evaluate_every: int | None = None,
                         *, arch: str = "mini", lr: float | None = None, warmup: int | None = None,
                         world_share: float | None = None, warm_start: str | None = None, stop_at: int | None = None,
                         cascade_share: float | None = None, first_prompts: str | None = None) -> Path:
    """``python -m clipsam_lite pretrain sam --out DIR [--steps N] [--seed S] [--arch A] [--lr LR] [--warmup W]
    [--world-share P] [--cascade-share P] [--first-prompts MIX] [--warm-start CKPT] [--stop-at K]``; every value is
    checked before any work."""
    if arch not in ("tiny", "mini"):
        raise ValueError(f"--arch must be tiny or mini (the small SAMs this package pretrains), got {arch!r}.")
    for flag, v, lo in (("--steps", steps, 1), ("--stop-at", stop_at, 1), ("--warmup", warmup, 0)):
        if v is not None and v < lo:
            raise ValueError(f"{flag} must be >= {lo}, got {v}.")
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 1):
        raise ValueError(f"--lr must be in (0, 1], got {lr}.")
    if world_share is not None and not (math.isfinite(world_share) and 0 <= world_share <= 1):
        raise ValueError(f"--world-share must be in [0, 1] (the share of world scenes; the rest are shapes), got "
                         f"{world_share}.")
    if cascade_share is not None and not (math.isfinite(cascade_share) and 0 <= cascade_share <= 1):
        raise ValueError(f"--cascade-share must be in [0, 1] (the share of steps that also train CPS's stages), got "
                         f"{cascade_share}.")
    if first_prompts is not None and first_prompts not in FIRST_PROMPT_MIXES:
        raise ValueError(f"--first-prompts must be one of {', '.join(FIRST_PROMPT_MIXES)} (mixed: the shipped recipe; "
                         f"sam: SAM's one point or one box), got {first_prompts!r}.")
    if warm_start is not None and not Path(warm_start).is_file():
        raise ValueError(f"--warm-start {warm_start}: no such checkpoint file (a last.pt or snapshots/stepN.pt "
                         f"of a `pretrain sam` run).")
    cfg = SamTrainConfig(seed=seed, arch=arch)
    for name, v in (("steps", steps), ("lr", lr), ("warmup", warmup), ("world_share", world_share),
                    ("warm_start", warm_start), ("eval_every", evaluate_every), ("cascade_share", cascade_share),
                    ("first_prompts", first_prompts)):
        if v is not None:
            setattr(cfg, name, v)
    return train_sam(out, cfg, threads=threads, stop_at=stop_at)


def export_sam_weights(checkpoint: str | Path, out_file: str | Path) -> str:
    """Write a checkpoint's (or snapshot's) model as fp16 safetensors; returns the file's SHA-256."""
    from safetensors.torch import save_file

    from ..models import _sha256

    state = load_checkpoint(checkpoint, "export")["model"]
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(out_file))
    return _sha256(out_file)
