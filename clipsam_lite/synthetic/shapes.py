"""Dead-leaves pretext scenes for the mini-SAM: overlapping shapes where a click must pick one region. [ours]

Taught in notebook 00 (section "9. The miniature world", "The mini profile"); no METHOD.md step: this is training data for the
SAM that METHOD.md steps 2 and 4 use. A scene is a textured ground with 3-8 overlapping shapes
(ellipses, rounded rectangles, polygons, blobs, strokes; stars are a held-out family) in flat, shaded
or textured fills, painted back to front. Each shape's *visible* region is a target. Some shapes
carry a small **mark** painted inside them (a spot, a dent): clicking the mark is ambiguous in the
way the paper's motivation describes (the mark, or the whole shape it sits on), so the mark's
target has the shape as its **parent**. A prompt placed on one region must segment that region and
nothing else: the prompt is necessary, unlike in scenes with one conspicuous blob.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .scenes import pixel_grid, rng_for, smooth_noise

__all__ = ["ShapeScene", "render_shapes", "TRAIN_FAMILIES", "HELDOUT_FAMILIES", "FAMILIES"]

TRAIN_FAMILIES: tuple[str, ...] = ("ellipse", "rounded_rect", "polygon", "blob", "stroke")
HELDOUT_FAMILIES: tuple[str, ...] = ("star",)
FAMILIES: tuple[str, ...] = TRAIN_FAMILIES + HELDOUT_FAMILIES


@dataclass(frozen=True)
class ShapeScene:
    """One dead-leaves scene: the image and its targets.

    ``targets[i]`` is an ``S x S`` bool mask (a shape's visible region, mark included, or a mark);
    ``parents[i]`` is the index of the target that contains target ``i`` (a mark's shape) or -1;
    ``kinds[i]`` is ``"shape"`` or ``"mark"``; ``families[i]`` the shape family.
    """

    image: np.ndarray
    targets: tuple[np.ndarray, ...]
    parents: tuple[int, ...]
    kinds: tuple[str, ...]
    families: tuple[str, ...]


def _sdf(family: str, rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Approximate signed distance (negative inside) of one random shape of ``family``, ``size x size``.

    Computed in the window that can hold the shape (the rest of the image is far outside: +inf).
    """
    s = float(size)
    cx, cy = rng.uniform(0.1, 0.9) * s, rng.uniform(0.1, 0.9) * s
    r = scale * s * rng.uniform(0.6, 1.0)
    reach = 1.8 * r + 4
    ys = slice(max(0, int(cy - reach)), min(size, int(cy + reach) + 1))
    xs = slice(max(0, int(cx - reach)), min(size, int(cx + reach) + 1))
    out = np.full((size, size), np.inf, np.float32)
    out[ys, xs] = _sdf_window(family, rng, pixel_grid(size)[0][ys, xs], pixel_grid(size)[1][ys, xs], cx, cy, r)
    return out


def _sdf_window(family: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cx: float, cy: float,
                r: float) -> np.ndarray:
    a = rng.uniform(0, math.pi)
    ca, sa = math.cos(a), math.sin(a)
    u = (xx - cx) * ca + (yy - cy) * sa
    v = -(xx - cx) * sa + (yy - cy) * ca
    if family == "ellipse":
        ax, by = r, r * rng.uniform(0.4, 1.0)
        k = np.sqrt((u / ax) ** 2 + (v / by) ** 2)
        return (k - 1.0) * min(ax, by)
    if family == "rounded_rect":
        hx, hy, rad = r, r * rng.uniform(0.35, 1.0), r * rng.uniform(0.05, 0.35)
        qx, qy = np.abs(u) - hx + rad, np.abs(v) - hy + rad
        return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rad
    if family in ("polygon", "star"):
        n = int(rng.integers(3, 8)) if family == "polygon" else int(rng.integers(5, 8))
        theta = np.arctan2(v, u)
        rho = np.hypot(u, v)
        if family == "polygon":  # regular n-gon: distance to the nearest edge line
            sector = 2 * math.pi / n
            local = np.mod(theta, sector) - sector / 2
            return rho * np.cos(local) - r * math.cos(math.pi / n)
        inner = rng.uniform(0.35, 0.55)
        t = np.abs(np.mod(theta * n / (2 * math.pi), 1.0) - 0.5) * 2  # 1 at a tip, 0 between tips
        return rho - r * (inner + (1 - inner) * t)
    if family == "blob":
        theta = np.arctan2(v, u)
        rad = np.full_like(u, r)
        for k in (2, 3, 4, 5):
            rad += r * (0.4 / k) * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        return np.hypot(u, v) - rad
    if family == "stroke":
        t = np.linspace(0, 1, 12)[:, None]
        p0 = np.array([cx, cy]) - r * np.array([ca, sa])
        p2 = np.array([cx, cy]) + r * np.array([ca, sa])
        p1 = np.array([cx, cy]) + rng.normal(0, 0.6 * r, 2)
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2
        half = max(2.0, r * rng.uniform(0.06, 0.22))
        d = np.full_like(u, np.inf)
        for k in range(len(pts) - 1):
            (ax_, ay_), (bx_, by_) = pts[k], pts[k + 1]
            ex, ey = bx_ - ax_, by_ - ay_
            tt = np.clip(((xx - ax_) * ex + (yy - ay_) * ey) / max(ex * ex + ey * ey, 1e-9), 0, 1)
            d = np.minimum(d, np.hypot(xx - (ax_ + tt * ex), yy - (ay_ + tt * ey)))
        return d - half
    raise ValueError(f"Unknown shape family {family!r}; choose one of {list(FAMILIES)}.")


def _fill(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random fill, ``size x size x 3`` float in [0, 1]: flat, shaded (a gradient) or textured."""
    yy, xx = pixel_grid(size)
    col = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    kind = rng.choice(["flat", "shaded", "textured", "stripes"], p=[0.3, 0.3, 0.25, 0.15])
    if kind == "flat":
        gain = np.ones((size, size), np.float32)
    elif kind == "shaded":
        a = rng.uniform(0, 2 * math.pi)
        gain = 1 + rng.uniform(0.1, 0.35) * ((xx * math.cos(a) + yy * math.sin(a)) / size - 0.5) * 2
    elif kind == "textured":
        c = int(rng.integers(4, 24))
        gain = 1 + rng.uniform(0.05, 0.25) * smooth_noise(rng, (size, size), (c, c))
    else:
        a, period = rng.uniform(0, math.pi), rng.uniform(4, 16)
        gain = 1 + rng.uniform(0.1, 0.3) * np.sign(np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period))
    return np.clip(col[None, None] * gain[:, :, None], 0, 1).astype(np.float32)


def _mark(rng: np.random.Generator, inside: np.ndarray, size: int) -> np.ndarray | None:
    """A small spot (4-14 px radius blob) lying fully inside ``inside``, or None if it has no room."""
    from scipy import ndimage

    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    if len(rows) == 0:
        return None
    y0, x0 = rows[0], cols[0]
    box = inside[y0: rows[-1] + 1, x0: cols[-1] + 1]
    depth = ndimage.distance_transform_edt(np.pad(box, 1))[1:-1, 1:-1]
    room = depth >= 6
    if not room.any():
        return None
    ys, xs = np.nonzero(room)
    k = int(rng.integers(len(ys)))
    r = min(float(depth[ys[k], xs[k]]) - 2, size * rng.uniform(0.015, 0.055))
    cy, cx = ys[k] + y0, xs[k] + x0
    reach = int(1.6 * r) + 2
    wy = slice(max(0, cy - reach), min(size, cy + reach + 1))
    wx = slice(max(0, cx - reach), min(size, cx + reach + 1))
    yy, xx = pixel_grid(size)[0][wy, wx], pixel_grid(size)[1][wy, wx]
    theta = np.arctan2(yy - cy, xx - cx)
    rad = np.full(yy.shape, r, np.float32)
    for h in (2, 3, 5):
        rad += r * (0.3 / h) * rng.uniform(0.3, 1.0) * np.cos(h * theta + rng.uniform(0, 2 * math.pi))
    m = np.zeros((size, size), bool)
    m[wy, wx] = np.hypot(xx - cx, yy - cy) <= rad
    return m & inside


def render_shapes(index: int, *, seed: int = 0, size: int = 256, families: tuple[str, ...] = TRAIN_FAMILIES,
                  split: str = "train", min_area: int = 24) -> ShapeScene:
    """A dead-leaves scene, deterministic from (seed, split, index, size, families). [ours]

    3-8 shapes of ``families`` are painted back to front on a textured ground; each visible region of
    at least ``min_area`` pixels is a target. With probability 0.5 per shape (at most 2 per scene) a
    mark is painted inside a shape's visible region: the mark is a target whose parent is the shape.
    """
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"Unknown shape families {unknown or families}; choose from {list(FAMILIES)}.")
    rng = rng_for(seed, "shapes", split, ",".join(families), index, size)
    image = _fill(rng, size)
    owner = np.full((size, size), -1, np.int32)
    fams: list[str] = []
    for i in range(int(rng.integers(3, 9))):
        fam = str(rng.choice(families))
        inside = _sdf(fam, rng, size, scale=rng.uniform(0.08, 0.3)) <= 0
        image = np.where(inside[:, :, None], _fill(rng, size), image)
        owner[inside] = i
        fams.append(fam)
    targets: list[np.ndarray] = []
    parents: list[int] = []
    kinds: list[str] = []
    families_out: list[str] = []
    n_marks = 0
    for i, fam in enumerate(fams):
        vis = owner == i
        if vis.sum() < min_area:
            continue
        shape_idx = len(targets)
        targets.append(vis)
        parents.append(-1)
        kinds.append("shape")
        families_out.append(fam)
        if n_marks < 2 and rng.random() < 0.5:
            m = _mark(rng, vis, size)
            if m is not None and m.sum() >= 12:
                col = rng.uniform(0.0, 1.0, 3).astype(np.float32)
                image = np.where(m[:, :, None], col[None, None], image)
                targets.append(m)
                parents.append(shape_idx)
                kinds.append("mark")
                families_out.append(fam)
                n_marks += 1
    noise = rng.normal(0, 0.012, (size, size, 1)).astype(np.float32)
    img = np.floor(np.clip(image + noise, 0, 1) * 255 + 0.5).astype(np.uint8)
    return ShapeScene(img, tuple(targets), tuple(parents), tuple(kinds), tuple(families_out))
