"""The miniature world's twelve categories: renderers with per-image colour, pose, scale and lighting. [ours]

Taught in notebook 00 (section "The miniature world"); no METHOD.md step: this is the data on which
the ``mini`` profile's CLIP is pretrained and evaluated (issue 13). Four categories reuse the
renderers of :mod:`.scenes` (disc, tablet, weave, grain) and vary them afterwards (a pose warp and a
colour transform); eight are new and are drawn directly in a random pose (ring, nut, tile, gear;
stripes, dots, marble, checker). Every renderer returns a :class:`~.scenes.Scene` whose ``region``
is where a defect can physically occur: the whole object (objects) or the whole image (textures),
so the defect painters of :mod:`.defects` place defects anywhere, without a positional prior.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from .scenes import RENDERERS, Scene, _drop_shadow, _shade, _smoothstep, pixel_grid, smooth_noise

WorldRenderer = Callable[[np.random.Generator, int], Scene]

# ------------------------------------------------------------------------------------------------
# Shared helpers: colours, pose, backgrounds
# ------------------------------------------------------------------------------------------------


def _hsv(rng: np.random.Generator, hue: tuple[float, float] = (0.0, 1.0), sat: tuple[float, float] = (0.3, 0.8),
         val: tuple[float, float] = (0.4, 0.85)) -> np.ndarray:
    """A random RGB colour (float32, 0-1) drawn uniformly in an HSV box."""
    h = rng.uniform(*hue) % 1.0
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)), dtype=np.float32)


def _pose(rng: np.random.Generator, size: int) -> tuple[float, float, float, float]:
    """Centre (x, y), scale and rotation of an object: anywhere the object still fits in the frame."""
    s = float(size)
    scale = rng.uniform(0.78, 1.12)
    cx, cy = s * (0.5 + rng.uniform(-0.09, 0.09)), s * (0.5 + rng.uniform(-0.09, 0.09))
    return cx, cy, scale, rng.uniform(0.0, 2.0 * np.pi)


def _table(rng: np.random.Generator, size: int, sdf_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
           ) -> np.ndarray:
    """A background: a table of random tone, smooth light falloff, the object's soft drop shadow."""
    yy, xx = pixel_grid(size)
    s = float(size)
    col = _hsv(rng, sat=(0.0, 0.35), val=(0.15, 0.9))
    light = 1.0 + 0.06 * smooth_noise(rng, (size, size), (2, 2)) - 0.08 * ((xx + yy) / s - 1.0)
    shadow = _drop_shadow(sdf_fn(xx - 0.025 * s, yy - 0.035 * s), 0.05 * s)
    bg = col[None, None, :] * (light * (1.0 - 0.35 * shadow))[:, :, None]
    return (bg + 0.010 * rng.standard_normal((size, size, 1), dtype=np.float32)).astype(np.float32)


def _object_scene(rng: np.random.Generator, size: int, sdf_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  height: np.ndarray, base: np.ndarray, center: tuple[float, float], gloss: float) -> Scene:
    """Shade a height field, add a highlight and grain, and put the object on a table."""
    yy, xx = pixel_grid(size)
    s = float(size)
    sdf = sdf_fn(xx, yy)
    shade = _shade(height, 0.32, 0.75)
    hx, hy = center[0] - 0.12 * s, center[1] - 0.14 * s
    spec = gloss * np.exp(-(((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * (0.07 * s) ** 2)))
    grain = 0.008 * rng.standard_normal((size, size), dtype=np.float32)
    surface = base[None, None, :] * shade[:, :, None] + (spec + grain)[:, :, None]
    cover = np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)
    return Scene(size, surface.astype(np.float32), cover, cover >= 0.5, _table(rng, size, sdf_fn), center)


def _texture_scene(size: int, surface: np.ndarray) -> Scene:
    return Scene(size, surface.astype(np.float32), np.ones((size, size), np.float32),
                 np.ones((size, size), dtype=bool))


