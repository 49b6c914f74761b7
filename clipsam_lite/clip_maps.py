"""The CLIP anomaly map ``S_a`` (METHOD.md, step 1).

Taught in notebook 01 (sections 2-7: prompts, patch tokens, the heads, per-layer maps, the image score).

For one image and its object name (e.g. ``"bottle"``):

1. **Text** [paper: CLIP text prompts; ensembles ours, following WinCLIP / APRIL-GAN]: every
   (state x template) sentence is embedded by CLIP's text tower and L2-normalised; the sentences of
   the normal states and of the abnormal states are averaged and re-normalised: ``T`` (2 x D, row 0
   normal, row 1 abnormal). :func:`text_matrix`.
2. **Patch tokens** [ours, following APRIL-GAN]: the whole image is resized to
   ``clip_image_size`` x ``clip_image_size`` (no centre crop, so every pixel is covered) and normalised
   with CLIP's mean/std; ONE forward of the visual tower returns the tokens of the configured 1-based
   blocks (CLS dropped, row-major ``h x w`` grid). :func:`preprocess_images`, :func:`patch_tokens`.
3. **Head**: ``training_free`` (CLIP's own ``ln_post`` and ``proj``, optionally a value-value attention
   path in the last blocks) or ``adapter`` (one ``nn.Linear`` per layer, trained; see
   :mod:`clipsam_lite.adapter`). :func:`training_free_head`. This module takes a trained head as an
   argument (anything shaped like :class:`Head`) and never imports the adapter module: the adapter
   depends on the CLIP map code, not the other way round.
4. **Map** per layer ``l``: the two-channel logits ``logit_scale * normalize(tokens_l) @ T^T`` -> grid ->
   bilinear upsample to the working resolution -> softmax -> abnormal channel (APRIL-GAN's order;
   ``Config.map_order`` switches to softmax first); mean over layers; optional Gaussian smoothing
   (AnomalyCLIP); bilinear resize back to the image's own ``H x W``. :func:`layer_anomaly_map`,
   :func:`combine_layer_maps`, :func:`gaussian_smooth`.
5. **Image score**: CLIP's global image embedding against ``T`` (softmax abnormal probability),
   optionally mixed with the map's maximum. :func:`global_anomaly_scores`, :func:`image_scores_from`.

:func:`anomaly_maps` runs all of it on a list of images of any sizes and returns a :class:`ClipMaps`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .models import encoder_autocast

if TYPE_CHECKING:  # pragma: no cover
    from .models import Models


class Head(Protocol):
    """What :func:`anomaly_maps` needs of a trained head (``cfg.head == "adapter"``), e.g.
    :class:`clipsam_lite.adapter.Adapter`: per-layer features from per-layer patch tokens, and a
    check that it was trained for these backbones and layers."""

    def __call__(self, tokens: Sequence[torch.Tensor]) -> list[torch.Tensor]: ...

    def check_compatible(self, models: Models, cfg: Config) -> None: ...

    def to(self, device: torch.device) -> Any: ...

    def eval(self) -> Any: ...

__all__ = [
    "NORMAL_STATES", "ABNORMAL_STATES", "TEMPLATES", "Head", "ClipMaps", "PatchTokens", "object_name_for",
    "prompt_sentences", "text_matrix", "clear_text_cache", "check_image", "clip_mean_std", "preprocess_images",
    "check_layers", "patch_tokens", "head_features", "linear_interp_matrix", "training_free_head", "layer_anomaly_probs", "upsample_grid",
    "MAP_ORDERS", "layer_anomaly_map", "combine_layer_maps",
    "gaussian_kernel1d", "gaussian_smooth", "resize_map", "global_anomaly_scores", "image_scores_from",
    "anomaly_maps",
]

# --------------------------------------------------------------------------------------------------
# 1. Prompts and the text matrix T
# --------------------------------------------------------------------------------------------------

NORMAL_STATES: tuple[str, ...] = (
    "{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
    "{} without damage",
)
"""The 7 normal states of METHOD.md (WinCLIP's state list) [ours, following WinCLIP]."""

ABNORMAL_STATES: tuple[str, ...] = (
    "damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage",
)
"""The 5 abnormal states of METHOD.md [ours, following WinCLIP]."""

TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a bright photo of a {}.", "a dark photo of the {}.",
    "a photo of my {}.", "a photo of the cool {}.", "a close-up photo of a {}.",
    "a black and white photo of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a photo of one {}.", "a close-up photo of the {}.", "a photo of a {}.",
    "a low resolution photo of a {}.", "a photo of a large {}.", "a blurry photo of a {}.",
    "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a photo of the small {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "a dark photo of a {}.",
    "a photo of a cool {}.", "a photo of a small {}.", "there is a {} in the scene.",
    "there is the {} in the scene.", "this is a {} in the scene.", "this is the {} in the scene.",
    "this is one {} in the scene.",
)
"""The 35 CLIP ImageNet-style templates used by WinCLIP and APRIL-GAN [ours, following them]."""

