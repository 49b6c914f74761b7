"""Images and datasets: robust image I/O, MVTec-AD / VisA / folder loaders, a synthetic generator.

Everything here is [ours]: the paper evaluates on MVTec-AD and VisA (METHOD.md, "Evaluation
protocol") but says nothing about how images are read. The rules we follow:

* :func:`read_image` always returns ``H x W x 3`` ``uint8`` RGB, whatever the file stores
  (grayscale, alpha, palette, CMYK, 16-bit, float), and refuses truncated or corrupt files with an
  :class:`ImageReadError` that names the path instead of returning half-decoded pixels.
* :func:`read_mask` always returns ``H x W`` ``bool``. MVTec-AD masks (0/255) are binarised at half
  the maximum (``rule="half"``), VisA masks (0/1 or class ids) with ``!= 0`` (``rule="nonzero"``).
* :func:`load_dataset` reads the official MVTec-AD layout, VisA's ``split_csv/1cls.csv`` and a plain
  folder of images; items are read lazily, layout problems are reported when the dataset is built.
* :func:`make_synthetic` writes a small, deterministic dataset in the MVTec-AD layout (objects and
  textures with planted defects and exact masks) so that every notebook and test runs offline. With
  ``signature=True`` every defect carries one hue (:data:`SIGNATURE_RGB`) that no normal surface
  uses: a learnable signal that lets the ``tiny`` profile (random backbones) prove the pipeline's
  geometry end to end.
"""

from __future__ import annotations

import colorsys
import csv
import errno
import hashlib
import io
import json
import math
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from PIL import Image

from .paths import CACHE_ENV, cache_dir

# ------------------------------------------------------------------------------------------------
# Image I/O
# ------------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File suffixes (lower case) treated as images by the loaders."""
MASK_RULES: tuple[str, ...] = ("half", "nonzero")

_FIX = "the file is corrupt, truncated or not an image: re-download it, or re-export it (e.g. as PNG)"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageReadError(OSError):
    """An image file exists but cannot be decoded: corrupt, truncated, or not an image at all."""


def _open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file, or raise an error that names the path. [ours]

    The whole file is read into memory and decoded at once (``Image.load``), so a truncated file
    fails here rather than later. PIL tolerates a few truncations silently (a PNG missing its final
    chunks, a JPEG cut after its last complete block); those are caught by checking for the PNG
    ``IEND`` chunk and the JPEG end-of-image marker. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "Image file not found (check the path or the dataset root)", str(p))
    if p.is_dir():
        raise ImageReadError(f"Cannot read image {p}: it is a directory, not an image file.")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageReadError(f"Cannot read image {p}: {e}.") from e
    if not data:
        raise ImageReadError(f"Cannot read image {p}: the file is empty; {_FIX}.")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, EOFError, struct.error...
        raise ImageReadError(f"Cannot read image {p} ({type(e).__name__}: {e}); {_FIX}.") from e
    fmt = (im.format or "").upper()
    if fmt == "PNG" and data.rfind(_PNG_IEND) < 0:
        raise ImageReadError(f"Cannot read image {p}: the PNG has no IEND chunk (truncated); {_FIX}.")
    if fmt in ("JPEG", "MPO"):
        sos = data.rfind(b"\xff\xda")  # last start-of-scan; 0xFFDA cannot occur inside scan data
        if sos < 0 or data.find(b"\xff\xd9", sos) < 0:
            raise ImageReadError(f"Cannot read image {p}: the JPEG has no end-of-image marker (truncated); {_FIX}.")
    return im


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit values (0..65535) to 8 bit by ``round(v / 257)``: 65535 -> 255, 32896 -> 128. [ours]

    ``I`` (32-bit integer) images are read as 16-bit data: values are clipped to 0..65535 first.
    """
    v = np.clip(values.astype(np.float64), 0.0, 65535.0)
    return np.floor(v / 257.0 + 0.5).astype(np.uint8)


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    """Float images to 8 bit. [ours]

    If every finite value lies in [0, 1] the image is taken as unit range (``round(255 v)``);
    otherwise as 0..255 data (``round(v)``, clipped). NaN and infinities become 0.
    """
    v = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if v.size and v.min() >= 0.0 and v.max() <= 1.0:
        v = v * 255.0
    return np.floor(np.clip(v, 0.0, 255.0) + 0.5).astype(np.uint8)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES:
        gray = _sixteen_bit_to_uint8(np.asarray(im))
    elif mode == "F":
        gray = _float_to_uint8(np.asarray(im))
    elif mode in ("P", "PA", "RGBa", "La"):
        # palette: look colours up (transparency is dropped); premultiplied alpha: un-premultiply first
        return np.array(im.convert("RGBA").convert("RGB"), dtype=np.uint8)
    else:  # L, LA, 1, RGBA, RGBX, CMYK, YCbCr, LAB, HSV: PIL's own conversion (alpha dropped)
        return np.array(im.convert("RGB"), dtype=np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as ``H x W x 3`` ``uint8`` RGB. [ours]

    Conversions: grayscale (``L``, ``1``) is repeated on three channels; alpha (``LA``, ``RGBA``,
    ``RGBa``, transparent palettes) is dropped; palettes are looked up; CMYK uses PIL's conversion;
    16-bit data (``I;16``, ``I;16B``, ``I``, 16-bit grayscale PNG) is scaled by ``round(v / 257)``;
    float (``F``) by :func:`_float_to_uint8`. 16-bit RGB PNGs are reduced to 8 bit by PIL itself.
    EXIF orientation is not applied: pixels are returned as stored.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ImageReadError: the file is empty, corrupt, truncated or not an image (names the path).
    """
    im = _open_image(path)
    try:
        return _pil_to_rgb(im)
    except Exception as e:
        raise ImageReadError(f"Cannot convert image {path} (mode {im.mode}) to RGB ({e}); {_FIX}.") from e


