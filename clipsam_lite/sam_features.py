"""SAM's image embedding ``F``, computed once per image, and what PPG reads from it (METHOD.md step 2).

Taught in notebook 02 (sections 2-5) and used for co-feature negatives in notebook 03.

[paper] The SAM image encoder runs once per image; PPG's co-feature negatives and all three CPS
stages reuse that embedding, only SAM's light mask decoder runs again.

Frames (SAM's own geometry, ``segment_anything.utils.transforms.ResizeLongestSide`` + ``Sam.preprocess``):

- **original**: the image, ``H x W``; a point is ``(x, y)`` = (column, row) of a pixel, as SAM's
  ``point_coords``. Pixel ``(x, y)`` covers the continuous square ``[x, x+1) x [y, y+1)``.
- **input** (SAM's resized frame): the longest side resized to ``img_size`` (1024 for the real SAMs,
  256 for the tiny one), ``input_size = (h', w')``, per-axis scales ``h'/H`` and ``w'/W`` exactly as
  ``ResizeLongestSide.apply_coords`` uses them.
- **padded square**: ``img_size x img_size``; the resized image sits at the top-left, zeros (after
  normalisation) to the bottom and right. The padding is not image.
- **grid**: the encoder output, ``C x h x w`` (64 x 64 for the real SAMs, 16 x 16 for tiny, 32 x 32 for mini); cell
  ``(gx, gy)`` sees the padded square's pixels ``[gx*p, (gx+1)*p) x [gy*p, (gy+1)*p)``, ``p = img_size / w``.
  Only cells ``gx < valid_grid[1]``, ``gy < valid_grid[0]`` touch the image; the others are pure padding.

Grid lookups use the pixel's centre: the cell of pixel ``(x, y)`` is the cell holding
``((x + 0.5) * w'/W, (y + 0.5) * h'/H)`` [ours: a pixel belongs to the patch its centre falls in].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SamEmbedding", "EncoderCounter", "embed_images", "embed_image", "predictor_for",
    "original_to_input", "input_to_original", "original_to_grid", "grid_to_original",
    "square_map_to_original", "grid_map_to_original", "prototype", "grid_similarity", "similarity_map",
    "input_frame_size", "low_res_to_size", "FramePredictor",
]


# --------------------------------------------------------------------------------------------------
# The embedding
# --------------------------------------------------------------------------------------------------

@dataclass
class SamEmbedding:
    """One image's SAM embedding and the sizes needed to map between its frames.

    ``features`` is the image encoder's output for this image, ``C x h x w`` (no batch axis), on the
    device the encoder ran on. ``original_size`` is the image's ``(H, W)``; ``input_size`` is
    ``(h', w')`` after ``ResizeLongestSide(img_size)`` and before padding; ``img_size`` is the side
    of the encoder's square input.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    img_size: int
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(h, w)`` of the embedding grid."""
        return int(self.features.shape[-2]), int(self.features.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.features.shape[0])

    @property
    def cell_size(self) -> tuple[float, float]:
        """Pixels of the padded square per grid cell, ``(rows, cols)`` (16 for every SAM)."""
        gh, gw = self.grid_size
        return self.img_size / gh, self.img_size / gw

    @property
    def scale(self) -> tuple[float, float]:
        """``(h'/H, w'/W)``: original -> input scale per axis, as ``ResizeLongestSide.apply_coords``."""
        return self.input_size[0] / self.original_size[0], self.input_size[1] / self.original_size[1]

    @property
    def valid_grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of grid cells that contain at least one image pixel; the rest is padding."""
        ph, pw = self.cell_size
        return math.ceil(self.input_size[0] / ph - 1e-9), math.ceil(self.input_size[1] / pw - 1e-9)


