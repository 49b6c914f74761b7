"""The synthetic world's scenes: categories, their renderers, lighting and noise. [ours]

Taught in notebook 00 (section 4, "The embedded synthetic sample"); no METHOD.md step: this is the
offline stand-in for MVTec-AD / VisA images (METHOD.md, "Evaluation protocol"). Each renderer draws one
clean object or texture in layers (:class:`Scene`) so that defects (:mod:`.defects`) can be painted on
top of the exact clean image.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image

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
class Scene:
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
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator seeded by (seed, keys): categories and images never share or consume streams."""
    ints = [int(seed)] + [k if isinstance(k, int) else zlib.crc32(k.encode("utf-8")) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(ints))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
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


def _render_disc(rng: np.random.Generator, size: int) -> Scene:
    """A round plastic cap seen from above on a light table (a bottle cap): lip, knurled rim, emboss."""
    yy, xx = pixel_grid(size)
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
    light = 1.0 + 0.05 * smooth_noise(rng, (size, size), (2, 2)) - 0.06 * ((xx + yy) / s - 1.0)
    sdx, sdy = xx - (cx + 0.025 * s), yy - (cy + 0.035 * s)
    shadow = _drop_shadow(np.sqrt(sdx * sdx + sdy * sdy) - radius, 0.05 * s)
    bg = bg_col[None, None, :] * (light * (1.0 - 0.32 * shadow))[:, :, None]
    bg = bg + 0.010 * rng.standard_normal((size, size, 1), dtype=np.float32)
    return Scene(size, surface.astype(np.float32), cover.astype(np.float32), rn <= 0.74,
                  bg.astype(np.float32), (cx, cy))


def _render_tablet(rng: np.random.Generator, size: int) -> Scene:
    """An oblong white tablet (a pill) with a score line, on a dark slate tray."""
    yy, xx = pixel_grid(size)
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
    powder = smooth_noise(rng, (size, size), (24, 24))
    height = s * (0.05 * dome - 0.006 * score + 0.0008 * powder)
    shade = _shade(height, 0.42, 0.62)
    grain = 0.010 * rng.standard_normal((size, size), dtype=np.float32)
    surface = base[None, None, :] * (gain * shade)[:, :, None] + grain[:, :, None]
    cover = np.clip(rad - d + 0.5, 0.0, 1.0)

    bg_col = np.array([0.20, 0.22, 0.26], dtype=np.float32) * gain
    light = 1.0 + 0.08 * smooth_noise(rng, (size, size), (2, 2)) - 0.10 * ((xx + yy) / s - 1.0)
    su, sv = u - 0.03 * s, v - 0.02 * s
    sd = np.sqrt(np.maximum(np.abs(su) - half_len, 0.0) ** 2 + sv * sv) - rad
    bg = bg_col[None, None, :] * (light * (1.0 - 0.45 * _drop_shadow(sd, 0.045 * s)))[:, :, None]
    bg = bg + 0.010 * rng.standard_normal((size, size, 1), dtype=np.float32)
    return Scene(size, surface.astype(np.float32), cover.astype(np.float32), dn <= 0.62,
                  bg.astype(np.float32), (cx, cy))


def _render_weave(rng: np.random.Generator, size: int) -> Scene:
    """A plain-weave fabric (sage-green linen): darker warp threads over and under lighter weft threads."""
    yy, xx = pixel_grid(size)
    s = float(size)
    period = s / 30.0 * rng.uniform(0.96, 1.04)
    ang = math.radians(rng.uniform(-4.0, 4.0))
    ca, sa = math.cos(ang), math.sin(ang)
    gain = rng.uniform(0.94, 1.05)
    warp_col = np.array([0.36, 0.50, 0.40], dtype=np.float32) + rng.normal(0.0, 0.012, 3).astype(np.float32)
    weft_col = np.array([0.58, 0.67, 0.54], dtype=np.float32) + rng.normal(0.0, 0.012, 3).astype(np.float32)

    wob_u = 0.10 * smooth_noise(rng, (size, size), (4, 4))
    wob_v = 0.10 * smooth_noise(rng, (size, size), (4, 4))
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
    light = 1.0 + 0.04 * smooth_noise(rng, (size, size), (2, 2))
    shade = (0.35 + 0.7 * h + twist * h + fibre) * light * gain
    surface = col * shade[:, :, None]
    m = int(0.12 * s)
    region = np.zeros((size, size), dtype=bool)
    region[m:size - m, m:size - m] = True
    return Scene(size, surface.astype(np.float32), np.ones((size, size), np.float32), region)


def _render_grain(rng: np.random.Generator, size: int) -> Scene:
    """A planed wooden board: gently wavy growth rings (light earlywood, dark latewood), fibre streaks."""
    yy, xx = pixel_grid(size)
    s = float(size)
    ang = math.radians(rng.uniform(-10.0, 10.0))
    ca, sa = math.cos(ang), math.sin(ang)
    gain = rng.uniform(0.94, 1.05)
    light_col = np.array([0.84, 0.66, 0.45], dtype=np.float32) + rng.normal(0.0, 0.015, 3).astype(np.float32)
    dark_col = np.array([0.60, 0.40, 0.23], dtype=np.float32) + rng.normal(0.0, 0.015, 3).astype(np.float32)

    along = xx * ca + yy * sa
    across = -xx * sa + yy * ca
    warp = 0.045 * s * smooth_noise(rng, (size, size), (2, 2)) + 0.004 * s * smooth_noise(rng, (size, size), (3, 8))
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
    light = (1.0 + 0.05 * smooth_noise(rng, (size, size), (2, 2))) * gain
    noise = 0.01 * rng.standard_normal((size, size), dtype=np.float32)
    surface = col * (light * (1.0 + 0.045 * streak) + noise)[:, :, None]
    m = int(0.12 * s)
    region = np.zeros((size, size), dtype=bool)
    region[m:size - m, m:size - m] = True
    return Scene(size, surface.astype(np.float32), np.ones((size, size), np.float32), region)


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

RENDERERS: dict[str, Callable[[np.random.Generator, int], Scene]] = {
    "disc": _render_disc, "tablet": _render_tablet, "weave": _render_weave, "grain": _render_grain,
}