_TEXT_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()


def object_name_for(category: str) -> str:
    """The object name put into the prompts for a dataset category: ``"metal_nut"`` -> ``"metal nut"`` [ours]."""
    if not isinstance(category, str) or not category.strip():
        raise ValueError(f"An object name must be a non-empty string, got {category!r}.")
    return " ".join(category.replace("_", " ").split())


def prompt_sentences(object_name: str) -> tuple[list[str], list[str]]:
    """(normal sentences, abnormal sentences): every state x every template, for ``object_name``.

    7 x 35 = 245 normal and 5 x 35 = 175 abnormal sentences [ours, following WinCLIP / APRIL-GAN].
    """
    name = object_name_for(object_name)
    normal = [t.format(s.format(name)) for s in NORMAL_STATES for t in TEMPLATES]
    abnormal = [t.format(s.format(name)) for s in ABNORMAL_STATES for t in TEMPLATES]
    return normal, abnormal


def _clip_device(models: Models) -> torch.device:
    return next(models.clip.parameters()).device


def _encode_sentences(models: Models, sentences: list[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised CLIP text embeddings (N x D), tokenised and encoded in batches."""
    dev = _clip_device(models)
    out = []
    for i in range(0, len(sentences), batch_size):
        tokens = models.tokenizer(sentences[i:i + batch_size]).to(dev)
        out.append(F.normalize(models.clip.encode_text(tokens).float(), dim=-1))
    return torch.cat(out)


def text_matrix(models: Models, object_name: str) -> torch.Tensor:
    """``T`` (2 x D) for ``object_name``: row 0 normal, row 1 abnormal (METHOD.md step 1).

    Each sentence embedding is L2-normalised, averaged per state group (normal / abnormal), and the
    mean re-normalised. Cached per (CLIP model identity, object name); the cached tensor is returned,
    so do not modify it in place. Computed under ``torch.no_grad`` (not inference mode), so the result
    may enter the adapter's training graph.
    """
    name = object_name_for(object_name)
    cache = _TEXT_CACHE.setdefault(models.clip, {})
    if name not in cache:
        normal, abnormal = prompt_sentences(name)
        # Never an inference tensor (even when called inside anomaly_maps' inference_mode): the cached
        # matrix must also be usable in the adapter's training graph.
        with torch.inference_mode(False), torch.no_grad():
            emb = _encode_sentences(models, normal + abnormal)
            rows = torch.stack([emb[:len(normal)].mean(0), emb[len(normal):].mean(0)])
            cache[name] = F.normalize(rows, dim=-1)
    return cache[name]


def clear_text_cache(models: Models | None = None) -> None:
    """Forget cached text matrices (of one model, or all). Needed only if CLIP's weights change in place."""
    if models is None:
        _TEXT_CACHE.clear()
    else:
        _TEXT_CACHE.pop(models.clip, None)


# --------------------------------------------------------------------------------------------------
# 2. Images -> patch tokens (one backbone forward per batch)
# --------------------------------------------------------------------------------------------------

def check_image(image: Any, index: int | None = None) -> np.ndarray:
    """Validate an image: an ``H x W x 3`` ``uint8`` RGB numpy array (what ``images.read_image`` returns)."""
    where = "image" if index is None else f"image {index}"
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where} must be a numpy array (H x W x 3, uint8 RGB), got {type(image).__name__}. "
                        "Read files with clipsam_lite.images.read_image.")
    if image.dtype != np.uint8:
        raise ValueError(f"{where} has dtype {image.dtype}; expected uint8 RGB in 0..255. Convert with "
                         "(np.clip(x, 0, 1) * 255).astype(np.uint8) for floats in [0, 1], or use images.read_image.")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where} has shape {image.shape}; expected H x W x 3 (RGB). Grayscale or RGBA images "
                         "must be converted to RGB first (images.read_image does this).")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where} is empty (shape {image.shape}).")
    return image


