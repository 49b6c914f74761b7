"""A batched pass of SAM's prompt encoder and mask decoder, and the losses that train them. [ours]

Taught in notebook 00 (section "The mini profile"); it trains the model that METHOD.md step 4 (CPS)
prompts. ``segment_anything``'s ``MaskDecoder.predict_masks`` repeats the image embedding once per
prompt, assuming one image per call. Training prompts many targets of many images at once, so
:func:`decode_batch` runs the *same submodules* (prompt encoder layers, two-way transformer,
upscaling, hypernetwork MLPs, IoU head) on one embedding row per prompt. For one prompt it computes
exactly what ``SamPredictor.predict`` computes (tested), so the trained model is used through
``SamPredictor`` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PromptBatch", "decode_batch", "mask_losses", "iou_of", "assign_nested"]


@dataclass
class PromptBatch:
    """Prompts for N targets, in SAM's input frame (pixels of the ``img_size`` square).

    ``coords`` ``(N, P, 2)`` float (x, y) and ``labels`` ``(N, P)`` long: 1 positive, 0 negative,
    -1 padding ("not a point", as SamPredictor pads a box-less prompt). ``boxes`` ``(N, 4)`` float
    x0, y0, x1, y1 with ``has_box`` ``(N,)`` bool; ``mask_input`` ``(N, 1, m, m)`` low-res logits
    with ``has_mask`` ``(N,)`` bool. ``image_index`` ``(N,)`` long: which embedding row each prompt uses.
    """

    coords: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    has_box: torch.Tensor
    mask_input: torch.Tensor
    has_mask: torch.Tensor
    image_index: torch.Tensor


def _sparse_embeddings(sam: torch.nn.Module, b: PromptBatch) -> torch.Tensor:
    """Points (+ box corners where ``has_box``) as SAM's prompt encoder embeds them; others padded.

    Token order does not matter to the two-way transformer (no positional index over tokens), so a
    prompt without a box gets two "not a point" tokens where the corners would be: the same set of
    tokens SamPredictor builds, plus padding tokens.
    """
    pe = sam.prompt_encoder
    size = pe.input_image_size
    pts = pe.pe_layer.forward_with_coords(b.coords + 0.5, size)
    not_a_point = pe.not_a_point_embed.weight.reshape(1, 1, -1)
    lab = b.labels[..., None]
    pts = torch.where(lab == -1, not_a_point, pts)
    pts = pts + (lab == 0) * pe.point_embeddings[0].weight.reshape(1, 1, -1)
    pts = pts + (lab == 1) * pe.point_embeddings[1].weight.reshape(1, 1, -1)
    corners = pe.pe_layer.forward_with_coords(b.boxes.reshape(-1, 2, 2) + 0.5, size)
    corners = corners + torch.stack([pe.point_embeddings[2].weight[0], pe.point_embeddings[3].weight[0]])[None]
    corners = torch.where(b.has_box[:, None, None], corners, not_a_point.expand_as(corners))
    return torch.cat([pts, corners], dim=1)


def _dense_embeddings(sam: torch.nn.Module, b: PromptBatch, n: int) -> torch.Tensor:
    pe = sam.prompt_encoder
    h, w = pe.image_embedding_size
    no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(n, -1, h, w)
    if not bool(b.has_mask.any()):
        return no_mask
    masked = pe.mask_downscaling(b.mask_input)
    return torch.where(b.has_mask[:, None, None, None], masked, no_mask)


def decode_batch(sam: torch.nn.Module, features: torch.Tensor, b: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """All four mask tokens for N prompts: low-res logits ``(N, 4, m, m)`` and predicted IoU ``(N, 4)``.

    Output 0 is SAM's single-mask token (``multimask_output=False``), outputs 1-3 the multimask
    tokens. ``features`` is the encoder output ``(B, C, h, w)``; prompt i reads row ``image_index[i]``.
    """
    dec = sam.mask_decoder
    sparse = _sparse_embeddings(sam, b)
    n = sparse.shape[0]
    dense = _dense_embeddings(sam, b, n)
    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat([out_tokens[None].expand(n, -1, -1), sparse], dim=1)
    src = features[b.image_index] + dense
    pos = sam.prompt_encoder.get_dense_pe().expand(n, -1, -1, -1)
    _, c, h, w = src.shape
    hs, src = dec.transformer(src, pos, tokens)
    iou_out = hs[:, 0, :]
    mask_out = hs[:, 1: 1 + dec.num_mask_tokens, :]
    up = dec.output_upscaling(src.transpose(1, 2).reshape(n, c, h, w))
    hyper = torch.stack([dec.output_hypernetworks_mlps[i](mask_out[:, i, :]) for i in range(dec.num_mask_tokens)], 1)
    nb, cu, hu, wu = up.shape
    masks = (hyper @ up.reshape(nb, cu, hu * wu)).reshape(nb, -1, hu, wu)
    return masks, dec.iou_prediction_head(iou_out)


def iou_of(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of boolean masks over the last two axes (empty vs empty counts as 1)."""
    inter = (pred & target).flatten(-2).sum(-1).float()
    union = (pred | target).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def mask_losses(logits: torch.Tensor, target: torch.Tensor, focal_weight: float = 20.0,
                gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """SAM's mask loss, ``focal_weight * focal + dice`` per mask (SAM paper: 20:1), no reduction.

    ``logits`` ``(..., H, W)`` at the image's resolution, ``target`` bool ``(..., H, W)`` broadcastable.
    """
    t = target.float().expand_as(logits)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    focal = (ce * (1 - p_t) ** gamma * (alpha * t + (1 - alpha) * (1 - t))).flatten(-2).mean(-1)
    inter = (p * t).flatten(-2).sum(-1)
    dice = 1 - (2 * inter + 1) / (p.flatten(-2).sum(-1) + t.flatten(-2).sum(-1) + 1)
    return focal_weight * focal + dice


_PAIRS = [(a, b) for a in range(3) for b in range(3) if a != b]


def assign_nested(loss_small: torch.Tensor, loss_large: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best assignment of two nested targets (the defect, the whole object) to two distinct outputs of three.

    ``loss_small``, ``loss_large`` ``(N, 3)``: each multimask output's loss against either target.
    Returns (loss ``(N,)`` = the smallest sum over ordered pairs of distinct outputs, index of the
    output given the small target, of the one given the large target) [ours: SAM's min-over-3 loss
    extended to a set of valid answers, so that one click offers both granularities].
    """
    sums = torch.stack([loss_small[:, a] + loss_large[:, b] for a, b in _PAIRS], dim=1)
    best = sums.argmin(dim=1)
    idx = torch.tensor(_PAIRS, device=loss_small.device)[best]
    return sums.gather(1, best[:, None])[:, 0], idx[:, 0], idx[:, 1]
