"""The synthetic world's defects: six painters with exact masks. [ours]

Taught in notebook 00 (section 4, "The embedded synthetic sample"); no METHOD.md step: the offline
stand-in for MVTec-AD / VisA (METHOD.md, "Evaluation protocol"). Each painter draws one defect of its
type on a :class:`~clipsam_lite.synthetic.scenes.Scene` and returns its exact ``H x W`` bool mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .scenes import SIGNATURE_RGB, Scene, pixel_grid, smooth_noise

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
    yy, xx = pixel_grid(size)
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


def _paint(scene: Scene, w: _Window, alpha: np.ndarray, color: np.ndarray) -> None:
    surf = scene.surface[w.ys, w.xs]
    surf += alpha[:, :, None] * (color - surf)


def _full_mask(scene: Scene, w: _Window, local: np.ndarray) -> np.ndarray:
    mask = np.zeros((scene.size, scene.size), dtype=bool)
    mask[w.ys, w.xs] = local
    return mask & (scene.cover >= 0.5)


def _defect_scratch(scene: Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
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


def _defect_hole(scene: Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
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


def _defect_stain(scene: Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
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
        mottle = 0.85 + 0.15 * np.clip(smooth_noise(rng, w.xx.shape, (3, 3)), -1.0, 1.0)
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


def _defect_crack(scene: Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
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


def _defect_missing_piece(scene: Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
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


def _defect_contamination(scene: Scene, rng: np.random.Generator, signature: bool) -> np.ndarray:
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


DEFECT_PAINTERS: dict[str, Callable[[Scene, np.random.Generator, bool], np.ndarray]] = {
    "scratch": _defect_scratch,
    "hole": _defect_hole,
    "stain": _defect_stain,
    "crack": _defect_crack,
    "missing_piece": _defect_missing_piece,
    "contamination": _defect_contamination,
}