def _rotated(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, rot: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(rot), math.sin(rot)
    dx, dy = xx - cx, yy - cy
    return dx * c + dy * s, -dx * s + dy * c


# ------------------------------------------------------------------------------------------------
# Variation of the four original categories: pose warp (objects), zoom and rotation (textures), colour
# ------------------------------------------------------------------------------------------------


def _warp(arr: np.ndarray, matrix: np.ndarray, offset: np.ndarray, mode: str) -> np.ndarray:
    """Resample a 2-D or 3-D (H x W x C) array with output (y, x) -> input matrix @ (y, x) + offset."""
    if arr.ndim == 2:
        return ndimage.affine_transform(arr, matrix, offset, order=1, mode=mode)
    return np.stack([ndimage.affine_transform(arr[:, :, c], matrix, offset, order=1, mode=mode)
                     for c in range(arr.shape[2])], axis=2)


def _affine(size: int, zoom: float, rot: float, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Input coordinates of output pixels for a zoom (> 1 enlarges) and rotation about the centre + shift."""
    c, s = math.cos(rot), math.sin(rot)
    m = np.array([[c, -s], [s, c]], dtype=np.float64) / zoom
    centre = np.array([(size - 1) / 2.0] * 2)
    out_centre = centre + np.array([shift[1], shift[0]])
    return m, centre - m @ out_centre


def _pose_object(scene: Scene, rng: np.random.Generator) -> Scene:
    """Move, rotate and scale an object scene (all layers together, so the object stays consistent)."""
    size = scene.size
    zoom = rng.uniform(0.8, 1.12)
    rot = rng.uniform(0.0, 2.0 * np.pi)
    shift = (size * rng.uniform(-0.08, 0.08), size * rng.uniform(-0.08, 0.08))
    m, off = _affine(size, zoom, rot, shift)
    cover = np.clip(_warp(scene.cover, m, off, "constant"), 0.0, 1.0).astype(np.float32)
    bg = scene.background
    assert bg is not None
    # input centre -> output: out = centre + zoom * R^T (in - centre) + shift
    c0 = (size - 1) / 2.0
    dx, dy = scene.center[0] - c0, scene.center[1] - c0
    c, s = math.cos(rot), math.sin(rot)
    # m maps output (y, x) to input; its inverse (zoom * R^T in (y, x) order) maps input to output
    oy = zoom * (c * dy + s * dx)
    ox = zoom * (-s * dy + c * dx)
    center = (c0 + ox + shift[0], c0 + oy + shift[1])
    return Scene(size, _warp(scene.surface, m, off, "nearest").astype(np.float32), cover, cover >= 0.5,
                 _warp(bg, m, off, "reflect").astype(np.float32), center)


def _pose_texture(scene: Scene, rng: np.random.Generator) -> Scene:
    """Rotate a texture by up to 25 degrees and zoom in so that no pixel comes from outside the render."""
    size = scene.size
    rot = math.radians(rng.uniform(-25.0, 25.0))
    zoom = (abs(math.cos(rot)) + abs(math.sin(rot))) * rng.uniform(1.0, 1.2)
    m, off = _affine(size, zoom, rot, (0.0, 0.0))
    surface = _warp(scene.surface, m, off, "nearest").astype(np.float32)
    return _texture_scene(size, surface)


def _recolour(img: np.ndarray, rng: np.random.Generator, hue_deg: float, sat: tuple[float, float],
              gain: tuple[float, float]) -> np.ndarray:
    """Rotate hue (in YIQ), scale saturation and brightness: a new colour for the same geometry."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
    a = math.radians(rng.uniform(-hue_deg, hue_deg))
    k = rng.uniform(*sat)
    rot = np.array([[1, 0, 0], [0, k * math.cos(a), -k * math.sin(a)], [0, k * math.sin(a), k * math.cos(a)]],
                   np.float32)
    m = np.linalg.inv(to_yiq) @ rot @ to_yiq * rng.uniform(*gain)
    return np.einsum("ij,hwj->hwi", m.astype(np.float32), img).astype(np.float32)


def _varied(name: str, hue: float, sat: tuple[float, float], gain: tuple[float, float]) -> WorldRenderer:
    base = RENDERERS[name]

    def render(rng: np.random.Generator, size: int) -> Scene:
        scene = base(rng, size)
        if scene.background is not None:
            scene = _pose_object(scene, rng)
            assert scene.background is not None
            scene.background = _recolour(scene.background, rng, 180.0, (0.0, 1.6), (0.55, 1.2))
        else:
            scene = _pose_texture(scene, rng)
        scene.surface = _recolour(scene.surface, rng, hue, sat, gain)
        return scene

    render.__doc__ = f"The package's {name!r} renderer with a random pose and colour."
    return render


# ------------------------------------------------------------------------------------------------
# New objects: ring, nut, tile, gear (drawn directly in a random pose)
# ------------------------------------------------------------------------------------------------


def _render_ring(rng: np.random.Generator, size: int) -> Scene:
    """A flat metal washer: an annulus with a rounded profile and a central hole showing the table."""
    yy, xx = pixel_grid(size)
    s = float(size)
    cx, cy, k, _ = _pose(rng, size)
    r_out = 0.31 * s * k
    r_in = r_out * rng.uniform(0.38, 0.55)

    def sdf_fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        rho = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        return np.maximum(rho - r_out, r_in - rho)

    rho = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    t = np.clip((rho - r_in) / (r_out - r_in), 0.0, 1.0)
    brushed = 0.0015 * s * smooth_noise(rng, (size, size), (40, 3))
    height = 0.03 * s * np.sqrt(np.clip(np.sin(np.pi * t), 0.0, 1.0)) + brushed
    base = _hsv(rng, hue=(0.05, 0.16), sat=(0.0, 0.55), val=(0.5, 0.85))
    return _object_scene(rng, size, sdf_fn, height, base, (cx, cy), rng.uniform(0.1, 0.3))


def _render_nut(rng: np.random.Generator, size: int) -> Scene:
    """A hexagonal nut seen from above: chamfered flats and a threaded hole."""
    yy, xx = pixel_grid(size)
    s = float(size)
    cx, cy, k, rot = _pose(rng, size)
    apothem = 0.27 * s * k
    r_hole = apothem * rng.uniform(0.4, 0.52)

    def hex_sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = _rotated(x, y, cx, cy, rot)
        u, v = np.abs(u), np.abs(v)
        return np.maximum(u * 0.8660254 + v * 0.5, v) - apothem

    def sdf_fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        rho = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        return np.maximum(hex_sdf(x, y), r_hole - rho)

    rho = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    d_edge = -hex_sdf(xx, yy)
    chamfer = _smoothstep(0.0, 0.18 * apothem, d_edge)
    threads = np.cos(2 * np.pi * (rho - r_hole) / (0.012 * s + 1.0)) * (1.0 - _smoothstep(0.0, 0.12 * apothem, rho - r_hole))
    height = s * (0.03 * chamfer + 0.002 * threads) - 0.02 * s * (1.0 - _smoothstep(0.0, 0.2 * apothem, rho - r_hole))
    base = _hsv(rng, hue=(0.0, 1.0), sat=(0.0, 0.35), val=(0.45, 0.8))
    return _object_scene(rng, size, sdf_fn, height, base, (cx, cy), rng.uniform(0.05, 0.25))


def _render_tile(rng: np.random.Generator, size: int) -> Scene:
    """A glazed ceramic tile: a rounded square with a bevelled edge and a speckled glaze."""
    yy, xx = pixel_grid(size)
    s = float(size)
    cx, cy, k, rot = _pose(rng, size)
    half = 0.25 * s * k
    round_r = half * rng.uniform(0.08, 0.3)

    def sdf_fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = _rotated(x, y, cx, cy, rot)
        qx, qy = np.abs(u) - (half - round_r), np.abs(v) - (half - round_r)
        return np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0) - round_r

    bevel = _smoothstep(0.0, 0.12 * half, -sdf_fn(xx, yy))
    speckle = (rng.random((size, size)) < 0.01).astype(np.float32) * rng.uniform(-0.08, 0.08)
    height = s * 0.03 * bevel + 0.0008 * s * smooth_noise(rng, (size, size), (10, 10))
    base = _hsv(rng, sat=(0.15, 0.7), val=(0.45, 0.92))
    scene = _object_scene(rng, size, sdf_fn, height, base, (cx, cy), rng.uniform(0.15, 0.35))
    scene.surface = scene.surface + speckle[:, :, None]
    return scene


def _render_gear(rng: np.random.Generator, size: int) -> Scene:
    """A spur gear: a toothed rim, a raised hub and a bore."""
    yy, xx = pixel_grid(size)
    s = float(size)
    cx, cy, k, rot = _pose(rng, size)
    r_root = 0.26 * s * k
    tooth = r_root * rng.uniform(0.12, 0.2)
    n_teeth = int(rng.integers(10, 19))
    r_bore = r_root * rng.uniform(0.18, 0.3)

    def sdf_fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - cx, y - cy
        rho = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx)
        profile = np.clip(2.2 * np.cos(n_teeth * theta + rot) + 0.4, -1.0, 1.0) * 0.5 + 0.5
        return np.maximum(rho - (r_root + tooth * profile), r_bore - rho)

    rho = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    hub = 1.0 - _smoothstep(r_root * 0.5, r_root * 0.56, rho)
    web = _smoothstep(r_root * 0.75, r_root * 0.8, rho)
    height = s * (0.02 + 0.012 * hub + 0.01 * web) + 0.001 * s * smooth_noise(rng, (size, size), (6, 6))
    base = _hsv(rng, hue=(0.0, 1.0), sat=(0.0, 0.6), val=(0.4, 0.85))
    return _object_scene(rng, size, sdf_fn, height, base, (cx, cy), rng.uniform(0.05, 0.25))


