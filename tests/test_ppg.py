"""ppg.py: PPG (METHOD.md step 3, eqs. 1-3) on planted maps and planted SAM features with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage

from clipsam_lite.config import Config
from clipsam_lite.ppg import (
    components,
    dilate_disc,
    disc,
    generate_prompts,
    otsu_threshold,
    ring,
    spaced_topk,
    threshold,
)
from clipsam_lite.sam_features import SamEmbedding


def _cfg(**kw) -> Config:
    # lengths in the map's own pixels (these maps are images) and no cap on the prompt sets: the planted
    # answers below are in pixels; the SAM-1024-frame unit and the cap have their own tests
    base = dict(tau_mode="absolute", tau=0.5, k_pos=3, k_neg=3, d_min=10.0, ring_radius=8,
                negative_strategy="ring_low_score", per_component=True, min_component_area=1,
                length_unit="original", max_prompt_sets=0)
    return Config(**{**base, **kw})


def _disc_mask(shape: tuple[int, int], cx: float, cy: float, R: float) -> np.ndarray:
    y, x = np.ogrid[:shape[0], :shape[1]]
    return (x - cx) ** 2 + (y - cy) ** 2 <= R * R


def _brute_spaced_topk(s: np.ndarray, k: int, d_min: float, largest: bool = True) -> np.ndarray:
    """Reference: a plain loop over every pixel in (score, row-major) order."""
    H, W = s.shape
    pixels = sorted((-s[y, x] if largest else s[y, x], y, x) for y in range(H) for x in range(W))
    chosen: list[tuple[int, int]] = []
    for _, y, x in pixels:
        if len(chosen) == k:
            break
        if all((x - cx) ** 2 + (y - cy) ** 2 >= d_min ** 2 for cx, cy in chosen):
            chosen.append((x, y))
    return np.array(chosen, dtype=np.int64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------- spaced top-k

def test_planted_maxima_give_exactly_those_points():
    s = np.zeros((100, 120), np.float32)
    s[20, 10], s[22, 12], s[70, 80], s[50, 50], s[99, 119] = 0.9, 0.85, 0.8, 0.7, 0.6
    # (12, 22) is 2.8 px from (10, 20): skipped for d_min = 10; the rest in score order
    np.testing.assert_array_equal(spaced_topk(s, 4, 10.0), [[10, 20], [80, 70], [50, 50], [119, 99]])
    np.testing.assert_array_equal(spaced_topk(s, 2, 0.0), [[10, 20], [12, 22]])
    # the same through generate_prompts (eq. 2: TopK of R_a over M_apa)
    res = generate_prompts(s, _cfg(k_pos=4, negative_strategy="none", per_component=False))
    np.testing.assert_array_equal(res.positives, [[10, 20], [80, 70], [50, 50], [119, 99]])
    np.testing.assert_array_equal(res.prompt_sets[0].labels, [1, 1, 1, 1])


def test_spaced_topk_equals_a_brute_force_reference_and_keeps_d_min():
    rng = np.random.default_rng(0)
    for trial in range(4):
        s = rng.random((40, 50)).astype(np.float32)
        s = np.round(s, 1)  # many ties: checks the row-major tie-break too
        d_min = [0.0, 3.0, 7.5, 12.0][trial]
        for largest in (True, False):
            got = spaced_topk(s, 12, d_min, largest=largest)
            np.testing.assert_array_equal(got, _brute_spaced_topk(s, 12, d_min, largest))
            for a, b in itertools.combinations(got, 2):
                assert np.hypot(*(a - b)) >= d_min


def test_distance_exactly_d_min_is_kept_and_less_is_rejected():
    s = np.zeros((10, 10), np.float32)
    s[0, 0], s[4, 3] = 1.0, 0.9  # (x, y) = (0, 0) and (3, 4): distance exactly 5
    assert len(spaced_topk(s, 2, 5.0, s > 0)) == 2
    np.testing.assert_array_equal(spaced_topk(s, 2, 5.01, s > 0), [[0, 0]])


def test_ties_break_in_row_major_order_and_fewer_candidates_than_k():
    s = np.ones((6, 8), np.float32)
    np.testing.assert_array_equal(spaced_topk(s, 3, 0.0), [[0, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(spaced_topk(s, 3, 3.0), [[0, 0], [3, 0], [6, 0]])
    mask = np.zeros_like(s, dtype=bool)
    mask[5, 7] = mask[2, 1] = True
    np.testing.assert_array_equal(spaced_topk(s, 5, 1.0, mask), [[1, 2], [7, 5]])  # 2 < k, no error
    assert spaced_topk(s, 5, 1.0, np.zeros_like(mask)).shape == (0, 2)


def test_spaced_topk_on_a_1024_plateau_is_exact():
    # the worst case for a greedy: a constant 1024 x 1024 map (a million equal candidates)
    s = np.ones((1024, 1024), np.float32)
    np.testing.assert_array_equal(spaced_topk(s, 4, 300.0), [[0, 0], [300, 0], [600, 0], [900, 0]])
    got = spaced_topk(s, 100, 300.0)  # more than fit: the greedy stops when no pixel is 300 px from all chosen
    assert 4 < len(got) < 100
    for a, b in itertools.combinations(got, 2):
        assert np.hypot(*(a - b)) >= 300.0
    ys, xs = np.mgrid[0:1024:7, 0:1024:7]  # maximal: every pixel (here a 7-px lattice of them) is covered
    d2 = (xs.ravel()[:, None] - got[:, 0]) ** 2 + (ys.ravel()[:, None] - got[:, 1]) ** 2
    assert (d2.min(axis=1) < 300.0 ** 2).all()


# ---------------------------------------------------------------------------------------------- ring

def test_dilation_by_distance_transform_equals_binary_dilation_with_a_disc():
    rng = np.random.default_rng(1)
    m = rng.random((60, 70)) > 0.97
    for r in (1, 2, 5, 9):
        np.testing.assert_array_equal(dilate_disc(m, r), ndimage.binary_dilation(m, disc(r)))
    assert disc(2).sum() == 13  # the digital disc of radius 2: 1 + 4 + 4 + 4


@pytest.mark.parametrize("R, r", [(60, 20), (40, 10), (100, 24)])
def test_ring_of_a_disc_has_the_annulus_area(R, r):
    n = 2 * (R + r) + 21
    c = n // 2
    D = _disc_mask((n, n), c, c, R)
    N = ring(D, r)
    A = int(N.sum())
    y, x = np.ogrid[:n, :n]
    d = np.hypot(x - c, y - c)
    # exact sandwich: the dilation of the digital disc reaches every lattice point within R + r - sqrt(2)
    # (round a point on the circle of radius R - sqrt(2)/2 to its nearest lattice point) and none beyond R + r
    assert ((d > R) & (d <= R + r - np.sqrt(2))).sum() <= A <= ((d > R) & (d <= R + r)).sum()
    assert not (N & D).any() and (d[N] > R).all() and (d[N] <= R + r).all()
    # area vs pi((R + r)^2 - R^2): the digital ring is short of the continuous one by a band along its outer
    # circle whose mean width is a fraction of the worst case sqrt(2) px (measured 0.1-0.3 px); a mean width
    # of 0.35 px gives the tolerance 2 pi (R + r) * 0.35 (2.0 % for R=60, r=20)
    annulus = np.pi * ((R + r) ** 2 - R ** 2)
    assert abs(A - annulus) <= 2 * np.pi * (R + r) * 0.35


def test_ring_is_clipped_at_the_image_border():
    D = _disc_mask((100, 100), 0, 0, 20)  # a quarter disc in the top-left corner
    N = ring(D, 10)
    y, x = np.ogrid[:100, :100]
    d = np.hypot(x, y)
    np.testing.assert_array_equal(N, (d > 20) & (dilate_disc(D, 10)))
    assert N.any() and not N[50:, :].any() and not N[:, 50:].any()  # no wrap-around to the far side
    res = generate_prompts(np.where(D, 0.9, 0.1).astype(np.float32), _cfg(ring_radius=10))
    neg = res.negatives
    assert len(neg) == 3 and N[neg[:, 1], neg[:, 0]].all()


# ---------------------------------------------------------------------------------------------- thresholds

def test_otsu_on_a_bimodal_map_falls_between_the_modes():
    rng = np.random.default_rng(0)
    s = np.where(rng.random((64, 64)) < 0.3, rng.uniform(0.7, 0.9, (64, 64)), rng.uniform(0.1, 0.3, (64, 64)))
    t = threshold(s, _cfg(tau_mode="otsu"))
    assert 0.3 <= t < 0.7
    assert otsu_threshold(np.full(10, 0.4)) == 0.4  # constant: no cut


def test_percentile_and_absolute_thresholds():
    s = np.arange(100, dtype=np.float32).reshape(10, 10) / 100
    assert threshold(s, _cfg(tau_mode="percentile", tau=90.0)) == pytest.approx(0.891)
    res = generate_prompts(s, _cfg(tau_mode="percentile", tau=90.0, negative_strategy="none"))
    assert res.m_apa.sum() == 10 and res.tau_value == pytest.approx(0.891)
    assert threshold(s, _cfg(tau=0.25)) == 0.25
    np.testing.assert_allclose(res.r_a, s * (s > res.tau_value))  # eq. 1


# ---------------------------------------------------------------------------------------------- negatives

def _planted_scene() -> tuple[np.ndarray, SamEmbedding]:
    """256 x 256 image, tiny geometry (one grid cell = 16 x 16 px). S_a: a disc (radius 30, value 0.9) at
    (128, 128) on 0.1. SAM features: e0 everywhere except cells (10, 8) and (8, 5), both wholly inside the
    ring 30 < d <= 50, which carry e1 (cosine 0 to the prototype e0)."""
    s = np.where(_disc_mask((256, 256), 128, 128, 30), 0.9, 0.1).astype(np.float32)
    f = torch.zeros(4, 16, 16)
    f[0] = 1.0
    for gx, gy in [(10, 8), (8, 5)]:
        f[:, gy, gx] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    return s, SamEmbedding(f, (256, 256), (256, 256), 256)


def test_cofeature_picks_the_ring_pixels_least_similar_to_the_prototype():
    s, emb = _planted_scene()
    res = generate_prompts(s, _cfg(k_pos=3, k_neg=2, ring_radius=20, negative_strategy="cofeature"), emb)
    (ps,) = res.prompt_sets
    # positives: the disc is flat, so row-major order: its top pixel (128, 98); row 99 (x 121-135) is within
    # 10 px of it; row 100 spans x 118-138 and (118, 100) is sqrt(104) = 10.2 px away, then (138, 100)
    np.testing.assert_array_equal(ps.positives, [[128, 98], [118, 100], [138, 100]])
    # sim = 1 on e0 cells, 0 at the e1 cells' centres; its minimum is at the 4 pixels nearest each e1 cell's
    # centre (pixels 7, 8 of the cell), the row-major first of them is (16 gx + 7, 16 gy + 7)
    np.testing.assert_array_equal(ps.negatives, [[135, 87], [167, 135]])
    np.testing.assert_array_equal(ps.labels, [1, 1, 1, 0, 0])
    assert res.similarity is ps.similarity and res.similarity.min() == pytest.approx(res.similarity[87, 135])
    assert ps.ring[ps.negatives[:, 1], ps.negatives[:, 0]].all()
    # ring_low_score on the same map: the ring is flat 0.1, so its row-major first pixel instead
    low = generate_prompts(s, _cfg(k_neg=1, ring_radius=20, negative_strategy="ring_low_score"), emb)
    np.testing.assert_array_equal(low.negatives, [[128, 78]])


@pytest.mark.parametrize("strategy", ["cofeature", "ring_low_score"])
def test_ring_strategies_put_every_negative_in_the_ring(strategy):
    rng = np.random.default_rng(2)
    s = np.clip(ndimage.gaussian_filter(rng.random((96, 128)), 3) * 3 - 1.0, 0, 1).astype(np.float32)
    s[30:50, 40:70] = 0.95
    emb = SamEmbedding(torch.as_tensor(rng.normal(size=(8, 16, 16)), dtype=torch.float32), (96, 128), (192, 256), 256)
    res = generate_prompts(s, _cfg(tau=0.9, k_neg=5, d_min=6.0, negative_strategy=strategy), emb)
    assert not res.is_normal
    for ps in res.prompt_sets:
        neg = ps.negatives
        assert len(neg) == 5 and ps.ring[neg[:, 1], neg[:, 0]].all() and res.ring[neg[:, 1], neg[:, 0]].all()
        assert not res.m_apa[neg[:, 1], neg[:, 0]].any()
        for a, b in itertools.combinations(neg, 2):
            assert np.hypot(*(a - b)) >= 6.0


def test_global_low_score_takes_the_lowest_pixels_anywhere():
    s = np.full((80, 80), 0.3, np.float32)
    s[30:40, 30:40] = 0.9
    s[2, 75], s[77, 3] = 0.01, 0.02  # far outside any ring
    res = generate_prompts(s, _cfg(k_neg=2, ring_radius=5, negative_strategy="global_low_score"))
    np.testing.assert_array_equal(res.negatives, [[75, 2], [3, 77]])
    assert not res.ring[res.negatives[:, 1], res.negatives[:, 0]].any()
    assert len(generate_prompts(s, _cfg(negative_strategy="none")).negatives) == 0


# ---------------------------------------------------------------------------------------------- components

def test_one_prompt_set_per_component_each_with_its_own_ring():
    s = np.full((100, 200), 0.1, np.float32)
    a, b = _disc_mask(s.shape, 40, 50, 12), _disc_mask(s.shape, 150, 50, 15)
    s[a], s[b] = 0.8, 0.9
    s[5, 100] = 0.95  # a one-pixel speck: below min_component_area, ignored
    assert len(components(s > 0.5, 1)) == 3 and len(components(s > 0.5, 16)) == 2
    res = generate_prompts(s, _cfg(k_pos=2, min_component_area=16, ring_radius=6))
    assert len(res.prompt_sets) == 2 and not res.region[5, 100] and res.m_apa[5, 100]
    for ps, comp in zip(res.prompt_sets, (b, a), strict=True):  # label order: b's first row (35) is above a's (38)
        np.testing.assert_array_equal(ps.component, comp)
        assert comp[ps.positives[:, 1], ps.positives[:, 0]].all() and len(ps.positives) == 2
        assert ps.ring[ps.negatives[:, 1], ps.negatives[:, 0]].all()
        assert not (ps.ring & res.m_apa).any()
    assert not (res.prompt_sets[0].ring & res.prompt_sets[1].ring).any()
    # all at once: one set, component None, the top-k over both regions (b is higher)
    once = generate_prompts(s, _cfg(k_pos=2, min_component_area=16, ring_radius=6, per_component=False))
    (ps,) = once.prompt_sets
    assert ps.component is None and b[ps.positives[:, 1], ps.positives[:, 0]].all()
    np.testing.assert_array_equal(once.ring, res.ring)


def test_eight_connectivity_joins_diagonal_pixels():
    m = np.zeros((5, 5), bool)
    m[1, 1] = m[2, 2] = m[3, 3] = True
    assert len(components(m)) == 1


# ---------------------------------------------------------------------------------------------- edge cases

def test_empty_m_apa_means_a_normal_image():
    s = np.full((50, 60), 0.2, np.float32)
    res = generate_prompts(s, _cfg(tau=0.5))
    assert res.is_normal and res.prompt_sets == [] and not res.m_apa.any() and not res.ring.any()
    assert res.positives.shape == (0, 2) and res.negatives.shape == (0, 2) and res.similarity is None


def test_a_constant_map():
    s = np.full((40, 40), 0.7, np.float32)
    for mode, tau in (("otsu", 0.5), ("percentile", 99.0)):
        assert generate_prompts(s, _cfg(tau_mode=mode, tau=tau)).is_normal  # tau = the constant: nothing is > it
    res = generate_prompts(s, _cfg(tau=0.5, d_min=20.0))  # absolute tau below it: the whole image is anomalous
    (ps,) = res.prompt_sets
    # row-major, 20 px apart: (0, 0), (20, 0), then (39, 7): 19^2 + 7^2 = 410 >= 400, while (39, 6) gives 397
    np.testing.assert_array_equal(ps.positives, [[0, 0], [20, 0], [39, 7]])
    assert not res.ring.any() and len(ps.negatives) == 0  # the ring is clipped away entirely


def test_nan_and_inf_are_refused_clearly():
    s = np.full((20, 20), 0.1, np.float32)
    s[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN and 0 inf.*x=4, y=3"):
        generate_prompts(s, _cfg())
    s[3, 4] = np.inf
    with pytest.raises(ValueError, match="0 NaN and 1 inf"):
        spaced_topk(s, 2, 1.0)


def test_shape_mismatch_and_missing_embedding_are_refused_clearly():
    s, emb = _planted_scene()
    with pytest.raises(ValueError, match=r"S_a has shape \(128, 256\).*256 x 256 image"):
        generate_prompts(s[:128], _cfg(negative_strategy="cofeature"), emb)
    with pytest.raises(ValueError, match="needs SAM's image embedding"):
        generate_prompts(s, _cfg(negative_strategy="cofeature"))
    with pytest.raises(ValueError, match="2-D map"):
        generate_prompts(np.zeros((4, 4, 3)), _cfg())


def test_fewer_candidate_pixels_than_k():
    s = np.zeros((30, 30), np.float32)
    s[10, 10] = s[20, 25] = 0.9
    res = generate_prompts(s, _cfg(k_pos=5, k_neg=50, d_min=2.0, ring_radius=1, per_component=False))
    assert len(res.positives) == 2
    assert len(res.negatives) <= int(res.ring.sum()) and res.ring[res.negatives[:, 1], res.negatives[:, 0]].all()


# ---------------------------------------------------------------------------------------------- widgets

def test_ppg_figure_and_explorer_build_headless():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clipsam_lite.widgets import ppg_explorer, ppg_figure

    s, emb = _planted_scene()
    res = generate_prompts(s, _cfg(negative_strategy="cofeature", ring_radius=20), emb)
    fig = ppg_figure(s, res)
    assert len(fig.axes) == 3 and "cofeature: 3 negative(s)" in fig.axes[2].get_title()
    plt.close(fig)
    explorer = ppg_explorer(s, _cfg())  # no embedding: cofeature is not offered
    controls = {c.description: c for c in explorer.children[:-1]}
    assert {"tau", "k_pos", "k_neg", "d_min (px)", "negatives"} <= set(controls)
    assert "cofeature" not in controls["negatives"].options
    controls["tau"].value = 0.95  # above the map: re-runs PPG on a normal image without error
    with_emb = ppg_explorer(s, _cfg(negative_strategy="cofeature"), emb)
    assert with_emb.children[4].value == "cofeature"
    plt.close("all")


# ---------------------------------------------------------------------------------------------- SAM's 1024 frame

def _blocks(s: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upscaling by k: the same image, k times larger."""
    return np.repeat(np.repeat(s, k, axis=0), k, axis=1)


