"""Pretraining mini-CLIP on the miniature world: contrastive + a dense patch-text term. [ours]

Taught in notebook 01 (section "A CLIP that has learned something"); it produces the backbone whose
patch tokens METHOD.md step 1 (the anomaly map ``S_a``) reads in the ``mini`` profile.

The loss per step (batch of world images at 128 px, their captions):

- **image-text contrastive** (CLIP's InfoNCE, both directions), where captions with the same meaning
  (same category, same set of defect types) count as positives (soft targets);
- **dense patch-text term** [ours]: every layer's patch tokens go through CLIP's own ``ln_post`` and
  ``proj`` (exactly the training-free head of :func:`clipsam_lite.clip_maps.training_free_head`), are
  scored at ``logit_scale = 100`` against the object's normal / abnormal prompt text (sentences drawn
  from the prompt ensembles of :mod:`clipsam_lite.clip_maps`), and trained with a class-balanced cross
  entropy, label = "the patch overlaps a defect". It buys the patch-level alignment that real CLIP gets
  from scale; without it, the training-free map is below chance inside the object (PROTOTYPES.md).

Seeded and resumable: the data of step ``k`` depends only on (seed, k), and ``DIR/last.pt`` (model,
optimiser, step, CPU time; saved every ``ckpt_every`` steps and at the end) lets a killed run continue.
``DIR/curve.jsonl`` logs the loss and, every ``eval_every`` steps, the held-out pixel and region AUROC.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..synthetic.scenes import rng_for
from ..synthetic.world import WORLD, fold_split, render_world

MINI_CLIP_NAME = "clipsam-mini-vit"


@dataclass
class PretrainConfig:
    """Every knob of mini-CLIP pretraining (PROTOTYPES.md recipe B) [ours]."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 10
    image_size: int = 128
    dense_weight: float = 1.0
    dense_scale: float = 100.0
    dense_pos_weight: float | None = None
    """None: class-balanced patch CE (positives and negatives weigh half each); w: a defect patch weighs w
    normal ones (less shift of the 0.5 threshold towards "abnormal") [ours]."""
    prompts_per_state: int = 2
    seed: int = 0
    fold: int = 0
    categories: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ()
    eval_every: int = 50
    eval_images: int = 8
    ckpt_every: int = 20
    model: str = MINI_CLIP_NAME
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        held, pre, _ = fold_split(self.fold)
        self.categories = tuple(self.categories) or pre
        self.heldout = tuple(self.heldout) or held
        bad = [c for c in (*self.categories, *self.heldout) if c not in WORLD]
        if bad:
            raise ValueError(f"Unknown world categories {bad}; choose from {list(WORLD)}.")
        if set(self.categories) & set(self.heldout):
            raise ValueError(f"Pretraining categories {sorted(set(self.categories) & set(self.heldout))} are also "
                             "held out: a held-out category must never be trained on.")
        for name in ("steps", "batch_size", "image_size", "eval_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"PretrainConfig.{name} must be >= 1, got {getattr(self, name)}.")


def build_model(cfg: PretrainConfig) -> tuple[torch.nn.Module, Any]:
    """A freshly initialised mini-CLIP (seeded, without touching the global RNG) and its tokenizer."""
    import open_clip

    from ..models import register_model_configs

    register_model_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = open_clip.create_model(cfg.model, pretrained=None, force_image_size=cfg.image_size)
    return model, open_clip.get_tokenizer(cfg.model)


# --------------------------------------------------------------------------------------------------
# data of one step
# --------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    images: torch.Tensor  # B x 3 x S x S, normalised
    patch_labels: torch.Tensor  # B x N bool: the patch overlaps a defect
    captions: list[str]
    keys: list[str]  # same key = same meaning
    names: list[str]  # the object name used in each image's prompts


def _normalise(images: np.ndarray) -> torch.Tensor:
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - m) / s


def patch_labels(mask: np.ndarray, patch: int) -> np.ndarray:
    """``(S/patch)^2`` bool: whether each patch (row-major) overlaps the mask."""
    g = mask.shape[0] // patch
    return mask[:g * patch, :g * patch].reshape(g, patch, g, patch).any(axis=(1, 3)).reshape(-1)


