"""The command line as a user runs it: a real subprocess, the tiny profile, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsam_lite.synthetic import render_item


def run(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLIPSAM_PROFILE": "tiny"}
    return subprocess.run([sys.executable, "-m", "clipsam_lite", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    image, _ = render_item("tablet", 0, defect="stain", signature=True)
    path = tmp_path_factory.mktemp("img") / "tablet.png"
    Image.fromarray(image[:, :200]).save(path)  # non-square on purpose: 256 x 200
    return path


def test_synth_and_info(tmp_path):
    r = run("synth", "--out", str(tmp_path / "s"), "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert "synthetic MVTec-layout dataset" in r.stdout and (tmp_path / "s" / "meta.json").is_file()
    r = run("info")
    assert r.returncode == 0, r.stderr
    for fact in ("torch", "open_clip_torch", "segment-anything", "profile           tiny", "sam_vit_h_4b8939.pth",
                 "random"):
        assert fact in r.stdout, fact


def test_segment_writes_every_documented_file(tmp_path, image_file):
    out = tmp_path / "seg"
    r = run("segment", str(image_file), "--object", "tablet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "RANDOM BACKBONES" in r.stdout
    res = json.loads((out / "result.json").read_text())
    assert res["size"] == [256, 200] and res["object"] == "tablet" and res["profile"] == "tiny"
    for key in ("config", "tau_value", "prompts", "stages", "sam_encoder_calls", "timings_ms"):
        assert key in res
    s_a = np.load(out / "anomaly_map.npy")
    assert s_a.shape == (256, 200) and s_a.dtype == np.float32
    assert np.load(out / "final_map.npy").shape == (256, 200)
    expected = {"anomaly_map.npy", "final_map.npy", "mask.png", "overlay.png", "result.json"}
    expected |= {f"stage{s['stage']}.png" for s in res["stages"]}
    assert expected <= {p.name for p in out.iterdir()}
    assert res["sam_encoder_calls"] == (1 if res["stages"] else 0)


@pytest.mark.parametrize("case", ["missing", "corrupt", "grayscale16"])
def test_segment_bad_or_odd_images(tmp_path, case):
    path = tmp_path / "x.png"
    if case == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    elif case == "grayscale16":
        Image.fromarray(np.arange(96 * 64, dtype=np.uint16).reshape(96, 64) * 10).save(path)
    r = run("segment", str(path), "--object", "tablet", "--out", str(tmp_path / "o"))
    if case == "grayscale16":  # converted to RGB uint8 and segmented
        assert r.returncode == 0, r.stderr
        assert json.loads((tmp_path / "o" / "result.json").read_text())["size"] == [96, 64]
        return
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and str(path) in r.stderr


def test_wrong_dataset_root_is_one_clear_line(tmp_path):
    (tmp_path / "not_a_dataset").mkdir()
    r = run("evaluate", "--dataset", "mvtec", "--root", str(tmp_path / "not_a_dataset"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error:" in r.stderr and "not_a_dataset" in r.stderr


def test_demo_runs_offline_and_says_the_backbones_are_random(tmp_path):
    r = run("demo", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    assert "RANDOM BACKBONES" in r.stdout and "mechanics only" in r.stdout
    table = (tmp_path / "demo" / "metrics.md").read_text()
    assert "| CLIP map S_a (stage 0) |" in table and "| final map (CPS) |" in table
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["random_backbones"] is True and metrics["n_images"] > 0
    assert list((tmp_path / "demo" / "figures").glob("*_stages.png"))


def test_segment_set_option_and_the_pixel_limit(image_file, tmp_path):
    """Issue 11.13: segment takes --set like the other commands; issue 12.1: a too-large image is refused, saying so."""
    out = tmp_path / "seg"
    r = run("segment", str(image_file), "--object", "tablet", "--out", str(out), "--set", "tau_mode=percentile",
            "--set", "tau=95", "--set", "max_prompt_sets=1", "--set", "stages=2")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "result.json").read_text())
    assert res["config"]["max_prompt_sets"] == 1 and res["prompt_sets"] == 1 and len(res["stages"]) == 2
    r = run("segment", str(image_file), "--object", "x", "--out", str(out), "--set", "tau=oops")
    assert r.returncode == 2 and "--set 'tau=oops'" in r.stderr  # before any model loads
    r = run("segment", str(image_file), "--object", "tablet", "--out", str(out), "--set", "max_image_pixels=1000")
    assert r.returncode == 2 and "refused, not downscaled" in r.stderr and "Traceback" not in r.stderr