def clip_mean_std(models: Models) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """CLIP's normalisation (mean, std) per RGB channel.

    First from the pretrained tag's own config (``open_clip.get_pretrained_cfg(clip_model, clip_pretrained)``):
    the weights were trained with it, also when they come from a local ``--clip-checkpoint``, where
    open_clip's model would carry its architecture's default (OpenAI's) instead (issue 11.9). Then the
    model's preprocess config; OpenAI's values last.
    """
    mcfg = getattr(models, "cfg", None)
    tag = getattr(mcfg, "clip_pretrained", None)
    if tag:
        import open_clip

        pre = open_clip.get_pretrained_cfg(mcfg.clip_model, tag) or {}
        if pre.get("mean") and pre.get("std"):
            return tuple(float(v) for v in pre["mean"]), tuple(float(v) for v in pre["std"])
    cfg = getattr(models.clip.visual, "preprocess_cfg", None) or {}
    if "mean" in cfg and "std" in cfg:
        return tuple(cfg["mean"]), tuple(cfg["std"])
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)


def preprocess_images(images: Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float],
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """``B x 3 x size x size`` float tensor: each whole image resized (bicubic, antialiased, no crop) and
    normalised with CLIP's ``mean``/``std`` [ours: no centre crop, so the map covers every pixel]."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(3, 1, 1)
    out = []
    for i, img in enumerate(images):
        x = torch.from_numpy(np.ascontiguousarray(check_image(img, i))).to(device)
        x = x.permute(2, 0, 1)[None].float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        out.append(((x[0].clamp(0, 255) / 255.0) - m) / s)
    return torch.stack(out)


@dataclass
class PatchTokens:
    """What one visual forward returns for a batch.

    ``tokens[i]`` is ``B x (h*w) x width``: the output of 1-based block ``layers[i]`` (before ``ln_post``),
    CLS token removed, patches in row-major order (token ``r * w + c`` is the patch in grid row ``r``,
    column ``c``). ``global_embedding`` is CLIP's image embedding (``ln_post(CLS) @ proj``), ``B x D``.
    """

    layers: tuple[int, ...]
    tokens: list[torch.Tensor]
    grid: tuple[int, int]
    global_embedding: torch.Tensor


def _n_blocks(visual: torch.nn.Module) -> int:
    return len(visual.transformer.resblocks)


def check_layers(models: Models, layers: Sequence[int]) -> tuple[int, ...]:
    """The 1-based layers, validated against the backbone's depth."""
    n = _n_blocks(models.clip.visual)
    layers = tuple(int(i) for i in layers)
    bad = [i for i in layers if not 1 <= i <= n]
    if not layers or bad:
        raise ValueError(f"clip_layers {layers} must be 1-based block indices in 1..{n} for {models.cfg.clip_model} "
                         f"({n} blocks); bad: {bad}.")
    return layers