class EncoderCounter:
    """Counts what goes through ``sam.image_encoder``, with a forward hook (an honest count).

    ``calls`` is the number of encoder forward passes, ``images`` the number of images they carried
    (the batch sizes summed). Use as a context manager; the hook is removed on exit::

        with EncoderCounter(sam) as counter:
            embeddings = embed_images(sam, images)
        assert counter.images == len(images)
    """

    def __init__(self, sam: torch.nn.Module) -> None:
        self.sam = sam
        self.calls = 0
        self.images = 0
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _hook(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.calls += 1
        self.images += int(inputs[0].shape[0])

    def start(self) -> EncoderCounter:
        if self._handle is None:
            self._handle = self.sam.image_encoder.register_forward_hook(self._hook)
        return self

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> EncoderCounter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EncoderCounter(calls={self.calls}, images={self.images})"


def _as_rgb_uint8(image: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"images[{index}] is a {type(image).__name__}; expected a numpy array H x W x 3 (uint8 RGB). "
                        f"Convert it with np.asarray(PIL.Image.open(path).convert('RGB')).")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)  # grey -> RGB
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"images[{index}] has shape {image.shape}; expected H x W x 3 RGB (or H x W grey). "
                         f"Drop an alpha channel with image[..., :3].")
    if image.dtype != np.uint8:
        raise ValueError(f"images[{index}] has dtype {image.dtype}; SAM expects uint8 RGB in [0, 255]. "
                         f"Convert a float image in [0, 1] with (image * 255).round().astype(np.uint8).")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"images[{index}] is empty (shape {image.shape}).")
    return image


def _sam_device(sam: torch.nn.Module) -> torch.device:
    return next(sam.parameters()).device


@torch.no_grad()
def embed_images(sam: torch.nn.Module, images: Sequence[np.ndarray], batch_size: int = 4,
                 counter: EncoderCounter | None = None, precision: str = "fp32") -> list[SamEmbedding]:
    """SAM embeddings of several images: exactly one image-encoder pass per image, in batches (METHOD.md step 2).

    Each image (``H x W x 3`` uint8 RGB; ``H x W`` grey is repeated to RGB) goes through SAM's own
    preprocessing, the same ops as ``SamPredictor.set_image``: ``ResizeLongestSide(img_size).apply_image``,
    then ``sam.preprocess`` (normalise with SAM's pixel mean/std, pad bottom/right to a square).
    ``batch_size`` images share one encoder forward. Pass an :class:`EncoderCounter` (or wrap the call
    in one) to count the passes. ``precision`` (``Config.precision``: fp32, bf16, fp16, auto) runs the
    encoder under autocast; the features are stored as fp32 for the decoder. Pass ``Config.sam_batch_size``
    as ``batch_size``: SAM's global attention makes memory grow fast with it.
    """
    from segment_anything.utils.transforms import ResizeLongestSide

    from .models import encoder_autocast

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    images = list(images)
    img_size = int(sam.image_encoder.img_size)
    transform = ResizeLongestSide(img_size)
    device = _sam_device(sam)
    out: list[SamEmbedding] = []
    if counter is not None:
        counter.start()
    try:
        for start in range(0, len(images), batch_size):
            chunk = [_as_rgb_uint8(im, start + i) for i, im in enumerate(images[start:start + batch_size])]
            tensors, sizes = [], []
            for i, im in enumerate(chunk):
                if min(transform.get_preprocess_shape(im.shape[0], im.shape[1], img_size)) < 1:
                    raise ValueError(f"images[{start + i}] ({im.shape[0]} x {im.shape[1]}) is too thin: resizing its "
                                     f"longest side to {img_size} leaves a side of 0 pixels. Crop or pad it first.")
                resized = transform.apply_image(im)
                x = torch.as_tensor(resized, device=device).permute(2, 0, 1).contiguous()[None]
                tensors.append(sam.preprocess(x))
                sizes.append((im.shape[:2], tuple(resized.shape[:2])))
            with encoder_autocast(precision, device):
                feats = sam.image_encoder(torch.cat(tensors, dim=0))
            for f, (orig, inp) in zip(feats, sizes, strict=True):
                out.append(SamEmbedding(features=f.float().clone(), original_size=(int(orig[0]), int(orig[1])),
                                        input_size=(int(inp[0]), int(inp[1])), img_size=img_size))
    finally:
        if counter is not None:
            counter.stop()
    return out


def embed_image(sam: torch.nn.Module, image: np.ndarray) -> SamEmbedding:
    """The SAM embedding of one image (one encoder pass); see :func:`embed_images`."""
    return embed_images(sam, [image], batch_size=1)[0]


