"""A batched pass of SAM's prompt encoder and mask decoder, and the losses that train them. [ours]

Taught in notebook 00 (section "9. The miniature world", "The mini profile"); it trains the model that METHOD.md step 4 (CPS)
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
    -1 unused (prompts with fewer than P points). ``boxes`` ``(N, 4)`` float
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


def _sparse_embeddings(sam: torch.nn.Module, coords: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor | None
                       ) -> torch.Tensor:
    """SAM's prompt encoder on a group of prompts with the same structure, exactly as SamPredictor calls it:
    ``k`` points plus one padding point without a box, ``k`` points and the two corners with one."""
    pe = sam.prompt_encoder
    parts = []
    if boxes is None:
        n = coords.shape[0]
        coords = torch.cat([coords, torch.zeros(n, 1, 2)], dim=1)
        labels = torch.cat([labels, -torch.ones(n, 1, dtype=labels.dtype)], dim=1)
    if coords.shape[1]:
        parts.append(pe._embed_points(coords, labels, pad=False))
    if boxes is not None:
        parts.append(pe._embed_boxes(boxes))
    return torch.cat(parts, dim=1)


def decode_batch(sam: torch.nn.Module, features: torch.Tensor, b: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """All four mask tokens for N prompts: low-res logits ``(N, 4, m, m)`` and predicted IoU ``(N, 4)``.

    Output 0 is SAM's single-mask token (``multimask_output=False``), outputs 1-3 the multimask
    tokens. ``features`` is the encoder output ``(B, C, h, w)``; prompt i reads row ``image_index[i]``.
    Prompts are decoded in groups of the same structure (number of points, box or not), so each sees
    exactly the tokens SamPredictor would give it (the two-way transformer has no attention mask, so
    padding tokens would change the answer).
    """
    dec = sam.mask_decoder
    pe = sam.prompt_encoder
    n_pts = (b.labels != -1).sum(dim=1)
    keys = torch.stack([n_pts, b.has_box.long()], dim=1)
    groups = torch.unique(keys, dim=0)
    masks_out: torch.Tensor | None = None
    iou_out: torch.Tensor | None = None
    h, w = pe.image_embedding_size
    pos = pe.get_dense_pe()
    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    for key in groups:
        k, has_box = int(key[0]), bool(key[1])
        rows = torch.nonzero((keys == key).all(dim=1))[:, 0]
        # points first (positives and negatives in their given order), as SamPredictor receives them
        order = torch.argsort((b.labels[rows] == -1).long(), dim=1, stable=True)[:, :k]
        coords = torch.gather(b.coords[rows], 1, order[..., None].expand(-1, -1, 2))
        labels = torch.gather(b.labels[rows], 1, order)
        sparse = _sparse_embeddings(sam, coords, labels, b.boxes[rows] if has_box else None)
        n = len(rows)
        if bool(b.has_mask[rows].all()):
            dense = pe.mask_downscaling(b.mask_input[rows])
        else:
            dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(n, -1, h, w)
            if bool(b.has_mask[rows].any()):
                dense = torch.where(b.has_mask[rows][:, None, None, None], pe.mask_downscaling(b.mask_input[rows]), dense)
        tokens = torch.cat([out_tokens[None].expand(n, -1, -1), sparse], dim=1)
        src = features[b.image_index[rows]] + dense
        c = src.shape[1]
        hs, src = dec.transformer(src, pos.expand(n, -1, -1, -1), tokens)
        mask_tok = hs[:, 1: 1 + dec.num_mask_tokens, :]
        up = dec.output_upscaling(src.transpose(1, 2).reshape(n, c, h, w))
        hyper = torch.stack([dec.output_hypernetworks_mlps[i](mask_tok[:, i, :]) for i in range(dec.num_mask_tokens)], 1)
        nb, cu, hu, wu = up.shape
        masks = (hyper @ up.reshape(nb, cu, hu * wu)).reshape(nb, -1, hu, wu)
        ious = dec.iou_prediction_head(hs[:, 0, :])
        if masks_out is None:
            masks_out = masks.new_zeros((len(keys),) + masks.shape[1:])
            iou_out = ious.new_zeros((len(keys),) + ious.shape[1:])
        masks_out = masks_out.index_copy(0, rows, masks)
        iou_out = iou_out.index_copy(0, rows, ious)
    return masks_out, iou_out


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