# ------------------------------------------------------------------------------------------------
# New textures: stripes, dots, marble, checker (random orientation, period and colours)
# ------------------------------------------------------------------------------------------------


def _texture_light(rng: np.random.Generator, size: int) -> np.ndarray:
    return (1.0 + 0.05 * smooth_noise(rng, (size, size), (2, 2))).astype(np.float32)


def _render_stripes(rng: np.random.Generator, size: int) -> Scene:
    """A striped fabric: soft-edged stripes of two colours, woven fibre noise."""
    yy, xx = pixel_grid(size)
    s = float(size)
    a = rng.uniform(0.0, np.pi)
    period = s / rng.uniform(5.0, 12.0)
    t = (xx * math.cos(a) + yy * math.sin(a)) / period + 0.05 * smooth_noise(rng, (size, size), (3, 3))
    duty = rng.uniform(0.3, 0.6)
    frac = t - np.floor(t)
    m = _smoothstep(duty - 0.04, duty + 0.04, frac) * (1.0 - _smoothstep(1.0 - 0.04, 1.0, frac))
    c1, c2 = _hsv(rng), _hsv(rng)
    fibre = 0.03 * np.cos(2 * np.pi * (xx * math.sin(a) - yy * math.cos(a)) / 3.0) + 0.015 * rng.standard_normal(
        (size, size), dtype=np.float32)
    col = c1 * (1.0 - m[:, :, None]) + c2 * m[:, :, None]
    return _texture_scene(size, col * (_texture_light(rng, size) + fibre)[:, :, None])


