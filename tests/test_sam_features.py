"""sam_features.py: one encoder pass per image, a predictor that reuses it, SAM's frames, similarity maps.

Known answers: SAM's own resize arithmetic (ResizeLongestSide), hand-computed grid cells of a
300 x 700 image, SamPredictor.set_image as the reference, planted feature tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.utils.transforms import ResizeLongestSide

from clipsam_lite.models import build_sam
from clipsam_lite.sam_features import (
    EncoderCounter,
    SamEmbedding,
    embed_image,
    embed_images,
    grid_map_to_original,
    grid_similarity,
    grid_to_original,
    input_to_original,
    original_to_grid,
    original_to_input,
    predictor_for,
    prototype,
    similarity_map,
    square_map_to_original,
)


@pytest.fixture(scope="module")
def sam():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_sam("tiny")


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size, dtype=np.uint8) for size in
            [(300, 700, 3), (256, 256, 3), (500, 200, 3), (64, 96, 3), (120, 120, 3)]]


def _emb(H: int, W: int, img_size: int = 1024, grid: int = 64, channels: int = 8) -> SamEmbedding:
    """A hand-made embedding with SAM's geometry (no model): input_size from ResizeLongestSide."""
    h, w = ResizeLongestSide.get_preprocess_shape(H, W, img_size)
    return SamEmbedding(torch.zeros(channels, grid, grid), (H, W), (h, w), img_size)


# ---------------------------------------------------------------------------------------------- embedding

def test_embed_images_runs_the_encoder_once_per_image_in_batches(sam):
    images = _images()
    with EncoderCounter(sam) as counter:
        embs = embed_images(sam, images, batch_size=2)
    assert counter.images == 5 and counter.calls == 3  # batches of 2, 2, 1
    assert [e.original_size for e in embs] == [(300, 700), (256, 256), (500, 200), (64, 96), (120, 120)]
    # ResizeLongestSide(256): 300 * 256 / 700 = 109.7 -> 110; 200 * 256 / 500 = 102.4 -> 102; 64 * 256 / 96 = 170.7 -> 171
    assert [e.input_size for e in embs] == [(110, 256), (256, 256), (256, 102), (171, 256), (256, 256)]
    assert all(tuple(e.features.shape) == (64, 16, 16) and e.img_size == 256 for e in embs)
    assert embs[0].valid_grid == (7, 16) and embs[2].valid_grid == (16, 7)  # ceil(110 / 16) = 7
    # the hook is gone after the block: later passes are not counted
    embed_image(sam, images[0])
    assert counter.images == 5


def test_counter_passed_as_argument_counts_the_same(sam):
    counter = EncoderCounter(sam)
    embed_images(sam, _images()[:3], batch_size=8, counter=counter)
    assert (counter.calls, counter.images) == (1, 3)


def test_predictor_for_equals_set_image_and_runs_no_encoder(sam):
    image = _images()[0]  # 300 x 700: padding at the bottom
    emb = embed_images(sam, [image], batch_size=1)[0]
    reference = SamPredictor(sam)
    reference.set_image(image)
    torch.testing.assert_close(emb.features, reference.features[0], rtol=0, atol=0)
    points, labels = np.array([[350, 150], [20, 280]]), np.array([1, 0])
    with EncoderCounter(sam) as counter:
        predictor = predictor_for(sam, emb)
        for multimask in (False, True):
            ref = reference.predict(points, labels, multimask_output=multimask, return_logits=True)
            got = predictor.predict(points, labels, multimask_output=multimask, return_logits=True)
            for a, b in zip(ref, got, strict=True):
                np.testing.assert_array_equal(a, b)
        # a mask prompt (the cascade's stage 2) and a box (stage 3) go through the same stored features
        low_res = got[2][:1]
        ref = reference.predict(points, labels, box=np.array([300, 100, 420, 200]), mask_input=low_res,
                                multimask_output=False)
        got = predictor.predict(points, labels, box=np.array([300, 100, 420, 200]), mask_input=low_res,
                                multimask_output=False)
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)
    assert counter.calls == 0 and counter.images == 0
    assert got[0].shape == (1, 300, 700) and got[2].shape == (1, 64, 64)


def test_batched_embedding_matches_single_image_embedding(sam):
    images = _images()[:3]
    batched = embed_images(sam, images, batch_size=3)
    for image, emb in zip(images, batched, strict=True):
        single = embed_image(sam, image)
        # batching changes the float summation order only
        torch.testing.assert_close(emb.features, single.features, rtol=0, atol=1e-4)