def _mask_values(im: Image.Image) -> tuple[np.ndarray, float]:
    """A 2-D array of mask strengths and the value that means "fully on" for this mode."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.uint8), 1.0
    if mode == "L":
        return np.asarray(im), 255.0
    if mode in _SIXTEEN_BIT_MODES:
        return np.clip(np.asarray(im).astype(np.int64), 0, 65535), 65535.0
    if mode == "F":
        v = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        return v, (1.0 if v.size == 0 or v.max() <= 1.0 else 255.0)
    if mode in ("LA", "La", "RGBA", "RGBa", "P", "PA") or "transparency" in im.info:
        # composite over black: brightest channel times alpha (integers, exact)
        rgba = np.asarray(im.convert("RGBA")).astype(np.int64)
        return rgba[..., :3].max(axis=2) * rgba[..., 3], 255.0 * 255.0
    return np.asarray(im.convert("RGB")).max(axis=2), 255.0


def read_mask(path: str | os.PathLike[str], rule: str = "half") -> np.ndarray:
    """Read a ground-truth mask as ``H x W`` ``bool``. [ours; the field's conventions]

    Every mode is first reduced to one strength per pixel: grayscale and 16-bit values as stored;
    colour masks by their brightest channel; masks with alpha (``LA``, ``RGBA``, transparent
    palettes) composited over black, i.e. brightest channel times alpha.

    Args:
        path: the mask file.
        rule: ``"half"``: strength >= half of the mode's maximum (255 for 8 bit, 65535 for 16 bit,
            1 for ``1`` and for float masks within [0, 1]); MVTec-AD's 0/255 masks, "binarised at 0.5".
            ``"nonzero"``: strength != 0; VisA, whose masks store 0/1 or class ids.
    """
    if rule not in MASK_RULES:
        raise ValueError(f"Unknown mask rule {rule!r}; choose one of {list(MASK_RULES)}.")
    im = _open_image(path)
    try:
        values, full = _mask_values(im)
    except Exception as e:
        raise ImageReadError(f"Cannot convert mask {path} (mode {im.mode}) ({e}); {_FIX}.") from e
    if rule == "half":
        return np.asarray(values >= full / 2.0, dtype=bool)
    return np.asarray(values != 0, dtype=bool)


def _write_png(array: np.ndarray, path: Path) -> None:
    """Write uint8 ``H x W`` (L) or ``H x W x 3`` (RGB) as PNG with fixed options and no metadata."""
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=1)


# ------------------------------------------------------------------------------------------------
# Evaluation-protocol resizing
# ------------------------------------------------------------------------------------------------


def _resize_plane(plane: np.ndarray, size_wh: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    if plane.dtype == np.uint8:
        return np.asarray(Image.fromarray(plane).resize(size_wh, resample))
    out = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).resize(size_wh, resample)
    return np.asarray(out, dtype=np.float32)


def resize_center_crop(array: np.ndarray, size: int, is_mask: bool = False) -> np.ndarray:
    """Resize the short side to ``size``, then crop the central ``size x size`` square. [field convention]

    This is how maps and masks are compared at 518 x 518 (METHOD.md, "Evaluation protocol").

    * Images and maps (``uint8`` or float, ``H x W`` or ``H x W x C``): bilinear (PIL, which
      antialiases when shrinking). ``uint8`` stays ``uint8``; anything else comes back ``float32``.
    * Masks (``is_mask=True``): area interpolation (PIL ``BOX``) of the 0/1 mask, then ``>= 0.5``;
      the result is ``bool``. Non-bool masks are binarised with ``!= 0`` first.

    When the short side is already ``size`` nothing is interpolated, only cropped.
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"resize_center_crop: size must be a positive integer, got {size}.")
    a = np.asarray(array)
    if a.ndim not in (2, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"resize_center_crop expects an H x W or H x W x C array, got shape {a.shape}.")
    h, w = a.shape[:2]
    scale = size / min(h, w)
    new_h, new_w = (size, max(size, round(w * scale))) if h <= w else (max(size, round(h * scale)), size)
    if is_mask:
        src = (a != 0) if a.dtype != bool else a
        if (new_h, new_w) != (h, w):
            planes = [src] if src.ndim == 2 else [src[..., c] for c in range(src.shape[2])]
            res = [_resize_plane(pl.astype(np.float32), (new_w, new_h), Image.Resampling.BOX) >= 0.5
                   for pl in planes]
            src = res[0] if src.ndim == 2 else np.stack(res, axis=2)
        out = src
    else:
        src = a if a.dtype == np.uint8 else a.astype(np.float32)
        if (new_h, new_w) != (h, w):
            planes = [src] if src.ndim == 2 else [src[..., c] for c in range(src.shape[2])]
            res = [_resize_plane(pl, (new_w, new_h), Image.Resampling.BILINEAR) for pl in planes]
            src = res[0] if src.ndim == 2 else np.stack(res, axis=2)
        out = src
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(out[top:top + size, left:left + size])


# ------------------------------------------------------------------------------------------------
# Synthetic generator: scene rendering
# ------------------------------------------------------------------------------------------------

GENERATOR_VERSION = 1
"""Bumped whenever the generator's output changes (it names the cached sample folder)."""

SIGNATURE_RGB: tuple[int, int, int] = (230, 0, 200)
"""The one hue every defect is drawn in when ``signature=True``: a saturated magenta (hue ~308 deg)
that no normal surface of the synthetic categories comes near."""

DEFECT_TYPES: tuple[str, ...] = ("scratch", "hole", "stain", "crack", "missing_piece", "contamination")

_LIGHT_NORM = math.hypot(-0.55, -0.6, 0.58)
_LIGHT: tuple[float, float, float] = (-0.55 / _LIGHT_NORM, -0.6 / _LIGHT_NORM, 0.58 / _LIGHT_NORM)
"""Direction towards the light: upper left, in image coordinates (x right, y down, z out)."""


