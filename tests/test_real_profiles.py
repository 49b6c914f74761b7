"""What a real-weights user (paper/base profiles, a GPU) meets first, checked offline (issue 11, points 2, 10, 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clipsam_lite import demo, models
from clipsam_lite.config import TRAINING_FREE_SETTINGS, get_config
from clipsam_lite.sam_features import embed_images


def test_sam_encoder_has_its_own_small_batch_size():
    assert get_config("paper").sam_batch_size == 1 and get_config("paper").batch_size == 8
    assert get_config("base").sam_batch_size == 2
    with pytest.raises(ValueError, match="sam_batch_size"):
        get_config("base", sam_batch_size=0)


def test_precision_auto_is_fp32_on_cpu_and_fp16_needs_a_gpu():
    assert models.resolve_precision("auto", "cpu") == "fp32"
    assert models.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        models.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        get_config("base", precision="fp8")


def test_bf16_sam_encoder_gives_fp32_features_the_decoder_accepts(tiny_models):
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    a = embed_images(tiny_models.sam, [image], precision="fp32")[0]
    b = embed_images(tiny_models.sam, [image], precision="bf16")[0]
    assert b.features.dtype == torch.float32
    assert 0 < (a.features - b.features).abs().max() < 0.25 * a.features.abs().max()


def test_real_profile_without_adapter_says_so_once_and_tunes_the_training_free_head(monkeypatch):
    """Issue 11.10: no adapter on a real profile -> one loud message, value-value attention and an Otsu tau."""
    monkeypatch.setattr(demo, "_WARNED_TRAINING_FREE", set())
    said: list[str] = []
    fake = SimpleNamespace(profile="base")
    adapter, cfg = demo.choose_adapter(fake, get_config("base"), None, log=said.append)
    assert adapter is None and cfg.head == "training_free"
    assert (cfg.vv_attention, cfg.vv_last_layers, cfg.tau_mode) == (True, 6, "otsu")
    assert len(said) == 1 and "NO ADAPTER" in said[0] and "vv_attention=True" in said[0]
    demo.choose_adapter(fake, get_config("base"), None, log=said.append)
    assert len(said) == 1  # once per process
    _, plain = demo.choose_adapter(fake, get_config("base", training_free_tuning=False), None, log=said.append)
    assert (plain.vv_attention, plain.tau_mode) == (False, "absolute")
    _, tiny = demo.choose_adapter(SimpleNamespace(profile="tiny"), get_config("tiny"), None, log=said.append)
    assert (tiny.vv_attention, tiny.tau_mode) == (False, "absolute")  # tiny is random: nothing to tune
    assert set(TRAINING_FREE_SETTINGS) == {"paper", "base"}


def test_gpu_throughput_benchmark_runs_on_cpu_with_tiny_counts(tmp_path):
    """Issue 11.14: the GPU benchmark imports and runs on a CPU (tiny arch, tiny counts) and prints its table."""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_throughput.py"), "--arch", "tiny",
                        "--images", "2", "--batch-sizes", "1", "2", "--precisions", "fp32", "bf16", "--size", "256"],
                       capture_output=True, text=True, timeout=600,
                       env={"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                            "CLIPSAM_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| tiny")]
    assert len(lines) == 4, r.stdout  # 2 precisions x 2 batch sizes
    for ln in lines:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert float(cells[3]) > 0  # images/s
        shares = [float(c.rstrip("%")) for c in cells[4:9]]
        assert abs(sum(shares) - 100) < 2  # clip, sam encoder, ppg, cps, fusion


def test_train_adapter_takes_a_clip_checkpoint_and_needs_no_sam(tmp_path, tiny_models, monkeypatch):
    """Issue 11.13: `train-adapter --clip-checkpoint FILE` trains on that CLIP (and never loads SAM)."""
    from clipsam_lite.__main__ import main
    from clipsam_lite.adapter import backbone_fingerprint
    from clipsam_lite.synthetic import make_synthetic

    root = make_synthetic(tmp_path / "syn", categories=["tablet"], image_size=64, n_train=0, n_test_good=1,
                          n_test_per_defect=1, defect_types=["stain"], signature=True)
    other = models.load_models("tiny", device="cpu", seed=123)
    ckpt = tmp_path / "clip.pt"
    torch.save(other.clip.state_dict(), ckpt)
    monkeypatch.setattr(models, "load_sam", lambda *a, **k: pytest.fail("train-adapter loaded SAM"))
    out = tmp_path / "adapter.pt"
    assert main(["train-adapter", "--dataset", "mvtec", "--root", str(root), "--profile", "tiny", "--epochs", "1",
                 "--clip-checkpoint", str(ckpt), "--out", str(out)]) == 0
    meta = torch.load(out, map_location="cpu", weights_only=True)["meta"]
    assert meta["fingerprint"] == backbone_fingerprint(other) != backbone_fingerprint(tiny_models)


def test_precision_flag_reaches_every_command_and_fp16_on_cpu_is_refused_before_work(tmp_path, capsys):
    from clipsam_lite.__main__ import build_parser, main
    from clipsam_lite.synthetic import render_item

    for cmd in (["evaluate", "--dataset", "mvtec", "--root", "r", "--out", "o"],
                ["ablate", "--dataset", "mvtec", "--root", "r", "--out", "o"], ["figures"],
                ["segment", "x.png", "--object", "x", "--out", "o"]):
        assert build_parser().parse_args([*cmd, "--precision", "bf16"]).precision == "bf16"
    image, _ = render_item("tablet", 0)
    path = tmp_path / "t.png"
    from PIL import Image

    Image.fromarray(image).save(path)
    assert main(["segment", str(path), "--object", "tablet", "--profile", "tiny", "--precision", "fp16",
                 "--out", str(tmp_path / "o")]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