def _render_dots(rng: np.random.Generator, size: int) -> Scene:
    """A polka-dot print: round dots on a staggered grid, at a random angle and spacing."""
    yy, xx = pixel_grid(size)
    s = float(size)
    a = rng.uniform(0.0, np.pi)
    pitch = s / rng.uniform(6.0, 11.0)
    u = (xx * math.cos(a) + yy * math.sin(a)) / pitch + rng.uniform(0, 1)
    v = (-xx * math.sin(a) + yy * math.cos(a)) / pitch + rng.uniform(0, 1)
    row = np.floor(v)
    u = u + 0.5 * (row % 2)
    du, dv = u - np.floor(u) - 0.5, v - row - 0.5
    d = np.sqrt(du * du + dv * dv) * pitch
    radius = pitch * rng.uniform(0.16, 0.32)
    m = 1.0 - _smoothstep(radius - 0.8, radius + 0.8, d)
    c1, c2 = _hsv(rng), _hsv(rng)
    noise = 0.012 * rng.standard_normal((size, size), dtype=np.float32)
    col = c1 * (1.0 - m[:, :, None]) + c2 * m[:, :, None]
    return _texture_scene(size, col * (_texture_light(rng, size) + noise)[:, :, None])


def _render_marble(rng: np.random.Generator, size: int) -> Scene:
    """Polished marble: a pale stone with turbulent dark veins."""
    yy, xx = pixel_grid(size)
    s = float(size)
    a = rng.uniform(0.0, np.pi)
    turb = sum(smooth_noise(rng, (size, size), (c, c)) / (i + 1) for i, c in enumerate((2, 4, 8, 16)))
    t = (xx * math.cos(a) + yy * math.sin(a)) / (s / rng.uniform(1.5, 4.0)) + rng.uniform(1.0, 2.0) * turb
    vein = np.abs(np.sin(np.pi * t)) ** rng.uniform(0.25, 0.5)
    stone = _hsv(rng, sat=(0.0, 0.25), val=(0.65, 0.95))
    dark = stone * rng.uniform(0.25, 0.55)
    col = dark * (1.0 - vein[:, :, None]) + stone * vein[:, :, None]
    cloud = 0.05 * smooth_noise(rng, (size, size), (5, 5))
    noise = 0.008 * rng.standard_normal((size, size), dtype=np.float32)
    return _texture_scene(size, col * (_texture_light(rng, size) + cloud + noise)[:, :, None])


