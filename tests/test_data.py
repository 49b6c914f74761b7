"""Tests of clipsam_lite.images, .datasets and .synthetic: image I/O, evaluation resizing, the synthetic generator and the loaders.

Known answers throughout: exact pixel values after mode conversion, masks read back equal to the
masks the generator drew, defect pixels equal to the pixels that differ from the clean render.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from scipy import ndimage

from clipsam_lite import images as I
from clipsam_lite.datasets import (
    Dataset,
    DatasetLayoutError,
    MissingMaskError,
    UnknownCategoryError,
    list_categories,
    load_dataset,
)
from clipsam_lite.images import ImageReadError, read_image, read_mask, resize_center_crop
from clipsam_lite.paths import cache_dir
from clipsam_lite.synthetic import (
    CATEGORIES,
    DEFECT_TYPES,
    SIGNATURE_RGB,
    make_synthetic,
    render_item,
    sample_root,
    signature_pixels,
)
from clipsam_lite.synthetic import writer as synthetic_writer

SMALL = dict(image_size=64, n_train=1, n_test_good=1, n_test_per_defect=1)


def _save(arr_or_img, path: Path, fmt: str | None = None) -> Path:
    im = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    im.save(path, format=fmt)
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A small synthetic dataset (all categories, every defect type once, 2 images per folder)."""
    return make_synthetic(tmp_path_factory.mktemp("synth") / "ds", seed=3, image_size=96, n_train=2,
                          n_test_good=2, n_test_per_defect=2)


# ------------------------------------------------------------------------------------------------
# read_image
# ------------------------------------------------------------------------------------------------


def test_read_image_rgb_is_returned_unchanged(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7
    out = read_image(_save(rgb, tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, rgb)


def test_read_image_grayscale_alpha_palette_cmyk(tmp_path):
    gray = np.array([[0, 17, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_save(gray, tmp_path / "l.png")), np.repeat(gray[..., None], 3, 2))

    la = Image.fromarray(gray).convert("LA")
    la.putalpha(Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8)))
    np.testing.assert_array_equal(read_image(_save(la, tmp_path / "la.png")), np.repeat(gray[..., None], 3, 2))

    rgba = np.array([[[10, 20, 30, 0], [200, 100, 50, 77]]], dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_save(rgba, tmp_path / "rgba.png")), rgba[..., :3])

    pal = Image.new("P", (3, 1))
    pal.putpalette([0, 0, 0, 255, 0, 0, 12, 34, 56] + [0] * (768 - 9))
    pal.putdata([2, 1, 0])
    expect = np.array([[[12, 34, 56], [255, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_save(pal, tmp_path / "p.png")), expect)
    pal.info["transparency"] = 1  # palette entry 1 transparent: colours kept, alpha dropped
    out = read_image(_save(pal, tmp_path / "pt.png"))
    assert Image.open(tmp_path / "pt.png").info.get("transparency") == 1
    np.testing.assert_array_equal(out, expect)

    one = Image.fromarray(np.array([[True, False]]))
    np.testing.assert_array_equal(read_image(_save(one, tmp_path / "one.png"))[..., 0], [[255, 0]])

    cmyk = Image.new("CMYK", (2, 2), (0, 255, 0, 0))  # full magenta ink -> (255, 0, 255)
    np.testing.assert_array_equal(read_image(_save(cmyk, tmp_path / "c.tif")), np.full((2, 2, 3), [255, 0, 255]))


def test_read_image_premultiplied_alpha_is_unpremultiplied():
    im = Image.new("RGBa", (1, 1), (100, 50, 20, 128))
    out = I._pil_to_rgb(im)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 3)
    np.testing.assert_allclose(out[0, 0], [199, 100, 40], atol=1)  # 100 * 255 / 128 = 199.2


def test_read_image_16_bit_scales_by_257_with_rounding(tmp_path):
    values = np.array([[0, 65535, 32896, 1000, 128, 129]], dtype=np.uint16)
    expect = np.array([[0, 255, 128, 4, 0, 1]], dtype=np.uint8)  # round(v / 257)
    png = _save(values, tmp_path / "g16.png")
    assert Image.open(png).mode == "I;16"
    np.testing.assert_array_equal(read_image(png)[..., 0], expect)
    np.testing.assert_array_equal(read_image(png)[..., 2], expect)

    big = Image.frombytes("I;16B", (6, 1), values.astype(">u2").tobytes())
    tif = _save(big, tmp_path / "g16b.tif")
    assert Image.open(tif).mode == "I;16B"
    np.testing.assert_array_equal(read_image(tif)[..., 0], expect)

    i32 = _save(Image.fromarray(np.array([[-5, 70000, 32896]], dtype=np.int32)), tmp_path / "i.tif")
    assert Image.open(i32).mode == "I"
    np.testing.assert_array_equal(read_image(i32)[..., 1], [[0, 255, 128]])  # clipped to 0..65535 first


def test_read_image_float(tmp_path):
    unit = _save(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)), tmp_path / "f.tif")
    assert Image.open(unit).mode == "F"
    np.testing.assert_array_equal(read_image(unit)[..., 0], [[0, 128, 255]])  # 0.5 * 255 = 127.5 -> 128
    wide = _save(Image.fromarray(np.array([[200.4, 300.0, -3.0]], dtype=np.float32)), tmp_path / "g.tif")
    np.testing.assert_array_equal(read_image(wide)[..., 0], [[200, 255, 0]])


