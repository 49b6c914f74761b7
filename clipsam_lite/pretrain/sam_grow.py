"""Growing a trained SAM's token grid: 16 x 16 patches -> 8 x 8, every learned weight kept. [ours]

Taught in notebook 00 (section "9. The miniature world", "The mini profile"); it makes the SAM that
METHOD.md steps 2-4 prompt (the embedding of step 2, the low-res logits CPS feeds back in step 4).

Why: measured on 88 prompted defects of the world (256 px), a 16 x 16-token mini-SAM reached mean IoU
0.42 for one point + 2 negatives, but 0.24 on the smaller half of the defects (below ~400 px, about one
token) against 0.60 on the larger half: a defect inside one token cannot be outlined from a 16 x 16
embedding. Its 64 x 64 low-res logits alone cap the IoU at 0.82 on average (128 x 128: 0.96).
Training a finer grid from scratch costs ~4 x more per step, so the finer model starts from the coarse one:

- ``patch_embed.proj.weight``: the 16 x 16 kernels resized (antialiased bilinear) to 8 x 8 and
  multiplied by 4 (a quarter of the pixels per patch: the response to a flat patch keeps its scale),
  the idea of FlexiViT's patch-size resizing (Beyer et al. 2023) in its simplest form. The response is
  kept to ~1 % for smooth kernels and to 7 % on average for the shipped coarse model's kernels (2 x 2
  area averaging would keep it exactly; the shipped weights were grown with this bilinear form, so it
  stays, and training absorbs the difference within a few steps);
- ``pos_embed``: the absolute position grid interpolated bicubically, 16 x 16 -> 32 x 32;
- ``rel_pos_h`` / ``rel_pos_w`` of the global-attention blocks: interpolated linearly along the offset
  axis (``2 * grid - 1`` entries), as ``segment_anything``'s ``get_rel_pos`` itself does when sizes differ;
- every other tensor (windowed blocks, neck, prompt encoder, mask decoder) has the same shape at any
  grid and is copied unchanged.

Measured: the grown model, before any further training, already had IoU 0.51 (small defects 0.39).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["grow_sam_state"]


def _grow(name: str, v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if name.endswith("patch_embed.proj.weight"):
        ratio = (v.shape[-1] / shape[-1]) * (v.shape[-2] / shape[-2])
        return F.interpolate(v.float(), size=tuple(shape[-2:]), mode="bilinear", align_corners=False,
                             antialias=True) * ratio
    if name.endswith("pos_embed"):  # (1, H, W, C)
        return F.interpolate(v.float().permute(0, 3, 1, 2), size=tuple(shape[1:3]), mode="bicubic",
                             align_corners=False).permute(0, 2, 3, 1)
    if "rel_pos" in name:  # (2 * size - 1, head_dim)
        return F.interpolate(v.float().T[None], size=shape[0], mode="linear", align_corners=False)[0].T
    raise ValueError(f"Cannot grow {name}: shape {tuple(v.shape)} -> {tuple(shape)} (only the patch kernel, the "
                     "position embedding and relative positions depend on the token grid).")


def grow_sam_state(state: dict[str, torch.Tensor], target: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (a SAM's ``state_dict`` at one token grid) converted to ``target``'s grid.

    Raises ``ValueError`` naming the first tensor that is missing, unexpected or cannot be converted
    (e.g. another width or depth: only the grid may differ).
    """
    want = target.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise ValueError(f"The checkpoint is not a SAM of the same depth and width as the target: missing "
                         f"{missing[:3]}, unexpected {extra[:3]}.")
    out = {}
    for k, v in state.items():
        t = want[k]
        out[k] = v if v.shape == t.shape else _grow(k, v, t.shape).to(t.dtype)
    return out
