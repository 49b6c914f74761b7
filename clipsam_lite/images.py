"""Reading any image or mask into RGB uint8 / bool, and the evaluation-protocol resize. [ours]

Taught in notebook 00 (section 9, "Robust input: odd images and wrong folders"); no METHOD.md step of
its own: the paper says nothing about how images are read. The rules we follow:

* :func:`read_image` always returns ``H x W x 3`` ``uint8`` RGB, whatever the file stores
  (grayscale, alpha, palette, CMYK, 16-bit, float), and refuses truncated or corrupt files with an
  :class:`ImageReadError` that names the path instead of returning half-decoded pixels.
* :func:`read_mask` always returns ``H x W`` ``bool``. MVTec-AD masks (0/255) are binarised at half
  the maximum (``rule="half"``), VisA masks (0/1 or class ids) with ``!= 0`` (``rule="nonzero"``).
* :func:`resize_squash` is the evaluation protocol's resize (METHOD.md, "Evaluation protocol": the peers'
  ``Resize((518, 518))``); :func:`resize_center_crop` its option (short side + centre crop);
  :func:`resize_for_eval` picks one by ``Config.eval_resize``.
* Only regular files of at most 512 MiB (``$CLIPSAM_MAX_IMAGE_BYTES``) are read, and only images of
  at most :func:`max_image_pixels` pixels (``$CLIPSAM_MAX_IMAGE_PIXELS``) are decoded; a FIFO, a
  device or a decompression bomb is refused with the limit and how to raise it.
"""

from __future__ import annotations

import errno
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

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


MAX_IMAGE_PIXELS_ENV = "CLIPSAM_MAX_IMAGE_PIXELS"
MAX_IMAGE_BYTES_ENV = "CLIPSAM_MAX_IMAGE_BYTES"