@dataclass
class _Scene:
    """One rendered image in layers, so that defects can be added on top of the exact clean image."""

    size: int
    surface: np.ndarray  # H x W x 3 float32 in [0, 1]: the object's (or texture's) colour everywhere
    cover: np.ndarray  # H x W float32 in [0, 1]: object coverage (all ones for textures)
    region: np.ndarray  # H x W bool: where a defect may be centred
    background: np.ndarray | None = None  # H x W x 3 float32, objects only
    center: tuple[float, float] = (0.0, 0.0)  # object centre (x, y)

    def compose(self) -> np.ndarray:
        if self.background is None:
            img = self.surface
        else:
            c = self.cover[:, :, None]
            img = self.background * (1.0 - c) + self.surface * c
        return np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class CategorySpec:
    """A synthetic category: its name (a plain noun, used in CLIP prompts), kind and defect types."""

    name: str
    kind: Literal["object", "texture"]
    defects: tuple[str, ...]
    description: str


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator seeded by (seed, keys): categories and images never share or consume streams."""
    ints = [int(seed)] + [k if isinstance(k, int) else zlib.crc32(k.encode("utf-8")) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(ints))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth noise of about unit amplitude: a (cells + 1) random grid upsampled bicubically."""
    g = rng.standard_normal((cells[0] + 1, cells[1] + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(g).resize((shape[1], shape[0]), Image.Resampling.BICUBIC), dtype=np.float32)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _shade(height: np.ndarray, ambient: float, strength: float) -> np.ndarray:
    """Lambert shading of a height field (in pixels) lit from the upper left, never below 0.15."""
    gy, gx = np.gradient(height)
    lx, ly, lz = _LIGHT
    return np.maximum(ambient + strength * (-gx * lx - gy * ly + lz) / np.sqrt(gx * gx + gy * gy + 1.0), 0.15)


def _drop_shadow(shape_sdf: np.ndarray, softness: float) -> np.ndarray:
    """A soft shadow strength in [0, 1] from a signed distance (negative inside) to the caster."""
    return 1.0 - _smoothstep(-softness, softness, shape_sdf)


def _render_disc(rng: np.random.Generator, size: int) -> _Scene:
    """A round plastic cap seen from above on a light table (a bottle cap): lip, knurled rim, emboss."""
    yy, xx = _grid(size)
    s = float(size)
    cx, cy = s * (0.5 + rng.uniform(-0.04, 0.04)), s * (0.5 + rng.uniform(-0.04, 0.04))
    radius = s * 0.33 * rng.uniform(0.97, 1.03)
    rot = rng.uniform(0.0, 2.0 * np.pi)
    gain = rng.uniform(0.94, 1.05)
    base = np.array([0.17, 0.39, 0.66], dtype=np.float32) + rng.normal(0.0, 0.015, 3).astype(np.float32)

    dx, dy = xx - cx, yy - cy
    r = np.sqrt(dx * dx + dy * dy)
    rn = r / radius
    theta = np.arctan2(dy, dx)
    lip = _smoothstep(0.80, 0.87, rn) * (1.0 - _smoothstep(0.95, 1.0, rn))
    knurl = np.cos(72.0 * theta + rot) * (_smoothstep(0.90, 0.93, rn) * (1.0 - _smoothstep(0.99, 1.02, rn)))
    emboss = np.exp(-(((rn - 0.52) * radius / 1.6) ** 2))
    height = s * (0.035 * lip + 0.004 * knurl + 0.006 * emboss + 0.02 * np.clip(1.0 - rn * rn, 0.0, 1.0))
    shade = _shade(height, 0.30, 0.78)
    spec = 0.22 * np.exp(-(((dx + 0.38 * radius) ** 2 + (dy + 0.42 * radius) ** 2) / (2 * (0.16 * radius) ** 2)))
    grain = 0.008 * rng.standard_normal((size, size), dtype=np.float32)
    surface = base[None, None, :] * (gain * shade)[:, :, None] + (spec + grain)[:, :, None]
    cover = np.clip(radius - r + 0.5, 0.0, 1.0)

    bg_col = np.array([0.80, 0.79, 0.76], dtype=np.float32) * gain
    light = 1.0 + 0.05 * _smooth_noise(rng, (size, size), (2, 2)) - 0.06 * ((xx + yy) / s - 1.0)
    sdx, sdy = xx - (cx + 0.025 * s), yy - (cy + 0.035 * s)
    shadow = _drop_shadow(np.sqrt(sdx * sdx + sdy * sdy) - radius, 0.05 * s)
    bg = bg_col[None, None, :] * (light * (1.0 - 0.32 * shadow))[:, :, None]
    bg = bg + 0.010 * rng.standard_normal((size, size, 1), dtype=np.float32)
    return _Scene(size, surface.astype(np.float32), cover.astype(np.float32), rn <= 0.74,
                  bg.astype(np.float32), (cx, cy))


def _render_tablet(rng: np.random.Generator, size: int) -> _Scene:
    """An oblong white tablet (a pill) with a score line, on a dark slate tray."""
    yy, xx = _grid(size)
    s = float(size)
    cx, cy = s * (0.5 + rng.uniform(-0.04, 0.04)), s * (0.5 + rng.uniform(-0.04, 0.04))
    half_len = s * 0.17 * rng.uniform(0.97, 1.03)
    rad = s * 0.15 * rng.uniform(0.97, 1.03)
    phi = math.radians(rng.uniform(-18.0, 18.0))
    gain = rng.uniform(0.95, 1.04)
    base = np.array([0.93, 0.90, 0.82], dtype=np.float32) + rng.normal(0.0, 0.01, 3).astype(np.float32)

    dx, dy = xx - cx, yy - cy
    cp, sp = math.cos(phi), math.sin(phi)
    u = dx * cp + dy * sp
    v = -dx * sp + dy * cp
    d = np.sqrt(np.maximum(np.abs(u) - half_len, 0.0) ** 2 + v * v)
    dn = d / rad
    dome = np.sqrt(np.clip(1.0 - dn**4, 0.0, 1.0))
    score = np.exp(-((u / (0.006 * s + 0.6)) ** 2)) * (1.0 - _smoothstep(0.55, 0.8, dn))
    powder = _smooth_noise(rng, (size, size), (24, 24))
    height = s * (0.05 * dome - 0.006 * score + 0.0008 * powder)
    shade = _shade(height, 0.42, 0.62)
    grain = 0.010 * rng.standard_normal((size, size), dtype=np.float32)
    surface = base[None, None, :] * (gain * shade)[:, :, None] + grain[:, :, None]
    cover = np.clip(rad - d + 0.5, 0.0, 1.0)

    bg_col = np.array([0.20, 0.22, 0.26], dtype=np.float32) * gain
    light = 1.0 + 0.08 * _smooth_noise(rng, (size, size), (2, 2)) - 0.10 * ((xx + yy) / s - 1.0)
    su, sv = u - 0.03 * s, v - 0.02 * s
    sd = np.sqrt(np.maximum(np.abs(su) - half_len, 0.0) ** 2 + sv * sv) - rad
    bg = bg_col[None, None, :] * (light * (1.0 - 0.45 * _drop_shadow(sd, 0.045 * s)))[:, :, None]
    bg = bg + 0.010 * rng.standard_normal((size, size, 1), dtype=np.float32)
    return _Scene(size, surface.astype(np.float32), cover.astype(np.float32), dn <= 0.62,
                  bg.astype(np.float32), (cx, cy))


def _render_weave(rng: np.random.Generator, size: int) -> _Scene:
    """A plain-weave fabric (sage-green linen): darker warp threads over and under lighter weft threads."""
    yy, xx = _grid(size)
    s = float(size)
    period = s / 30.0 * rng.uniform(0.96, 1.04)
    ang = math.radians(rng.uniform(-4.0, 4.0))
    ca, sa = math.cos(ang), math.sin(ang)
    gain = rng.uniform(0.94, 1.05)
    warp_col = np.array([0.36, 0.50, 0.40], dtype=np.float32) + rng.normal(0.0, 0.012, 3).astype(np.float32)
    weft_col = np.array([0.58, 0.67, 0.54], dtype=np.float32) + rng.normal(0.0, 0.012, 3).astype(np.float32)

    wob_u = 0.10 * _smooth_noise(rng, (size, size), (4, 4))
    wob_v = 0.10 * _smooth_noise(rng, (size, size), (4, 4))
    u = (xx * ca + yy * sa) / period + rng.uniform(0, 64) + wob_u
    v = (-xx * sa + yy * ca) / period + rng.uniform(0, 64) + wob_v
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    ku, kv = iu.astype(np.int32), iv.astype(np.int32)
    warp_top = ((ku + kv) & 1) == 0
    across_warp = np.maximum(np.sin(np.pi * np.clip((fu - 0.06) / 0.88, 0.0, 1.0)), 0.0) ** 0.6
    across_weft = np.maximum(np.sin(np.pi * np.clip((fv - 0.06) / 0.88, 0.0, 1.0)), 0.0) ** 0.6
    bulge_warp = np.where(warp_top, 0.6 + 0.4 * np.sin(np.pi * fv), 0.3)
    bulge_weft = np.where(warp_top, 0.3, 0.6 + 0.4 * np.sin(np.pi * fu))
    h_warp, h_weft = across_warp * bulge_warp, across_weft * bulge_weft
    thread_gain = rng.normal(1.0, 0.05, 64).astype(np.float32)
    gw = thread_gain[ku & 63]
    gf = thread_gain[(kv + 17) & 63]
    top_warp = h_warp >= h_weft
    h = np.maximum(h_warp, h_weft)
    twist = 0.06 * np.cos(2 * np.pi * np.where(top_warp, 3.0 * fu + fv * 1.5, 3.0 * fv + fu * 1.5))
    col = np.where(top_warp[:, :, None], warp_col * gw[:, :, None], weft_col * gf[:, :, None])
    fibre = 0.02 * rng.standard_normal((size, size), dtype=np.float32)
    light = 1.0 + 0.04 * _smooth_noise(rng, (size, size), (2, 2))
    shade = (0.35 + 0.7 * h + twist * h + fibre) * light * gain
    surface = col * shade[:, :, None]
    m = int(0.12 * s)
    region = np.zeros((size, size), dtype=bool)
    region[m:size - m, m:size - m] = True
    return _Scene(size, surface.astype(np.float32), np.ones((size, size), np.float32), region)


def _render_grain(rng: np.random.Generator, size: int) -> _Scene:
    """A planed wooden board: gently wavy growth rings (light earlywood, dark latewood), fibre streaks."""
    yy, xx = _grid(size)
    s = float(size)
    ang = math.radians(rng.uniform(-10.0, 10.0))
    ca, sa = math.cos(ang), math.sin(ang)
    gain = rng.uniform(0.94, 1.05)
    light_col = np.array([0.84, 0.66, 0.45], dtype=np.float32) + rng.normal(0.0, 0.015, 3).astype(np.float32)
    dark_col = np.array([0.60, 0.40, 0.23], dtype=np.float32) + rng.normal(0.0, 0.015, 3).astype(np.float32)

    along = xx * ca + yy * sa
    across = -xx * sa + yy * ca
    warp = 0.045 * s * _smooth_noise(rng, (size, size), (2, 2)) + 0.004 * s * _smooth_noise(rng, (size, size), (3, 8))
    bend = 0.03 * s * np.sin(2 * np.pi * along / (1.3 * s) + rng.uniform(0, 6.3))
    spacing = s / 11.0 * rng.uniform(0.9, 1.1)
    t = (across + warp + bend) / spacing
    t = t + 0.18 * np.sin(2 * np.pi * t / 3.0 + rng.uniform(0, 6.3))  # uneven ring widths
    g = t - np.floor(t)
    late = _smoothstep(0.55, 0.8, g) * (1.0 - _smoothstep(0.86, 0.98, g))
    fibres = rng.standard_normal(4096).astype(np.float32)
    idx = across * 3.0 + 0.5 * warp
    streak = np.interp(idx.ravel(), np.arange(4096, dtype=np.float32), fibres, period=4096).reshape(size, size)
    col = light_col * (1.0 - 0.85 * late[:, :, None]) + dark_col * 0.85 * late[:, :, None]
    light = (1.0 + 0.05 * _smooth_noise(rng, (size, size), (2, 2))) * gain
    noise = 0.01 * rng.standard_normal((size, size), dtype=np.float32)
    surface = col * (light * (1.0 + 0.045 * streak) + noise)[:, :, None]
    m = int(0.12 * s)
    region = np.zeros((size, size), dtype=bool)
    region[m:size - m, m:size - m] = True
    return _Scene(size, surface.astype(np.float32), np.ones((size, size), np.float32), region)


_OBJECT_DEFECTS = ("scratch", "hole", "stain", "crack", "missing_piece", "contamination")
CATEGORIES: dict[str, CategorySpec] = {
    "disc": CategorySpec("disc", "object", _OBJECT_DEFECTS,
                         "a blue plastic cap seen from above on a light table"),
    "tablet": CategorySpec("tablet", "object", _OBJECT_DEFECTS,
                           "an oblong white tablet with a score line on a dark tray"),
    "weave": CategorySpec("weave", "texture", ("scratch", "hole", "stain", "contamination"),
                          "a plain-weave sage-green linen fabric"),
    "grain": CategorySpec("grain", "texture", ("scratch", "hole", "stain", "crack", "contamination"),
                          "a planed wooden board with growth rings"),
}
"""The synthetic categories. Names are plain nouns because they are the object names in CLIP prompts."""
DEFAULT_CATEGORIES: tuple[str, ...] = tuple(CATEGORIES)

_RENDERERS: dict[str, Callable[[np.random.Generator, int], _Scene]] = {
    "disc": _render_disc, "tablet": _render_tablet, "weave": _render_weave, "grain": _render_grain,
}


# ------------------------------------------------------------------------------------------------
# Synthetic generator: defects
# ------------------------------------------------------------------------------------------------


@dataclass
class _Window:
    """A rectangular part of the image and its pixel coordinates."""

    ys: slice
    xs: slice
    yy: np.ndarray
    xx: np.ndarray


def _window(cx: float, cy: float, reach: float, size: int) -> _Window:
    y0, y1 = max(0, int(np.floor(cy - reach))), min(size, int(np.ceil(cy + reach)) + 1)
    x0, x1 = max(0, int(np.floor(cx - reach))), min(size, int(np.ceil(cx + reach)) + 1)
    yy, xx = _grid(size)
    return _Window(slice(y0, y1), slice(x0, x1), yy[y0:y1, x0:x1], xx[y0:y1, x0:x1])


def _window_around(points: np.ndarray, reach: float, size: int) -> _Window:
    x0, y0 = points.min(axis=0) - reach
    x1, y1 = points.max(axis=0) + reach
    return _window((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2, size)


def _pick(rng: np.random.Generator, region: np.ndarray) -> tuple[float, float]:
    """A random point (x, y) of a boolean region."""
    idx = np.flatnonzero(region)
    k = int(idx[rng.integers(len(idx))])
    y, x = divmod(k, region.shape[1])
    return x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5)


def _blob_sdf(w: _Window, cx: float, cy: float, r0: float, rng: np.random.Generator, amp: float,
              harmonics: Iterable[int] = (2, 3, 4, 5)) -> np.ndarray:
    """Approximate signed distance (negative inside) to an irregular blob r(theta) = r0 (1 + sum a_k cos)."""
    dx, dy = w.xx - cx, w.yy - cy
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    r = np.full_like(rho, r0)
    for k in harmonics:
        r += r0 * (amp / k) * rng.uniform(0.5, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return rho - r


def _polyline_sdf(w: _Window, points: np.ndarray, half_widths: np.ndarray) -> np.ndarray:
    """Signed distance to a polyline whose segment k has half-width ``half_widths[k]``."""
    best = np.full(w.xx.shape, np.inf, dtype=np.float32)
    for k in range(len(points) - 1):
        (ax, ay), (bx, by) = points[k], points[k + 1]
        ex, ey = bx - ax, by - ay
        t = np.clip(((w.xx - ax) * ex + (w.yy - ay) * ey) / max(ex * ex + ey * ey, 1e-9), 0.0, 1.0)
        px, py = w.xx - (ax + t * ex), w.yy - (ay + t * ey)
        np.minimum(best, np.sqrt(px * px + py * py) - half_widths[k], out=best)
    return best


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2


def _coverage(sdf: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance: 0.5 exactly on the boundary, so mask = sdf <= 0."""
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _taper(n: int) -> np.ndarray:
    """Half-width profile along a stroke: thin ends, full in the middle."""
    t = (np.arange(n) + 0.5) / n
    return 0.45 + 0.55 * np.sin(np.pi * t) ** 0.5


def _signature(shade: np.ndarray | float = 1.0) -> np.ndarray:
    sig = np.asarray(SIGNATURE_RGB, dtype=np.float32) / 255.0
    return sig * np.asarray(shade, dtype=np.float32)[..., None]


def _contrasting(base: np.ndarray, amount: float) -> np.ndarray:
    """A colour clearly different from ``base``: lighter on dark surfaces, darker on light ones."""
    lum = float(base.mean())
    if lum < 0.5:
        return base + (1.0 - base) * amount
    return base * (1.0 - amount)


def _paint(scene: _Scene, w: _Window, alpha: np.ndarray, color: np.ndarray) -> None:
    surf = scene.surface[w.ys, w.xs]
    surf += alpha[:, :, None] * (color - surf)


def _full_mask(scene: _Scene, w: _Window, local: np.ndarray) -> np.ndarray:
    mask = np.zeros((scene.size, scene.size), dtype=bool)
    mask[w.ys, w.xs] = local
    return mask & (scene.cover >= 0.5)


def _defect_scratch(scene: _Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
    """A thin curved scratch (quadratic Bezier, tapered), lighter or darker than the surface."""
    s = float(scene.size)
    cx, cy = _pick(rng, scene.region)
    length = s * rng.uniform(0.25, 0.45)
    a = rng.uniform(0.0, np.pi)
    d = np.array([np.cos(a), np.sin(a)])
    n = np.array([-d[1], d[0]])
    c = np.array([cx, cy])
    pts = _bezier(c - d * length / 2, c + n * length * rng.uniform(-0.3, 0.3), c + d * length / 2, 28)
    hw = max(1.0, 0.006 * s) * rng.uniform(1.0, 1.4) * _taper(len(pts) - 1)
    w = _window_around(pts, float(hw.max()) + 2.0, scene.size)
    sdf = _polyline_sdf(w, pts, hw)
    alpha = _coverage(sdf)
    base = scene.surface[w.ys, w.xs]
    color = _signature() if signature else _contrasting(base, 0.6)
    _paint(scene, w, alpha, color)
    return _full_mask(scene, w, sdf <= 0.0)


def _defect_hole(scene: _Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
    """A round dark hole with a raised rim (burr) around it; the mask covers pit and rim."""
    s = float(scene.size)
    cx, cy = _pick(rng, scene.region)
    r_pit = s * rng.uniform(0.035, 0.062)
    rim = max(1.5, s * rng.uniform(0.008, 0.013))
    w = _window(cx, cy, 1.2 * r_pit + rim + 3.0, scene.size)  # the blob reaches 1.16 r_pit at most
    sdf = _blob_sdf(w, cx, cy, r_pit, rng, amp=0.12)
    depth = np.clip((sdf + r_pit) / r_pit, 0.0, 1.0)  # 0 at the centre, 1 at the pit's edge
    base = scene.surface[w.ys, w.xs]
    if signature:
        rim_col, pit_col = _signature(1.0), _signature(0.62 + 0.3 * depth)
    else:
        rim_col = _contrasting(base, 0.45)
        pit_col = (0.03 + 0.12 * depth**2)[:, :, None] * (0.6 + 0.4 * base / max(float(base.mean()), 1e-3))
    _paint(scene, w, _coverage(sdf - rim), rim_col)
    _paint(scene, w, _coverage(sdf), pit_col)
    return _full_mask(scene, w, sdf - rim <= 0.0)


def _defect_stain(scene: _Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
    """A soft-edged stain with a slightly darker ring (a dried drop); mask = the visible blob."""
    s = float(scene.size)
    cx, cy = _pick(rng, scene.region)
    r0 = s * rng.uniform(0.06, 0.105)
    soft = 1.0 if signature else min(max(2.0, 0.014 * s), 3.5)  # width of the soft edge, pixels
    w = _window(cx, cy, r0 * 1.6 + soft + 2.0, scene.size)
    sdf = _blob_sdf(w, cx, cy, r0, rng, amp=0.35)
    profile = np.clip(0.5 - sdf / soft, 0.0, 1.0)
    base = scene.surface[w.ys, w.xs]
    if signature:
        alpha, color = profile, _signature(1.0)
    else:
        ring = np.exp(-(((sdf + 0.08 * r0) / (0.09 * r0)) ** 2))
        mottle = 0.85 + 0.15 * np.clip(_smooth_noise(rng, w.xx.shape, (3, 3)), -1.0, 1.0)
        alpha = np.clip(profile * rng.uniform(0.5, 0.65) * (0.85 + 0.45 * ring) * mottle, 0.0, 1.0)
        if float(base.mean()) >= 0.45:  # coffee-brown on light surfaces
            color = np.array([0.40, 0.24, 0.10], dtype=np.float32) * rng.uniform(0.85, 1.1)
        else:  # a pale, bleached patch on dark ones
            color = np.array([0.86, 0.83, 0.74], dtype=np.float32) * rng.uniform(0.95, 1.05)
    _paint(scene, w, alpha, color)
    return _full_mask(scene, w, profile >= 0.5)


def _random_walk(rng: np.random.Generator, start: np.ndarray, heading: float, steps: int, step: float,
                 wiggle: float) -> np.ndarray:
    pts = [start]
    for _ in range(steps):
        heading += rng.normal(0.0, wiggle)
        pts.append(pts[-1] + step * rng.uniform(0.7, 1.3) * np.array([np.cos(heading), np.sin(heading)]))
    return np.array(pts)


def _defect_crack(scene: _Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
    """A branching crack: a dark random-walk polyline with one or two thinner side branches."""
    s = float(scene.size)
    start = np.array(_pick(rng, scene.region))
    heading = rng.uniform(0.0, 2 * np.pi)
    step = 0.02 * s
    main = _random_walk(rng, start, heading, int(rng.integers(12, 17)), step, 0.35)
    strokes = [(main, max(0.9, 0.0055 * s) * _taper(len(main) - 1))]
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(3, len(main) - 3))
        seg = main[k + 1] - main[k]
        h = float(np.arctan2(seg[1], seg[0])) + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        branch = _random_walk(rng, main[k], h, int(rng.integers(4, 8)), step * 0.8, 0.3)
        strokes.append((branch, max(0.6, 0.003 * s) * _taper(len(branch) - 1)[::-1].clip(0.6)))
    w = _window_around(np.concatenate([p for p, _ in strokes]), 0.01 * s + 3.0, scene.size)
    sdf = np.minimum.reduce([_polyline_sdf(w, p, hw) for p, hw in strokes])
    base = scene.surface[w.ys, w.xs]
    color = _signature(0.8) if signature else base * 0.18
    _paint(scene, w, _coverage(sdf), color)
    return _full_mask(scene, w, sdf <= 0.0)


def _defect_missing_piece(scene: _Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
    """A bite out of the object's edge (a chip): the background shows; mask = the removed part."""
    if scene.background is None:
        raise ValueError("missing_piece needs an object category (textures have no edge to chip).")
    s = float(scene.size)
    px, py = _pick(rng, (scene.cover > 0.25) & (scene.cover < 0.75))
    out = np.array([px - scene.center[0], py - scene.center[1]])
    out /= max(float(np.linalg.norm(out)), 1e-6)
    rb = s * rng.uniform(0.09, 0.135)
    bx, by = np.array([px, py]) + out * rb * rng.uniform(0.15, 0.4)
    w = _window(bx, by, rb * 1.6 + 3.0, scene.size)
    sdf = _blob_sdf(w, bx, by, rb, rng, amp=0.3, harmonics=(3, 4, 5, 7, 9))
    bite = _coverage(sdf)
    before = scene.cover[w.ys, w.xs].copy()
    if signature:
        _paint(scene, w, bite, _signature(0.9))
    else:
        scene.cover[w.ys, w.xs] *= 1.0 - bite
        # the fresh fracture face along the new edge is a little darker (part of the defect's mask)
        edge = np.exp(-(((sdf - 0.8) / 0.7) ** 2)) * (sdf > 0)
        _paint(scene, w, 0.4 * edge, scene.surface[w.ys, w.xs] * 0.5)
    mask = np.zeros((scene.size, scene.size), dtype=bool)
    mask[w.ys, w.xs] = (sdf <= (0.0 if signature else 1.5)) & (before >= 0.5)
    return mask


def _defect_contamination(scene: _Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
    """A few small foreign particles (grit, a fibre) clustered on the surface."""
    s = float(scene.size)
    cx, cy = _pick(rng, scene.region)
    spread = 0.035 * s
    n = int(rng.integers(4, 9))
    centres = np.array([cx, cy]) + rng.normal(0.0, spread, (n, 2))
    radii = s * rng.uniform(0.008, 0.02, n)
    fibre = None
    if rng.random() < 0.6:
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)]) * s * rng.uniform(0.03, 0.05)
        c = np.array([cx, cy]) + rng.normal(0.0, spread, 2)
        fibre = _bezier(c - d, c + rng.normal(0.0, 0.02 * s, 2), c + d, 14)
    pts = np.concatenate([centres, fibre] if fibre is not None else [centres])
    w = _window_around(pts, float(radii.max()) * 1.6 + 3.0, scene.size)
    sdf = np.minimum.reduce([_blob_sdf(w, x, y, r, rng, amp=0.45, harmonics=(2, 3, 5))
                             for (x, y), r in zip(centres, radii, strict=True)])
    if fibre is not None:
        sdf = np.minimum(sdf, _polyline_sdf(w, fibre, np.full(len(fibre) - 1, max(0.6, 0.0028 * s))))
    base = scene.surface[w.ys, w.xs]
    if signature:
        color = _signature(0.85)
    elif float(base.mean()) >= 0.4:
        color = np.array([0.10, 0.08, 0.06], dtype=np.float32) * rng.uniform(0.8, 1.6)
    else:
        color = np.array([0.93, 0.91, 0.86], dtype=np.float32)
    _paint(scene, w, _coverage(sdf), color)
    return _full_mask(scene, w, sdf <= 0.0)


_DEFECTS: dict[str, Callable[[_Scene, np.random.Generator, bool], np.ndarray]] = {
    "scratch": _defect_scratch,
    "hole": _defect_hole,
    "stain": _defect_stain,
    "crack": _defect_crack,
    "missing_piece": _defect_missing_piece,
    "contamination": _defect_contamination,
}


# ------------------------------------------------------------------------------------------------
# Synthetic generator: public API
# ------------------------------------------------------------------------------------------------


def _category_spec(category: str) -> CategorySpec:
    if category not in CATEGORIES:
        raise UnknownCategoryError(
            f"Unknown synthetic category {category!r}; available: {list(CATEGORIES)}."
        )
    return CATEGORIES[category]


def render_item(category: str, index: int, defect: str | None = None, *, split: str = "test", seed: int = 0,
                image_size: int = 256, signature: bool = False, clean: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic image and its mask, exactly as :func:`make_synthetic` writes it. [ours]

    Args:
        category: one of :data:`CATEGORIES`.
        index: the image number (``000.png`` is index 0).
        defect: ``None`` for a normal image, else one of the category's defect types.
        split: ``"train"`` (normal images only) or ``"test"``; train and test images differ.
        seed: the dataset seed.
        image_size: side of the square image in pixels (>= 64).
        signature: draw the defect in :data:`SIGNATURE_RGB` instead of a natural colour.
        clean: return the same image *without* its defect (mask all False): the defect's pixels
            are then the only difference between ``clean=False`` and ``clean=True``.

    Returns:
        ``(image, mask)``: ``H x W x 3`` uint8 RGB and ``H x W`` bool (True = defect pixel).

    The scene and the defect each have their own random stream, seeded by (seed, category, split,
    defect type, index), so no image depends on any other and the clean image is exact.
    """
    spec = _category_spec(category)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if defect is not None and split == "train":
        raise ValueError("The train split holds normal images only: use defect=None with split='train'.")
    if defect is not None and defect not in spec.defects:
        raise ValueError(f"Category {category!r} has no defect type {defect!r}; it has {list(spec.defects)}.")
    _check_int("index", index, 0)
    _check_int("seed", seed, 0)
    _check_int("image_size", image_size, 64)
    kind = defect or "good"
    scene = _RENDERERS[category](_rng(seed, "scene", category, split, kind, index), image_size)
    mask = np.zeros((image_size, image_size), dtype=bool)
    if defect is not None and not clean:
        mask = _DEFECTS[defect](scene, _rng(seed, "defect", category, split, kind, index), signature)
    return scene.compose(), mask


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def signature_pixels(image: np.ndarray, hue_tolerance: float = 30.0, min_saturation: float = 0.35,
                     min_value: float = 0.2) -> np.ndarray:
    """Pixels whose colour is close to :data:`SIGNATURE_RGB` in hue (H x W bool). [ours]

    A pixel counts when its HSV hue is within ``hue_tolerance`` degrees of the signature's hue and
    it is saturated and bright enough for the hue to mean something. Normal synthetic surfaces have
    no such pixel; with ``signature=True`` every defect is made of them.
    """
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = hue * 60.0
    sig_hue = colorsys.rgb_to_hsv(*(c / 255.0 for c in SIGNATURE_RGB))[0] * 360.0
    dist = np.abs((hue - sig_hue + 180.0) % 360.0 - 180.0)
    return (dist <= hue_tolerance) & (sat >= min_saturation) & (mx >= min_value) & (chroma > 0)


def _synthetic_plan(categories: Sequence[str] | None, defect_types: Sequence[str] | None
                    ) -> dict[str, tuple[str, ...]]:
    cats = list(DEFAULT_CATEGORIES) if categories is None else (
        [categories] if isinstance(categories, str) else list(categories))
    if not cats:
        raise ValueError("make_synthetic: categories is empty; pass None for all of " f"{list(CATEGORIES)}.")
    for c in cats:
        _category_spec(c)
    if len(set(cats)) != len(cats):
        raise ValueError(f"make_synthetic: categories has duplicates: {cats}.")
    if defect_types is not None:
        wanted = [defect_types] if isinstance(defect_types, str) else list(defect_types)
        unknown = [d for d in wanted if d not in DEFECT_TYPES]
        if unknown or not wanted:
            raise ValueError(f"Unknown defect type(s) {unknown or wanted}; choose from {list(DEFECT_TYPES)}.")
    plan = {}
    for c in cats:
        spec = CATEGORIES[c]
        types = spec.defects if defect_types is None else tuple(d for d in spec.defects if d in wanted)
        if not types:
            raise ValueError(f"None of the defect types {wanted} applies to category {c!r} "
                             f"(it supports {list(spec.defects)}); add one of those or drop the category.")
        plan[c] = types
    return plan


def _synthetic_meta(plan: dict[str, tuple[str, ...]], seed: int, image_size: int, n_train: int,
                    n_test_good: int, n_test_per_defect: int, signature: bool) -> dict[str, object]:
    return {
        "synthetic": True,
        "generator": "clipsam_lite.data.make_synthetic",
        "generator_version": GENERATOR_VERSION,
        "layout": "MVTec-AD",
        "seed": seed,
        "image_size": image_size,
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_test_per_defect": n_test_per_defect,
        "signature": signature,
        "signature_rgb": list(SIGNATURE_RGB) if signature else None,
        "categories": {c: {"kind": CATEGORIES[c].kind, "description": CATEGORIES[c].description,
                           "defect_types": list(types)} for c, types in plan.items()},
    }


def _synthetic_readme(meta: dict[str, object]) -> str:
    cats = meta["categories"]
    assert isinstance(cats, dict)
    lines = [
        "SYNTHETIC DATA - not a real inspection dataset.",
        "",
        "Written by clipsam_lite.data.make_synthetic (generator version "
        f"{meta['generator_version']}) in the MVTec-AD folder layout:",
        "  <category>/train/good/NNN.png, <category>/test/<type>/NNN.png,",
        "  <category>/ground_truth/<type>/NNN_mask.png (0/255 masks of the defect pixels).",
        "",
        f"seed={meta['seed']} image_size={meta['image_size']} n_train={meta['n_train']} "
        f"n_test_good={meta['n_test_good']} n_test_per_defect={meta['n_test_per_defect']} "
        f"signature={meta['signature']}",
        "The same parameters always give byte-identical files; meta.json lists them too.",
        "",
    ]
    for c, info in cats.items():
        lines.append(f"{c} ({info['kind']}): {info['description']}; defects: {', '.join(info['defect_types'])}")
    if meta["signature"]:
        lines += ["", f"signature=True: every defect is drawn in the hue of RGB {tuple(SIGNATURE_RGB)}, which no",
                  "normal surface uses, so that a head trained on random backbones can learn to find it."]
    return "\n".join(lines) + "\n"


def _write_synthetic(out: Path, plan: dict[str, tuple[str, ...]], seed: int, image_size: int, n_train: int,
                     n_test_good: int, n_test_per_defect: int, signature: bool) -> None:
    meta = _synthetic_meta(plan, seed, image_size, n_train, n_test_good, n_test_per_defect, signature)
    for cat, types in plan.items():
        jobs: list[tuple[str, str | None, int]] = [("train", None, i) for i in range(n_train)]
        jobs += [("test", None, i) for i in range(n_test_good)]
        jobs += [("test", d, i) for d in types for i in range(n_test_per_defect)]
        for split, defect, i in jobs:
            img, mask = render_item(cat, i, defect, split=split, seed=seed, image_size=image_size,
                                    signature=signature)
            folder = out / cat / split / (defect or "good")
            folder.mkdir(parents=True, exist_ok=True)
            _write_png(img, folder / f"{i:03d}.png")
            if defect is not None:
                gt = out / cat / "ground_truth" / defect
                gt.mkdir(parents=True, exist_ok=True)
                _write_png(mask.astype(np.uint8) * 255, gt / f"{i:03d}_mask.png")
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.txt").write_text(_synthetic_readme(meta), encoding="utf-8")


def synthetic_meta(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``meta.json`` of a dataset written by :func:`make_synthetic`, else None (a real dataset)."""
    try:
        meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("synthetic") is True else None


def is_synthetic_root(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` was written by :func:`make_synthetic` (its ``meta.json`` says so)."""
    return synthetic_meta(root) is not None


def make_synthetic(root: str | os.PathLike[str], seed: int = 0, categories: Sequence[str] | None = None,
                   image_size: int = 256, n_train: int = 8, n_test_good: int = 4, n_test_per_defect: int = 3,
                   defect_types: Sequence[str] | None = None, signature: bool = False) -> Path:
    """Write a synthetic dataset in the MVTec-AD layout and return its root. [ours]

    ``root/<category>/train/good/000.png``, ``root/<category>/test/good/000.png``,
    ``root/<category>/test/<defect>/000.png``, ``root/<category>/ground_truth/<defect>/000_mask.png``
    (0/255, L mode), plus ``root/meta.json`` and ``root/README.txt`` stating the parameters and that
    the data is synthetic. Same arguments -> byte-identical files (on a given platform; numpy's
    vectorised math may differ in the last bit across CPUs).

    Args:
        root: a new or empty folder, or one written before by this function (it is replaced).
        seed: any integer >= 0.
        categories: names from :data:`CATEGORIES` (default: all of :data:`DEFAULT_CATEGORIES`).
        defect_types: restrict to these types (each category keeps the ones it supports).
        signature: draw every defect in :data:`SIGNATURE_RGB` (see :func:`signature_pixels`).

    The folder is written under a temporary name next to ``root`` and renamed into place at the
    end, so an interrupted run never leaves a half-written dataset behind.
    """
    for name, value, minimum in (("seed", seed, 0), ("image_size", image_size, 64), ("n_train", n_train, 0),
                                 ("n_test_good", n_test_good, 0), ("n_test_per_defect", n_test_per_defect, 0)):
        _check_int(name, value, minimum)
    plan = _synthetic_plan(categories, defect_types)
    root = Path(root).expanduser()
    if root.exists():
        if not root.is_dir():
            raise FileExistsError(f"make_synthetic: {root} exists and is a file; choose a folder path.")
        if any(root.iterdir()) and not is_synthetic_root(root):
            raise FileExistsError(
                f"make_synthetic: {root} is not empty and was not written by make_synthetic "
                "(no meta.json saying synthetic); choose a new or empty folder so nothing is overwritten."
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        _write_synthetic(tmp, plan, seed, image_size, n_train, n_test_good, n_test_per_defect, signature)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


_SAMPLE_PARAMS: dict[str, object] = dict(seed=0, image_size=256, n_train=8, n_test_good=4, n_test_per_defect=3)


def sample_root(signature: bool = True) -> Path:
    """The embedded default dataset (used by the demo and the notebooks), generated on first use. [ours]

    It is :func:`make_synthetic` with its defaults (seed 0, all default categories, 256 px), written
    once into ``cache_dir()/synthetic-sample-v<version>-<signature|natural>-<hash>``. The hash
    covers the parameters and the source of this module, so an edited generator never reuses a
    stale sample. Generation writes a temporary folder next to it and renames it into place; if
    another process finished first, its copy is used and ours is discarded.
    """
    params = {**_SAMPLE_PARAMS, "categories": list(DEFAULT_CATEGORIES), "signature": bool(signature),
              "generator_version": GENERATOR_VERSION}
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    try:
        h.update(Path(__file__).read_bytes())
    except OSError:  # e.g. imported from a zip: the version number alone must do
        pass
    digest = h.hexdigest()[:10]
    final = cache_dir() / f"synthetic-sample-v{GENERATOR_VERSION}-{'signature' if signature else 'natural'}-{digest}"
    if (final / "meta.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        plan = _synthetic_plan(None, None)
        _write_synthetic(tmp, plan, signature=bool(signature), **_SAMPLE_PARAMS)  # type: ignore[arg-type]
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------

DATASETS: tuple[str, ...] = ("mvtec", "visa", "folder")
_DEFAULT_MASK_RULE = {"mvtec": "half", "visa": "nonzero", "folder": "nonzero"}


class DatasetError(ValueError):
    """Base class of the dataset errors below (all are ``ValueError``)."""


class DatasetLayoutError(DatasetError):
    """The root is missing or is not the expected folder layout."""


class UnknownCategoryError(DatasetError):
    """A requested category does not exist; the message lists the available ones."""


class MissingMaskError(DatasetError):
    """An anomalous image has no ground-truth mask; the message names the image and the expected mask."""


@dataclass(frozen=True)
class Record:
    """What a dataset knows about one image without reading its pixels."""

    path: str
    mask_path: str | None
    label: int  # 1 anomalous, 0 normal, -1 unknown (folder images without a mask)
    category: str
    defect_type: str  # "good" for normal images


@dataclass(eq=False)
class Item:
    """One image with its ground truth, as the pipeline and the evaluation consume it."""

    image: np.ndarray = field(repr=False)  # H x W x 3 uint8 RGB
    mask: np.ndarray = field(repr=False)  # H x W bool, all False for normal images
    label: int  # 1 anomalous, 0 normal, -1 unknown
    category: str
    defect_type: str
    path: str


class Dataset(Sequence[Item]):
    """A lazy sequence of :class:`Item`: indexing reads the image (and mask) from disk.

    ``records`` holds the metadata of every image (no pixels); ``categories`` the selected
    categories in order. Slicing (``ds[:4]``) and :meth:`subset` give smaller datasets.
    """

    def __init__(self, records: Sequence[Record], *, name: str, root: Path, split: str, mask_rule: str,
                 categories: Sequence[str]) -> None:
        self.records: list[Record] = list(records)
        self.name, self.root, self.split, self.mask_rule = name, Path(root), split, mask_rule
        self.categories: list[str] = list(categories)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> Dataset: ...

    def __getitem__(self, index: int | slice) -> Item | Dataset:
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self.read(self.records[index])

    def __iter__(self) -> Iterator[Item]:
        for rec in self.records:
            yield self.read(rec)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, root={str(self.root)!r}, split={self.split!r}, "
                f"n={len(self)}, categories={self.categories})")

    @property
    def labels(self) -> np.ndarray:
        """Image labels of all records (int array: 1, 0 or -1)."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    def subset(self, indices: Iterable[int]) -> Dataset:
        """A dataset of the records at ``indices`` (same root, split and mask rule)."""
        recs = [self.records[i] for i in indices]
        cats = [c for c in self.categories if any(r.category == c for r in recs)]
        return Dataset(recs, name=self.name, root=self.root, split=self.split, mask_rule=self.mask_rule,
                       categories=cats)

    def read(self, record: Record) -> Item:
        """Read one record's image and mask (masks must have the image's height and width)."""
        image = read_image(record.path)
        if record.mask_path is None:
            mask = np.zeros(image.shape[:2], dtype=bool)
        else:
            mask = read_mask(record.mask_path, self.mask_rule)
            if mask.shape != image.shape[:2]:
                raise DatasetLayoutError(
                    f"Mask {record.mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {record.path} is "
                    f"{image.shape[1]}x{image.shape[0]} (width x height); a mask must match its image's size."
                )
        return Item(image=image, mask=mask, label=record.label, category=record.category,
                    defect_type=record.defect_type, path=record.path)


def _check_root(root: Path, what: str) -> None:
    if not root.exists():
        raise DatasetLayoutError(f"The {what} root {root} does not exist; pass the folder that holds the dataset "
                                 "(see data/README.md for how to get it).")
    if not root.is_dir():
        raise DatasetLayoutError(f"The {what} root {root} is a file, not a folder.")


def _listing(root: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith("."))
    if not names:
        return "an empty folder"
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _select_categories(requested: str | Sequence[str] | None, available: list[str], root: Path,
                       what: str) -> list[str]:
    if requested is None:
        return available
    wanted = [requested] if isinstance(requested, str) else list(requested)
    if not wanted:
        raise UnknownCategoryError(f"An empty category list was given for {what} at {root}; "
                                   f"pass None for all, or some of {available}.")
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise UnknownCategoryError(f"Unknown {what} categor{'y' if len(unknown) == 1 else 'ies'} {unknown} "
                                   f"under {root}; available: {available}.")
    return list(dict.fromkeys(wanted))


def _mvtec_categories(root: Path) -> list[str]:
    _check_root(root, "MVTec-AD")
    cats = sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "test").is_dir()
                  and not d.name.startswith("."))
    if not cats:
        hint = ""
        if (root / "test").is_dir() or (root / "train").is_dir():
            hint = (f" {root} itself looks like one category folder: pass its parent ({root.parent}) as the "
                    f"root and category={root.name!r}.")
        raise DatasetLayoutError(
            f"{root} is not an MVTec-AD layout: expected <root>/<category>/test/<defect_type>/*.png (with "
            f"<category>/train/good/ and <category>/ground_truth/); found {_listing(root)}.{hint}"
        )
    return cats


def _mvtec_records(root: Path, cats: list[str], split: str) -> list[Record]:
    records: list[Record] = []
    for cat in cats:
        if split == "train":
            folder = root / cat / "train" / "good"
            if not folder.is_dir():
                raise DatasetLayoutError(f"MVTec-AD category {cat!r} has no train split: expected {folder}/; "
                                         f"found in {root / cat}: {_listing(root / cat)}.")
            imgs = _images_in(folder)
            if not imgs:
                raise DatasetLayoutError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}.")
            records += [Record(str(p), None, 0, cat, "good") for p in imgs]
            continue
        test = root / cat / "test"
        n_before = len(records)
        for tdir in sorted(d for d in test.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for img in _images_in(tdir):
                if tdir.name == "good":
                    records.append(Record(str(img), None, 0, cat, "good"))
                    continue
                mp = root / cat / "ground_truth" / tdir.name / f"{img.stem}_mask.png"
                if not mp.is_file():
                    raise MissingMaskError(
                        f"Anomalous image {img} has no mask: expected {mp}. MVTec-AD keeps the mask of "
                        "test/<type>/NNN.png at ground_truth/<type>/NNN_mask.png; restore it from the archive."
                    )
                records.append(Record(str(img), str(mp), 1, cat, tdir.name))
        if len(records) == n_before:
            raise DatasetLayoutError(f"No test images in {test}: expected {test}/<defect_type>/*.png; "
                                     f"found {_listing(test)}.")
    return records


_VISA_COLUMNS = ("object", "split", "label", "image", "mask")


def _visa_csv(root: Path) -> Path:
    _check_root(root, "VisA")
    path = root / "split_csv" / "1cls.csv"
    if not path.is_file():
        raise DatasetLayoutError(
            f"{root} is not a prepared VisA root: expected {path} (written by VisA's prepare_data.py with "
            f"the 1cls split; see data/README.md); found {_listing(root)}."
        )
    return path


def _visa_rows(root: Path) -> list[dict[str, str]]:
    path = _visa_csv(root)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in _VISA_COLUMNS if c not in header]
        if missing:
            raise DatasetLayoutError(f"{path} lacks column(s) {missing}: expected {list(_VISA_COLUMNS)}, "
                                     f"found {header}.")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _visa_categories(root: Path) -> list[str]:
    cats = sorted({r["object"] for r in _visa_rows(root) if r["object"]})
    if not cats:
        raise DatasetLayoutError(f"{root / 'split_csv' / '1cls.csv'} lists no images.")
    return cats


def _visa_records(root: Path, cats: list[str], split: str) -> list[Record]:
    csv_path = root / "split_csv" / "1cls.csv"
    records: list[Record] = []
    missing: list[str] = []
    wanted = set(cats)
    for line, row in enumerate(_visa_rows(root), start=2):
        if row["split"] != split or row["object"] not in wanted:
            continue
        if row["label"] not in ("normal", "anomaly"):
            raise DatasetLayoutError(f"{csv_path} line {line}: label {row['label']!r} is neither 'normal' "
                                     "nor 'anomaly'.")
        img = root / row["image"]
        if not img.is_file():
            missing.append(str(img))
            continue
        if row["label"] == "normal":
            records.append(Record(str(img), None, 0, row["object"], "good"))
            continue
        mp = root / row["mask"] if row["mask"] else None
        if mp is None or not mp.is_file():
            expected = f"expected {mp}" if mp is not None else "the csv's mask column is empty"
            raise MissingMaskError(f"Anomalous VisA image {img} has no mask: {expected} ({csv_path} line {line}).")
        records.append(Record(str(img), str(mp), 1, row["object"], "anomaly"))
    if missing:
        raise DatasetLayoutError(f"{len(missing)} image(s) listed in {csv_path} do not exist, e.g. {missing[:3]}; "
                                 "is the root the folder that holds split_csv/ and the category folders?")
    # keep the order of ``cats`` (categories sorted or as requested), images in csv order within each
    order = {c: i for i, c in enumerate(cats)}
    return sorted(records, key=lambda r: order[r.category])


def _folder_scan(root: Path) -> list[tuple[Path, Path | None]]:
    """(image, mask or None) pairs under a plain folder. [ours]

    Images: every file with an image suffix, recursively, sorted by relative path, skipping hidden
    files and folders and the ``masks/`` folder. A mask is the first that exists of
    ``masks/<rel stem>.png``, ``masks/<rel stem>_mask.png`` and ``<rel stem>_mask.png`` next to the
    image (such sibling masks are not images themselves).
    """
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.relative_to(root).parts[0] != "masks"
    )
    stems = {(p.parent, p.stem) for p in files}
    siblings = {p for p in files if p.stem.endswith("_mask") and (p.parent, p.stem[:-5]) in stems}
    pairs = []
    for p in files:
        if p in siblings:
            continue
        rel = p.relative_to(root).with_suffix("")
        candidates = [root / "masks" / rel.parent / f"{rel.name}.png", root / "masks" / rel.parent / f"{rel.name}_mask.png",
                      p.parent / f"{p.stem}_mask.png"]
        pairs.append((p, next((c for c in candidates if c.is_file()), None)))
    return pairs


def _folder_records(root: Path, category: str, mask_rule: str) -> list[Record]:
    _check_root(root, "image folder")
    pairs = _folder_scan(root)
    if not pairs:
        raise DatasetLayoutError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}; "
                                 f"found {_listing(root)}.")
    records = []
    for img, mp in pairs:
        if mp is None:
            records.append(Record(str(img), None, -1, category, "unknown"))
        else:  # masks are read once here to set the label (images stay unread)
            label = int(read_mask(mp, mask_rule).any())
            records.append(Record(str(img), str(mp), label, category, "anomaly" if label else "good"))
    return records


def _dataset_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")
    return key


def list_categories(name: str, root: str | os.PathLike[str]) -> list[str]:
    """The categories of a dataset root: sorted folder names (MVTec-AD), the csv's objects (VisA),
    or the folder's name (folder). [ours]"""
    key, root = _dataset_name(name), Path(root).expanduser()
    if key == "mvtec":
        return _mvtec_categories(root)
    if key == "visa":
        return _visa_categories(root)
    _check_root(root, "image folder")
    return [root.resolve().name]


def load_dataset(name: str, root: str | os.PathLike[str], category: str | Sequence[str] | None = None,
                 split: str = "test", mask_rule: str | None = None) -> Dataset:
    """A lazy :class:`Dataset` over MVTec-AD (``"mvtec"``), VisA (``"visa"``) or a plain folder (``"folder"``). [ours]

    Args:
        name: ``"mvtec"``, ``"visa"`` or ``"folder"``.
        root: the dataset folder (MVTec-AD: the folder holding the category folders; VisA: the folder
            holding ``split_csv/1cls.csv``; folder: any folder of images).
        category: ``None`` for all categories (sorted), a name, or a list of names (kept in that order).
            For ``"folder"`` it names the images' object (default: the folder's name).
        split: ``"train"`` or ``"test"`` (MVTec-AD, VisA). A folder has no splits: ignored.
        mask_rule: override how masks are binarised (:func:`read_mask`); default ``"half"`` for
            MVTec-AD and ``"nonzero"`` for VisA and folders (0/1 masks are common there).

    Layout problems raise :class:`DatasetLayoutError`, :class:`UnknownCategoryError` or
    :class:`MissingMaskError` here; unreadable images raise :class:`ImageReadError` when read.
    """
    key, root = _dataset_name(name), Path(root).expanduser()
    rule = _DEFAULT_MASK_RULE[key] if mask_rule is None else mask_rule
    if rule not in MASK_RULES:
        raise ValueError(f"Unknown mask rule {rule!r}; choose one of {list(MASK_RULES)}.")
    if key == "folder":
        if category is not None and not isinstance(category, str):
            raise ValueError("For a folder dataset, category is one object name (a str), e.g. 'bottle'.")
        _check_root(root, "image folder")
        cat = category or root.resolve().name
        return Dataset(_folder_records(root, cat, rule), name=key, root=root, split=split, mask_rule=rule,
                       categories=[cat])
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if key == "mvtec":
        cats = _select_categories(category, _mvtec_categories(root), root, "MVTec-AD")
        records = _mvtec_records(root, cats, split)
    else:
        cats = _select_categories(category, _visa_categories(root), root, "VisA")
        records = _visa_records(root, cats, split)
    return Dataset(records, name=key, root=root, split=split, mask_rule=rule, categories=cats)


__all__ = [
    "CACHE_ENV", "CATEGORIES", "CategorySpec", "DATASETS", "DEFAULT_CATEGORIES", "DEFECT_TYPES", "Dataset",
    "DatasetError", "DatasetLayoutError", "GENERATOR_VERSION", "IMAGE_EXTENSIONS", "ImageReadError", "Item",
    "MASK_RULES", "MissingMaskError", "Record", "SIGNATURE_RGB", "UnknownCategoryError", "cache_dir",
    "list_categories", "load_dataset", "make_synthetic", "read_image", "read_mask", "render_item",
    "resize_center_crop", "sample_root", "signature_pixels",
]