def predictor_for(sam: torch.nn.Module, embedding: SamEmbedding):
    """A ``segment_anything.SamPredictor`` set to ``embedding`` **without** running the encoder.

    ``predictor.predict(point_coords, point_labels, box, mask_input, multimask_output, return_logits)``
    then runs only the prompt encoder and mask decoder on the stored features, exactly as after
    ``predictor.set_image(image)`` (the cascade's three decoder calls reuse one embedding).
    """
    from segment_anything import SamPredictor

    img_size = int(sam.image_encoder.img_size)
    if embedding.img_size != img_size:
        raise ValueError(f"The embedding was made for a SAM with img_size {embedding.img_size}, but this SAM's "
                         f"encoder takes {img_size}: embed the image with this SAM (embed_images(sam, ...)).")
    expected = tuple(int(s) for s in sam.prompt_encoder.image_embedding_size)
    if embedding.features.ndim != 3 or embedding.grid_size != expected or \
            embedding.channels != int(sam.prompt_encoder.embed_dim):
        raise ValueError(f"The embedding's features have shape {tuple(embedding.features.shape)}; this SAM's decoder "
                         f"expects {int(sam.prompt_encoder.embed_dim)} x {expected[0]} x {expected[1]}. "
                         f"Embed the image with this SAM.")
    predictor = SamPredictor(sam)
    predictor.reset_image()
    predictor.features = embedding.features[None].to(_sam_device(sam))
    predictor.original_size = tuple(embedding.original_size)
    predictor.input_size = tuple(embedding.input_size)
    predictor.orig_h, predictor.orig_w = predictor.original_size
    predictor.input_h, predictor.input_w = predictor.input_size
    predictor.is_image_set = True
    return predictor


# --------------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------------

def _points(points_xy: np.ndarray | Sequence, name: str = "points_xy") -> np.ndarray:
    p = np.asarray(points_xy, dtype=np.float64)
    if p.ndim == 1 and p.shape == (2,):
        p = p[None]
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{name} must be an (n, 2) array of (x, y) = (column, row); got shape {p.shape}.")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return p


def _check_inside(p: np.ndarray, size: tuple[int, int], name: str) -> None:
    H, W = size
    bad = (p[:, 0] < 0) | (p[:, 0] > W - 1) | (p[:, 1] < 0) | (p[:, 1] > H - 1)
    if bad.any():
        raise ValueError(f"{name}: point(s) {p[bad][:3].tolist()} lie outside the {H} x {W} (H x W) image; "
                         f"points are (x, y) = (column, row) with 0 <= x <= {W - 1}, 0 <= y <= {H - 1}.")


def original_to_input(points_xy: np.ndarray, emb: SamEmbedding) -> np.ndarray:
    """(x, y) in the original image -> SAM's resized frame, as ``ResizeLongestSide.apply_coords`` (float)."""
    p = _points(points_xy).copy()
    sy, sx = emb.scale
    p[:, 0] *= sx
    p[:, 1] *= sy
    return p


def input_to_original(points_xy: np.ndarray, emb: SamEmbedding) -> np.ndarray:
    """Inverse of :func:`original_to_input` (float)."""
    p = _points(points_xy).copy()
    sy, sx = emb.scale
    p[:, 0] /= sx
    p[:, 1] /= sy
    return p


def original_to_grid(points_xy: np.ndarray, emb: SamEmbedding) -> np.ndarray:
    """Pixel (x, y) of the original image -> the grid cell ``(gx, gy)`` (int) whose patch holds the pixel's centre.

    Points must lie inside the image (clear error otherwise); the result always lies in the valid
    (non-padding) part of the grid.
    """
    p = _points(points_xy)
    _check_inside(p, emb.original_size, "original_to_grid")
    sy, sx = emb.scale
    ph, pw = emb.cell_size
    gx = np.floor((p[:, 0] + 0.5) * sx / pw).astype(np.int64)
    gy = np.floor((p[:, 1] + 0.5) * sy / ph).astype(np.int64)
    vh, vw = emb.valid_grid
    return np.stack([np.clip(gx, 0, vw - 1), np.clip(gy, 0, vh - 1)], axis=1)