def make_batch(cfg: PretrainConfig, step: int, patch: int) -> Batch:
    """The batch of step ``step``: balanced over the pretraining categories, deterministic from (seed, step)."""
    rng = rng_for(cfg.seed, "pretrain-clip", cfg.fold, step)
    cats = [cfg.categories[int(i)] for i in rng.permutation(np.resize(np.arange(len(cfg.categories)), cfg.batch_size))]
    imgs, labels, caps, keys, names = [], [], [], [], []
    for j, cat in enumerate(cats):
        s = render_world(cat, step * cfg.batch_size + j, seed=cfg.seed, size=cfg.image_size, split="pretrain")
        imgs.append(s.image)
        labels.append(patch_labels(s.mask, patch))
        caps.append(s.caption)
        keys.append(cat + ":" + ",".join(sorted(set(s.defect_types))))
        generic = {"object": "object", "texture": "surface"}[WORLD[cat].kind]
        names.append(generic if rng.random() < 0.2 else cat)
    return Batch(_normalise(np.stack(imgs)), torch.from_numpy(np.stack(labels)), caps, keys, names)


def _state_sentences(name: str, rng: np.random.Generator, k: int) -> tuple[list[str], list[str]]:
    from ..clip_maps import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES

    def draw(states: tuple[str, ...]) -> list[str]:
        return [TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(states[int(rng.integers(len(states)))].format(name))
                for _ in range(k)]

    return draw(NORMAL_STATES), draw(ABNORMAL_STATES)


# --------------------------------------------------------------------------------------------------
# the loss
# --------------------------------------------------------------------------------------------------


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, keys: list[str], logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with soft multi-positive targets (same key = positive) [ours]."""
    logits = logit_scale.exp().clamp(max=100.0) * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target.T * F.log_softmax(logits.T, 1), 1).mean())


def dense_loss(features: list[torch.Tensor], text: torch.Tensor, labels: torch.Tensor, scale: float,
               pos_weight: float | None = None) -> torch.Tensor:
    """Patch cross entropy, class-balanced (``pos_weight=None``) or with defect patches weighted
    ``pos_weight``: each layer's ``B x N x D`` features vs ``B x 2 x D`` text [ours]."""
    y = labels.long()
    pos, neg = labels, ~labels
    total = features[0].new_zeros(())
    for f in features:
        logits = scale * F.normalize(f, dim=-1) @ text.transpose(1, 2)  # B x N x 2
        ce = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="none").view_as(labels.float())
        if pos_weight is not None:
            w = torch.where(pos, torch.full_like(ce, float(pos_weight)), torch.ones_like(ce))
            total = total + (w * ce).sum() / w.sum()
            continue
        loss = ce[neg].mean()
        if pos.any():
            loss = 0.5 * (loss + ce[pos].mean())
        total = total + loss
    return total / len(features)


