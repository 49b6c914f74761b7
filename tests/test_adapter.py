"""The adapter head: losses, training, save/load/mismatch, and the planted-signal bar of the tiny profile.

The planted signal (issue 3, DESIGN.md): random backbones know nothing of damage, but the synthetic
generator's ``signature`` defects share one hue that no normal surface has. An adapter trained for a
few seconds on two synthetic categories must then localise the defects of the two categories it never
saw. We train on the two textures (weave, grain: the wider range of surface colours) and test on the
two objects (disc, tablet). Measured (generator version 1, tiny backbone seed 0, 5 epochs, 2.3 s of
training on 2 idle cores): pixel AUROC 0.969. The margin depends on the choice: the same split with
other random backbones (load_models seed 1..4) gives 0.974, 0.978, 0.915, 0.851, and the other five
2-vs-2 splits give 0.43..0.94 (a linear head on a random backbone cannot know how the unseen surface
colours of the held-out categories should score), which is why the split is fixed here; see the
report of issue 3.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from clipsam_lite import adapter as ad
from clipsam_lite import clip_maps as cm
from clipsam_lite.datasets import load_dataset
from clipsam_lite.synthetic import SIGNATURE_RGB, make_synthetic, render_item

TRAIN_CATS = ["weave", "grain"]
HELD_OUT = ["disc", "tablet"]


@pytest.fixture(scope="module")
def signature_root(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("signature") / "mvtec", seed=0, signature=True, n_train=0,
                          categories=TRAIN_CATS + HELD_OUT)


@pytest.fixture(scope="module")
def trained(tiny_models, signature_root):
    """(adapter, history): trained once for this module on the two texture categories (config defaults: 5 epochs)."""
    lines: list[str] = []
    adapter, hist = ad.train_adapter(tiny_models, load_dataset("mvtec", signature_root, category=TRAIN_CATS),
                                     tiny_models.cfg, progress=False, log=lines.append)
    hist.lines = lines
    return adapter, hist


@pytest.fixture(scope="module")
def held_out(signature_root):
    return list(load_dataset("mvtec", signature_root, category=HELD_OUT))


@pytest.fixture(scope="module")
def held_out_maps(trained, tiny_models, held_out):
    """S_a of every held-out image (44: 8 good, 36 with signature defects), computed once for this module."""
    return cm.anomaly_maps(tiny_models, [it.image for it in held_out], [it.category for it in held_out],
                           tiny_models.cfg, adapter=trained[0])


# ------------------------------------------------------------------------------------------------
# Losses (known answers)
# ------------------------------------------------------------------------------------------------

def test_focal_loss_known_values():
    probs = torch.full((1, 2, 2, 2), 0.5)
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # p_t = 0.5 everywhere: (1 - 0.5)^2 * -log(0.5) = 0.25 * ln 2
    assert ad.focal_loss(probs, target, gamma=2.0).item() == pytest.approx(0.25 * np.log(2), abs=1e-4)
    assert ad.focal_loss(probs, target, gamma=0.0).item() == pytest.approx(np.log(2), abs=1e-4)  # cross-entropy
    sure = torch.stack([1 - target, target], dim=1)  # right and certain -> ~0
    assert ad.focal_loss(sure, target).item() < 1e-6


def test_dice_loss_known_values():
    t = torch.ones(1, 4, 4)
    assert ad.dice_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert ad.dice_loss(torch.zeros(1, 4, 4), t).item() == pytest.approx(1 - 1 / 17, abs=1e-6)
    p = torch.full((1, 4, 4), 0.5)  # 2 * 8 + 1 / (8 + 16 + 1) = 17 / 25
    assert ad.dice_loss(p, t).item() == pytest.approx(1 - 17 / 25, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

def test_training_history_and_metadata(trained, tiny_models):
    adapter, hist = trained
    assert len(hist.loss) == tiny_models.cfg.adapter_epochs == 5
    assert hist.loss[-1] < 0.6 * hist.loss[0]  # measured 6.13 -> 2.28
    assert hist.n_images == 35 and hist.n_anomalous == 27 and hist.categories == ["grain", "weave"]
    assert hist.tokens_cached
    assert sum(line.startswith("epoch ") for line in hist.lines) == 5 and "loss" in hist.lines[-1]
    assert adapter.layers == (1, 2, 3, 4) and (adapter.in_dim, adapter.out_dim) == (128, 64)
    m = adapter.meta
    assert m["backbone"] == "clipsam-tiny-vit" and m["pretrained"] is None and m["image_size"] == 224
    assert m["epochs"] == 5 and m["seed"] == 0 and "35 images (27 anomalous)" in m["training_data"]
    # The backbone is frozen during training and its flags are restored afterwards.
    assert all(p.requires_grad for p in tiny_models.clip.parameters())


def test_training_is_deterministic_and_can_skip_the_cache(tiny_models, signature_root):
    ds = load_dataset("mvtec", signature_root, category="weave")[:5]
    cfg = tiny_models.cfg.replace(adapter_batch_size=2)
    a1, h1 = ad.train_adapter(tiny_models, ds, cfg, epochs=2, progress=False, log=None)
    a2, h2 = ad.train_adapter(tiny_models, [ds[i] for i in range(len(ds))], cfg, epochs=2, progress=False,
                              log=None, cache_tokens=False)
    assert h1.tokens_cached and not h2.tokens_cached
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=1e-4)
    for p1, p2 in zip(a1.parameters(), a2.parameters(), strict=True):
        torch.testing.assert_close(p1, p2, atol=1e-5, rtol=1e-4)


def test_train_adapter_rejects_empty_data(tiny_models):
    with pytest.raises(ValueError, match="no training images"):
        ad.train_adapter(tiny_models, [], progress=False, log=None)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        ad.train_adapter(tiny_models, [], epochs=0, progress=False, log=None)


# ------------------------------------------------------------------------------------------------
# The planted-signal bar and the geometry
# ------------------------------------------------------------------------------------------------

def test_planted_signal_pixel_auroc_on_unseen_categories(held_out, held_out_maps):
    y = np.concatenate([it.mask.ravel() for it in held_out])
    s = np.concatenate([m.ravel() for m in held_out_maps.maps])
    auroc = roc_auc_score(y, s)
    print(f"planted-signal pixel AUROC on {HELD_OUT} (never seen in training): {auroc:.3f}")
    assert auroc >= 0.90


def test_flip_gives_flipped_map(trained, tiny_models, held_out, held_out_maps):
    """Tolerance: a random ViT's learned position embeddings break flip equivariance (exact equivariance
    without them is tested in test_clip_maps), so per-pixel equality cannot hold (measured max |diff|
    0.27-0.45). What must hold, on the first image of each defect type of each held-out category:
    S(flip x) flipped back correlates with S(x) at r >= 0.6 (measured 0.77-0.97, mean 0.89), far above
    the correlation without flipping back (mean 0.62), the mean |difference| stays <= 0.08 (measured
    <= 0.044), and for compact defects (hole, stain, missing piece) the maximum of both maps lies on the
    defect (mask dilated by one patch, 9 px at 256 px)."""
    idx = [i for i, it in enumerate(held_out) if it.label == 1 and it.path.endswith("000.png")]
    assert len(idx) == 12  # 6 defect types x 2 objects, one image each
    flips = [np.ascontiguousarray(held_out[i].image[:, ::-1]) for i in idx]
    r = cm.anomaly_maps(tiny_models, flips, [held_out[i].category for i in idx], tiny_models.cfg, adapter=trained[0])
    corrs, unflipped = [], []
    for i, fm in zip(idx, r.maps, strict=True):
        it, a, b = held_out[i], held_out_maps.maps[i], fm[:, ::-1]
        corrs.append(np.corrcoef(a.ravel(), b.ravel())[0, 1])
        unflipped.append(np.corrcoef(a.ravel(), fm.ravel())[0, 1])
        assert np.abs(a - b).mean() <= 0.08
        if it.defect_type in ("hole", "stain", "missing_piece"):
            near = ndimage.binary_dilation(it.mask, iterations=9)
            assert near[np.unravel_index(a.argmax(), a.shape)]
            assert near[:, ::-1][np.unravel_index(fm.argmax(), a.shape)]
    assert min(corrs) >= 0.6 and np.mean(corrs) >= 0.8
    assert np.mean(corrs) > np.mean(unflipped) + 0.1


@pytest.mark.parametrize("hw", [(256, 256), (240, 400)])
def test_defect_planted_in_a_corner_puts_the_maximum_there(trained, tiny_models, hw):
    """A signature-coloured disc (radius 12 px) painted near each corner of a clean held-out image
    (square and 5:3): the map's maximum lies within 8 px of its centre (measured <= 2.2 px). A transposed
    grid would move the top-right defect to the bottom-left."""
    from PIL import Image

    adapter, _ = trained
    h, w = hw
    clean, _ = render_item("tablet", 0, None, split="test", seed=0, image_size=256)
    base = np.asarray(Image.fromarray(clean).resize((w, h), Image.BILINEAR))
    yy, xx = np.mgrid[:h, :w]
    centres = [(30, w - 30), (h - 30, 30), (30, 30), (h - 30, w - 30)]
    imgs = []
    for cy, cx in centres:
        img = base.copy()
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12 ** 2] = SIGNATURE_RGB
        imgs.append(img)
    r = cm.anomaly_maps(tiny_models, imgs, "tablet", tiny_models.cfg, adapter=adapter)
    for (cy, cx), m in zip(centres, r.maps, strict=True):
        assert m.shape == (h, w)
        iy, ix = np.unravel_index(m.argmax(), m.shape)
        assert np.hypot(iy - cy, ix - cx) <= 8, f"defect at {(cy, cx)}, maximum at {(iy, ix)}"


# ------------------------------------------------------------------------------------------------
# Save / load / mismatch
# ------------------------------------------------------------------------------------------------

def test_save_load_round_trip_gives_identical_maps(trained, tiny_models, held_out, tmp_path):
    adapter, _ = trained
    path = ad.save_adapter(adapter, tmp_path / "sub" / "adapter.pt")
    loaded = ad.load_adapter(path, tiny_models)
    assert loaded.meta["training_data"] == adapter.meta["training_data"] and loaded.meta["path"] == str(path)
    imgs = [it.image for it in held_out[:3]]
    a = cm.anomaly_maps(tiny_models, imgs, "disc", tiny_models.cfg, adapter=adapter)
    b = cm.anomaly_maps(tiny_models, imgs, "disc", tiny_models.cfg, adapter=loaded)
    for x, y in zip(a.maps, b.maps, strict=True):
        np.testing.assert_array_equal(x, y)


def test_mismatched_backbone_layers_or_size_are_refused(trained, tiny_models, tmp_path):
    from clipsam_lite.models import load_models

    adapter, _ = trained
    path = adapter.save(tmp_path / "a.pt")
    other_seed = load_models("tiny", device="cpu", seed=1)  # same architecture, other (random) weights
    with pytest.raises(ad.AdapterMismatchError, match=r"a\.pt does not fit.*fingerprint"):
        ad.load_adapter(path, other_seed)
    with pytest.raises(ad.AdapterMismatchError, match="layers: adapter \\[1, 2, 3, 4\\] vs now \\[2, 3, 4\\]"):
        ad.load_adapter(path, tiny_models, tiny_models.cfg.replace(clip_layers=(2, 3, 4)))
    with pytest.raises(ad.AdapterMismatchError, match="image_size: adapter 224 vs now 160"):
        ad.load_adapter(path, tiny_models, tiny_models.cfg.replace(clip_image_size=160))
    with pytest.raises(ad.AdapterMismatchError, match="layers"):
        cm.anomaly_maps(tiny_models, [np.zeros((8, 8, 3), np.uint8)], "disc",
                        tiny_models.cfg.replace(clip_layers=(1, 2)), adapter=adapter)
    # Dimensions: an adapter whose linear layers are 96 -> 64 cannot read 128-wide tokens.
    narrow = ad.Adapter((1, 2, 3, 4), 96, 64, meta=dict(adapter.meta, in_dim=96))
    with pytest.raises(ad.AdapterMismatchError, match="in_dim: adapter 96 vs now 128"):
        ad.load_adapter(narrow.save(tmp_path / "narrow.pt"), tiny_models)
    assert isinstance(ad.AdapterMismatchError("x"), ValueError)


def test_missing_and_corrupt_files_name_the_path(tiny_models, tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        ad.load_adapter(tmp_path / "nope.pt", tiny_models)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ad.AdapterFileError, match="bad.pt .* cannot be read"):
        ad.load_adapter(bad, tiny_models)
    good = trained[0].save(tmp_path / "good.pt")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ad.AdapterFileError, match="trunc.pt"):
        ad.load_adapter(trunc, tiny_models)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ad.AdapterFileError, match="other.pt is not a clipsam-lite adapter"):
        ad.load_adapter(other, tiny_models)


def test_train_adapter_command_writes_a_loadable_file(tmp_path, tiny_models):
    root = make_synthetic(tmp_path / "small", signature=True, n_train=0, n_test_good=1, n_test_per_defect=1,
                          categories=["weave"])
    lines: list[str] = []
    out = ad.train_adapter_command("mvtec", str(root), ["weave"], "tiny", 1, str(tmp_path / "cli.pt"),
                                   progress=False, log=lines.append)
    assert out == tmp_path / "cli.pt" and out.is_file()
    assert any("RANDOM BACKBONES" in s for s in lines) and any(s.startswith("epoch 1/1") for s in lines)
    loaded = ad.load_adapter(out, tiny_models)  # same seed-0 tiny backbone -> same fingerprint
    assert loaded.meta["categories"] == ["weave"] and loaded.meta["epochs"] == 1
    assert "mvtec test split" in loaded.meta["training_data"]
    with pytest.raises(ValueError, match="at most one --categories"):
        ad.train_adapter_command("folder", str(root), ["a", "b"], "tiny", 1, str(tmp_path / "x.pt"))


def test_adapter_forward_checks_layer_count():
    a = ad.Adapter((1, 2), 4, 3)
    assert [t.shape for t in a([torch.zeros(1, 5, 4), torch.zeros(1, 5, 4)])] == [(1, 5, 3), (1, 5, 3)]
    with pytest.raises(ad.AdapterMismatchError, match="2 layers"):
        a([torch.zeros(1, 5, 4)])
    assert dataclasses.is_dataclass(ad.TrainingHistory)


def test_training_after_maps_computed_in_inference_mode(tiny_models):
    """anomaly_maps runs under torch.inference_mode and fills the text and interpolation caches; training on
    the same object name afterwards must not trip over cached inference tensors."""

    @dataclasses.dataclass
    class Item:
        image: np.ndarray
        mask: np.ndarray
        category: str

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    mask = np.zeros((64, 80), bool)
    mask[10:20, 30:40] = True
    cm.anomaly_maps(tiny_models, [img], "freshly cached object", tiny_models.cfg.replace(head="training_free",
                                                                                        working_size=96))
    cfg = tiny_models.cfg.replace(working_size=96)
    adapter, hist = ad.train_adapter(tiny_models, [Item(img, mask, "freshly cached object")], cfg, epochs=1,
                                     progress=False, log=None)
    assert np.isfinite(hist.loss[0])