def max_image_pixels() -> int:
    """The largest image (width x height) decoded: ``$CLIPSAM_MAX_IMAGE_PIXELS``, else Pillow's
    ``Image.MAX_IMAGE_PIXELS`` (89,478,485 by default, about 9459 x 9459). [ours]

    Larger files are refused from their header, before any pixel is decoded: a few hundred bytes
    of PNG can claim 12000 x 12000 pixels (a "decompression bomb")."""
    from .safe_io import limit_from_env

    default = Image.MAX_IMAGE_PIXELS or 89_478_485
    return limit_from_env(MAX_IMAGE_PIXELS_ENV, int(default))


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_need(ihdr: tuple[int, ...]) -> int | None:
    """Bytes of inflated image data a PNG with this IHDR holds (rows x (1 filter byte + row bytes), the
    seven Adam7 passes summed when interlaced), or None for an unknown colour type."""
    width, height, depth, colour, _, _, interlace = ihdr
    if colour not in _PNG_CHANNELS:
        return None
    bits = depth * _PNG_CHANNELS[colour]
    passes = [(-(-(width - x0) // dx), -(-(height - y0) // dy)) for x0, y0, dx, dy in _ADAM7
              if width > x0 and height > y0] if interlace else [(width, height)]
    return sum(h * (1 + (w * bits + 7) // 8) for w, h in passes)


def _png_short_rows(data: bytes) -> tuple[int, int] | None:
    """``(rows present, rows declared)`` when a PNG's image data (its IDAT chunks, inflated) is shorter than
    its IHDR says, else None [ours]. Pillow fills the missing rows with zeros without a word when the
    file still ends with IEND. The inflated bytes are counted in pieces of at most 1 MiB and counting
    stops once the header's size is reached, so a decompression bomb costs no memory here."""
    import struct
    import zlib

    pos, need, height, z, got = 8, None, 0, zlib.decompressobj(), 0
    try:
        while pos + 8 <= len(data):
            n, kind = struct.unpack(">I4s", data[pos:pos + 8])
            if kind == b"IHDR" and n >= 13:
                ihdr = struct.unpack(">IIBBBBB", data[pos + 8:pos + 21])
                need, height = _png_need(ihdr), ihdr[1]
                if need is None:
                    return None
            elif kind == b"IDAT" and need is not None:
                body = data[pos + 8:pos + 8 + n]
                while body and got < need:
                    got += len(z.decompress(body, 1 << 20))
                    body = z.unconsumed_tail
            elif kind == b"IEND":
                break
            pos += 12 + n
        while need is not None and got < need:  # output zlib still holds back
            more = len(z.decompress(b"", 1 << 20))
            if not more:
                break
            got += more
    except zlib.error:
        return None  # a corrupt stream is Pillow's to report, and it does
    if need is None or got >= need:
        return None
    return got * height // need, height


def _too_many_pixels(p: Path, width: int, height: int, limit: int) -> ImageReadError:
    return ImageReadError(
        f"Cannot read image {p}: it is {width} x {height} = {width * height:,} pixels, above the limit of "
        f"{limit:,} pixels (a guard against decompression bombs). Downscale it (e.g. to at most 4096 px a side) "
        f"or, if the file is genuine and the memory suffices, raise the limit: {MAX_IMAGE_PIXELS_ENV}="
        f"{width * height}.")


def _open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file, or raise an error that names the path. [ours]

    Only a regular file of at most :data:`safe_io.MAX_IMAGE_BYTES` is read (no FIFO, no device), and
    only an image of at most :func:`max_image_pixels` pixels is decoded (checked from its header).
    The whole file is read into memory and decoded at once (``Image.load``), so a truncated file
    fails here rather than later. PIL tolerates a few truncations silently (a PNG missing its final
    chunks or IEND but short image data, a JPEG cut after its last complete block); those are caught
    by checking for the PNG ``IEND`` chunk and the rows its image data holds (:func:`_png_short_rows`),
    and for the JPEG end-of-image marker. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set.
    """
    from .safe_io import MAX_IMAGE_BYTES, UnsafeInputError, limit_from_env, read_regular_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "Image file not found (check the path or the dataset root)", str(p))
    if p.is_dir():
        raise ImageReadError(f"Cannot read image {p}: it is a directory, not an image file.")
    try:
        data = read_regular_file(p, "image", limit_from_env(MAX_IMAGE_BYTES_ENV, MAX_IMAGE_BYTES),
                                 MAX_IMAGE_BYTES_ENV)
    except UnsafeInputError as e:
        raise ImageReadError(str(e)) from None
    except OSError as e:
        raise ImageReadError(f"Cannot read image {p}: {e}.") from e
    if not data:
        raise ImageReadError(f"Cannot read image {p}: the file is empty; {_FIX}.")
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # the user raised our limit: Pillow's own check must follow it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > limit:
                raise _too_many_pixels(p, width, height, limit)
            im.load()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:  # Pillow's own check inside Image.open (above 2 x its limit)
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageReadError(f"Cannot read image {p}: it has {size}, above the limit of {limit:,} pixels (a guard "
                             f"against decompression bombs). Downscale it (e.g. to at most 4096 px a side) or, if "
                             f"the file is genuine, raise the limit with {MAX_IMAGE_PIXELS_ENV}=<pixels>.") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, EOFError, struct.error...
        raise ImageReadError(f"Cannot read image {p} ({type(e).__name__}: {e}); {_FIX}.") from e
    fmt = (im.format or "").upper()
    if fmt == "PNG" and data.rfind(_PNG_IEND) < 0:
        raise ImageReadError(f"Cannot read image {p}: the PNG has no IEND chunk (truncated); {_FIX}.")
    short = _png_short_rows(data) if fmt == "PNG" else None
    if short is not None:
        raise ImageReadError(f"Cannot read image {p}: the PNG's image data holds about {short[0]} of the {short[1]} "
                             f"rows its header declares (truncated; the rest would read as black); {_FIX}.")
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


def write_png(array: np.ndarray, path: Path) -> None:
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
    """Resize the short side to ``size``, then crop the central ``size x size`` square. [ours: an option; the peers squash]

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
    out = _resize_planes(a, new_h, new_w, is_mask)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(out[top:top + size, left:left + size])


def resize_squash(array: np.ndarray, size: int, is_mask: bool = False) -> np.ndarray:
    """``array`` resized to ``size x size`` without keeping the aspect ratio (METHOD.md, "Evaluation protocol").

    What APRIL-GAN's ``test.py`` and AnomalyCLIP do (``transforms.Resize((518, 518))``): no pixel is cropped
    away. Same interpolation as :func:`resize_center_crop`: bilinear (PIL, antialiased when shrinking) for
    images and maps (``uint8`` stays ``uint8``, anything else ``float32``); for masks area interpolation
    (PIL ``BOX``) of the 0/1 mask, then ``>= 0.5`` (``bool``).
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"resize_squash: size must be a positive integer, got {size}.")
    a = np.asarray(array)
    if a.ndim not in (2, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"resize_squash expects an H x W or H x W x C array, got shape {a.shape}.")
    return np.ascontiguousarray(_resize_planes(a, size, size, is_mask))


def _resize_planes(a: np.ndarray, new_h: int, new_w: int, is_mask: bool) -> np.ndarray:
    """``a`` (H x W or H x W x C) resized plane by plane to ``new_h x new_w``: masks (``!= 0``) by area
    interpolation then ``>= 0.5`` (bool), images and maps bilinearly (``uint8`` kept, else ``float32``)."""
    src = ((a != 0) if a.dtype != bool else a) if is_mask else (a if a.dtype == np.uint8 else a.astype(np.float32))
    if src.shape[:2] == (new_h, new_w):
        return src
    planes = [src] if src.ndim == 2 else [src[..., c] for c in range(src.shape[2])]
    if is_mask:
        res = [_resize_plane(pl.astype(np.float32), (new_w, new_h), Image.Resampling.BOX) >= 0.5 for pl in planes]
    else:
        res = [_resize_plane(pl, (new_w, new_h), Image.Resampling.BILINEAR) for pl in planes]
    return res[0] if src.ndim == 2 else np.stack(res, axis=2)


EVAL_RESIZE_TEXT = {
    "squash": "both sides resized to the square (squash, as APRIL-GAN and AnomalyCLIP: no pixel dropped)",
    "crop": "short side resized, centre square cropped (pixels beyond the square are not evaluated)",
}


def resize_for_eval(array: np.ndarray, size: int, mode: str = "squash", is_mask: bool = False) -> np.ndarray:
    """The evaluation resize of ``Config.eval_resize``: :func:`resize_squash` or :func:`resize_center_crop`."""
    if mode == "squash":
        return resize_squash(array, size, is_mask=is_mask)
    if mode == "crop":
        return resize_center_crop(array, size, is_mask=is_mask)
    raise ValueError(f"eval_resize must be 'squash' or 'crop', got {mode!r}.")