def step_loss(model: torch.nn.Module, tokenizer: Any, batch: Batch, cfg: PretrainConfig, rng: np.random.Generator,
              seen: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss of one batch, and its parts."""
    visual = model.visual
    n_layers = len(visual.transformer.resblocks)
    out = visual.forward_intermediates(batch.images, indices=list(range(n_layers)), output_fmt="NLC")
    uniq = sorted(set(batch.names))
    sentences = list(batch.captions)
    for name in uniq:
        normal, abnormal = _state_sentences(name, rng, cfg.prompts_per_state)
        sentences += normal + abnormal
    tokens = tokenizer(sentences)
    if seen is not None:
        seen[tokens.unique()] = True
    txt = model.encode_text(tokens)
    n_cap = len(batch.captions)
    k = cfg.prompts_per_state
    state = F.normalize(txt[n_cap:], dim=-1).view(len(uniq), 2, k, -1).mean(2)
    state = F.normalize(state, dim=-1)  # names x 2 x D: normal, abnormal
    per_image = state[torch.tensor([uniq.index(n) for n in batch.names])]
    feats = [visual.ln_post(t) @ visual.proj for t in out["image_intermediates"]]
    l_con = contrastive_loss(out["image_features"], txt[:n_cap], batch.keys, model.logit_scale)
    l_dense = dense_loss(feats, per_image, batch.patch_labels, cfg.dense_scale, cfg.dense_pos_weight)
    loss = l_con + cfg.dense_weight * l_dense
    return loss, {"loss": loss.item(), "contrastive": l_con.item(), "dense": l_dense.item()}


# --------------------------------------------------------------------------------------------------
# held-out evaluation
# --------------------------------------------------------------------------------------------------


def heldout_set(categories: tuple[str, ...], n: int, size: int, seed: int = 0) -> list[Any]:
    """A fixed held-out set: per category ``n`` images, a quarter normal, the rest with 1-3 defects."""
    return [render_world(c, i, seed=seed, size=size, split="heldout-eval", n_defects=(i % 4))
            for c in categories for i in range(n)]


def evaluate_maps(model: torch.nn.Module, tokenizer: Any, samples: list[Any], image_size: int) -> dict[str, float]:
    """Training-free head on ``samples``: pixel AUROC and region-restricted AUROC (exact, all pixels)."""
    from ..clip_maps import anomaly_maps, clear_text_cache
    from ..config import get_config
    from ..metrics import pixel_auroc, region_auroc
    from ..models import Models

    cfg = get_config("mini", head="training_free", clip_image_size=image_size)
    models = Models(cfg=cfg, clip=model, tokenizer=tokenizer, preprocess=lambda x: x, sam=torch.nn.Identity(),
                    device=torch.device("cpu"), random_weights=False)
    clear_text_cache(models)
    was_training = model.training
    model.eval()
    try:
        maps = anomaly_maps(models, [s.image for s in samples], [s.category for s in samples], cfg).maps
    finally:
        clear_text_cache(models)
        model.train(was_training)
    masks = [s.mask for s in samples]
    return {"heldout_pixel_auroc": pixel_auroc(maps, masks),
            "heldout_region_auroc": region_auroc(maps, masks, [s.region for s in samples])}


# --------------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------------


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # no weight decay on the token embedding (rows of words never seen stay exactly as initialised),
        # biases, norms, embeddings and the temperature
        if p.ndim < 2 or "token_embedding" in name or "positional" in name or "class_embedding" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _save(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pretrain_clip(out: str | os.PathLike[str], cfg: PretrainConfig | None = None, *, progress: bool = True,
                  log: Any = print) -> dict[str, Any]:
    """Pretrain mini-CLIP into ``out`` (resuming from ``out/last.pt`` if there); returns the final record. [ours]

    Writes ``out/last.pt`` (resumable state), ``out/curve.jsonl`` (one JSON line per logged step) and,
    at the end, ``out/final.pt`` (model state dict + the token ids seen in training + the config).
    """
    cfg = cfg or PretrainConfig()
    torch.set_num_threads(int(os.environ.get("CLIPSAM_THREADS", "1")))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build_model(cfg)
    opt = _optimizer(model, cfg)
    seen = torch.zeros(model.token_embedding.num_embeddings, dtype=torch.bool)
    start, cpu_before = 0, 0.0
    last = out / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state["config"]["seed"] != cfg.seed or state["config"]["fold"] != cfg.fold:
            raise ValueError(f"{last} was written with seed {state['config']['seed']} / fold {state['config']['fold']}, "
                             f"not seed {cfg.seed} / fold {cfg.fold}: use another --out or delete it to start over.")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        seen = state["seen"]
        start, cpu_before = int(state["step"]), float(state["cpu_s"])
        log(f"[pretrain clip] resuming from {last} at step {start} ({cpu_before / 60:.1f} CPU-min so far)")
    samples = heldout_set(cfg.heldout, cfg.eval_images, cfg.image_size)
    patch = model.visual.patch_size[0]
    cpu0 = time.process_time()
    curve = (out / "curve.jsonl").open("a", encoding="utf-8")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="pretrain clip", unit="step")
    model.train()
    record: dict[str, Any] = {}
    try:
        for step in range(start, cfg.steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, cfg)
            batch = make_batch(cfg, step, patch)
            loss, parts = step_loss(model, tokenizer, batch, cfg, rng_for(cfg.seed, "pretrain-text", cfg.fold, step), seen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            done = step + 1
            cpu = cpu_before + time.process_time() - cpu0
            record = {"step": done, "cpu_s": round(cpu, 1), "lr": _lr_at(step, cfg), **parts}
            if done % cfg.eval_every == 0 or done == cfg.steps:
                record.update(evaluate_maps(model, tokenizer, samples, cfg.image_size))
            if done % 10 == 0 or "heldout_pixel_auroc" in record:
                curve.write(json.dumps(record) + "\n")
                curve.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", cpu_min=f"{cpu / 60:.1f}")
            if done % cfg.ckpt_every == 0 or done == cfg.steps:
                _save(last, {"model": model.state_dict(), "optimizer": opt.state_dict(), "seen": seen,
                             "step": done, "cpu_s": cpu, "config": asdict(cfg)})
    finally:
        curve.close()
        if bar is not None:
            bar.close()
    cpu = cpu_before + time.process_time() - cpu0
    _save(out / "final.pt", {"model": model.state_dict(), "seen": seen, "step": cfg.steps, "cpu_s": cpu,
                             "config": asdict(cfg)})
    log(f"[pretrain clip] {cfg.steps} steps, {cpu / 60:.1f} CPU-minutes; held-out ({', '.join(cfg.heldout)}) "
        f"pixel AUROC {record.get('heldout_pixel_auroc', float('nan')):.3f}, region AUROC "
        f"{record.get('heldout_region_auroc', float('nan')):.3f}; wrote {out / 'final.pt'}")
    return record


__all__ = ["PretrainConfig", "pretrain_clip", "build_model", "make_batch", "step_loss", "contrastive_loss",
           "dense_loss", "heldout_set", "evaluate_maps", "patch_labels", "MINI_CLIP_NAME"]
