"""clip_maps: prompts, text matrix, patch tokens, heads, map assembly (METHOD.md step 1), on the tiny profile.

The planted-signal, flip and corner tests (which need a trained adapter) live in test_adapter.py.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from clipsam_lite import clip_maps as cm


@pytest.fixture(scope="module")
def tf_cfg(tiny_models):
    """The tiny profile with the training-free head (no adapter needed)."""
    return tiny_models.cfg.replace(head="training_free")


def _rng_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# Prompts and T
# ------------------------------------------------------------------------------------------------

def test_prompt_ensembles_are_method_md():
    assert cm.NORMAL_STATES == ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw",
                                "{} without defect", "{} without damage")
    assert cm.ABNORMAL_STATES == ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")
    assert len(cm.TEMPLATES) == 35 and len(set(cm.TEMPLATES)) == 35
    assert "a photo of a {}." in cm.TEMPLATES and "a cropped photo of the {}." in cm.TEMPLATES
    normal, abnormal = cm.prompt_sentences("metal_nut")
    assert len(normal) == 7 * 35 and len(abnormal) == 5 * 35
    assert normal[0] == "a bad photo of a metal nut."
    assert "a photo of a damaged metal nut." in abnormal and "a photo of a metal nut with defect." in abnormal
    assert all("metal nut" in s for s in normal + abnormal)


def test_object_name_for():
    assert cm.object_name_for("metal_nut") == "metal nut"
    assert cm.object_name_for("  pcb1 ") == "pcb1"
    with pytest.raises(ValueError, match="non-empty"):
        cm.object_name_for("  ")


def test_text_matrix_shape_norm_and_known_answer(tiny_models):
    t = cm.text_matrix(tiny_models, "disc")
    assert t.shape == (2, tiny_models.clip.visual.output_dim) == (2, 64)
    torch.testing.assert_close(t.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    # Known answer: recompute from the sentences by hand.
    normal, abnormal = cm.prompt_sentences("disc")
    with torch.no_grad():
        e_n = F.normalize(tiny_models.clip.encode_text(tiny_models.tokenizer(normal)), dim=-1).mean(0)
        e_a = F.normalize(tiny_models.clip.encode_text(tiny_models.tokenizer(abnormal)), dim=-1).mean(0)
    torch.testing.assert_close(t, F.normalize(torch.stack([e_n, e_a]), dim=-1), atol=1e-5, rtol=0)
    assert not torch.allclose(t[0], t[1], atol=1e-3)


def test_text_matrix_differs_per_object_and_is_cached(tiny_models, monkeypatch):
    a, b = cm.text_matrix(tiny_models, "disc"), cm.text_matrix(tiny_models, "weave")
    assert not torch.allclose(a, b, atol=1e-3)
    calls = []
    real = tiny_models.clip.encode_text
    monkeypatch.setattr(tiny_models.clip, "encode_text", lambda x: calls.append(len(x)) or real(x))
    assert cm.text_matrix(tiny_models, "disc") is a  # cache hit: same tensor, no text forward
    assert calls == []
    cm.text_matrix(tiny_models, "a fresh name")  # miss: 420 sentences in 2 batches of <= 256
    assert calls == [256, 164]
    assert cm.text_matrix(tiny_models, "a_fresh_name") is cm.text_matrix(tiny_models, "a fresh name")


# ------------------------------------------------------------------------------------------------
# Images and tokens
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    (np.zeros((8, 8, 3), np.float32), "dtype float32"),
    (np.zeros((8, 8), np.uint8), r"shape \(8, 8\)"),
    (np.zeros((8, 8, 4), np.uint8), "RGBA"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
])
def test_check_image_rejects_bad_arrays(bad, match):
    with pytest.raises(ValueError, match=match):
        cm.check_image(bad)
    with pytest.raises(TypeError, match="numpy array"):
        cm.check_image([[1, 2, 3]])


def test_preprocess_resizes_whole_image_and_normalises():
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 1.0)
    img = np.zeros((30, 70, 3), np.uint8)
    img[...] = (255, 0, 51)  # uniform colour: resizing keeps it, so the answer is exact
    x = cm.preprocess_images([img], 16, mean, std)
    assert x.shape == (1, 3, 16, 16)
    want = torch.tensor([(1.0 - 0.5) / 0.5, (0.0 - 0.25) / 0.25, 0.2])
    torch.testing.assert_close(x[0].mean(dim=(1, 2)), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(x[0].std(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)


def _block_outputs(models, batch):
    """Reference: every block's output (B x (1 + h*w) x width), recorded by forward hooks on a plain forward."""
    outs = []
    hooks = [b.register_forward_hook(lambda m, a, o: outs.append(o)) for b in models.clip.visual.transformer.resblocks]
    try:
        with torch.no_grad():
            pooled = models.clip.visual(batch)
    finally:
        for h in hooks:
            h.remove()
    return outs, pooled


