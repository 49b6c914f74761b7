"""Loading paths of models.py, exercised offline with the tiny architectures' real weight files."""

from __future__ import annotations

import hashlib
import time
import urllib.error

import open_clip
import pytest
import torch
from segment_anything.modeling import Sam

from clipsam_lite import models
from clipsam_lite.config import get_config


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


_real_status = models.clip_weights_status


def _status_without_cache(name, tag):
    return {**_real_status(name, tag), "path": None}


@pytest.fixture
def no_network(monkeypatch):
    """Every way models.py reaches the network fails at once, as on an offline machine."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known (network disabled by the test)")

    monkeypatch.setattr(models.urllib.request, "urlopen", refuse)
    monkeypatch.setattr(models, "_network_reachable", lambda host, timeout=3.0: False)


def test_tiny_profile_builds_real_classes_offline_and_deterministically(no_network, tiny_models):
    assert isinstance(tiny_models.clip, open_clip.CLIP)
    assert isinstance(tiny_models.sam, Sam)
    assert tiny_models.random_weights and "RANDOM BACKBONES" in tiny_models.banner()
    assert tiny_models.sam.image_encoder.img_size == 256
    assert len(tiny_models.clip.visual.transformer.resblocks) == max(get_config("tiny").clip_layers)
    again = models.load_models("tiny", device="cpu")
    assert _same_weights(again.clip, tiny_models.clip) and _same_weights(again.sam, tiny_models.sam)
    tokens = tiny_models.tokenizer(["a photo of a damaged bottle."])
    assert tokens.shape == (1, 77)


def test_tiny_sam_runs_the_real_encoder_and_decoder(tiny_models):
    sam = tiny_models.sam
    with torch.inference_mode():
        emb = sam.image_encoder(torch.zeros(1, 3, 256, 256))
        assert emb.shape == (1, 64, 16, 16)
        sparse, dense = sam.prompt_encoder(points=(torch.tensor([[[10.0, 20.0]]]), torch.tensor([[1]])),
                                           boxes=None, masks=None)
        low_res, iou = sam.mask_decoder(emb, sam.prompt_encoder.get_dense_pe(), sparse, dense, True)
    assert low_res.shape == (1, 3, 64, 64) and iou.shape == (1, 3)


def test_sam_checkpoint_round_trip_through_the_real_loading_path(tmp_path, tiny_models):
    path = tmp_path / "sam_tiny.pth"
    torch.save(tiny_models.sam.state_dict(), path)
    loaded = models.load_sam("tiny", path)
    assert _same_weights(loaded, tiny_models.sam)
    torch.save({"state_dict": tiny_models.sam.state_dict()}, tmp_path / "wrapped.pth")
    assert _same_weights(models.load_sam("tiny", tmp_path / "wrapped.pth"), tiny_models.sam)


def test_clip_checkpoint_round_trip_through_open_clip(tmp_path, tiny_models):
    path = tmp_path / "clip_tiny.pt"
    torch.save(tiny_models.clip.state_dict(), path)
    other = models.load_models("tiny", device="cpu", seed=123)
    assert not _same_weights(other.clip, tiny_models.clip)
    loaded, tokenizer, preprocess = models.load_clip(get_config("tiny"), path)
    assert _same_weights(loaded, tiny_models.clip)
    m = models.load_models("tiny", clip_checkpoint=path, sam_checkpoint=None, device="cpu", seed=123)
    assert _same_weights(m.clip, tiny_models.clip)


def _official(monkeypatch, tmp_path, sam, sha=None):
    """Point the 'tiny' arch at a file:// 'official URL' so the download path runs offline."""
    src = tmp_path / "served" / "sam_tiny_official.pth"
    src.parent.mkdir()
    torch.save(sam.state_dict(), src)
    digest = sha or hashlib.sha256(src.read_bytes()).hexdigest()
    entry = {"file": "sam_tiny_official.pth", "url": src.as_uri(), "sha256": digest}
    monkeypatch.setitem(models.SAM_CHECKPOINTS, "tiny", entry)
    return src