def _render_checker(rng: np.random.Generator, size: int) -> Scene:
    """A checkerboard floor: squares of two colours separated by thin grout lines."""
    yy, xx = pixel_grid(size)
    s = float(size)
    a = rng.uniform(0.0, np.pi / 2)
    pitch = s / rng.uniform(4.0, 9.0)
    u = (xx * math.cos(a) + yy * math.sin(a)) / pitch + rng.uniform(0, 2)
    v = (-xx * math.sin(a) + yy * math.cos(a)) / pitch + rng.uniform(0, 2)
    iu, iv = np.floor(u), np.floor(v)
    parity = ((iu + iv) % 2)[:, :, None]
    fu, fv = u - iu, v - iv
    edge = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) * pitch
    grout = 1.0 - _smoothstep(0.6, 1.6, edge)
    c1, c2 = _hsv(rng, val=(0.1, 0.45)), _hsv(rng, val=(0.6, 0.95))
    col = c1 * parity + c2 * (1.0 - parity)
    col = col * (1.0 - 0.45 * grout[:, :, None])
    noise = 0.012 * rng.standard_normal((size, size), dtype=np.float32)
    return _texture_scene(size, col * (_texture_light(rng, size) + noise)[:, :, None])


WORLD_RENDERERS: dict[str, WorldRenderer] = {
    "disc": _varied("disc", 180.0, (0.3, 1.4), (0.75, 1.25)),
    "tablet": _varied("tablet", 180.0, (0.0, 4.0), (0.8, 1.05)),
    "ring": _render_ring,
    "nut": _render_nut,
    "tile": _render_tile,
    "gear": _render_gear,
    "weave": _varied("weave", 180.0, (0.4, 1.6), (0.75, 1.3)),
    "grain": _varied("grain", 25.0, (0.6, 1.3), (0.7, 1.15)),
    "stripes": _render_stripes,
    "dots": _render_dots,
    "marble": _render_marble,
    "checker": _render_checker,
}
"""One renderer per world category: ``renderer(rng, size) -> Scene`` with ``region`` where defects can occur."""