# ------------------------------------------------------------------------------------------------
# bad files
# ------------------------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(b, "PNG")
    return b.getvalue()


def _jpeg_bytes() -> bytes:
    b = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(b, "JPEG")  # PIL misses its lost EOI
    return b.getvalue()


def test_missing_file_raises_file_not_found_naming_it(tmp_path):
    p = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(p)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_mask(p)


@pytest.mark.parametrize("name, content", [
    ("half.png", _png_bytes()[: len(_png_bytes()) // 2]),
    ("no_iend.png", _png_bytes()[:-12]),  # PIL alone decodes this one without complaint
    ("half.jpg", _jpeg_bytes()[: len(_jpeg_bytes()) // 2]),
    ("no_eoi.jpg", _jpeg_bytes()[:-2] + b"\x00\x00"),  # PIL alone decodes this one too
    ("text.png", b"this is not an image\n" * 20),
    ("empty.png", b""),
])
def test_corrupt_or_truncated_files_raise_image_read_error(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    if name.startswith("no_"):  # the cases PIL lets through: our own end-marker check must catch them
        with Image.open(io.BytesIO(content)) as im:
            im.load()
    for reader in (read_image, read_mask):
        with pytest.raises(ImageReadError, match=name) as info:
            reader(p)
        assert "re-download" in str(info.value)
    assert isinstance(info.value, OSError)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def _png_of_rows(width: int, height: int, rows: int, interlace: bool = False) -> bytes:
    """An 8-bit grey PNG declaring ``width x height`` whose image data holds ``rows`` rows (filter 0, value 200),
    ending with IEND: complete in its chunks, short in its pixels."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([200]) * width for _ in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, int(interlace)))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png_with_fewer_rows_than_its_header_is_refused(tmp_path):
    """Pillow decodes such a file without a word, the missing rows black; a half-written export looks like this."""
    short = _png_of_rows(16, 16, 8)
    with Image.open(io.BytesIO(short)) as im:  # what Pillow alone does: rows 8-15 read as 0
        im.load()
        assert np.asarray(im)[:8].min() == 200 and np.asarray(im)[8:].max() == 0
    p = tmp_path / "short.png"
    p.write_bytes(short)
    for reader in (read_image, read_mask):
        with pytest.raises(ImageReadError, match=r"short.png.*about 8 of the 16 rows"):
            reader(p)
    p.write_bytes(_png_of_rows(16, 16, 16))  # the same file, complete: read
    assert read_image(p).shape == (16, 16, 3) and read_image(p).min() == 200


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "1", "I;16", "P4"])
def test_complete_pngs_of_every_kind_pass_the_row_check(tmp_path, mode):
    from clipsam_lite.images import _png_short_rows

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    im = {"RGB": lambda: Image.fromarray(rgb), "RGBA": lambda: Image.fromarray(rgb).convert("RGBA"),
          "L": lambda: Image.fromarray(rgb).convert("L"), "1": lambda: Image.fromarray(rgb).convert("1"),
          "I;16": lambda: Image.fromarray(rng.integers(0, 65535, (37, 53), dtype=np.uint16)),
          "P4": lambda: Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=7)}[mode]()
    b = io.BytesIO()
    im.save(b, "PNG", **({"bits": 4} if mode == "P4" else {}))
    assert _png_short_rows(b.getvalue()) is None
    p = tmp_path / "ok.png"
    p.write_bytes(b.getvalue())
    assert read_image(p).shape == (37, 53, 3)


def test_complete_files_with_trailing_bytes_are_accepted(tmp_path):
    p = tmp_path / "tail.jpg"
    p.write_bytes(_jpeg_bytes() + b"junk")
    assert read_image(p).shape == (16, 16, 3)
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


# ------------------------------------------------------------------------------------------------
# read_mask
# ------------------------------------------------------------------------------------------------


def test_read_mask_grayscale_and_1_bit(tmp_path):
    p = _save(np.array([[0, 1, 127, 128, 255]], dtype=np.uint8), tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(p), [[False, False, False, True, True]])
    np.testing.assert_array_equal(read_mask(p, rule="nonzero"), [[False, True, True, True, True]])
    one = _save(Image.fromarray(np.array([[True, False]])), tmp_path / "one.png")
    np.testing.assert_array_equal(read_mask(one), [[True, False]])
    with pytest.raises(ValueError, match="half"):
        read_mask(p, rule="otsu")


def test_read_mask_palette_rgb_rgba_16_bit(tmp_path):
    pal = Image.new("P", (3, 1))
    pal.putpalette([0, 0, 0, 255, 255, 255, 50, 50, 50] + [0] * (768 - 9))
    pal.putdata([0, 1, 2])
    p = _save(pal, tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(p), [[False, True, False]])  # dark grey < half
    np.testing.assert_array_equal(read_mask(p, "nonzero"), [[False, True, True]])

    rgb = np.array([[[255, 0, 0], [0, 0, 0], [100, 100, 100]]], dtype=np.uint8)  # red counts: brightest channel
    np.testing.assert_array_equal(read_mask(_save(rgb, tmp_path / "rgb.png")), [[True, False, False]])

    # RGBA composited over black: 255 * 128 >= 255 * 255 / 2 but 255 * 127 is not
    rgba = np.array([[[255, 255, 255, 0], [255, 255, 255, 255], [255, 255, 255, 128], [255, 255, 255, 127]]],
                    dtype=np.uint8)
    q = _save(rgba, tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_mask(q), [[False, True, True, False]])
    np.testing.assert_array_equal(read_mask(q, "nonzero"), [[False, True, True, True]])

    m16 = _save(np.array([[0, 1, 32767, 32768, 65535]], dtype=np.uint16), tmp_path / "m16.png")
    np.testing.assert_array_equal(read_mask(m16), [[False, False, False, True, True]])
    np.testing.assert_array_equal(read_mask(m16, "nonzero"), [[False, True, True, True, True]])


# ------------------------------------------------------------------------------------------------
# resize_center_crop
# ------------------------------------------------------------------------------------------------


def test_resize_center_crop_only_crops_when_short_side_matches():
    a = np.arange(4 * 8, dtype=np.uint8).reshape(4, 8)
    np.testing.assert_array_equal(resize_center_crop(a, 4), a[:, 2:6])
    rgb = np.stack([a, a + 1, a + 2], axis=2)
    out = resize_center_crop(rgb.transpose(1, 0, 2), 4)  # 8 x 4: crops rows 2..5
    np.testing.assert_array_equal(out, rgb.transpose(1, 0, 2)[2:6])
    assert out.dtype == np.uint8


def test_resize_center_crop_bilinear_map_known_values():
    m = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float64)
    out = resize_center_crop(m, 4)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    # pixel centres map to x = -0.25, 0.25, 0.75, 1.25 in the source (clamped at the edges)
    np.testing.assert_allclose(out[0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)


def test_resize_center_crop_mask_area_then_half():
    mask = np.zeros((8, 8), dtype=bool)
    mask[0:2, 0:2] = True  # a full 2x2 block -> output pixel (0, 0) True
    mask[0, 2:4] = True  # half of block (0, 1) -> True (>= 0.5)
    mask[2, 0] = True  # a quarter of block (1, 0) -> False
    out = resize_center_crop(mask, 4, is_mask=True)
    assert out.dtype == bool
    expect = np.zeros((4, 4), dtype=bool)
    expect[0, 0] = expect[0, 1] = True
    np.testing.assert_array_equal(out, expect)
    up = resize_center_crop(np.array([[1, 0], [0, 0]], dtype=np.uint8), 4, is_mask=True)  # 0/1 numbers
    np.testing.assert_array_equal(up, np.kron([[1, 0], [0, 0]], np.ones((2, 2))).astype(bool))


def test_resize_center_crop_shapes_and_errors():
    out = resize_center_crop(np.zeros((900, 1200, 3), dtype=np.uint8), 518)
    assert out.shape == (518, 518, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="size"):
        resize_center_crop(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="shape"):
        resize_center_crop(np.zeros(4), 4)


# ------------------------------------------------------------------------------------------------
# synthetic generator
# ------------------------------------------------------------------------------------------------


def test_make_synthetic_is_byte_deterministic_and_seed_dependent(tmp_path):
    a = _files(make_synthetic(tmp_path / "a", seed=5, **SMALL))
    b = _files(make_synthetic(tmp_path / "b", seed=5, **SMALL))
    c = _files(make_synthetic(tmp_path / "c", seed=6, **SMALL))
    assert a.keys() == b.keys() and len(a) > 20
    for name in a:
        assert a[name] == b[name], name
    assert a["disc/test/good/000.png"] != c["disc/test/good/000.png"]
    assert json.loads(a["meta.json"])["seed"] == 5


def test_categories_do_not_depend_on_each_other(tmp_path):
    alone = _files(make_synthetic(tmp_path / "one", seed=5, categories=["grain"], **SMALL))
    full = _files(make_synthetic(tmp_path / "all", seed=5, **SMALL))
    pngs = [k for k in alone if k.endswith(".png")]
    assert pngs and all(alone[k] == full[k] for k in pngs)


def test_layout_counts_and_meta(synth):
    meta = json.loads((synth / "meta.json").read_text())
    assert meta["synthetic"] is True and meta["seed"] == 3 and meta["signature"] is False
    assert "SYNTHETIC" in (synth / "README.txt").read_text()
    assert sorted(p.name for p in synth.iterdir() if p.is_dir()) == sorted(CATEGORIES)
    for cat, spec in CATEGORIES.items():
        assert sorted(p.name for p in (synth / cat / "train" / "good").iterdir()) == ["000.png", "001.png"]
        assert sorted(p.name for p in (synth / cat / "test").iterdir()) == sorted(("good",) + spec.defects)
        for d in spec.defects:
            assert sorted(p.name for p in (synth / cat / "ground_truth" / d).iterdir()) == [
                "000_mask.png", "001_mask.png"]
            m = Image.open(synth / cat / "ground_truth" / d / "000_mask.png")
            assert m.mode == "L" and set(np.unique(np.asarray(m))) == {0, 255}
    assert set(DEFECT_TYPES) == {d for s in CATEGORIES.values() for d in s.defects}
    kinds = [s.kind for s in CATEGORIES.values()]
    assert kinds.count("object") >= 2 and kinds.count("texture") >= 2


def test_every_defect_changes_exactly_its_mask():
    """Mask pixels all differ from the clean render; changes outside the mask stay within 3 px of it."""
    for cat, spec in CATEGORIES.items():
        for d in spec.defects:
            for i, sig in ((0, False), (1, True), (2, False)):
                img, mask = render_item(cat, i, d, signature=sig)
                clean, none = render_item(cat, i, d, signature=sig, clean=True)
                assert not none.any()
                area = mask.mean()
                assert 0.001 <= area <= 0.06, (cat, d, i, area)
                diff = np.abs(img.astype(int) - clean.astype(int)).max(axis=2)
                assert diff[mask].min() >= 1, (cat, d, i, sig)
                assert np.median(diff[mask]) >= 20, (cat, d, i, sig)
                far = ndimage.distance_transform_edt(~mask) > 3.0
                assert diff[far].max() <= 2, (cat, d, i, sig)


def test_normal_images_have_no_signature_hue_and_signature_defects_do():
    for cat, spec in CATEGORIES.items():
        for i in range(3):
            for split in ("train", "test"):
                img, mask = render_item(cat, i, split=split)
                assert not mask.any() and not signature_pixels(img).any(), (cat, i, split)
        for d in spec.defects:
            natural, _ = render_item(cat, 0, d)
            assert not signature_pixels(natural).any(), (cat, d)  # natural colours stay natural
            img, mask = render_item(cat, 0, d, signature=True)
            sig = signature_pixels(img)
            assert not (sig & ~ndimage.binary_dilation(mask, iterations=2)).any(), (cat, d)
            assert sig[mask].mean() >= 0.9, (cat, d)
    pure = np.array([[SIGNATURE_RGB]], dtype=np.uint8)
    assert signature_pixels(pure).all()


def test_render_item_variation_and_argument_errors():
    a, _ = render_item("disc", 0, split="train")
    b, _ = render_item("disc", 1, split="train")
    c, _ = render_item("disc", 0, split="test")
    assert (a != b).any() and (a != c).any()
    assert render_item("weave", 0, image_size=80)[0].shape == (80, 80, 3)
    with pytest.raises(UnknownCategoryError, match="disc"):
        render_item("bottle", 0)
    with pytest.raises(ValueError, match="missing_piece"):
        render_item("weave", 0, "missing_piece")
    with pytest.raises(ValueError, match="train split"):
        render_item("disc", 0, "hole", split="train")
    with pytest.raises(ValueError, match="image_size"):
        render_item("disc", 0, image_size=16)


def test_make_synthetic_argument_errors_and_safe_overwrite(tmp_path):
    with pytest.raises(ValueError, match="defect type"):
        make_synthetic(tmp_path / "x", defect_types=["dent"], **SMALL)
    with pytest.raises(ValueError, match="weave"):
        make_synthetic(tmp_path / "x", categories=["disc", "weave"], defect_types=["missing_piece"], **SMALL)
    with pytest.raises(UnknownCategoryError):
        make_synthetic(tmp_path / "x", categories=["bottle"], **SMALL)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic(foreign, **SMALL)
    assert (foreign / "thesis.txt").read_text() == "keep me"
    out = make_synthetic(tmp_path / "re", categories=["disc", "grain"], defect_types=["hole"], **SMALL)
    assert sorted(p.name for p in (out / "disc" / "test").iterdir()) == ["good", "hole"]
    make_synthetic(out, categories=["tablet"], **SMALL)  # a previous synthetic root is replaced
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["tablet"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_sample_root_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSAM_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    root = sample_root(signature=True)
    assert root.parent == tmp_path / "cache" and "signature" in root.name
    meta = json.loads((root / "meta.json").read_text())
    assert meta["signature"] is True and sorted(meta["categories"]) == sorted(CATEGORIES)
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert sample_root(signature=True) == root and (root / "meta.json").stat().st_mtime_ns == stamp
    ds = load_dataset("mvtec", root)
    assert ds.categories == sorted(CATEGORIES) and (ds.labels == 1).sum() > 0


def test_sample_root_uses_the_winner_of_a_race(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSAM_CACHE", str(tmp_path))

    def other_process_wins(out: Path, plan, **kwargs):
        # our temporary folder is ".<final name>.tmp-<pid>-<random>" next to the final one
        final = out.parent / out.name[1:].split(".tmp-")[0]
        final.mkdir()
        (final / "meta.json").write_text('{"synthetic": true, "winner": "other"}')
        (out / "meta.json").write_text('{"synthetic": true, "winner": "us"}')

    monkeypatch.setattr(synthetic_writer, "_write_synthetic", other_process_wins)
    root = sample_root(signature=False)
    assert json.loads((root / "meta.json").read_text())["winner"] == "other"
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # our temporary copy is gone


# ------------------------------------------------------------------------------------------------
# MVTec-AD loader
# ------------------------------------------------------------------------------------------------


def test_mvtec_loader_reads_the_synthetic_data_back_exactly(synth):
    ds = load_dataset("mvtec", synth)
    assert ds.categories == sorted(CATEGORIES) == list_categories("mvtec", synth)
    n_expected = sum(2 + 2 * len(s.defects) for s in CATEGORIES.values())
    assert len(ds) == len(ds.records) == n_expected
    assert [r.category for r in ds.records] == sorted(r.category for r in ds.records)
    for rec in ds.records:
        assert (rec.label == 0) == (rec.defect_type == "good") == (rec.mask_path is None)
    k = next(i for i, r in enumerate(ds.records) if r.category == "tablet" and r.defect_type == "crack")
    item = ds[k]
    index = int(Path(item.path).stem)
    img, mask = render_item("tablet", index, "crack", seed=3, image_size=96)
    assert item.image.dtype == np.uint8 and item.mask.dtype == bool and item.label == 1
    np.testing.assert_array_equal(item.image, img)
    np.testing.assert_array_equal(item.mask, mask)
    for it in ds:  # every anomalous image has a plausible mask, normal ones none
        if it.label == 1:
            assert 0.001 <= it.mask.mean() <= 0.06, it.path
        else:
            assert not it.mask.any() and it.defect_type == "good"


def test_mvtec_split_category_selection_and_slicing(synth):
    train = load_dataset("mvtec", synth, category="disc", split="train")
    assert len(train) == 2 and set(train.labels) == {0} and train.categories == ["disc"]
    two = load_dataset("mvtec", synth, category=["weave", "disc"])
    assert two.categories == ["weave", "disc"]
    assert [r.category for r in two.records][0] == "weave"
    head = two[:3]
    assert isinstance(head, Dataset) and len(head) == 3 and head.categories == ["weave"]
    assert two[-1].path == two.records[-1].path
    assert "mvtec" in repr(two)
    with pytest.raises(UnknownCategoryError, match=r"bottle.*available.*disc"):
        load_dataset("mvtec", synth, category="bottle")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mvtec", synth, split="val")
    with pytest.raises(ValueError, match="visa"):
        load_dataset("coco", synth)


def test_mvtec_layout_errors(tmp_path, synth):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_dataset("mvtec", tmp_path / "missing")
    odd = tmp_path / "odd"
    (odd / "images").mkdir(parents=True)
    (odd / "notes.txt").write_text("x")
    with pytest.raises(DatasetLayoutError, match=r"expected <root>/<category>/test/.*found \['images/', 'notes.txt'\]"):
        load_dataset("mvtec", odd)
    with pytest.raises(DatasetLayoutError, match="looks like one category folder"):
        load_dataset("mvtec", synth / "disc")


def _copy_category(synth: Path, dst: Path, cat: str = "disc") -> Path:
    import shutil
    shutil.copytree(synth / cat, dst / cat)
    return dst


def test_mvtec_missing_mask_corrupt_image_and_size_mismatch(tmp_path, synth):
    root = _copy_category(synth, tmp_path / "a")
    gone = root / "disc" / "ground_truth" / "hole" / "001_mask.png"
    gone.unlink()
    with pytest.raises(MissingMaskError, match=r"test/hole/001.png.*expected .*ground_truth/hole/001_mask.png"):
        load_dataset("mvtec", root)

    root = _copy_category(synth, tmp_path / "b")
    bad = root / "disc" / "test" / "stain" / "000.png"
    bad.write_bytes(bad.read_bytes()[:500])
    ds = load_dataset("mvtec", root)  # listing does not read pixels
    k = [r.path for r in ds.records].index(str(bad))
    with pytest.raises(ImageReadError, match="stain/000.png"):
        ds[k]

    root = _copy_category(synth, tmp_path / "c")
    m = root / "disc" / "ground_truth" / "scratch" / "000_mask.png"
    _save(np.zeros((10, 10), dtype=np.uint8), m)
    ds = load_dataset("mvtec", root)
    k = [r.mask_path for r in ds.records].index(str(m))
    with pytest.raises(DatasetLayoutError, match="must match"):
        ds[k]


# ------------------------------------------------------------------------------------------------
# VisA loader
# ------------------------------------------------------------------------------------------------


def _make_visa(root: Path) -> Path:
    """A tiny VisA layout: two objects, 0/1 and class-id masks, and the 1cls.csv that lists them."""
    rows = [("object", "split", "label", "image", "mask")]
    rng = np.random.default_rng(0)
    for obj in ("pcb1", "candle"):
        img_dir = root / obj / "Data" / "Images"
        mask_dir = root / obj / "Data" / "Masks" / "Anomaly"
        for sub in ("Normal", "Anomaly"):
            (img_dir / sub).mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for i in range(2):
            _save(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), img_dir / "Normal" / f"{i:04d}.JPG", "JPEG")
            rows.append((obj, "train" if i == 0 else "test", "normal", f"{obj}/Data/Images/Normal/{i:04d}.JPG", ""))
        _save(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), img_dir / "Anomaly" / "000.JPG", "JPEG")
        mask = np.zeros((12, 16), dtype=np.uint8)
        mask[2:4, 3:6] = 1  # VisA stores 0/1 ...
        mask[8, 10] = 2  # ... or class ids
        _save(mask, mask_dir / "000.png")
        rows.append((obj, "test", "anomaly", f"{obj}/Data/Images/Anomaly/000.JPG", f"{obj}/Data/Masks/Anomaly/000.png"))
    (root / "split_csv").mkdir(parents=True)
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def test_visa_loader(tmp_path):
    root = _make_visa(tmp_path / "visa")
    assert list_categories("visa", root) == ["candle", "pcb1"]
    test = load_dataset("visa", root)
    assert test.categories == ["candle", "pcb1"] and len(test) == 4
    assert [r.category for r in test.records] == ["candle", "candle", "pcb1", "pcb1"]
    anomalous = [it for it in test if it.label == 1]
    assert len(anomalous) == 2
    expect = np.zeros((12, 16), dtype=bool)
    expect[2:4, 3:6] = True
    expect[8, 10] = True
    for it in anomalous:
        assert it.image.shape == (12, 16, 3) and it.mask.dtype == bool
        np.testing.assert_array_equal(it.mask, expect)  # binarised with != 0
    normal = [it for it in test if it.label == 0][0]
    assert not normal.mask.any() and normal.defect_type == "good"
    train = load_dataset("visa", root, category="pcb1", split="train")
    assert len(train) == 1 and train.records[0].label == 0


def test_visa_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"split_csv/1cls.csv"):
        load_dataset("visa", tmp_path)
    root = _make_visa(tmp_path / "v1")
    with pytest.raises(UnknownCategoryError, match="candle"):
        load_dataset("visa", root, category="capsules")
    (root / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png").unlink()
    with pytest.raises(MissingMaskError, match=r"pcb1/Data/Images/Anomaly/000.JPG.*Masks/Anomaly/000.png"):
        load_dataset("visa", root)
    assert len(load_dataset("visa", root, category="candle")) == 2
    (root / "candle" / "Data" / "Images" / "Normal" / "0001.JPG").unlink()
    with pytest.raises(DatasetLayoutError, match="do not exist"):
        load_dataset("visa", root, category="candle")
    bad = tmp_path / "v2"
    (bad / "split_csv").mkdir(parents=True)
    (bad / "split_csv" / "1cls.csv").write_text("object,split,image\npcb1,test,x.JPG\n")
    with pytest.raises(DatasetLayoutError, match=r"lacks column\(s\) \['label', 'mask'\]"):
        load_dataset("visa", bad)


# ------------------------------------------------------------------------------------------------
# folder loader
# ------------------------------------------------------------------------------------------------


def test_folder_without_masks(tmp_path):
    root = tmp_path / "screws"
    (root / "batch2").mkdir(parents=True)
    _save(np.zeros((5, 6, 3), dtype=np.uint8), root / "b.png")
    _save(np.zeros((5, 6), dtype=np.uint8), root / "batch2" / "a.JPG", "JPEG")
    (root / "notes.txt").write_text("x")
    (root / ".hidden").mkdir()
    _save(np.zeros((5, 6, 3), dtype=np.uint8), root / ".hidden" / "c.png")
    ds = load_dataset("folder", root)
    assert [Path(r.path).relative_to(root).as_posix() for r in ds.records] == ["b.png", "batch2/a.JPG"]
    assert ds.categories == ["screws"] == list_categories("folder", root)
    assert list(ds.labels) == [-1, -1]
    item = ds[1]
    assert item.image.shape == (5, 6, 3) and item.mask.shape == (5, 6) and not item.mask.any()
    assert item.category == "screws" and item.defect_type == "unknown"
    assert load_dataset("folder", root, category="screw").categories == ["screw"]


def test_folder_with_masks(tmp_path):
    root = tmp_path / "parts"
    (root / "sub").mkdir(parents=True)
    (root / "masks" / "sub").mkdir(parents=True)
    for name in ("a", "b", "c", "sub/d"):
        _save(np.full((6, 6, 3), 90, dtype=np.uint8), root / f"{name}.png")
    m = np.zeros((6, 6), dtype=np.uint8)
    m[1:3, 1:3] = 1  # 0/1 masks count with the folder default rule ("nonzero")
    _save(m, root / "masks" / "a.png")
    _save(np.zeros((6, 6), dtype=np.uint8), root / "masks" / "b_mask.png")  # an empty mask: normal
    _save(m * 255, root / "c_mask.png")  # a sibling mask is not an image of its own
    _save(m, root / "masks" / "sub" / "d.png")
    ds = load_dataset("folder", root)
    names = [Path(r.path).relative_to(root).as_posix() for r in ds.records]
    assert names == ["a.png", "b.png", "c.png", "sub/d.png"]
    assert list(ds.labels) == [1, 0, 1, 1]
    assert [r.defect_type for r in ds.records] == ["anomaly", "good", "anomaly", "anomaly"]
    for it in (ds[0], ds[2], ds[3]):
        assert it.mask.sum() == 4 and it.mask[1:3, 1:3].all()


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_dataset("folder", tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(DatasetLayoutError, match=r"No images .*readme.md"):
        load_dataset("folder", tmp_path / "empty")
    with pytest.raises(ValueError, match="one object name"):
        load_dataset("folder", tmp_path / "empty", category=["a", "b"])