def test_download_writes_atomically_after_checksum(monkeypatch, tmp_path, isolated_cache, tiny_models):
    _official(monkeypatch, tmp_path, tiny_models.sam)
    target = models.ensure_sam_checkpoint("tiny")
    assert target == isolated_cache / "sam" / "sam_tiny_official.pth" and target.is_file()
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".part")] == []
    loaded = models.load_sam("tiny", target)
    assert _same_weights(loaded, tiny_models.sam)
    assert models.ensure_sam_checkpoint("tiny") == target  # cached: verified by its marker, no download


def test_checksum_mismatch_writes_nothing(monkeypatch, tmp_path, isolated_cache, tiny_models):
    _official(monkeypatch, tmp_path, tiny_models.sam, sha="0" * 64)
    with pytest.raises(models.ChecksumMismatchError, match="not the official"):
        models.ensure_sam_checkpoint("tiny")
    assert not (isolated_cache / "sam" / "sam_tiny_official.pth").exists()
    assert list((isolated_cache / "sam").iterdir()) == []


def test_corrupted_cached_checkpoint_is_detected(monkeypatch, tmp_path, isolated_cache, tiny_models):
    src = _official(monkeypatch, tmp_path, tiny_models.sam)
    target = isolated_cache / "sam" / "sam_tiny_official.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(models.ChecksumMismatchError, match="Delete it"):
        models.ensure_sam_checkpoint("tiny")