def test_lengths_in_sams_1024_frame_mean_the_same_at_every_image_size():
    """Issue 11.7: d_min and min_component_area in SAM's 1024 frame give the same prompts on an image and on the
    same image twice as large; in original pixels (the old unit) they do not."""
    s = np.full((256, 256), 0.1, np.float32)
    s[40:44, 40:44] = 0.90                     # a 16-px region, the best maximum
    s[40:44, 110:114] = 0.85                   # 70 px right of it
    s[40:44, 180:184] = 0.80                   # 140 px right of it
    s[200:203, 200:203] = 0.95                 # a 9-px speck
    kw = dict(k_pos=3, negative_strategy="none", per_component=False)
    # sam1024: d_min 400 = 100 px of the 256 map, 200 px of the 512 map; min area 160 = 10 px / 40 px
    cfg = _cfg(length_unit="sam1024", d_min=400.0, min_component_area=160, **kw)
    small, large = generate_prompts(s, cfg), generate_prompts(_blocks(s, 2), cfg)
    np.testing.assert_array_equal(small.positives, [[40, 40], [180, 40]])  # the speck is too small, 70 px too close
    np.testing.assert_array_equal(large.positives, 2 * small.positives)
    assert small.length_scale == 0.25 and large.length_scale == 0.5
    # the same numbers in original pixels: d_min 400 leaves one point on both, area 160 drops every region
    old = _cfg(length_unit="original", d_min=100.0, min_component_area=10, **kw)
    np.testing.assert_array_equal(generate_prompts(s, old).positives, [[40, 40], [180, 40]])
    assert len(generate_prompts(_blocks(s, 2), old).positives) == 3  # 140 and 280 px apart: all kept at 2x


