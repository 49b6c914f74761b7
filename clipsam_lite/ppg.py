"""PPG: Co-Feature Point Prompt Generation (METHOD.md step 3, eqs. 1-3).

Taught in notebook 03 (sections 2-7).

From the CLIP anomaly map ``S_a`` (``H x W``, at the image's original resolution) and SAM's image
embedding ``F``:

- ``M_apa = S_a > tau`` and ``R_a = S_a * M_apa`` (eq. 1); ``tau`` absolute, per-image Otsu or a
  percentile [ours: which one is ``Config.tau_mode``];
- positives ``P_h = TopK(R_a)`` kept at least ``d_min`` pixels apart (eq. 2) [paper: "spaced by 400
  pixels", read as a minimum distance at the original resolution, ``Config.d_min``];
- the ring ``N_a = dilate(M_apa, r) - M_apa`` with a disc of radius ``r = Config.ring_radius`` (eq. 3);
- negatives by ``Config.negative_strategy``: ``cofeature`` (default; the ring pixels least similar to
  the prototype ``f+`` of SAM features at ``P_h``) [paper: co-feature; exact rule ours],
  ``ring_low_score``, ``global_low_score`` (the paper's counter-example: SAM then segments the whole
  object) or ``none``;
- ``Config.per_component``: one prompt set per 8-connected component of ``M_apa`` (components
  smaller than ``Config.min_component_area`` pixels are ignored), or one set for all of them [ours].

Frames and lengths [METHOD.md step 3; issues 11.7 and 12.1]: PPG works on the map it is given, in that
map's pixels; the pipeline gives it ``S_a`` resized to SAM's input frame (long side ``img_size``, 1024 for
the real SAMs: ``Config.ppg_resolution``), so its cost and memory do not grow with the image. Every
length (``d_min``, ``ring_radius``, ``min_component_area``) is in ``Config.length_unit`` pixels, converted
to the map's pixels by :func:`length_scale`: with ``sam1024`` one unit is 1/1024 of the image's long side,
whatever the image's size. ``PPGResult.to_original`` maps the points to original-image coordinates (what
``SamPredictor`` expects).

Points are ``(x, y)`` = (column, row) in the map's pixels, labels 1 (positive) / 0 (negative): SAM's
``point_coords`` / ``point_labels`` convention. An empty ``M_apa`` gives no prompt sets: the image is
treated as normal (SAM is skipped and the final map is ``S_a``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .config import Config
from .sam_features import SamEmbedding, similarity_map

__all__ = [
    "PromptSet", "PPGResult", "validate_map", "threshold", "otsu_threshold", "apa_mask", "region_score",
    "spaced_topk", "disc", "dilate_disc", "ring", "components", "negatives_for", "generate_prompts",
    "length_scale", "select_components",
]

_CHUNK = 8192


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

@dataclass
class PromptSet:
    """The points for one SAM cascade: positives first, then negatives.

    ``points``: ``(n, 2)`` int64 ``(x, y)`` in original pixels; ``labels``: ``(n,)`` int64, 1 positive /
    0 negative (SAM's convention). ``component``: the ``H x W`` bool mask of the connected component
    of ``M_apa`` this set prompts (``per_component=True``), or ``None`` when one set covers all of
    ``PPGResult.region``. ``ring``: this set's candidate ring ``N_a`` (``H x W`` bool). ``similarity``:
    ``cos(f+, F)`` for this set's positives (``cofeature`` only, else ``None``).
    """

    points: np.ndarray
    labels: np.ndarray
    component: np.ndarray | None
    ring: np.ndarray
    similarity: np.ndarray | None = None

    @property
    def positives(self) -> np.ndarray:
        return self.points[self.labels == 1]

    @property
    def negatives(self) -> np.ndarray:
        return self.points[self.labels == 0]


@dataclass
class PPGResult:
    """Every intermediate of PPG, for the cascade and for teaching.

    ``tau_value``: the resolved threshold; ``m_apa``: ``S_a > tau`` (eq. 1, before dropping small
    components); ``r_a``: ``S_a * M_apa`` (eq. 1); ``region``: ``M_apa`` without the components smaller
    than ``min_component_area`` (what is prompted); ``ring``: union of the sets' rings (eq. 3);
    ``similarity``: ``cos(f+, F)`` with ``f+`` from all positives (``cofeature`` only, else ``None``);
    ``prompt_sets``: one per component, one in total, or none (normal image).
    """

    tau_value: float
    m_apa: np.ndarray
    r_a: np.ndarray
    region: np.ndarray
    ring: np.ndarray
    similarity: np.ndarray | None
    prompt_sets: list[PromptSet]
    negative_strategy: str
    original_size: tuple[int, int] | None = None
    """The image's ``(H, W)``; None when it is the map's own size."""
    length_scale: float = 1.0
    """Map pixels per ``Config.length_unit`` pixel (:func:`length_scale`)."""
    dropped_components: int = 0
    """Components of M_apa above ``min_component_area`` left out by ``Config.max_prompt_sets``."""

    @property
    def map_size(self) -> tuple[int, int]:
        return tuple(self.m_apa.shape[:2])

    def mask_to_original(self, mask: np.ndarray) -> np.ndarray:
        """A mask of the map's frame (``m_apa``, ``region``, ``ring``) at the image's size (nearest), for drawing."""
        m = np.asarray(mask, dtype=bool)
        if self.original_size is None or tuple(self.original_size) == tuple(m.shape[:2]):
            return m
        from PIL import Image

        H, W = self.original_size
        return np.asarray(Image.fromarray(m).resize((W, H), Image.NEAREST))

    def points_original(self) -> tuple[np.ndarray, np.ndarray]:
        """(all points in original-image coordinates, their labels): positives first, for drawing over the image."""
        pts = np.concatenate([self.positives, self.negatives]).astype(np.float64)
        return self.to_original(pts), np.r_[np.ones(len(self.positives)), np.zeros(len(self.negatives))]

    def to_original(self, points_xy: np.ndarray) -> np.ndarray:
        """(x, y) in the map's pixels -> original-image coordinates, by the per-axis scale ``(W / w, H / h)``."""
        p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if self.original_size is None or tuple(self.original_size) == self.map_size:
            return p
        (H, W), (h, w) = self.original_size, self.map_size
        return p * np.array([W / w, H / h])

    @property
    def is_normal(self) -> bool:
        """No prompt set: ``M_apa`` is empty (or only tiny components), SAM is skipped."""
        return not self.prompt_sets

    @property
    def positives(self) -> np.ndarray:
        """All positive points of all sets, ``(n, 2)`` int64 ``(x, y)``."""
        return _stack([s.positives for s in self.prompt_sets])

    @property
    def negatives(self) -> np.ndarray:
        """All negative points of all sets, ``(n, 2)`` int64 ``(x, y)``."""
        return _stack([s.negatives for s in self.prompt_sets])


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays, axis=0) if arrays else np.zeros((0, 2), dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------------

def validate_map(s_a: np.ndarray, name: str = "S_a") -> np.ndarray:
    """``s_a`` as a finite 2-D float array, or a ``ValueError`` that says what is wrong."""
    if not isinstance(s_a, np.ndarray):
        try:
            s_a = np.asarray(s_a)
        except Exception:  # pragma: no cover - asarray rarely fails
            raise TypeError(f"{name} must be a numpy array H x W, got {type(s_a).__name__}.") from None
    if s_a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D map H x W; got shape {s_a.shape}. "
                         f"Pass one image's map (e.g. clip_maps.anomaly_maps(...).maps[i]).")
    if min(s_a.shape) < 1:
        raise ValueError(f"{name} is empty (shape {s_a.shape}).")
    if not np.issubdtype(s_a.dtype, np.number) and s_a.dtype != np.bool_:
        raise ValueError(f"{name} must be numeric, got dtype {s_a.dtype}.")
    s = s_a.astype(np.float32, copy=False)
    finite = np.isfinite(s)
    if not finite.all():
        n_nan, n_inf = int(np.isnan(s).sum()), int(np.isinf(s).sum())
        ys, xs = np.nonzero(~finite)
        raise ValueError(f"{name} has {n_nan} NaN and {n_inf} inf value(s) (first at x={xs[0]}, y={ys[0]}); "
                         f"PPG needs a finite map. Fix the map upstream (e.g. np.nan_to_num(s_a, nan=0.0)).")
    return s


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the cut maximising the between-class variance [ours: 256 bins].

    Returns the upper edge of the last bin of the low class, so ``values > t`` is the high class.
    A constant input has no cut: its value is returned (``values > t`` is then empty).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = v.size - w0
    s0 = np.cumsum(hist * centers)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = (float((hist * centers).sum()) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    between[(w0 == 0) | (w1 == 0)] = -1.0
    i = int(np.argmax(between))  # first maximum: deterministic
    return float(edges[i + 1])


def threshold(s_a: np.ndarray, cfg: Config) -> float:
    """The value of ``tau`` for this map (METHOD.md step 3) [ours: ``cfg.tau_mode``].

    ``absolute``: ``cfg.tau``; ``otsu``: Otsu's threshold of ``S_a`` (the map's own two classes);
    ``percentile``: ``np.percentile(S_a, cfg.tau)`` (``cfg.tau`` in [0, 100]). On a constant map
    ``otsu`` and ``percentile`` give the constant, so ``M_apa`` is empty.
    """
    s = validate_map(s_a)
    if cfg.tau_mode == "absolute":
        return float(cfg.tau)
    if cfg.tau_mode == "otsu":
        return otsu_threshold(s)
    if cfg.tau_mode == "percentile":
        return float(np.percentile(s, cfg.tau))
    raise ValueError(f"Unknown tau_mode {cfg.tau_mode!r}; choose 'absolute', 'otsu' or 'percentile'.")


def apa_mask(s_a: np.ndarray, tau: float) -> np.ndarray:
    """``M_apa = S_a > tau`` (eq. 1): the "extremely anomalous" pixels, strict inequality."""
    return validate_map(s_a) > tau


def region_score(s_a: np.ndarray, m_apa: np.ndarray) -> np.ndarray:
    """``R_a = S_a * M_apa`` (eq. 1), float32."""
    return (validate_map(s_a) * m_apa).astype(np.float32)


def spaced_topk(score_map: np.ndarray, k: int, d_min: float, candidates_mask: np.ndarray | None = None,
                largest: bool = True) -> np.ndarray:
    """Greedy spaced top-k (eq. 2): the best candidate first, then the next best at least ``d_min`` from all chosen.

    Returns ``(k', 2)`` int64 ``(x, y)`` with ``k' <= k`` (fewer when the candidates run out; no
    error). A candidate whose Euclidean distance to an already chosen point is strictly less than
    ``d_min`` is skipped. ``largest=False`` takes the lowest scores first (negatives).
    Ties are broken in row-major order (smaller ``y`` first, then smaller ``x``): a stable sort of
    the candidates in row-major order. Cost: one sort of the candidates; each chosen point paints
    the disc of radius ``d_min`` around it into a "forbidden" image, and candidates are filtered by
    one lookup in it, in vectorised chunks of ``_CHUNK``: the Python loop runs once per chosen point
    and once per chunk, never once per pixel.
    """
    s = validate_map(score_map, "score_map")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}.")
    if d_min < 0:
        raise ValueError(f"d_min must be >= 0, got {d_min}.")
    if candidates_mask is None:
        ys, xs = np.divmod(np.arange(s.size), s.shape[1])
    else:
        cm = np.asarray(candidates_mask, dtype=bool)
        if cm.shape != s.shape:
            raise ValueError(f"candidates_mask has shape {cm.shape}; the score map has {s.shape}.")
        ys, xs = np.nonzero(cm)  # row-major order
    if k == 0 or len(ys) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    vals = s[ys, xs]
    order = np.argsort(-vals if largest else vals, kind="stable")
    coords = np.stack([xs[order], ys[order]], axis=1).astype(np.int64)
    if d_min == 0:
        return coords[:k]
    H, W = s.shape
    # forbidden[y, x]: within d_min (strictly) of a chosen point; painted once per chosen point
    forbidden = np.zeros((H, W), dtype=bool)
    rad = int(np.ceil(d_min))
    oy, ox = np.mgrid[-rad:rad + 1, -rad:rad + 1]
    inside = (ox * ox + oy * oy) < float(d_min) ** 2
    oy, ox = oy[inside], ox[inside]
    chosen: list[np.ndarray] = []
    for start in range(0, len(coords), _CHUNK):
        cand = coords[start:start + _CHUNK]
        cand = cand[~forbidden[cand[:, 1], cand[:, 0]]]
        while len(cand) and len(chosen) < k:
            p = cand[0]
            chosen.append(p)
            py, px = oy + p[1], ox + p[0]
            ok = (py >= 0) & (py < H) & (px >= 0) & (px < W)
            forbidden[py[ok], px[ok]] = True
            rest = cand[1:]
            cand = rest[~forbidden[rest[:, 1], rest[:, 0]]]
        if len(chosen) >= k:
            break
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)