def grid_to_original(grid_xy: np.ndarray, emb: SamEmbedding) -> np.ndarray:
    """Grid cell ``(gx, gy)`` -> the original pixel coordinates (x, y) (float) of the cell's centre.

    A cell straddling the image border maps to its centre clipped to the image. A cell entirely in
    SAM's padding has no place in the image: ``ValueError``.
    """
    g = _points(grid_xy, "grid_xy")
    vh, vw = emb.valid_grid
    bad = (g[:, 0] < 0) | (g[:, 0] >= vw) | (g[:, 1] < 0) | (g[:, 1] >= vh)
    if bad.any():
        raise ValueError(f"grid_to_original: cell(s) {g[bad][:3].astype(int).tolist()} are SAM padding, not image: "
                         f"for this {emb.original_size[0]} x {emb.original_size[1]} image only cells with "
                         f"gx < {vw} and gy < {vh} (of the {emb.grid_size[1]} x {emb.grid_size[0]} grid) hold pixels.")
    sy, sx = emb.scale
    ph, pw = emb.cell_size
    H, W = emb.original_size
    x = (g[:, 0] + 0.5) * pw / sx - 0.5
    y = (g[:, 1] + 0.5) * ph / sy - 0.5
    return np.stack([np.clip(x, 0, W - 1), np.clip(y, 0, H - 1)], axis=1)


def square_map_to_original(square_map: np.ndarray | torch.Tensor, emb: SamEmbedding,
                           replicate_padding: bool = True) -> np.ndarray:
    """A map over SAM's padded square (any resolution ``m x m``: the grid, the low-res logits...) -> ``H x W``.

    Same geometry as ``Sam.postprocess_masks``: bilinear upsampling to ``img_size x img_size``, crop
    the resized image ``[:h', :w']`` (the padding goes), bilinear resize to the original size.
    With ``replicate_padding`` (default) the cells lying entirely in the padding are first replaced
    by the nearest image cell (edge replication), so bilinear interpolation never blends padding
    values into the image's border [ours]; ``replicate_padding=False`` is ``postprocess_masks`` itself.
    Accepts ``m x m`` or ``C x m x m``; returns float32 ``H x W`` (or ``C x H x W``).
    """
    t = square_map.detach() if isinstance(square_map, torch.Tensor) else torch.as_tensor(np.asarray(square_map))
    t = t.to("cpu", torch.float32)
    squeeze = t.ndim == 2
    if squeeze:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"square_map must be m x m or C x m x m over SAM's padded square; got shape {tuple(t.shape)}.")
    mh, mw = t.shape[-2:]
    if replicate_padding:
        vh = math.ceil(emb.input_size[0] * mh / emb.img_size - 1e-9)
        vw = math.ceil(emb.input_size[1] * mw / emb.img_size - 1e-9)
        t = t[:, :vh, :vw]
        t = F.pad(t[None], (0, mw - vw, 0, mh - vh), mode="replicate")[0]
    t = F.interpolate(t[None], (emb.img_size, emb.img_size), mode="bilinear", align_corners=False)
    t = t[..., : emb.input_size[0], : emb.input_size[1]]
    t = F.interpolate(t, emb.original_size, mode="bilinear", align_corners=False)[0]
    out = t.numpy().astype(np.float32)
    return out[0] if squeeze else out


def _axis_matrix(n_grid: int, n_input: int, n_orig: int, img_size: int) -> np.ndarray:
    """The ``n_orig x n_grid`` matrix of :func:`square_map_to_original` (replicated padding) along one axis.

    The pipeline (replicate the padding cells, bilinear to ``img_size``, crop ``n_input``, bilinear to
    ``n_orig``) is linear and separable, so pushing the indicator of every grid cell through it
    gives its exact interpolation weights.
    """
    valid = math.ceil(n_input * n_grid / img_size - 1e-9)
    x = torch.eye(n_grid, dtype=torch.float64)[None, :, :, None]  # channel c: the indicator of cell c
    x[:, :, valid:, :] = x[:, :, valid - 1:valid, :]
    x = F.interpolate(x, (img_size, 1), mode="bilinear", align_corners=False)[:, :, :n_input]
    x = F.interpolate(x, (n_orig, 1), mode="bilinear", align_corners=False)
    return x[0, :, :, 0].T.numpy()