def test_map_in_sams_input_frame_gives_points_in_original_coordinates():
    """PPG on S_a in SAM's input frame: the points are map pixels; to_original gives what SamPredictor needs."""
    s = np.full((64, 128), 0.1, np.float32)
    s[10, 100] = 0.9
    res = generate_prompts(s, _cfg(negative_strategy="none", k_pos=1), original_size=(300, 600))
    np.testing.assert_array_equal(res.positives, [[100, 10]])
    np.testing.assert_allclose(res.to_original(res.positives), [[100 * 600 / 128, 10 * 300 / 64]])


def test_max_prompt_sets_keeps_the_components_with_the_largest_r_a_mass():
    """Issue 11.11: at most max_prompt_sets cascades; the components kept are those with the largest sum of S_a."""
    s = np.full((60, 200), 0.1, np.float32)
    # five components, in row-major order A..E; masses: A 4*0.6, B 9*0.9, C 16*0.7, D 4*0.95, E 25*0.55
    s[5:7, 5:7] = 0.6
    s[5:8, 40:43] = 0.9
    s[10:14, 80:84] = 0.7
    s[30:32, 120:122] = 0.95
    s[40:45, 160:165] = 0.55
    res = generate_prompts(s, _cfg(max_prompt_sets=3, negative_strategy="none", k_pos=1))
    # kept: E (13.75), C (11.2), B (8.1), returned in row-major order B, C, E
    np.testing.assert_array_equal(res.positives, [[40, 5], [80, 10], [160, 40]])
    assert res.dropped_components == 2 and len(res.prompt_sets) == 3
    assert len(generate_prompts(s, _cfg(max_prompt_sets=0, negative_strategy="none")).prompt_sets) == 5