def _vv_attention(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The value-value attention branch of one block: ``ls_1(out_proj(softmax(v v^T / sqrt(d)) v))``, with
    ``v`` the value projection of ``ln_1(x)``, per head (CLIP Surgery) [ours: exact form documented here]."""
    attn = block.attn
    if not isinstance(attn, torch.nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise ValueError(f"vv_attention needs open_clip's standard ResidualAttentionBlock "
                         f"(nn.MultiheadAttention with a packed in_proj); this backbone has {type(attn).__name__}. "
                         "Set vv_attention=False.")
    width, heads = attn.embed_dim, attn.num_heads
    y = block.ln_1(x)
    w_v = attn.in_proj_weight[2 * width:]
    b_v = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    v = F.linear(y, w_v, b_v)                                  # B x N x width
    b, n, _ = v.shape
    v = v.view(b, n, heads, width // heads).transpose(1, 2)   # B x heads x N x d
    a = torch.softmax(v @ v.transpose(-1, -2) * (width // heads) ** -0.5, dim=-1)
    o = (a @ v).transpose(1, 2).reshape(b, n, width)
    return block.ls_1(attn.out_proj(o))


def patch_tokens(models: Models, batch: torch.Tensor, layers: Sequence[int], vv_last_layers: int = 0) -> PatchTokens:
    """Patch tokens of the 1-based ``layers`` and the global embedding, from ONE visual forward.

    Uses open_clip's ``VisionTransformer.forward_intermediates(indices=[l - 1 ...], output_fmt="NLC")``,
    which returns the raw block outputs with the prefix (CLS) token split off, and the pooled, projected
    image embedding. No grad mode is set here: callers choose (inference_mode for maps, no_grad to
    cache tokens for training).

    ``vv_last_layers = k > 0`` [ours, CLIP Surgery style]: forward pre-hooks record the inputs ``x_j`` of
    the last ``k`` blocks during the same forward; a second stream starts at the input of the first of
    them and adds, block by block, only the value-value attention branch (:func:`_vv_attention`, no
    MLP): ``s = x_first + sum_{j <= l} vv_j(x_j)``. Requested layers among those last ``k`` blocks
    return ``s`` after block ``l`` instead of the ordinary output; earlier layers and the global
    embedding are unchanged.
    """
    visual = models.clip.visual
    if not hasattr(visual, "forward_intermediates"):
        import open_clip

        raise RuntimeError(f"open_clip {open_clip.__version__} has no VisionTransformer.forward_intermediates; "
                           "install open_clip_torch 3.x (see requirements.txt).")
    layers = check_layers(models, layers)
    n = _n_blocks(visual)
    if not 0 <= vv_last_layers <= n:
        raise ValueError(f"vv_last_layers must lie in 0..{n} (the backbone's depth), got {vv_last_layers}.")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"batch must be B x 3 x S x S (from preprocess_images), got {tuple(batch.shape)}.")
    vv_blocks = list(range(n - vv_last_layers, n))
    captured: dict[int, torch.Tensor] = {}
    handles = []
    batch_first = getattr(visual.transformer, "batch_first", True)
    for j in vv_blocks:
        def hook(module, args, j=j):
            x = args[0]
            captured[j] = x if batch_first else x.transpose(0, 1)
        handles.append(visual.transformer.resblocks[j].register_forward_pre_hook(hook))
    try:
        out = visual.forward_intermediates(batch, indices=[i - 1 for i in layers], output_fmt="NLC")
    finally:
        for h in handles:
            h.remove()
    tokens = list(out["image_intermediates"])
    if vv_blocks:
        s = captured[vv_blocks[0]]
        stream: dict[int, torch.Tensor] = {}
        for j in vv_blocks:
            s = s + _vv_attention(visual.transformer.resblocks[j], captured[j])
            stream[j + 1] = s[:, 1:]  # 1-based layer j + 1, CLS dropped
        tokens = [stream.get(layer, t) for layer, t in zip(layers, tokens, strict=True)]
    gh, gw = batch.shape[-2] // visual.patch_size[0], batch.shape[-1] // visual.patch_size[1]
    if tokens[0].shape[1] != gh * gw:
        raise RuntimeError(f"Expected {gh * gw} patch tokens, got {tokens[0].shape[1]}: prefix tokens not split?")
    return PatchTokens(layers=layers, tokens=tokens, grid=(gh, gw), global_embedding=out["image_features"])


# --------------------------------------------------------------------------------------------------
# 3. Heads, 4. maps
# --------------------------------------------------------------------------------------------------

def training_free_head(models: Models, tokens: torch.Tensor) -> torch.Tensor:
    """Training-free head: ``ln_post(tokens) @ proj`` with CLIP's own final LayerNorm and projection
    (``... x width`` -> ``... x D``), exactly what CLIP applies to its CLS token [ours, following WinCLIP]."""
    visual = models.clip.visual
    if visual.proj is None:
        raise ValueError("This CLIP visual tower has no projection (proj is None); use head='adapter'.")
    return visual.ln_post(tokens) @ visual.proj


def layer_anomaly_probs(features: torch.Tensor, text: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """``softmax(logit_scale * normalize(features) @ T^T)[..., 1]`` (METHOD.md step 1).

    ``features``: ``B x N x D``; ``text``: ``2 x D`` or ``B x 2 x D`` (rows normal, abnormal; unit norm).
    Returns ``B x N`` abnormal probabilities in [0, 1].
    """
    f = F.normalize(features.float(), dim=-1)
    t = text.float()
    logits = logit_scale * (f @ t.transpose(-1, -2))  # B x N x 2 (t broadcasts when 2 x D)
    return torch.softmax(logits, dim=-1)[..., 1]


_INTERP_CACHE: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}


def linear_interp_matrix(n: int, size: int, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``size x n`` matrix ``U`` with ``U @ v`` = 1-D linear interpolation of ``v`` to ``size`` samples,
    ``align_corners=False`` (exactly ``F.interpolate(mode="linear")``, built by interpolating the basis)."""
    key = (n, size, str(device), dtype)
    if key not in _INTERP_CACHE:
        with torch.inference_mode(False):  # cached for training too: never an inference tensor
            eye = torch.eye(n, dtype=torch.float64)[None]  # 1 x n(channels) x n(samples)
            u = F.interpolate(eye, size=size, mode="linear", align_corners=False)[0].T  # size x n
            _INTERP_CACHE[key] = u.to(device=device, dtype=dtype).contiguous()
    return _INTERP_CACHE[key]


def upsample_grid(probs: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """``B x (h*w)`` row-major patch values -> ``B x size x size``, bilinear (``align_corners=False``:
    each patch value sits at its patch's centre).

    Computed as ``U_h @ G @ U_w^T`` with the separable interpolation matrices of
    :func:`linear_interp_matrix`: the same numbers as ``F.interpolate(mode="bilinear")``, but its
    backward pass (adapter training) is a fast matrix product instead of CPU scatter-adds.
    """
    b = probs.shape[0]
    g = probs.reshape(b, grid[0], grid[1])
    uh = linear_interp_matrix(grid[0], size, g.device, g.dtype)
    uw = linear_interp_matrix(grid[1], size, g.device, g.dtype)
    return uh @ g @ uw.T


MAP_ORDERS = ("upsample_softmax", "softmax_upsample")


def layer_anomaly_map(features: torch.Tensor, text: torch.Tensor, logit_scale: float, grid: tuple[int, int],
                      size: int, order: str = "upsample_softmax") -> torch.Tensor:
    """One layer's ``B x size x size`` abnormal-probability map from ``B x (h*w) x D`` head features (METHOD.md step 1).

    ``order="upsample_softmax"`` (default, APRIL-GAN ``test.py``: ``F.interpolate`` the two-channel logits,
    then softmax): both channels of ``logit_scale * normalize(features) @ T^T`` are upsampled bilinearly
    and the softmax is taken per pixel. Interpolation keeps ``align_corners=False`` (each patch value at
    its patch's centre, as everywhere in this package) [ours: the order follows APRIL-GAN, the corner
    convention is ours]. ``"softmax_upsample"``
    (our earlier order, kept for comparison): softmax on the grid, then the abnormal probability is
    upsampled. The two differ up to ~0.2 where neighbouring patches disagree strongly (issue 11.6).
    """
    if order == "softmax_upsample":
        return upsample_grid(layer_anomaly_probs(features, text, logit_scale), grid, size)
    if order != "upsample_softmax":
        raise ValueError(f"Unknown map order {order!r}; choose one of {list(MAP_ORDERS)}.")
    f = F.normalize(features.float(), dim=-1)
    logits = logit_scale * (f @ text.float().transpose(-1, -2))  # B x N x 2
    b = logits.shape[0]
    up = upsample_grid(logits.permute(0, 2, 1).reshape(b * 2, -1), grid, size).view(b, 2, size, size)
    return torch.softmax(up, dim=1)[:, 1]


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``int(4 * sigma + 0.5)`` (scipy.ndimage's truncate=4)."""
    radius = int(4.0 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``B x H x W`` maps, ``sigma`` in pixels, mirror padding (equals
    ``scipy.ndimage.gaussian_filter(..., mode="mirror", truncate=4)``); ``sigma == 0`` returns the input
    [ours, AnomalyCLIP's smoothing]."""
    if sigma <= 0:
        return maps
    k = gaussian_kernel1d(sigma).to(maps.device, maps.dtype)
    r = k.numel() // 2
    h, w = maps.shape[-2:]
    if r >= min(h, w):  # mirror padding needs r < size: truncate (and renormalise) such a wide kernel
        c, r = r, min(h, w) - 1
        k = k[c - r:c + r + 1] / k[c - r:c + r + 1].sum()
    x = maps[:, None]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return x[:, 0]


def combine_layer_maps(layer_maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """``B x L x S x S`` per-layer maps -> mean over layers -> Gaussian smoothing -> ``B x S x S`` in [0, 1]."""
    return gaussian_smooth(layer_maps.mean(dim=1), sigma).clamp(0.0, 1.0)


def resize_map(m: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """An ``S x S`` map back to an image's own ``H x W`` (bilinear, antialiased when shrinking)."""
    if tuple(m.shape[-2:]) == tuple(hw):
        return m
    return F.interpolate(m[None, None], size=hw, mode="bilinear", align_corners=False, antialias=True)[0, 0]


def global_anomaly_scores(global_embedding: torch.Tensor, text: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """Image score from CLIP's global image embedding: ``softmax(logit_scale * g @ T^T)[abnormal]``, ``B``."""
    return layer_anomaly_probs(global_embedding[:, None], text, logit_scale)[:, 0]


def image_scores_from(global_scores: np.ndarray, map_max: np.ndarray, cfg: Config) -> np.ndarray:
    """``global``: the global score; ``global_max_mix``: ``mix * global + (1 - mix) * max(S_a)`` [ours]."""
    if cfg.image_score_mode == "global":
        return np.asarray(global_scores, dtype=np.float32)
    w = cfg.image_score_mix
    return (w * np.asarray(global_scores) + (1.0 - w) * np.asarray(map_max)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# 5. The entry point
# --------------------------------------------------------------------------------------------------

@dataclass
class ClipMaps:
    """``S_a`` for a list of images.

    ``maps[i]``: float32 ``H_i x W_i`` in [0, 1] (image ``i``'s own size); ``image_scores``: ``(N,)``;
    ``layer_maps[i]``: float32 ``L x S x S`` per-layer maps at the working resolution ``S = cfg.map_size``
    (before averaging and smoothing); ``global_scores``: ``(N,)`` CLIP global-embedding scores;
    ``working_maps[i]``: the averaged, smoothed ``S x S`` map before resizing to the image.
    """

    maps: list[np.ndarray]
    image_scores: np.ndarray
    layer_maps: list[np.ndarray]
    global_scores: np.ndarray
    working_maps: list[np.ndarray]
    layers: tuple[int, ...]
    head: str


def _object_names(object_names: str | Sequence[str], n: int) -> list[str]:
    if isinstance(object_names, str):
        return [object_names] * n
    names = list(object_names)
    if len(names) != n:
        raise ValueError(f"Got {n} images but {len(names)} object names; give one name, or one per image.")
    return names


def head_features(models: Models, pt: PatchTokens, cfg: Config, adapter: Head | None) -> list[torch.Tensor]:
    """Per-layer ``B x N x D`` features from the configured head."""
    if cfg.head == "adapter":
        return adapter(pt.tokens)
    return [training_free_head(models, t) for t in pt.tokens]


def anomaly_maps(models: Models, images: list[np.ndarray], object_names: str | list[str], cfg: Config | None = None,
                 adapter: Head | None = None) -> ClipMaps:
    """``S_a`` for each image (METHOD.md step 1), batched by ``cfg.batch_size`` with one backbone forward per batch.

    ``object_names``: one name for all images or one per image (``"metal_nut"`` is read as
    ``"metal nut"``). ``cfg`` defaults to ``models.cfg``. ``cfg.head == "adapter"`` needs ``adapter``
    (train one with :func:`clipsam_lite.adapter.train_adapter` or load one with
    :func:`clipsam_lite.adapter.load_adapter`), else use ``cfg.replace(head="training_free")``.
    """
    cfg = cfg or models.cfg
    if isinstance(images, np.ndarray):
        images = [images] if images.ndim == 3 else list(images)
    images = list(images)
    if not images:
        raise ValueError("anomaly_maps got no images.")
    for i, img in enumerate(images):
        check_image(img, i)
    names = _object_names(object_names, len(images))
    layers = check_layers(models, cfg.clip_layers)
    if cfg.head == "adapter":
        if adapter is None:
            raise ValueError("cfg.head='adapter' but no adapter was given: train one (clipsam_lite.adapter."
                             "train_adapter, or `python -m clipsam_lite train-adapter`), load one "
                             "(clipsam_lite.adapter.load_adapter), or use cfg.replace(head='training_free').")
        adapter.check_compatible(models, cfg)
    vv = cfg.vv_last_layers if (cfg.head == "training_free" and cfg.vv_attention) else 0
    dev = _clip_device(models)
    mean, std = clip_mean_std(models)
    size = cfg.map_size
    maps, layer_maps, working, g_scores = [], [], [], []
    if adapter is not None:
        adapter.to(dev).eval()
    with torch.inference_mode():
        for start in range(0, len(images), max(1, cfg.batch_size)):
            chunk = images[start:start + max(1, cfg.batch_size)]
            batch = preprocess_images(chunk, cfg.clip_image_size, mean, std, dev)
            with encoder_autocast(cfg.precision, dev):
                pt = patch_tokens(models, batch, layers, vv)
            pt.tokens = [t.float() for t in pt.tokens]
            pt.global_embedding = pt.global_embedding.float()
            text = torch.stack([text_matrix(models, n) for n in names[start:start + len(chunk)]])  # B x 2 x D
            feats = head_features(models, pt, cfg, adapter)
            lm = torch.stack([layer_anomaly_map(f, text, cfg.logit_scale, pt.grid, size, cfg.map_order)
                              for f in feats], dim=1)  # B x L x S x S
            sa = combine_layer_maps(lm, cfg.smoothing_sigma)
            g_scores.append(global_anomaly_scores(pt.global_embedding, text, cfg.logit_scale).cpu())
            for i, img in enumerate(chunk):
                maps.append(resize_map(sa[i], img.shape[:2]).clamp(0, 1).cpu().numpy().astype(np.float32))
                layer_maps.append(lm[i].cpu().numpy().astype(np.float32))
                working.append(sa[i].cpu().numpy().astype(np.float32))
    global_scores = torch.cat(g_scores).numpy().astype(np.float32)
    map_max = np.array([w.max() for w in working], dtype=np.float32)
    return ClipMaps(maps=maps, image_scores=image_scores_from(global_scores, map_max, cfg), layer_maps=layer_maps,
                    global_scores=global_scores, working_maps=working, layers=layers, head=cfg.head)