def test_layer_selection_is_one_based_and_drops_cls(tiny_models):
    batch = cm.preprocess_images([_rng_image(64, 64, 1), _rng_image(50, 90, 2)], 224, *cm.clip_mean_std(tiny_models))
    ref, pooled = _block_outputs(tiny_models, batch)
    with torch.no_grad():
        pt = cm.patch_tokens(tiny_models, batch, (1, 3, 4))
    assert pt.grid == (28, 28)
    for layer, tok in zip((1, 3, 4), pt.tokens, strict=True):
        assert tok.shape == (2, 28 * 28, 128)  # 784 patches, CLS gone
        torch.testing.assert_close(tok, ref[layer - 1][:, 1:], atol=1e-5, rtol=0)  # layer 1 = first block
    # Layer 1 is not layer 2, and the CLS token appears nowhere in the grid.
    assert not torch.allclose(pt.tokens[0], ref[1][:, 1:], atol=1e-3)
    cls = ref[0][:, :1]
    assert (pt.tokens[0] - cls).abs().amax(dim=-1).min() > 1e-3
    torch.testing.assert_close(pt.global_embedding, pooled, atol=1e-5, rtol=0)


def test_layers_out_of_range_are_rejected(tiny_models):
    batch = torch.zeros(1, 3, 224, 224)
    for bad in [(0,), (5,), ()]:
        with pytest.raises(ValueError, match=r"1-based block indices in 1\.\.4"):
            cm.patch_tokens(tiny_models, batch, bad)