def test_predictor_for_refuses_an_embedding_of_another_sam(sam):
    with pytest.raises(ValueError, match="img_size 1024"):
        predictor_for(sam, _emb(300, 700))
    wrong = SamEmbedding(torch.zeros(32, 16, 16), (256, 256), (256, 256), 256)
    with pytest.raises(ValueError, match="64 x 16 x 16"):
        predictor_for(sam, wrong)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 4), np.uint8), "alpha"),
    ([[0, 1]], "numpy array"),
])
def test_embed_images_rejects_bad_images_with_a_fix(sam, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        embed_images(sam, [np.zeros((8, 8, 3), np.uint8), bad])


def test_grey_image_is_embedded_as_rgb(sam):
    grey = _images()[1][..., 0]
    a = embed_image(sam, grey)
    b = embed_image(sam, np.repeat(grey[..., None], 3, axis=2))
    torch.testing.assert_close(a.features, b.features, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- frames

def test_a_pixel_of_a_300_by_700_image_lands_in_the_right_cell():
    emb = _emb(300, 700)  # real SAM geometry: input 439 x 1024, 64 x 64 grid, 16 px cells
    assert emb.input_size == (439, 1024) and emb.valid_grid == (28, 64)
    points = np.array([[0, 0], [699, 299], [350, 150], [10, 200]])
    # hand computation: gx = floor((x + .5) * 1024/700 / 16), gy = floor((y + .5) * 439/300 / 16)
    #   (699.5 * 1.4629 = 1023.3 -> 63), (299.5 * 1.4633 = 438.3 -> 27), (350.5 -> 512.7 -> 32), (150.5 -> 220.2 -> 13)
    #   (10.5 -> 15.4 -> 0), (200.5 -> 293.4 -> 18)
    np.testing.assert_array_equal(original_to_grid(points, emb), [[0, 0], [63, 27], [32, 13], [0, 18]])
    tiny = _emb(300, 700, img_size=256, grid=16)  # input 110 x 256
    np.testing.assert_array_equal(original_to_grid(points, tiny), [[0, 0], [15, 6], [8, 3], [0, 4]])


@pytest.mark.parametrize("H, W", [(300, 700), (700, 300), (256, 256), (97, 1000)])
def test_every_pixel_maps_to_image_cells_and_every_image_cell_gets_pixels(H, W):
    emb = _emb(H, W)
    ys, xs = np.mgrid[0:H, 0:W]
    cells = original_to_grid(np.stack([xs.ravel(), ys.ravel()], axis=1), emb)
    vh, vw = emb.valid_grid
    assert cells[:, 0].max() == vw - 1 and cells[:, 1].max() == vh - 1  # never a padding cell
    hit = np.zeros(emb.grid_size, dtype=bool)
    hit[cells[:, 1], cells[:, 0]] = True
    assert hit[:vh, :vw].all() and not hit[vh:, :].any() and not hit[:, vw:].any()


@pytest.mark.parametrize("H, W", [(512, 512), (700, 300), (300, 700), (3, 1000)])
@pytest.mark.parametrize("img_size, grid", [(1024, 64), (256, 16)])
def test_coordinates_round_trip_for_square_portrait_and_landscape(H, W, img_size, grid):
    emb = _emb(H, W, img_size, grid)
    vh, vw = emb.valid_grid
    gy, gx = np.mgrid[0:vh, 0:vw]
    cells = np.stack([gx.ravel(), gy.ravel()], axis=1)
    # grid -> original -> grid is the identity on every image cell
    np.testing.assert_array_equal(original_to_grid(grid_to_original(cells, emb), emb), cells)
    # original -> grid -> original lands within half a cell (in original pixels) of the pixel's centre
    rng = np.random.default_rng(1)
    pts = np.stack([rng.integers(0, W, 500), rng.integers(0, H, 500)], axis=1)
    back = grid_to_original(original_to_grid(pts, emb), emb)
    sy, sx = emb.scale
    half = np.array([emb.cell_size[1] / sx, emb.cell_size[0] / sy]) / 2
    assert (np.abs(back - pts) <= half + 0.5 + 1e-9).all()
    # original <-> SAM's resized frame is exactly ResizeLongestSide.apply_coords and its inverse
    np.testing.assert_allclose(original_to_input(pts, emb),
                               ResizeLongestSide(img_size).apply_coords(pts, (H, W)))
    np.testing.assert_allclose(input_to_original(original_to_input(pts, emb), emb), pts)


def test_padding_cells_and_outside_points_are_refused():
    emb = _emb(300, 700)
    with pytest.raises(ValueError, match="padding"):
        grid_to_original(np.array([[5, 28]]), emb)  # row 28 is below the image (valid rows 0..27)
    with pytest.raises(ValueError, match="outside the 300 x 700"):
        original_to_grid(np.array([[700, 10]]), emb)


@pytest.mark.parametrize("img_size, grid", [(1024, 64), (256, 16)])
def test_padding_never_leaks_into_a_map_brought_back_to_the_image(img_size, grid):
    emb = _emb(300, 700, img_size, grid)  # 28 of 64 (tiny: 7 of 16) grid rows hold image
    vh = emb.valid_grid[0]
    grid_map = np.full((grid, grid), 1e6, dtype=np.float32)  # padding cells: an absurd value
    rng = np.random.default_rng(0)
    grid_map[:vh] = rng.random((vh, grid))
    out = grid_map_to_original(grid_map, emb)
    assert out.shape == (300, 700) and out.dtype == np.float32
    assert out.max() <= grid_map[:vh].max() + 1e-6 and out.min() >= grid_map[:vh].min() - 1e-6


def test_without_replication_the_padding_blends_into_the_border():
    # tiny geometry: the image ends at row 110 of the 256 frame, past the centre (104) of the last image
    # cell, so bilinear upsampling blends the first padding cell into rows 104-110: what postprocess_masks
    # does to SAM's logits, and why similarity maps replicate the image cells into the padding first
    emb = _emb(300, 700, 256, 16)
    grid_map = np.zeros((16, 16), dtype=np.float32)
    grid_map[7:] = 1e6
    raw = square_map_to_original(grid_map, emb, replicate_padding=False)
    assert raw[-1].min() > 1.0 and raw[:250].max() == 0.0
    assert grid_map_to_original(grid_map, emb).max() == 0.0


def test_square_map_without_replication_is_sams_postprocess_masks(sam):
    emb = SamEmbedding(torch.zeros(64, 16, 16), (300, 700), (110, 256), 256)
    logits = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(0))
    ref = sam.postprocess_masks(logits[None], emb.input_size, emb.original_size)[0].numpy()
    np.testing.assert_allclose(square_map_to_original(logits, emb, replicate_padding=False), ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------- similarity

def _planted_embedding() -> SamEmbedding:
    """A 256 x 512 image in the tiny geometry (input 128 x 256 -> grid rows 0..7 are image, 8..15 padding).

    Image cells with gx < 8 carry 5 * e0, cells with gx >= 8 carry e1 (norms differ on purpose);
    the padding carries e0 so that any padding leak would show up as a similarity of 1 on the right.
    """
    f = torch.zeros(4, 16, 16)
    f[0, :8, :8] = 5.0
    f[1, :8, 8:] = 1.0
    f[0, 8:, :] = 1.0
    return SamEmbedding(f, (256, 512), (128, 256), 256)


def test_similarity_map_known_answer_on_planted_features():
    emb = _planted_embedding()
    sim = similarity_map(emb, np.array([[40, 100]]))  # a left-half pixel: f+ = e0
    assert sim.shape == (256, 512) and sim.dtype == np.float32
    # cells are 16 px of the 256 frame = 32 px of the original; away from the seam the values are exact
    np.testing.assert_allclose(sim[:, :224], 1.0, atol=1e-6)
    np.testing.assert_allclose(sim[:, 288:], 0.0, atol=1e-6)  # the e0 padding never reaches the image
    assert ((sim >= -1e-6) & (sim <= 1 + 1e-6)).all()
    # two prototypes from the two halves: f+ = (e0 + e1) / 2, cos = 1/sqrt(2) everywhere
    both = similarity_map(emb, np.array([[40, 100], [400, 100]]))
    np.testing.assert_allclose(both, 1 / np.sqrt(2), atol=1e-6)


def test_similarity_inline_equals_package():
    rng = np.random.default_rng(3)
    f = torch.as_tensor(rng.normal(size=(8, 16, 16)), dtype=torch.float32)
    emb = SamEmbedding(f, (200, 300), ResizeLongestSide.get_preprocess_shape(200, 300, 256), 256)
    pts = np.array([[10, 10], [150, 120]])
    cells = original_to_grid(pts, emb)
    unit = f / f.norm(dim=0, keepdim=True)
    proto = unit[:, cells[:, 1], cells[:, 0]].mean(dim=1)
    cos = (proto[:, None, None] * unit).sum(0) / proto.norm()
    np.testing.assert_allclose(grid_similarity(emb, prototype(emb, pts)), cos.numpy(), atol=1e-6)
    # bilinear sampling at a cell centre reads that cell exactly
    centre = grid_to_original(np.array([[5, 4]]), emb)
    np.testing.assert_allclose(prototype(emb, centre, "bilinear").numpy(), unit[:, 4, 5].numpy(), atol=1e-3)


def test_similarity_map_needs_points_inside_the_image():
    emb = _planted_embedding()
    with pytest.raises(ValueError, match="at least one point"):
        similarity_map(emb, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="outside"):
        similarity_map(emb, np.array([[600, 10]]))


def test_an_image_too_thin_for_sam_is_refused(sam):
    with pytest.raises(ValueError, match="too thin"):
        embed_images(sam, [np.zeros((1, 1000, 3), np.uint8)])


@pytest.mark.parametrize("H, W, img_size, grid", [(300, 700, 1024, 64), (300, 700, 256, 16), (500, 200, 256, 16),
                                                  (64, 64, 256, 16)])
def test_grid_map_to_original_equals_the_interpolation_pipeline(H, W, img_size, grid):
    emb = _emb(H, W, img_size, grid)
    g = np.random.default_rng(4).normal(size=(3, grid, grid)).astype(np.float32)
    fast = grid_map_to_original(g, emb)
    assert fast.shape == (3, H, W)
    # torch's float32 interpolation computes its source positions in float32: differences up to ~1e-5
    np.testing.assert_allclose(fast, square_map_to_original(g, emb, replicate_padding=True), atol=3e-5)
    np.testing.assert_allclose(grid_map_to_original(g[1], emb), fast[1], atol=1e-7)


def test_cached_normalised_features_follow_in_place_changes():
    emb = _planted_embedding()
    before = similarity_map(emb, np.array([[40, 100]]))
    emb.features[:, :8, 8:] = emb.features[:, :8, :8].clone()  # the right half now looks like the left
    after = similarity_map(emb, np.array([[40, 100]]))
    np.testing.assert_allclose(before[:, 300:], 0.0, atol=1e-6)
    np.testing.assert_allclose(after, 1.0, atol=1e-6)


def test_frame_predictor_is_sampredictor_at_the_original_size_and_exact_in_sams_frame(sam):
    """FramePredictor (issues 11.7, 12.1): at the image's size it is SamPredictor.predict bit for bit; in SAM's input
    frame the points land on the very pixels given, and the full-size mask from its low-res logits is SamPredictor's."""
    from clipsam_lite.sam_features import FramePredictor, low_res_to_size

    image = _images()[0]  # 300 x 700 -> SAM's input frame 110 x 256
    emb = embed_images(sam, [image], batch_size=1)[0]
    reference = SamPredictor(sam)
    reference.set_image(image)
    points, labels = np.array([[350.0, 150.0], [20.0, 280.0]]), np.array([1, 0])
    same = FramePredictor(sam, emb)
    for kw in (dict(multimask_output=False), dict(multimask_output=True, box=np.array([300, 100, 420, 200]))):
        ref = reference.predict(points, labels, return_logits=True, **kw)
        got = same.predict(points, labels, return_logits=True, **kw)
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)
    framed = FramePredictor(sam, emb, emb.input_size)
    work = np.array([[128.0, 55.0], [7.0, 100.0]])  # pixels of the 110 x 256 frame
    original = framed.to_original(work)
    np.testing.assert_allclose(reference.transform.apply_coords(original, (300, 700)), work, rtol=0, atol=1e-9)
    ref = reference.predict(original, labels, multimask_output=True, return_logits=True)
    logits, ious, low = framed.predict(work, labels, multimask_output=True, return_logits=True)
    np.testing.assert_array_equal(ious, ref[1])
    np.testing.assert_array_equal(low, ref[2])
    assert logits.shape == (3, 110, 256)
    np.testing.assert_array_equal(low_res_to_size(low, emb.input_size, emb.img_size, (300, 700)).numpy(), ref[0])


def test_frame_predictor_batches_prompt_sets_of_equal_size(sam):
    """predict_many: one decoder pass per group of equal-sized prompt sets, the same answers as one by one (11.11)."""
    from clipsam_lite.sam_features import FramePredictor

    emb = embed_images(sam, [_images()[0]], batch_size=1)[0]
    fp = FramePredictor(sam, emb, emb.input_size)
    reqs = [(np.array([[30.0, 40.0], [90.0, 20.0]]), np.array([1, 0]), None, None),
            (np.array([[200.0, 80.0], [150.0, 60.0]]), np.array([1, 1]), None, None),
            (np.array([[100.0, 50.0]]), np.array([1]), None, None)]
    calls = []
    handle = sam.mask_decoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        many = fp.predict_many(reqs, multimask_output=True)
        assert len(calls) == 2  # {2 points} x 2 sets, {1 point} x 1 set
        singles = [fp.predict(p, lab, multimask_output=True, return_logits=True) for p, lab, _, _ in reqs]
    finally:
        handle.remove()
    for m, s in zip(many, singles, strict=True):
        for a, b in zip(m, s, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