def disc(radius: int) -> np.ndarray:
    """The disc structuring element ``{(dx, dy): dx^2 + dy^2 <= r^2}``, ``(2r+1) x (2r+1)`` bool."""
    r = int(radius)
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of ``mask`` grown by ``margin`` pixels, clipped to the image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    H, W = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, H)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, W)))


def dilate_disc(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask`` by :func:`disc` ``(radius)``, clipped to the image.

    Computed as ``EDT(~mask) <= radius`` (a pixel is in the dilation iff some mask pixel lies within
    Euclidean distance ``radius``): the same set as ``binary_dilation(mask, disc(radius))``, at a cost
    independent of the radius, and only inside the mask's bounding box grown by ``radius + 1``
    (nothing farther can be reached).
    """
    m = np.asarray(mask, dtype=bool)
    if radius <= 0 or not m.any() or m.all():
        return m.copy()
    out = np.zeros_like(m)
    box = _bbox(m, int(np.ceil(radius)) + 1)
    out[box] = ndimage.distance_transform_edt(~m[box]) <= radius
    return out


def ring(region: np.ndarray, radius: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """``N_a = dilate(region, r) - exclude`` (eq. 3); ``exclude`` defaults to ``region`` [ours: PPG passes all of M_apa].

    The dilation stops at the image border, so a region touching the border has a clipped ring.
    """
    m = np.asarray(region, dtype=bool)
    ex = m if exclude is None else np.asarray(exclude, dtype=bool)
    return dilate_disc(m, radius) & ~ex


def components(m_apa: np.ndarray, min_area: int = 0) -> list[np.ndarray]:
    """The 8-connected components of ``m_apa`` with at least ``min_area`` pixels, as bool masks.

    Ordered by their first pixel in row-major order (``scipy.ndimage.label``'s order).
    """
    labels, n = ndimage.label(np.asarray(m_apa, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    return [labels == i for i in range(1, n + 1) if areas[i] >= max(min_area, 1)]


def length_scale(cfg: Config, map_size: tuple[int, int], original_size: tuple[int, int] | None = None) -> float:
    """Map pixels per ``cfg.length_unit`` pixel, for a map of ``map_size`` covering an image of ``original_size``.

    ``sam1024`` [METHOD.md step 3]: SAM's input frame scaled to a long side of 1024 covers the same image
    as the map's long side, so one unit is ``max(map_size) / 1024`` map pixels. ``original``: one unit
    is one pixel of the image, ``max(map_size) / max(original_size)`` (1 when the map is at the image's size).
    """
    from .config import SAM_LENGTH_FRAME

    long_side = float(max(map_size))
    if cfg.length_unit == "sam1024":
        return long_side / SAM_LENGTH_FRAME
    return long_side / float(max(original_size or map_size))


def select_components(m_apa: np.ndarray, s_a: np.ndarray, min_area: float, max_sets: int
                      ) -> tuple[list[np.ndarray], int]:
    """The components of ``m_apa`` (8-connected, at least ``min_area`` pixels) to prompt, and how many were dropped.

    ``max_sets > 0`` keeps the ``max_sets`` components with the largest ``R_a`` mass (sum of ``S_a`` over
    the component; ties: the first in row-major order) [ours, issue 11.11]; they are returned in row-major
    order of their first pixel, as :func:`components`. One label image, masks built only for the kept ones.
    """
    labels, n = ndimage.label(np.asarray(m_apa, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return [], 0
    flat = labels.ravel()
    areas = np.bincount(flat, minlength=n + 1)
    ok = np.flatnonzero(areas >= max(min_area, 1))
    ok = ok[ok > 0]
    dropped = 0
    if max_sets and len(ok) > max_sets:
        mass = np.bincount(flat, weights=np.asarray(s_a, dtype=np.float64).ravel(), minlength=n + 1)
        order = np.argsort(-mass[ok], kind="stable")
        dropped = len(ok) - max_sets
        ok = np.sort(ok[order[:max_sets]])
    return [labels == i for i in ok], dropped


def negatives_for(strategy: str, s_a: np.ndarray, m_apa: np.ndarray, ring_mask: np.ndarray, k_neg: int,
                  d_min: float, similarity: np.ndarray | None = None) -> np.ndarray:
    """Negative points ``(n, 2)`` int64 ``(x, y)`` by ``strategy`` (METHOD.md step 3), spaced by ``d_min``.

    - ``cofeature`` [paper; exact rule ours]: the ring pixels with the lowest ``similarity`` (= cos(f+, F)).
    - ``ring_low_score`` [ours]: the ring pixels with the lowest ``S_a``.
    - ``global_low_score`` [paper's counter-example]: the pixels outside ``M_apa`` with the lowest ``S_a``.
    - ``none``: no negatives.
    """
    if strategy == "none" or k_neg == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if strategy == "cofeature":
        if similarity is None:
            raise ValueError("negative_strategy='cofeature' needs the similarity map cos(f+, F) (from the SAM embedding).")
        return spaced_topk(similarity, k_neg, d_min, ring_mask, largest=False)
    if strategy == "ring_low_score":
        return spaced_topk(s_a, k_neg, d_min, ring_mask, largest=False)
    if strategy == "global_low_score":
        return spaced_topk(s_a, k_neg, d_min, ~np.asarray(m_apa, dtype=bool), largest=False)
    raise ValueError(f"Unknown negative_strategy {strategy!r}; choose 'cofeature', 'ring_low_score', "
                     f"'global_low_score' or 'none'.")


def _prompt_set(s_a: np.ndarray, r_a: np.ndarray, m_apa: np.ndarray, region: np.ndarray, cfg: Config,
                embedding: SamEmbedding | None, component: np.ndarray | None, scale: float = 1.0) -> PromptSet:
    d_min = cfg.d_min * scale
    pos = spaced_topk(r_a, cfg.k_pos, d_min, region)
    n_a = ring(region, cfg.ring_radius * scale, exclude=m_apa)
    sim = similarity_map(embedding, pos, frame_size=s_a.shape) if cfg.negative_strategy == "cofeature" else None
    neg = negatives_for(cfg.negative_strategy, s_a, m_apa, n_a, cfg.k_neg, d_min, sim)
    points = np.concatenate([pos, neg], axis=0).astype(np.int64)
    labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    return PromptSet(points=points, labels=labels, component=component, ring=n_a, similarity=sim)


def generate_prompts(s_a: np.ndarray, cfg: Config, embedding: SamEmbedding | None = None, *,
                     original_size: tuple[int, int] | None = None) -> PPGResult:
    """PPG (METHOD.md step 3, eqs. 1-3): point prompts from ``S_a`` (and SAM's embedding for ``cofeature``).

    ``s_a`` is the anomaly map at the image's original resolution (``embedding.original_size``) or in
    SAM's input frame (``embedding.input_size``: the pipeline's default, ``Config.ppg_resolution``);
    ``original_size`` names the image's size when no embedding is given. Lengths are in
    ``cfg.length_unit`` (:func:`length_scale`). Uses ``cfg.tau_mode``, ``tau``, ``k_pos``, ``k_neg``,
    ``d_min``, ``ring_radius``, ``negative_strategy``, ``per_component``, ``min_component_area`` and
    ``max_prompt_sets``. ``embedding`` is required
    for ``negative_strategy='cofeature'`` only. An empty ``M_apa`` (or one made only of components
    smaller than ``min_component_area``) gives ``prompt_sets == []``: the image is normal.
    """
    s = validate_map(s_a)
    if embedding is not None:
        if tuple(s.shape) not in (tuple(embedding.original_size), tuple(embedding.input_size)):
            raise ValueError(f"S_a has shape {s.shape} but the SAM embedding is of a {embedding.original_size[0]} x "
                             f"{embedding.original_size[1]} image (SAM's input frame {tuple(embedding.input_size)}): "
                             f"S_a must be at the image's size or in SAM's input frame. Resize the map to (H, W) = "
                             f"{tuple(embedding.original_size)} or {tuple(embedding.input_size)} first.")
        original_size = tuple(embedding.original_size)
    size = tuple(original_size) if original_size is not None else tuple(s.shape)
    scale = length_scale(cfg, s.shape, size)
    if cfg.negative_strategy == "cofeature" and embedding is None:
        raise ValueError("negative_strategy='cofeature' needs SAM's image embedding: pass "
                         "embedding=sam_features.embed_image(sam, image), or choose negative_strategy="
                         "'ring_low_score', 'global_low_score' or 'none' (cfg.replace(negative_strategy=...)).")
    tau = threshold(s, cfg)
    m_apa = s > tau
    r_a = region_score(s, m_apa)
    comps, dropped = select_components(m_apa, s, cfg.min_component_area * scale ** 2,
                                       cfg.max_prompt_sets if cfg.per_component else 0)
    region = np.zeros_like(m_apa)
    for c in comps:
        region |= c
    sets: list[PromptSet] = []
    if comps:
        if cfg.per_component:
            sets = [_prompt_set(s, r_a, m_apa, c, cfg, embedding, component=c, scale=scale) for c in comps]
        else:
            sets = [_prompt_set(s, r_a, m_apa, region, cfg, embedding, component=None, scale=scale)]
    ring_all = np.zeros_like(m_apa)
    for ps in sets:
        ring_all |= ps.ring
    similarity = None
    if sets and cfg.negative_strategy == "cofeature":
        all_pos = _stack([ps.positives for ps in sets])
        similarity = sets[0].similarity if len(sets) == 1 else similarity_map(embedding, all_pos, frame_size=s.shape)
    return PPGResult(tau_value=float(tau), m_apa=m_apa, r_a=r_a, region=region, ring=ring_all,
                     similarity=similarity, prompt_sets=sets, negative_strategy=cfg.negative_strategy,
                     original_size=None if size == tuple(s.shape) else size, length_scale=scale,
                     dropped_components=dropped)
