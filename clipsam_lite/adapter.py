"""The adapter head of ``S_a``: one ``nn.Linear`` per CLIP layer, trained APRIL-GAN style (METHOD.md step 1).

Taught in notebook 01 (section 5, "The adapter and its training"). It depends on
:mod:`clipsam_lite.clip_maps` (tokens, text matrix, maps), never the other way round.

[ours, following APRIL-GAN (Chen et al., 2023)] For each configured layer ``l`` a linear map
``width -> D`` takes the layer's raw patch tokens (the block output, before ``ln_post``) into CLIP's
joint space, where they are compared with the text matrix ``T`` exactly as in the training-free head.
The backbone stays frozen; only the linear layers learn, with focal loss on the two-channel
(normal / abnormal) per-pixel probabilities plus dice loss on each channel, against the masks of an
*auxiliary* dataset (train on MVTec-AD, test on VisA, and the reverse: the zero-shot protocol of
APRIL-GAN / AnomalyCLIP / AdaCLIP). Per layer: ``softmax(logit_scale * normalize(fc_l(tokens)) @ T^T)`` on
the patch grid, bilinearly upsampled to the working resolution (the same path :func:`clip_maps.anomaly_maps`
takes at inference), then ``focal(P, mask) + dice_weight * (dice(P_abn, mask) + dice(P_norm, 1 - mask))``;
the loss is summed over layers. No augmentation is used, so the frozen tokens of each image are
computed once and cached for all epochs (when they fit in ``max_cache_bytes``).

An adapter is saved with metadata (backbone, pretrained tag, a fingerprint of the backbone weights,
image size, layers, dims, training data, seed, epochs) and refuses, with :class:`AdapterMismatchError`,
to run on another backbone, other layers or other dimensions.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .clip_maps import (
    _clip_device,
    check_layers,
    clip_mean_std,
    layer_anomaly_probs,
    object_name_for,
    patch_tokens,
    preprocess_images,
    text_matrix,
    upsample_grid,
)
from .config import Config

if TYPE_CHECKING:  # pragma: no cover
    from .models import Models

__all__ = [
    "Adapter", "AdapterMismatchError", "AdapterFileError", "TrainingHistory", "backbone_fingerprint",
    "save_adapter", "load_adapter", "focal_loss", "dice_loss", "adapter_loss", "train_adapter",
    "train_adapter_command",
]

FORMAT = "clipsam-lite-adapter"
FORMAT_VERSION = 1


class AdapterMismatchError(ValueError):
    """An adapter was trained for another backbone, other layers, other dimensions or another image size."""


class AdapterFileError(ValueError):
    """An adapter file cannot be read (truncated, not an adapter, unknown format version)."""


def backbone_fingerprint(models: Models) -> str:
    """A short SHA-256 of the visual tower's patch embedding, class embedding and projection [ours].

    Distinguishes two backbones of the same architecture (e.g. random weights from another seed, or
    another pretrained tag). Values are hashed at float16 precision so a float32 model and its
    float16 copy share a fingerprint.
    """
    v = models.clip.visual
    h = hashlib.sha256()
    for t in (v.conv1.weight, v.class_embedding, v.proj):
        if t is not None:
            h.update(t.detach().float().cpu().to(torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Adapter(nn.Module):
    """One ``nn.Linear(in_dim, out_dim)`` per layer: ``tokens_l -> fc_l(tokens_l)`` (APRIL-GAN) [ours].

    ``meta`` holds what :func:`save_adapter` writes: ``backbone``, ``pretrained``, ``fingerprint``,
    ``image_size``, ``layers``, ``in_dim``, ``out_dim``, ``training_data``, ``seed``, ``epochs``, ...
    """

    def __init__(self, layers: Sequence[int], in_dim: int, out_dim: int, meta: dict[str, Any] | None = None):
        super().__init__()
        self.layers = tuple(int(i) for i in layers)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.fcs = nn.ModuleList(nn.Linear(self.in_dim, self.out_dim) for _ in self.layers)
        self.meta: dict[str, Any] = dict(meta or {})

    @classmethod
    def for_models(cls, models: Models, cfg: Config | None = None, seed: int | None = None) -> Adapter:
        """A freshly initialised adapter (PyTorch's default Linear init, seeded) fitting ``models`` and ``cfg``."""
        cfg = cfg or models.cfg
        layers = check_layers(models, cfg.clip_layers)
        visual = models.clip.visual
        seed = cfg.seed if seed is None else seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            adapter = cls(layers, visual.transformer.width, visual.output_dim)
        adapter.meta.update(_backbone_meta(models, cfg), seed=seed)
        return adapter.to(_clip_device(models))

    def forward(self, tokens: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(tokens) != len(self.fcs):
            raise AdapterMismatchError(f"The adapter has {len(self.fcs)} layers {self.layers}, got {len(tokens)} token sets.")
        return [fc(t.to(fc.weight.dtype)) for fc, t in zip(self.fcs, tokens, strict=True)]

    def check_compatible(self, models: Models, cfg: Config | None = None, strict_image_size: bool = True) -> None:
        """Raise :class:`AdapterMismatchError` naming every difference between this adapter and ``models``/``cfg``."""
        meta = {**self.meta, "layers": list(self.layers), "in_dim": self.in_dim, "out_dim": self.out_dim}
        _check_fits(meta, models, cfg or models.cfg, strict_image_size, self.meta.get("path", "this adapter"))

    def save(self, path: str | Path) -> Path:
        return save_adapter(self, path)


def _check_fits(meta: dict[str, Any], models: Models, cfg: Config, strict_image_size: bool, src: str) -> None:
    """Raise :class:`AdapterMismatchError` naming every difference between an adapter's metadata and the backbone."""
    want = _backbone_meta(models, cfg)
    have = {**want, **{k: meta[k] for k in want if k in meta}}
    keys = ["backbone", "pretrained", "fingerprint", "in_dim", "out_dim", "layers"]
    if strict_image_size:
        keys.append("image_size")
    diffs = [f"{k}: adapter {have[k]!r} vs now {want[k]!r}" for k in keys if have[k] != want[k]]
    if diffs:
        raise AdapterMismatchError(
            f"{src} does not fit CLIP {cfg.clip_model} ({cfg.clip_pretrained or 'random weights'}) with layers "
            f"{tuple(cfg.clip_layers)} at {cfg.clip_image_size} px: " + "; ".join(diffs) +
            ". Train an adapter for this backbone (`python -m clipsam_lite train-adapter ... --profile "
            f"{cfg.profile}`) or use the profile/layers it was trained with.")


MAX_ADAPTER_DIM = 65536
"""Largest ``in_dim`` / ``out_dim`` an adapter file may declare (ViT-bigG's width is 1664) [ours]."""


def _checked_meta(obj: dict[str, Any], path: Path) -> dict[str, Any]:
    """The file's metadata, refused unless present and complete with positive, bounded sizes. [ours]

    Checked before any layer is allocated: ``in_dim=10**7`` would otherwise ask for 400 TB."""
    meta = obj.get("meta")
    if not isinstance(meta, dict):
        raise AdapterFileError(f"Adapter file {path} has no metadata ('meta' is "
                               f"{'missing' if meta is None else type(meta).__name__}); it was not written by "
                               "save_adapter or is damaged: train it again.")
    missing = [k for k in ("layers", "in_dim", "out_dim") if k not in meta]
    if missing:
        raise AdapterFileError(f"Adapter file {path}: its metadata lacks {missing}; it is damaged or incomplete: "
                               "train it again.")
    for k in ("in_dim", "out_dim"):
        v = meta[k]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_ADAPTER_DIM:
            raise AdapterFileError(f"Adapter file {path}: its metadata says {k}={v!r}, not a size in "
                                   f"[1, {MAX_ADAPTER_DIM}]; the file is damaged or not an adapter: train it again.")
    layers = meta["layers"]
    if (not isinstance(layers, (list, tuple)) or not 1 <= len(layers) <= 256
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in layers)
            or len(set(layers)) != len(layers)):
        raise AdapterFileError(f"Adapter file {path}: its metadata says layers={layers!r}, not a list of distinct "
                               "1-based block indices; the file is damaged: train it again.")
    return dict(meta)


def _checked_state(obj: dict[str, Any], meta: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The weights, refused unless they are exactly the tensors the metadata announces."""
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AdapterFileError(f"Adapter file {path} holds no state dict of tensors: train it again.")
    n, i, o = len(meta["layers"]), meta["in_dim"], meta["out_dim"]
    want = {**{f"fcs.{k}.weight": (o, i) for k in range(n)}, **{f"fcs.{k}.bias": (o,) for k in range(n)}}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if have != want:
        wrong = sorted(set(have) ^ set(want)) or [k for k in want if have[k] != want[k]]
        raise AdapterFileError(f"Adapter file {path}: its weights do not match its own metadata ({n} layers, "
                               f"{i} -> {o}; differing: {wrong[:4]}): train it again.")
    return state


def _backbone_meta(models: Models, cfg: Config) -> dict[str, Any]:
    visual = models.clip.visual
    return {
        "backbone": cfg.clip_model, "pretrained": cfg.clip_pretrained, "fingerprint": backbone_fingerprint(models),
        "image_size": int(cfg.clip_image_size), "layers": list(cfg.clip_layers),
        "in_dim": int(visual.transformer.width), "out_dim": int(visual.output_dim),
    }


def save_adapter(adapter: Adapter, path: str | Path) -> Path:
    """Write the adapter's weights and metadata to ``path`` (a ``torch.save`` dict, parent folders created)."""
    from .safe_io import atomic_write

    path = Path(path)
    meta = {k: v for k, v in adapter.meta.items() if k != "path"}
    meta.update(layers=list(adapter.layers), in_dim=adapter.in_dim, out_dim=adapter.out_dim)
    state = {k: v.detach().cpu() for k, v in adapter.state_dict().items()}
    with atomic_write(path) as tmp:  # a full disk or Ctrl-C leaves no *.tmp and the old file untouched
        torch.save({"format": FORMAT, "version": FORMAT_VERSION, "meta": meta, "state_dict": state}, tmp)
    return path


def load_adapter(path: str | Path, models: Models, cfg: Config | None = None, strict_image_size: bool = True) -> Adapter:
    """Read an adapter written by :func:`save_adapter` and check it fits ``models`` (and ``cfg``'s layers).

    Missing file -> ``FileNotFoundError``; unreadable file -> :class:`AdapterFileError`; another
    backbone / layers / dims / image size -> :class:`AdapterMismatchError` (each naming ``path``).
    """
    from .safe_io import check_regular_file

    path = Path(path)
    if path.exists():
        check_regular_file(path, "adapter", 256 * 1024 ** 2)  # no FIFO, no device, no giant file
    if not path.is_file():
        raise FileNotFoundError(f"Adapter file {path} does not exist. Train one with `python -m clipsam_lite "
                                "train-adapter --dataset ... --root ... --out FILE`, or use head='training_free'.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises zip, pickle, EOF and runtime errors here
        raise AdapterFileError(f"Adapter file {path} ({path.stat().st_size} bytes) cannot be read: {type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}. It is truncated or not an adapter; "
                               "train it again.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise AdapterFileError(f"{path} is not a clipsam-lite adapter file (no format={FORMAT!r} header).")
    if obj.get("version") != FORMAT_VERSION:
        raise AdapterFileError(f"Adapter file {path} has format version {obj.get('version')!r}; this clipsam-lite "
                               f"reads version {FORMAT_VERSION}. Train it again with this version.")
    meta = _checked_meta(obj, path)
    _check_fits(meta, models, cfg or models.cfg, strict_image_size, str(path))  # before any layer is allocated
    state = _checked_state(obj, meta, path)
    adapter = Adapter(meta["layers"], meta["in_dim"], meta["out_dim"], meta={**meta, "path": str(path)})
    try:
        adapter.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise AdapterFileError(f"Adapter file {path}: weights do not match its own metadata "
                               f"({str(e).splitlines()[0]}).") from None
    adapter.check_compatible(models, cfg, strict_image_size=strict_image_size)
    return adapter.to(_clip_device(models)).eval()


# --------------------------------------------------------------------------------------------------
# Losses (APRIL-GAN's focal and dice)
# --------------------------------------------------------------------------------------------------

def focal_loss(probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, eps: float = 1e-5) -> torch.Tensor:
    """Focal loss on probabilities: ``mean(-(1 - p_t)^gamma * log p_t)``, ``probs`` ``B x 2 x H x W``
    (softmax over dim 1), ``target`` ``B x H x W`` in {0, 1} (Lin et al. 2017; APRIL-GAN's form)."""
    p = probs.clamp(eps, 1.0 - eps)
    pt = torch.where(target > 0.5, p[:, 1], p[:, 0])
    return (-(1.0 - pt) ** gamma * torch.log(pt)).mean()


def dice_loss(p: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - mean_b (2 |p t| + 1) / (|p| + |t| + 1)``, per image then averaged (APRIL-GAN's BinaryDiceLoss)."""
    p, t = p.flatten(1), target.flatten(1).to(p.dtype)
    return 1.0 - ((2.0 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def adapter_loss(adapter: Adapter, tokens: Sequence[torch.Tensor], grid: tuple[int, int], text: torch.Tensor,
                 masks: torch.Tensor, cfg: Config) -> tuple[torch.Tensor, float, float]:
    """(loss, focal part, dice part) summed over layers; ``masks`` ``B x S x S`` at ``cfg.map_size``.

    Training keeps softmax-then-upsample whatever ``cfg.map_order`` says (inference's default is APRIL-GAN's
    upsample-then-softmax) [ours, open]: training the tiny profile's adapter in APRIL-GAN's order too was
    measured to weaken its held-out flip consistency (correlation min 0.46 vs >= 0.6), so the switch waits
    for a measurement on real weights."""
    size = masks.shape[-1]
    total_f = total_d = 0.0
    loss = torch.zeros((), device=masks.device)
    for feats in adapter(tokens):
        p1 = upsample_grid(layer_anomaly_probs(feats, text, cfg.logit_scale), grid, size)
        probs = torch.stack([1.0 - p1, p1], dim=1)
        f = focal_loss(probs, masks, cfg.focal_gamma)
        d = dice_loss(p1, masks) + dice_loss(1.0 - p1, 1.0 - masks)
        loss = loss + f + cfg.dice_weight * d
        total_f += float(f.detach())
        total_d += float(d.detach())
    return loss, total_f, total_d


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------

@dataclass
class TrainingHistory:
    """Per-epoch mean losses of :func:`train_adapter` and what it trained on."""

    loss: list[float] = field(default_factory=list)
    focal: list[float] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    cache_seconds: float = 0.0
    n_images: int = 0
    n_anomalous: int = 0
    categories: list[str] = field(default_factory=list)
    tokens_cached: bool = False

    @property
    def seconds(self) -> float:
        return self.cache_seconds + sum(self.epoch_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": self.seconds}


def _is_item(x: Any) -> bool:
    return all(hasattr(x, a) for a in ("image", "mask", "category"))


def _flatten(data: Any) -> list[tuple[Any, int | None]]:
    """(source, index) pairs: an item itself (index None), or a lazy dataset and an index into it."""
    if _is_item(data):
        return [(data, None)]
    if isinstance(data, (list, tuple)):
        return [src for d in data for src in _flatten(d)]
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return [(data, i) for i in range(len(data))]
    raise TypeError(f"train_adapter needs a Dataset, a list of Datasets or a list of Items (with image, mask, "
                    f"category), got {type(data).__name__}.")


def _fetch(src: tuple[Any, int | None]) -> Any:
    obj, i = src
    item = obj if i is None else obj[i]
    if not _is_item(item):
        raise TypeError(f"Expected a data Item (image, mask, category), got {type(item).__name__}.")
    return item


def _mask_tensor(mask: np.ndarray, size: int) -> torch.Tensor:
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    if m.shape[-2:] != (size, size):
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (m[0, 0] >= 0.5).float()


def _describe(items_meta: list[tuple[str, bool]], description: str | None) -> str:
    cats = sorted({c for c, _ in items_meta})
    n_abn = sum(a for _, a in items_meta)
    text = f"{len(items_meta)} images ({n_abn} anomalous) of categories {cats}"
    return f"{description}: {text}" if description else text


def train_adapter(models: Models, datasets_or_items: Any, cfg: Config | None = None, epochs: int | None = None,
                  progress: bool = True, log: Callable[[str], None] | None = print, *, description: str | None = None,
                  cache_tokens: bool | None = None, max_cache_bytes: int = 2 << 30) -> tuple[Adapter, TrainingHistory]:
    """Train an :class:`Adapter` on an auxiliary dataset's masks, the backbone frozen (APRIL-GAN) [ours].

    ``datasets_or_items``: a ``datasets.Dataset`` (lazy sequence of Items), a list of them, or a list of
    Items (``image``, ``mask``, ``category``); each item's prompt uses its category as the object name.
    Adam (lr ``cfg.adapter_lr``, betas (0.5, 0.999) as APRIL-GAN), batch ``cfg.adapter_batch_size``,
    ``epochs`` (default ``cfg.adapter_epochs``); seeded by ``cfg.seed`` (init and shuffling).
    ``cache_tokens``: keep the frozen tokens of every image in memory across epochs (``None``: when they
    fit in ``max_cache_bytes``, else they are recomputed per batch). Prints one loss line per epoch
    through ``log`` and shows tqdm progress bars when ``progress``.
    """
    cfg = cfg or models.cfg
    epochs = cfg.adapter_epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    sources = _flatten(datasets_or_items)
    if not sources:
        raise ValueError("train_adapter got no training images: the auxiliary dataset is empty.")
    say = log or (lambda _s: None)
    layers = check_layers(models, cfg.clip_layers)
    size, visual = cfg.map_size, models.clip.visual
    n_tok = (cfg.clip_image_size // visual.patch_size[0]) * (cfg.clip_image_size // visual.patch_size[1])
    need = len(sources) * (len(layers) * n_tok * visual.transformer.width * 4 + size * size)
    cache = (need <= max_cache_bytes) if cache_tokens is None else bool(cache_tokens)

    adapter = Adapter.for_models(models, cfg)
    with _frozen(models.clip):
        return _train(models, adapter, sources, cfg, epochs, progress, say, description, cache)


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every parameter of ``module``; restore the flags afterwards."""
    flags = {p: p.requires_grad for p in module.parameters()}
    for p in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _train(models: Models, adapter: Adapter, sources: list[tuple[Any, int | None]], cfg: Config, epochs: int,
           progress: bool, say: Callable[[str], None], description: str | None,
           cache: bool) -> tuple[Adapter, TrainingHistory]:
    """The training loop of :func:`train_adapter` (arguments already validated)."""
    from tqdm.auto import tqdm

    dev = _clip_device(models)
    layers = adapter.layers
    mean, std = clip_mean_std(models)
    size, bs = cfg.map_size, max(1, cfg.adapter_batch_size)

    def encode(idx: Sequence[int]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, tuple[int, int], list]:
        items = [_fetch(sources[i]) for i in idx]
        with torch.no_grad():
            batch = preprocess_images([it.image for it in items], cfg.clip_image_size, mean, std, dev)
            pt = patch_tokens(models, batch, layers)
            text = torch.stack([text_matrix(models, object_name_for(it.category)) for it in items])
        masks = torch.stack([_mask_tensor(it.mask, size) for it in items]).to(dev)
        meta = [(it.category, bool(np.asarray(it.mask).any())) for it in items]
        return pt.tokens, text, masks, pt.grid, meta

    hist = TrainingHistory(tokens_cached=cache)
    t0 = time.perf_counter()
    store: dict[str, Any] = {}
    items_meta: list[tuple[str, bool]] = []
    if cache:
        toks, texts, masks = [], [], []
        for s in tqdm(range(0, len(sources), bs), desc="caching frozen CLIP tokens", disable=not progress, leave=False):
            t, tx, m, grid, meta = encode(range(s, min(s + bs, len(sources))))
            toks.append([x.float() for x in t])
            texts.append(tx)
            masks.append(m.bool())
            items_meta += meta
        store = {"tokens": [torch.cat([b[k] for b in toks]) for k in range(len(layers))],
                 "text": torch.cat(texts), "masks": torch.cat(masks), "grid": grid}
    else:
        for i in range(len(sources)):  # read labels only (images are re-read per batch)
            it = _fetch(sources[i])
            items_meta.append((it.category, bool(np.asarray(it.mask).any())))
    hist.cache_seconds = time.perf_counter() - t0
    hist.n_images = len(sources)
    hist.n_anomalous = sum(a for _, a in items_meta)
    hist.categories = sorted({c for c, _ in items_meta})
    say(f"train-adapter: {_describe(items_meta, description)}; {epochs} epochs, batch {bs}, lr {cfg.adapter_lr}, "
        f"layers {layers}, tokens {'cached' if cache else 'recomputed per batch'} ({hist.cache_seconds:.1f}s).")

    opt = torch.optim.Adam(adapter.parameters(), lr=cfg.adapter_lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    adapter.train()
    for epoch in range(1, epochs + 1):
        t_ep = time.perf_counter()
        order = torch.randperm(len(sources), generator=gen).tolist()
        sums = np.zeros(3)
        batches = range(0, len(order), bs)
        for s in tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            idx = order[s:s + bs]
            if cache:
                tokens = [t[idx] for t in store["tokens"]]
                text, masks, grid = store["text"][idx], store["masks"][idx].float(), store["grid"]
            else:
                tokens, text, masks, grid, _ = encode(idx)
            loss, f, d = adapter_loss(adapter, tokens, grid, text, masks, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += np.array([float(loss.detach()), f, d]) * len(idx)
        sums /= len(order)
        hist.loss.append(float(sums[0]))
        hist.focal.append(float(sums[1]))
        hist.dice.append(float(sums[2]))
        hist.epoch_seconds.append(time.perf_counter() - t_ep)
        say(f"epoch {epoch}/{epochs}  loss {sums[0]:.4f}  (focal {sums[1]:.4f}, dice {sums[2]:.4f})  "
            f"{hist.epoch_seconds[-1]:.1f}s")
    adapter.eval()
    adapter.meta.update(
        training_data=_describe(items_meta, description), categories=hist.categories, n_images=hist.n_images,
        epochs=epochs, seed=cfg.seed, lr=cfg.adapter_lr, batch_size=bs, logit_scale=cfg.logit_scale,
        final_loss=hist.loss[-1], created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        clipsam_lite=__version__,
    )
    return adapter, hist


def train_adapter_command(dataset: str, root: str, categories: list[str] | None, profile: str | None,
                          epochs: int | None, out: str, *, progress: bool = True,
                          log: Callable[[str], None] | None = print, clip_checkpoint: str | None = None) -> Path:
    """``python -m clipsam_lite train-adapter``: train an adapter on an auxiliary dataset and save it to ``out``.

    Loads the profile's models and the dataset's ``test`` split (the split with masks, as APRIL-GAN
    trains on the other dataset's test set); for ``folder`` datasets only images whose label is known
    (a mask, or a normal image) are used and ``categories`` may name one object. Returns the written path.
    """
    from .datasets import load_dataset
    from .models import load_models
    from .safe_io import check_output_file

    say = log or (lambda _s: None)
    check_output_file(out)  # a folder or an unwritable place is refused now, not after the training
    if dataset == "folder":
        if categories and len(categories) > 1:
            raise ValueError(f"A folder dataset holds one object; give at most one --categories name, got {categories}.")
        ds = load_dataset(dataset, root, category=categories[0] if categories else None, split="test")
        known = [i for i, r in enumerate(ds.records) if r.label in (0, 1)]
        if len(known) < len(ds):
            say(f"train-adapter: skipping {len(ds) - len(known)} images of {root} with unknown labels (no mask).")
        ds = ds.subset(known)
    else:
        ds = load_dataset(dataset, root, category=categories or None, split="test")
    if len(ds) == 0:
        raise ValueError(f"No usable test images in the {dataset} dataset at {root}"
                         f"{f' for categories {categories}' if categories else ''}; the adapter needs images with masks.")
    models = load_models(profile, clip_checkpoint=clip_checkpoint, with_sam=False)  # the adapter needs CLIP only
    say(models.banner())
    desc = f"{dataset} test split at {root}" + (f", categories {list(categories)}" if categories else "")
    adapter, _ = train_adapter(models, ds, models.cfg, epochs=epochs, progress=progress, log=log, description=desc)
    path = save_adapter(adapter, out)
    say(f"Wrote adapter to {path} ({adapter.meta['training_data']}; backbone {adapter.meta['backbone']}).")
    return path