def _grid_resize_matrices(emb: SamEmbedding, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(A_y: H x h, A_x: W x w)`` with ``grid_map_to_original(G) = A_y @ G @ A_x.T``; cached on the embedding.

    ``size`` (default: the original size) is the frame the image is resized to, e.g. SAM's input frame."""
    size = tuple(emb.original_size) if size is None else (int(size[0]), int(size[1]))
    key = ("grid_resize", emb.grid_size, emb.input_size, size, emb.img_size)
    if key not in emb._cache:
        gh, gw = emb.grid_size
        emb._cache[key] = (_axis_matrix(gh, emb.input_size[0], size[0], emb.img_size),
                           _axis_matrix(gw, emb.input_size[1], size[1], emb.img_size))
    return emb._cache[key]


def grid_map_to_original(grid_map: np.ndarray | torch.Tensor, emb: SamEmbedding,
                         size: tuple[int, int] | None = None) -> np.ndarray:
    """A map on the embedding grid (``h x w`` or ``C x h x w``) -> ``H x W`` float32, padding cropped.

    The same values as :func:`square_map_to_original` with ``replicate_padding=True`` (bilinear,
    SAM's geometry, padding cells replaced by their nearest image cell), computed as two small
    matrix products with cached per-axis interpolation matrices (fast when many maps share one
    embedding, as PPG's per-component similarity maps do).
    """
    g = grid_map.detach().to("cpu", torch.float64).numpy() if isinstance(grid_map, torch.Tensor) \
        else np.asarray(grid_map, dtype=np.float64)
    if g.shape[-2:] != emb.grid_size or g.ndim not in (2, 3):
        raise ValueError(f"grid_map has shape {g.shape}; expected h x w or C x h x w with the embedding grid "
                         f"{emb.grid_size}.")
    ay, ax = _grid_resize_matrices(emb, size)
    return np.matmul(np.matmul(ay, g), ax.T).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Feature similarity (PPG's co-feature, METHOD.md step 3)
# --------------------------------------------------------------------------------------------------

def _unit_features(emb: SamEmbedding) -> torch.Tensor:
    """The L2-normalised features (per grid cell), on the CPU; cached on the embedding until its features change."""
    # inference tensors (made under torch.inference_mode) cannot change in place and have no version counter
    version = 0 if emb.features.is_inference() else emb.features._version
    key = ("unit", id(emb.features), version)
    if key not in emb._cache:
        for k in [k for k in emb._cache if k[0] == "unit"]:
            del emb._cache[k]
        f = emb.features.detach().to("cpu", torch.float32)
        emb._cache[key] = F.normalize(f, dim=0, eps=1e-12)
    return emb._cache[key]


def prototype(emb: SamEmbedding, points_xy: np.ndarray, sampling: str = "cell") -> torch.Tensor:
    """``f+`` = mean of the L2-normalised SAM features at the points (METHOD.md step 3) [exact rule ours].

    ``sampling="cell"`` (default) reads the grid cell each point falls in (:func:`original_to_grid`);
    ``"bilinear"`` interpolates the normalised features at the point's centre over the padded square
    (``grid_sample``, ``align_corners=False``) and re-normalises each sample. Returns the mean, a
    C-vector, not re-normalised (the cosine similarity normalises it).
    """
    p = _points(points_xy)
    if len(p) == 0:
        raise ValueError("prototype needs at least one point (the positives P_h); got none.")
    _check_inside(p, emb.original_size, "prototype")
    unit = _unit_features(emb)
    if sampling == "cell":
        g = original_to_grid(p, emb)
        vecs = unit[:, g[:, 1], g[:, 0]].T
    elif sampling == "bilinear":
        gh, gw = emb.grid_size
        sy, sx = emb.scale
        # continuous input-frame position of the pixel centre, normalised to [-1, 1] over the padded square
        u = (p[:, 0] + 0.5) * sx / emb.img_size * 2 - 1
        v = (p[:, 1] + 0.5) * sy / emb.img_size * 2 - 1
        grid = torch.as_tensor(np.stack([u, v], axis=1), dtype=torch.float32)[None, None]
        vecs = F.grid_sample(unit[None], grid, mode="bilinear", align_corners=False)[0, :, 0].T
        vecs = F.normalize(vecs, dim=1, eps=1e-12)
    else:
        raise ValueError(f"sampling must be 'cell' or 'bilinear', got {sampling!r}.")
    return vecs.mean(dim=0)


def grid_similarity(emb: SamEmbedding, proto: torch.Tensor) -> np.ndarray:
    """``cos(f+, F)`` on the embedding grid, ``h x w`` float32 in [-1, 1]."""
    unit = _unit_features(emb)
    p = F.normalize(torch.as_tensor(proto, dtype=torch.float32).reshape(-1), dim=0, eps=1e-12)
    if p.numel() != unit.shape[0]:
        raise ValueError(f"The prototype has {p.numel()} channels; the embedding has {unit.shape[0]}.")
    return torch.einsum("c,chw->hw", p, unit).numpy().astype(np.float32)


def similarity_map(embedding: SamEmbedding, points_xy: np.ndarray, sampling: str = "cell",
                   frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """Cosine similarity of every location to the prototype of the points' features, ``H x W`` float32.

    METHOD.md step 3, co-feature: ``f+`` = mean of the L2-normalised SAM features at ``points_xy``
    (see :func:`prototype` for ``sampling``), ``sim = cos(f+, F)`` per grid cell, brought back to the
    original image by bilinear interpolation with the padding cropped (:func:`grid_map_to_original`).

    ``frame_size=(h, w)``: the points and the returned map are in the frame of the image resized to
    ``h x w`` (PPG's working frame, usually SAM's input frame ``embedding.input_size``) instead of the
    original image; a point's cell is the one holding its pixel centre, as in :func:`original_to_grid`.
    """
    if frame_size is None or tuple(frame_size) == tuple(embedding.original_size):
        return grid_map_to_original(grid_similarity(embedding, prototype(embedding, points_xy, sampling)), embedding)
    if sampling != "cell":
        raise ValueError("similarity_map: frame_size is supported with sampling='cell' only.")
    p = _points(points_xy)
    if len(p) == 0:
        raise ValueError("prototype needs at least one point (the positives P_h); got none.")
    h, w = int(frame_size[0]), int(frame_size[1])
    _check_inside(p, (h, w), "similarity_map")
    ph, pw = embedding.cell_size
    vh, vw = embedding.valid_grid
    gx = np.clip(np.floor((p[:, 0] + 0.5) * embedding.input_size[1] / w / pw).astype(np.int64), 0, vw - 1)
    gy = np.clip(np.floor((p[:, 1] + 0.5) * embedding.input_size[0] / h / ph).astype(np.int64), 0, vh - 1)
    proto = _unit_features(embedding)[:, gy, gx].T.mean(dim=0)
    return grid_map_to_original(grid_similarity(embedding, proto), embedding, (h, w))


def input_frame_size(original_size: tuple[int, int], img_size: int) -> tuple[int, int]:
    """``(h', w')``: SAM's input frame for an ``H x W`` image (``ResizeLongestSide.get_preprocess_shape``)."""
    from segment_anything.utils.transforms import ResizeLongestSide

    h, w = ResizeLongestSide.get_preprocess_shape(int(original_size[0]), int(original_size[1]), int(img_size))
    return int(h), int(w)


def low_res_to_size(low_res: np.ndarray | torch.Tensor, input_size: tuple[int, int], img_size: int,
                    size: tuple[int, int]) -> torch.Tensor:
    """SAM's low-res logits (``... x m x m`` over the padded square) -> ``... x h x w`` float32 at ``size``.

    The operations of ``Sam.postprocess_masks``: bilinear to ``img_size`` square, crop the input frame
    ``[:h', :w']``, bilinear to ``size`` (the original size gives SamPredictor's masks exactly; the input
    frame gives them as SAM itself sees the image, the second resize then being the identity).
    """
    t = low_res if isinstance(low_res, torch.Tensor) else torch.as_tensor(np.asarray(low_res))
    t = t.detach().to("cpu", torch.float32)
    lead = t.shape[:-2]
    t = t.reshape(1, -1, *t.shape[-2:])
    t = F.interpolate(t, (img_size, img_size), mode="bilinear", align_corners=False)
    t = t[..., : input_size[0], : input_size[1]]
    if tuple(size) != tuple(input_size):
        t = F.interpolate(t, tuple(int(v) for v in size), mode="bilinear", align_corners=False)
    return t.reshape(*lead, *t.shape[-2:])


class FramePredictor:
    """SAM's prompt encoder + mask decoder on a stored embedding, with prompts and masks in a working frame.

    The cascade (:mod:`clipsam_lite.cps`) works on ``S_a`` resized to ``work_size`` (PPG's working frame,
    SAM's input frame by default: bounded memory whatever the image size). Points and boxes it passes
    are in that frame's pixels; they are mapped to original-image coordinates by the exact per-axis
    scale ``(W / w, H / h)`` (:meth:`to_original`, what ``SamPredictor`` expects), and SAM's own
    ``ResizeLongestSide.apply_coords`` brings them back: with ``work_size`` = SAM's input frame, SAM sees
    each point at the very pixel PPG chose. Masks and logits come back at ``work_size``
    (``Sam.postprocess_masks``' operations); low-res logits exactly as SAM returned them. With
    ``work_size`` = the original size this is ``SamPredictor.predict`` itself (bit for bit).

    :meth:`predict_many` runs several prompt sets in one decoder call per group of sets with the same
    number of points and the same kinds of prompts (``SamPredictor.predict_torch`` takes a batch).
    """

    def __init__(self, sam: torch.nn.Module, embedding: SamEmbedding, work_size: tuple[int, int] | None = None) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide

        predictor_for(sam, embedding)  # the same checks: this SAM made this embedding
        self.sam, self.embedding = sam, embedding
        self.original_size = tuple(int(v) for v in embedding.original_size)
        self.work_size = self.original_size if work_size is None else (int(work_size[0]), int(work_size[1]))
        self.transform = ResizeLongestSide(int(sam.image_encoder.img_size))
        self.decoder_calls = 0

    @property
    def scale_to_original(self) -> tuple[float, float]:
        """``(W / w, H / h)``: working-frame (x, y) -> original (x, y)."""
        return self.original_size[1] / self.work_size[1], self.original_size[0] / self.work_size[0]

    def to_original(self, points_xy: np.ndarray) -> np.ndarray:
        p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if self.work_size == self.original_size:
            return p
        sx, sy = self.scale_to_original
        return p * np.array([sx, sy])

    def box_to_original(self, box: np.ndarray | None) -> np.ndarray | None:
        if box is None:
            return None
        return self.to_original(np.asarray(box, dtype=np.float64).reshape(2, 2)).reshape(4)

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output=True,
                return_logits=False):
        """``SamPredictor.predict``'s contract, in the working frame: (masks or logits C x h x w, ious C, low-res C x m x m)."""
        n = 0 if point_coords is None else len(point_coords)
        request = (np.zeros((0, 2)) if point_coords is None else point_coords,
                   np.zeros(0, np.int64) if point_labels is None else point_labels, box, mask_input)
        logits, ious, low = self.predict_many([request], multimask_output, allow_empty=n == 0)[0]
        return (logits if return_logits else logits > 0.0), ious, low

    @torch.no_grad()
    def predict_many(self, requests: Sequence[tuple], multimask_output: bool, allow_empty: bool = False
                     ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``[(points (n, 2) work frame, labels (n,), box [x0, y0, x1, y1] work frame or None, mask_input
        (1, m, m) or None), ...]`` -> ``[(logits C x h x w, ious C, low_res C x m x m), ...]`` in order."""
        sam, dev = self.sam, _sam_device(self.sam)
        groups: dict[tuple[int, bool, bool], list[int]] = {}
        for i, (pts, _lab, box, mask) in enumerate(requests):
            groups.setdefault((len(pts), box is None, mask is None), []).append(i)
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(requests)
        features = self.embedding.features[None].to(dev)
        for (n, no_box, no_mask), idx in groups.items():
            if n == 0 and no_box and not allow_empty:
                raise ValueError("FramePredictor: a prompt set has neither points nor a box.")
            points = None
            if n:
                coords = np.stack([self.transform.apply_coords(self.to_original(requests[i][0]), self.original_size)
                                   for i in idx])
                labels = np.stack([np.asarray(requests[i][1]) for i in idx])
                points = (torch.as_tensor(coords, dtype=torch.float, device=dev),
                          torch.as_tensor(labels, dtype=torch.int, device=dev))
            boxes = None if no_box else torch.as_tensor(np.stack([
                self.transform.apply_boxes(self.box_to_original(requests[i][2])[None], self.original_size)[0]
                for i in idx]), dtype=torch.float, device=dev)
            masks = None if no_mask else torch.as_tensor(np.stack([np.asarray(requests[i][3]) for i in idx]),
                                                         dtype=torch.float, device=dev)
            sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
            low, iou = sam.mask_decoder(image_embeddings=features, image_pe=sam.prompt_encoder.get_dense_pe(),
                                        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                        multimask_output=multimask_output)
            self.decoder_calls += 1
            logits = sam.postprocess_masks(low, self.embedding.input_size, self.work_size)
            for j, i in enumerate(idx):
                out[i] = (logits[j].cpu().numpy(), iou[j].cpu().numpy(), low[j].cpu().numpy())
        return out  # type: ignore[return-value]