def test_truncated_or_foreign_checkpoints_get_clear_errors(tmp_path, tiny_models):
    good = tmp_path / "sam.pth"
    torch.save(tiny_models.sam.state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(models.CorruptCheckpointError, match="cut.pth.*truncated"):
        models.load_sam("tiny", cut)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(models.CorruptCheckpointError, match="notes.pth"):
        models.load_sam("tiny", text)
    with pytest.raises(models.WeightsUnavailableError, match="does not exist"):
        models.load_sam("tiny", tmp_path / "missing.pth")
    clip_cut = tmp_path / "clip_cut.pt"
    torch.save(tiny_models.clip.state_dict(), clip_cut)
    clip_cut.write_bytes(clip_cut.read_bytes()[:5000])
    with pytest.raises(models.CorruptCheckpointError, match="clip_cut.pt"):
        models.load_clip(get_config("tiny"), clip_cut)


def test_checkpoint_of_another_architecture_is_named(monkeypatch, tmp_path, tiny_models):
    deeper = models.SamArch(96, 3, 2, (2,), img_size=256, window_size=8, prompt_embed_dim=64,
                            decoder_mlp_dim=256, decoder_num_heads=4, iou_head_hidden_dim=64)
    monkeypatch.setitem(models.SAM_ARCHS, "tiny3", deeper)
    path = tmp_path / "sam_tiny.pth"
    torch.save(tiny_models.sam.state_dict(), path)
    with pytest.raises(models.CheckpointMismatchError, match=r"2 blocks, which is 'tiny'"):
        models.load_sam("tiny3", path)


def test_no_network_and_no_cache_fails_fast_with_every_fact(no_network, isolated_cache, monkeypatch):
    monkeypatch.setattr(models, "clip_weights_status", _status_without_cache)
    start = time.perf_counter()
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load_models("base", device="cpu")
    assert time.perf_counter() - start < 10
    msg = str(err.value)
    for fact in ("open_clip_model.safetensors", "https://huggingface.co/timm/vit_base_patch16_clip_224.openai",
                 "cache:", "--clip-checkpoint", "tiny"):
        assert fact in msg, fact
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load_sam("vit_b")
    msg = str(err.value)
    for fact in ("sam_vit_b_01ec64.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                 str(isolated_cache / "sam" / "sam_vit_b_01ec64.pth"), "--sam-checkpoint", "tiny"):
        assert fact in msg, fact


def test_weights_report_lists_each_file_of_a_profile(isolated_cache):
    rows = models.weights_report(get_config("paper"))
    assert [r["what"] for r in rows] == ["CLIP ViT-L-14-336-quickgelu/openai", "SAM vit_h"]
    assert rows[1]["where"] == str(isolated_cache / "sam" / "sam_vit_h_4b8939.pth") and rows[1]["cached"] is False
    assert all(r["cached"] is None for r in models.weights_report(get_config("tiny")))


def _torchscript_clip(clip: torch.nn.Module, path) -> None:
    """Save ``clip`` as OpenAI's clip package did: a traced TorchScript archive whose state dict also holds
    ``input_resolution``, ``context_length`` and ``vocab_size``."""
    class Legacy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for n, c in clip.named_children():
                self.add_module(n, c)
            persistent = clip.state_dict()
            for n, p in clip.named_parameters(recurse=False):
                self.register_parameter(n, p)
            for n, b in clip.named_buffers(recurse=False):
                if n in persistent:  # TorchScript keeps every buffer; open_clip rebuilds attn_mask itself
                    self.register_buffer(n, b)
            for n, v in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
                self.register_buffer(n, torch.tensor(v))

        def forward(self, x):
            return x * self.logit_scale

    with pytest.warns(Warning):  # torch.jit.trace is deprecated: the format is legacy, which is the point
        torch.jit.trace(Legacy(), torch.ones(1)).save(str(path))


def test_legacy_torchscript_clip_cache_file_loads(monkeypatch, tmp_path, isolated_cache, tiny_models):
    """Issue 11.1: a TorchScript ``~/.cache/clip/<name>.pt`` counted as cached must load, not be called corrupt."""
    legacy = tmp_path / "ViT-B-16.pt"
    _torchscript_clip(tiny_models.clip, legacy)
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.load(legacy, weights_only=True)  # what open_clip's loader did with it
    assert models._is_torchscript_archive(legacy)
    loaded, _, _ = models.load_clip(get_config("tiny"), legacy)  # as --clip-checkpoint
    assert _same_weights(loaded, tiny_models.clip)
    # as the cached file of a pretrained tag (the demo's path when it believes `base` is cached)
    monkeypatch.setattr(models, "clip_weights_status", lambda name, tag: {**_real_status("ViT-B-16", "openai"),
                                                                           "path": str(legacy)})
    loaded, _, _ = models.load_clip(get_config("tiny", clip_pretrained="openai"))
    assert _same_weights(loaded, tiny_models.clip)
    assert len(list((isolated_cache / "clip").glob("*.state_dict.pt"))) == 1  # converted once, reused
    bad = tmp_path / "bad.pt"
    bad.write_bytes(legacy.read_bytes()[:3000])
    with pytest.raises(models.CorruptCheckpointError, match="bad.pt"):
        models.load_clip(get_config("tiny"), bad)


def test_reachability_uses_the_hub_endpoint(monkeypatch, isolated_cache):
    """Issue 11.3: with HF_ENDPOINT set, the check goes to that mirror, not to huggingface.co."""
    from huggingface_hub import constants

    asked = []
    monkeypatch.setattr(constants, "ENDPOINT", "https://hf-mirror.example:8443/")
    monkeypatch.setattr(models, "_network_reachable", lambda host, timeout=3.0: asked.append(host) or False)
    monkeypatch.setattr(models, "clip_weights_status", _status_without_cache)
    with pytest.raises(models.WeightsUnavailableError, match="hf-mirror.example:8443") as err:
        models.load_clip(get_config("base"))
    assert asked == ["https://hf-mirror.example:8443"]
    assert "https://hf-mirror.example:8443/timm/" in str(err.value)
    assert models._network_reachable("https://127.0.0.1:9", timeout=0.5) is False  # URL parsed, port used