def test_value_value_attention_matches_an_independent_computation(tiny_models):
    """vv path, known answer: nn.MultiheadAttention whose query and key weights are replaced by the value
    weights computes softmax(v v^T / sqrt(d)) v and out_proj: exactly the CLIP Surgery branch."""
    visual = tiny_models.clip.visual
    batch = cm.preprocess_images([_rng_image(224, 224, 3)], 224, *cm.clip_mean_std(tiny_models))
    ref, _ = _block_outputs(tiny_models, batch)
    with torch.no_grad():
        pt = cm.patch_tokens(tiny_models, batch, (2, 3, 4), vv_last_layers=2)
        x2, x3 = ref[1], ref[2]  # inputs of blocks 3 and 4 (1-based)

        def vv(block, x):
            attn = copy.deepcopy(block.attn)
            w = attn.in_proj_weight.data
            w[:128], w[128:256] = w[256:].clone(), w[256:].clone()
            b = attn.in_proj_bias.data
            b[:128], b[128:256] = b[256:].clone(), b[256:].clone()
            y = block.ln_1(x)
            return attn(y, y, y, need_weights=False)[0]

        s3 = x2 + vv(visual.transformer.resblocks[2], x2)
        s4 = s3 + vv(visual.transformer.resblocks[3], x3)
    torch.testing.assert_close(pt.tokens[0], ref[1][:, 1:], atol=1e-5, rtol=0)  # layer 2: before the vv blocks
    torch.testing.assert_close(pt.tokens[1], s3[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(pt.tokens[2], s4[:, 1:], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------
# Map assembly
# ------------------------------------------------------------------------------------------------

def test_layer_probs_known_answer():
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # normal = e0, abnormal = e1
    f = torch.tensor([[[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    p = cm.layer_anomaly_probs(f, t, 100.0)
    # cosines: (1, 0), (0, 1), (1/sqrt 2, 1/sqrt 2) -> abnormal probability 1/(1+e^100), 1/(1+e^-100), 1/2
    want = torch.tensor([[1 / (1 + np.exp(100)), 1 / (1 + np.exp(-100)), 0.5]], dtype=torch.float32)
    torch.testing.assert_close(p, want, atol=1e-6, rtol=0)


def test_upsample_grid_is_bilinear_row_major():
    g = torch.zeros(1, 4 * 6)
    g[0, 0 * 6 + 5] = 1.0  # row 0, column 5: the top-right patch
    up = cm.upsample_grid(g, (4, 6), 48)
    iy, ix = np.unravel_index(up[0].argmax().item(), (48, 48))
    assert iy < 8 and ix >= 40  # top-right, not bottom-left (a transposed grid would put it there)
    p = torch.rand(3, 28 * 28)
    ref = F.interpolate(p.view(3, 1, 28, 28), size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(cm.upsample_grid(p, (28, 28), 224), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 4.0])
def test_gaussian_smooth_equals_scipy(sigma):
    x = np.random.default_rng(0).random((2, 40, 31)).astype(np.float32)
    got = cm.gaussian_smooth(torch.from_numpy(x), sigma).numpy()
    for i in range(2):
        np.testing.assert_allclose(got[i], ndimage.gaussian_filter(x[i], sigma, mode="mirror", truncate=4.0),
                                   atol=1e-5)
    assert cm.gaussian_smooth(torch.from_numpy(x), 0) is not None
    np.testing.assert_array_equal(cm.gaussian_smooth(torch.from_numpy(x), 0).numpy(), x)


def test_maps_of_non_square_images_shape_range_and_scores(tiny_models, tf_cfg):
    imgs = [_rng_image(300, 700, 0), _rng_image(224, 224, 1), _rng_image(41, 17, 2)]
    r = cm.anomaly_maps(tiny_models, imgs, ["disc", "weave", "grain"], tf_cfg)
    assert [m.shape for m in r.maps] == [(300, 700), (224, 224), (41, 17)]
    for m in r.maps:
        assert m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
    assert [lm.shape for lm in r.layer_maps] == [(4, 224, 224)] * 3
    assert r.image_scores.shape == r.global_scores.shape == (3,)
    assert np.all((r.global_scores >= 0) & (r.global_scores <= 1))
    # global_max_mix with weight 0.5: the mean of the global score and the map's max (hand formula).
    want = 0.5 * r.global_scores + 0.5 * np.array([w.max() for w in r.working_maps])
    np.testing.assert_allclose(r.image_scores, want, atol=1e-6)
    g = cm.anomaly_maps(tiny_models, imgs[:1], "disc", tf_cfg.replace(image_score_mode="global"))
    np.testing.assert_allclose(g.image_scores, g.global_scores)
    # the working map is the smoothed mean of the layer maps
    ref = cm.gaussian_smooth(torch.from_numpy(r.layer_maps[1]).mean(0)[None], tf_cfg.smoothing_sigma)[0]
    np.testing.assert_allclose(r.working_maps[1], ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(r.maps[1], r.working_maps[1], atol=1e-6)  # 224 x 224: no resize


def test_batching_does_not_change_maps(tiny_models, tf_cfg):
    imgs = [_rng_image(120, 90, s) for s in range(3)]
    together = cm.anomaly_maps(tiny_models, imgs, "disc", tf_cfg.replace(batch_size=8))
    alone = cm.anomaly_maps(tiny_models, imgs, "disc", tf_cfg.replace(batch_size=1))
    for a, b in zip(together.maps, alone.maps, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_calls_give_clear_errors(tiny_models, tf_cfg):
    img = _rng_image(32, 32)
    with pytest.raises(ValueError, match="no adapter was given.*train_adapter.*head='training_free'"):
        cm.anomaly_maps(tiny_models, [img], "disc", tf_cfg.replace(head="adapter"))
    with pytest.raises(ValueError, match="2 images but 3 object names"):
        cm.anomaly_maps(tiny_models, [img, img], ["a", "b", "c"], tf_cfg)
    with pytest.raises(ValueError, match="image 1 has dtype float64"):
        cm.anomaly_maps(tiny_models, [img, img / 255.0], "disc", tf_cfg)
    with pytest.raises(ValueError, match="no images"):
        cm.anomaly_maps(tiny_models, [], "disc", tf_cfg)


def test_exact_flip_equivariance_without_position_embeddings(tiny_models, tf_cfg):
    """Known answer for the token-to-pixel geometry: with the position embeddings zeroed, a ViT is
    permutation-equivariant over patch tokens. An image that is constant on each 8 x 8 patch, flipped,
    is the same patches permuted, so its map must be exactly the flipped map (and its transpose the
    transposed map). A transposed grid, a kept CLS token or an off-by-one upsampling breaks this."""
    clip = copy.deepcopy(tiny_models.clip)
    with torch.no_grad():
        clip.visual.positional_embedding.zero_()
    models = dataclasses.replace(tiny_models, clip=clip)
    patches = _rng_image(28, 28, 7)
    img = np.ascontiguousarray(patches.repeat(8, axis=0).repeat(8, axis=1))  # 224 x 224, patch-constant
    variants = [img, img[:, ::-1], img[::-1, :], img.transpose(1, 0, 2)]
    r = cm.anomaly_maps(models, [np.ascontiguousarray(v) for v in variants], "disc", tf_cfg)
    m = r.maps[0]
    assert m.std() > 1e-3  # not a constant map: the check has teeth
    np.testing.assert_allclose(r.maps[1], m[:, ::-1], atol=2e-5)
    np.testing.assert_allclose(r.maps[2], m[::-1, :], atol=2e-5)
    np.testing.assert_allclose(r.maps[3], m.T, atol=2e-5)
    cm.clear_text_cache(models)


def test_map_order_is_april_gans_upsample_then_softmax():
    """Issue 11.6: the default upsamples the two-channel logits (bilinear, align_corners=False), then takes the
    softmax, as APRIL-GAN's test.py; the old order stays reachable and differs visibly."""
    torch.manual_seed(0)
    feats, text = torch.randn(2, 7 * 7, 16), torch.nn.functional.normalize(torch.randn(2, 16), dim=-1)
    logits = 100.0 * torch.nn.functional.normalize(feats, dim=-1) @ text.T           # B x N x 2
    grid = logits.permute(0, 2, 1).reshape(2, 2, 7, 7)
    ref = torch.softmax(torch.nn.functional.interpolate(grid, size=56, mode="bilinear", align_corners=False),
                        dim=1)[:, 1]
    got = cm.layer_anomaly_map(feats, text, 100.0, (7, 7), 56)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)  # logits of +-100: float32 rounding only
    old = cm.layer_anomaly_map(feats, text, 100.0, (7, 7), 56, order="softmax_upsample")
    torch.testing.assert_close(old, cm.upsample_grid(cm.layer_anomaly_probs(feats, text, 100.0), (7, 7), 56))
    assert (got - old).abs().max() > 0.05
    with pytest.raises(ValueError, match="upsample_softmax"):
        cm.layer_anomaly_map(feats, text, 100.0, (7, 7), 56, order="sideways")


def test_anomaly_maps_follow_config_map_order(tiny_models):
    image = _rng_image(64, 64, 5)
    cfg = tiny_models.cfg.replace(head="training_free")
    a = cm.anomaly_maps(tiny_models, [image], "bottle", cfg).maps[0]
    b = cm.anomaly_maps(tiny_models, [image], "bottle", cfg.replace(map_order="softmax_upsample")).maps[0]
    assert np.abs(a - b).max() > 0  # the switch reaches the pipeline


def test_mean_std_come_from_the_pretrained_tag():
    """Issue 11.9: a non-OpenAI tag loaded from a local file (the model carrying OpenAI's default) is normalised
    with its own tag's mean/std."""
    from types import SimpleNamespace

    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    from clipsam_lite.config import get_config

    visual = SimpleNamespace(preprocess_cfg={"mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD})
    laion = SimpleNamespace(cfg=get_config("base", clip_model="ViT-L-14", clip_pretrained="laion2b_s32b_b82k"),
                            clip=SimpleNamespace(visual=visual))
    assert cm.clip_mean_std(laion) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    openai = SimpleNamespace(cfg=get_config("base"), clip=SimpleNamespace(visual=visual))
    np.testing.assert_allclose(cm.clip_mean_std(openai)[0], OPENAI_DATASET_MEAN)


def test_bf16_autocast_runs_the_clip_encoder_and_returns_fp32_maps(tiny_models):
    """Issue 11.2: precision=bf16 runs the visual tower under autocast; maps stay float32 and close to fp32's."""
    image = _rng_image(64, 64, 6)
    cfg = tiny_models.cfg.replace(head="training_free")
    a = cm.anomaly_maps(tiny_models, [image], "bottle", cfg.replace(precision="fp32")).maps[0]
    b = cm.anomaly_maps(tiny_models, [image], "bottle", cfg.replace(precision="bf16")).maps[0]
    assert b.dtype == np.float32 and np.abs(a - b).max() < 0.2 and np.abs(a - b).max() > 0
