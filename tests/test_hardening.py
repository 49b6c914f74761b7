"""Hostile-but-fair input, one test (or a few) per class of fault of issue 12.

Each test plants the fault the issue names (a FIFO, ``/dev/zero``, a decompression bomb, ``tau=nan``,
a ``../`` row, a half-written set of results, a full disk...) and checks the answer: a clear error
naming the problem and the fix, before any expensive work, and nothing of the user's lost.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsam_lite import models as M
from clipsam_lite import safe_io
from clipsam_lite.__main__ import main
from clipsam_lite.config import VALIDATED_FIELDS, Config, get_config
from clipsam_lite.datasets import DatasetLayoutError, load_dataset
from clipsam_lite.images import ImageReadError, read_image, read_mask
from clipsam_lite.paths import CacheDirError, writable_cache_dir
from clipsam_lite.synthetic import make_synthetic

SMALL = dict(image_size=64, n_train=1, n_test_good=1, n_test_per_defect=1)


def _cli(*args: str, timeout: int = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CLIPSAM_PROFILE": "tiny", **(env or {})}
    return subprocess.run([sys.executable, "-m", "clipsam_lite", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture
def no_models(monkeypatch):
    """Loading a model fails the test: the error under test must come before any model loads."""
    def refuse(*_a, **_k):
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr(M, "load_models", refuse)
    monkeypatch.setattr(M, "load_clip", refuse)
    monkeypatch.setattr(M, "load_sam", refuse)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # progress bars may precede the error
    assert "Traceback" not in err and last.startswith("error:"), err
    return last


def _bomb_png(width: int, height: int) -> bytes:
    """A valid-looking grayscale PNG header claiming ``width x height`` pixels, in a few hundred bytes."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    idat = z.compress(b"\x00" * (width + 1)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------------
# 2-3. special files, size limits, decompression bombs
# ------------------------------------------------------------------------------------------------

def test_fifo_and_devices_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    start = time.monotonic()
    for path, kind in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        with pytest.raises(ImageReadError, match=f"{kind}.*not a regular file"):
            read_image(path)
        with pytest.raises(ImageReadError, match="not a regular file"):
            read_mask(path)
    assert time.monotonic() - start < 5  # no read was attempted (a FIFO would block, /dev/zero fill memory)


def test_fifo_as_the_image_of_segment_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    r = _cli("segment", str(fifo), "--object", "x", "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "FIFO" in r.stderr and str(fifo) in r.stderr and not (tmp_path / "o").exists()


def test_image_file_size_limit_names_the_variable(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    monkeypatch.setenv("CLIPSAM_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(ImageReadError, match=r"above the limit of 1,000 bytes.*CLIPSAM_MAX_IMAGE_BYTES"):
        read_image(path)
    monkeypatch.setenv("CLIPSAM_MAX_IMAGE_BYTES", str(path.stat().st_size))
    assert read_image(path).shape == (64, 64, 3)  # exactly at the limit: read


def test_decompression_bomb_names_the_limit_and_how_to_raise_it(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(12000, 12000))
    assert bomb.stat().st_size < 1000
    with pytest.raises(ImageReadError) as info:
        read_image(bomb)
    msg = str(info.value)
    assert "12000 x 12000 = 144,000,000 pixels" in msg and "limit of 89,478,485" in msg
    assert "CLIPSAM_MAX_IMAGE_PIXELS" in msg and "Downscale" in msg and "re-download" not in msg
    huge = tmp_path / "huge.png"  # above twice Pillow's limit: Pillow's own error, reworded
    huge.write_bytes(_bomb_png(20000, 20000))
    with pytest.raises(ImageReadError, match=r"400,000,000 pixels.*CLIPSAM_MAX_IMAGE_PIXELS"):
        read_image(huge)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(small)
    monkeypatch.setenv("CLIPSAM_MAX_IMAGE_PIXELS", "1199")
    with pytest.raises(ImageReadError, match=r"40 x 30 = 1,200 pixels, above the limit of 1,199"):
        read_image(small)
    monkeypatch.setenv("CLIPSAM_MAX_IMAGE_PIXELS", "1200")
    assert read_image(small).shape == (30, 40, 3)
    monkeypatch.setenv("CLIPSAM_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="CLIPSAM_MAX_IMAGE_PIXELS='lots' is not a positive number"):
        read_image(small)


# ------------------------------------------------------------------------------------------------
# 4. Config: every field by a table, at construction
# ------------------------------------------------------------------------------------------------

def test_every_config_field_has_a_validation_rule():
    assert {f.name for f in fields(Config)} == set(VALIDATED_FIELDS)


@pytest.mark.parametrize("change,match", [
    (dict(tau=2.0), r"tau=2.0 is out of range.*\[0, 1\].*absolute"),
    (dict(tau=float("nan")), r"tau=nan is not a finite number"),
    (dict(tau=-0.1), r"tau=-0.1 is out of range"),
    (dict(tau_mode="percentile", tau=101.0), r"tau=101.0 is out of range.*\[0, 100\]"),
    (dict(image_score_mix=5.0), r"image_score_mix=5.0 is out of range.*\[0, 1\]"),
    (dict(d_min=float("inf")), r"d_min=inf is not a finite number"),
    (dict(d_min=0.0), r"d_min=0.0 is out of range: it must lie in \(0,"),
    (dict(clip_image_size=13), r"clip_image_size=13 is out of range"),
    (dict(clip_image_size=100), r"clip_image_size=100 is not a multiple of clipsam-tiny-vit's patch size 8; "
                                r"use e.g. 96 or 104"),
    (dict(clip_layers=(1, 5)), r"asks for block 5, but clipsam-tiny-vit has 4 blocks"),
    (dict(clip_layers=(2, 2)), r"repeated block"),
    (dict(logit_scale=float("-inf")), r"logit_scale=-inf is not a finite number"),
    (dict(resolution=10 ** 6), r"resolution=1000000 is out of range: it must lie in \[16, 4096\]"),
    (dict(batch_size=0), r"batch_size=0 is out of range"),
    (dict(seed=-1), r"seed=-1 is out of range"),
    (dict(stages=2.5), r"stages must be 1, 2 or 3 \(the CPS stages to run\), got 2.5"),
    (dict(per_component="yes"), r"per_component must be True or False"),
    (dict(working_size=8), r"working_size=8 is out of range"),
    (dict(clip_model=""), r"clip_model must be a non-empty string"),
])
def test_config_refuses_out_of_range_values_naming_field_and_range(change, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **change)


def test_config_accepts_the_edges_and_every_preset():
    for p in ("paper", "base", "tiny"):
        get_config(p)  # patch sizes 14 / 16 / 8 divide 518 / 448 / 224
    cfg = get_config("tiny", tau=1.0, image_score_mix=0.0, d_min=1e-3, clip_image_size=96, clip_layers=[4, 1])
    assert cfg.clip_layers == (4, 1) and cfg.replace(tau=0.0).tau == 0.0
    assert get_config("tiny", tau_mode="percentile", tau=100.0).tau == 100.0


@pytest.mark.parametrize("pair,match", [
    ("tau=nan", "tau=nan is not a finite number"), ("tau=2", r"tau=2.0 is out of range"),
    ("image_score_mix=5", "image_score_mix=5.0 is out of range"), ("d_min=inf", "d_min=inf is not a finite"),
    ("clip_image_size=13", "clip_image_size=13 is out of range"),
    ("profile=paper", "profile is chosen with --profile"),
])
def test_cli_set_is_validated_before_any_model_loads(tmp_path, capsys, no_models, pair, match):
    root = make_synthetic(tmp_path / "ds", categories=["disc"], **SMALL)
    code = main(["evaluate", "--dataset", "mvtec", "--root", str(root), "--out", str(tmp_path / "o"),
                 "--set", pair])
    assert code == 2
    assert match.split(" ")[0] in _one_error_line(capsys)
    with pytest.raises(ValueError, match=match):
        main(["evaluate", "--dataset", "mvtec", "--root", str(root), "--out", str(tmp_path / "o"),
              "--set", pair, "--debug"])


# ------------------------------------------------------------------------------------------------
# 6. output paths, before the computation
# ------------------------------------------------------------------------------------------------

def test_out_of_every_command_is_checked_before_work(tmp_path, capsys, no_models):
    a_file, a_dir = tmp_path / "notes.txt", tmp_path / "folder"
    a_file.write_text("mine")
    a_dir.mkdir()
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    for argv in (["segment", str(image), "--object", "x", "--out", str(a_file)],
                 ["synth", "--out", str(a_file)],
                 ["demo", "--out", str(a_file)],
                 ["evaluate", "--dataset", "mvtec", "--root", str(a_dir), "--out", str(a_file)],
                 ["ablate", "--dataset", "mvtec", "--root", str(a_dir), "--out", str(a_file)],
                 ["figures", "--out", str(a_file)],
                 ["segment", str(image), "--object", "x", "--out", str(a_file / "sub")]):
        assert main(argv) == 2, argv
        err = _one_error_line(capsys)
        assert str(a_file) in err and ("a folder is expected" in err or "is a file" in err), err
    # a folder where a file is expected: train-adapter's --out, checked before the dataset or the models
    assert main(["train-adapter", "--dataset", "mvtec", "--root", str(a_dir), "--out", str(a_dir)]) == 2
    assert "is a folder, but a file is expected" in _one_error_line(capsys)
    assert main(["segment", str(a_dir), "--object", "x", "--out", str(tmp_path / "o")]) == 2
    assert "is a folder, but a file (image) is expected" in _one_error_line(capsys)
    assert main(["segment", str(image), "--object", " ", "--out", str(tmp_path / "o")]) == 2
    assert "--object is empty" in _one_error_line(capsys)
    assert a_file.read_text() == "mine" and not (tmp_path / "o").exists()


def test_unwritable_out_is_refused_before_work(tmp_path, capsys, no_models, monkeypatch):
    ro = tmp_path / "readonly"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == ro else real_access(p, m))
    assert main(["train-adapter", "--dataset", "mvtec", "--root", str(tmp_path), "--out", str(ro / "a.pt")]) == 2
    assert "not writable" in _one_error_line(capsys)
    assert main(["synth", "--out", str(ro / "new" / "ds")]) == 2
    assert f"the folder {ro} is not writable" in _one_error_line(capsys)


# ------------------------------------------------------------------------------------------------
# 7. --debug before and after the command; an unusable cache folder
# ------------------------------------------------------------------------------------------------

def test_debug_before_or_after_the_command_shows_the_traceback(tmp_path):
    args = ["segment", str(tmp_path / "missing.png"), "--object", "x", "--out", str(tmp_path / "o")]
    plain = _cli(*args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "missing.png" in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    for argv in (["--debug", *args], [*args, "--debug"]):
        r = _cli(*argv)
        assert "Traceback" in r.stderr and "FileNotFoundError" in r.stderr, argv


def test_unusable_cache_folder_says_it_is_the_cache(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "cachefile"
    a_file.write_text("not a folder")
    monkeypatch.setenv("CLIPSAM_CACHE", str(a_file))
    with pytest.raises(CacheDirError, match=r"cache folder .*cachefile \(from \$CLIPSAM_CACHE\) is a file.*"
                                            r"set CLIPSAM_CACHE to a folder you can write to"):
        writable_cache_dir()
    ro = tmp_path / "ro-cache"
    ro.mkdir()
    monkeypatch.setenv("CLIPSAM_CACHE", str(ro))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == ro else real_access(p, m))
    with pytest.raises(CacheDirError, match="is not writable; set CLIPSAM_CACHE"):
        writable_cache_dir()
    monkeypatch.setenv("CLIPSAM_CACHE", str(a_file))  # what writes into the cache asks first
    from clipsam_lite.synthetic import sample_root

    with pytest.raises(CacheDirError, match="cache folder"):
        sample_root()


def test_os_error_inside_the_cache_names_the_cache(tmp_path, monkeypatch, capsys):
    from clipsam_lite import __main__ as cli

    monkeypatch.setenv("CLIPSAM_CACHE", str(tmp_path / "c"))

    def denied(_args):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "c" / "adapters" / "x.pt"))

    monkeypatch.setitem(cli.COMMANDS, "info", denied)
    assert main(["info"]) == 2
    err = _one_error_line(capsys)
    assert "Permission denied" in err and "cache folder" in err and "CLIPSAM_CACHE" in err


def test_an_unexpected_exception_is_one_line_pointing_to_debug(monkeypatch, capsys):
    from clipsam_lite import __main__ as cli

    def bug(_args):
        raise KeyError("boom")

    monkeypatch.setitem(cli.COMMANDS, "info", bug)
    assert main(["info"]) == 1
    err = _one_error_line(capsys)
    assert "unexpected KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        main(["info", "--debug"])


# ------------------------------------------------------------------------------------------------
# 8. paths of a dataset must stay inside its root
# ------------------------------------------------------------------------------------------------

def _visa(root: Path, extra_rows: list[tuple[str, ...]] = ()) -> Path:
    img_dir = root / "pcb1" / "Data" / "Images" / "Normal"
    img_dir.mkdir(parents=True)
    rows = [("object", "split", "label", "image", "mask")]
    for i in range(3):  # 0002.png is not listed: the rows under test may name it
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(img_dir / f"{i:04d}.png")
        if i < 2:
            rows.append(("pcb1", "test", "normal", f"pcb1/Data/Images/Normal/{i:04d}.png", ""))
    (root / "split_csv").mkdir()
    with open(root / "split_csv" / "1cls.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows + list(extra_rows))
    return root


def test_visa_rows_must_resolve_inside_the_root(tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(secret)
    assert len(load_dataset("visa", _visa(tmp_path / "ok"))) == 2  # the control: a clean csv loads
    cases = [
        (("pcb1", "test", "normal", "../secret.png", ""), r"line 4: the image path '../secret.png' leads outside"),
        (("pcb1", "test", "normal", str(secret), ""), r"line 4: the image path .*secret.png' is absolute"),
        (("pcb1", "test", "normal", "pcb1/Data/Images/Normal/0001.png", ""),
         r"line 4: image 'pcb1/Data/Images/Normal/0001.png' is listed again \(first on line 3\)"),
        (("pcb1", "test", "normal", "pcb1/../pcb1/Data/Images/Normal/0000.png", ""), r"line 4: .* leads outside"),
        (("pcb1", "test", "anomaly", "pcb1/Data/Images/Normal/0002.png", "../../etc/passwd"),
         r"line 4: the mask path '../../etc/passwd' leads outside"),
        (("pcb1", "test", "anomaly", "pcb1/Data/Images/Normal/0002.png", "/etc/passwd"),
         r"line 4: the mask path '/etc/passwd' is absolute"),
    ]
    for i, (row, match) in enumerate(cases):
        root = _visa(tmp_path / f"v{i}", [row])
        with pytest.raises(DatasetLayoutError, match=match):
            load_dataset("visa", root)
    root = _visa(tmp_path / "link")
    (root / "pcb1" / "escape.png").symlink_to(secret)
    with open(root / "split_csv" / "1cls.csv", "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(("pcb1", "test", "normal", "pcb1/escape.png", ""))
    with pytest.raises(DatasetLayoutError, match=r"line 4: the image path 'pcb1/escape.png' leads outside"):
        load_dataset("visa", root)


def test_visa_csv_that_is_not_utf8_names_the_file(tmp_path):
    root = _visa(tmp_path / "v")
    csv_path = root / "split_csv" / "1cls.csv"
    csv_path.write_bytes(csv_path.read_bytes() + "pcb1,test,normal,caf\xe9.png,\n".encode("latin-1"))
    with pytest.raises(DatasetLayoutError, match=r"1cls.csv is not UTF-8 text .*re-save it as UTF-8"):
        load_dataset("visa", root)
    csv_path.unlink()
    os.mkfifo(csv_path)
    with pytest.raises(OSError, match="FIFO"):
        load_dataset("visa", root)


def test_folder_dataset_does_not_follow_symlinks_out_of_the_root(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(outside / "private.png")
    root = tmp_path / "folder"
    root.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a.png")
    assert len(load_dataset("folder", root)) == 1
    (root / "b.png").symlink_to(outside / "private.png")
    with pytest.raises(DatasetLayoutError, match=r"symbolic links to files outside it.*b.png -> .*private.png"):
        load_dataset("folder", root)
    (root / "b.png").unlink()
    (root / "sub").symlink_to(outside, target_is_directory=True)  # a linked folder is not walked into
    assert [Path(r.path).name for r in load_dataset("folder", root).records] == ["a.png"]
    (root / "a_mask.png").symlink_to(outside / "private.png")
    with pytest.raises(DatasetLayoutError, match=r"symbolic links to files outside it.*a_mask.png -> "):
        load_dataset("folder", root)
    (root / "a_mask.png").unlink()
    (root / "masks").mkdir()
    (root / "masks" / "a.png").symlink_to(outside / "private.png")
    with pytest.raises(DatasetLayoutError, match=r"mask .*masks/a.png.* outside the dataset root"):
        load_dataset("folder", root)


# ------------------------------------------------------------------------------------------------
# 10. a set of result files is published together
# ------------------------------------------------------------------------------------------------

def _set(folder: Path, run: str) -> dict[Path, str]:
    return {folder / "results.json": f'{{"run": "{run}"}}', folder / "results.csv": f"run\n{run}\n",
            folder / "results.md": f"# {run}\n"}


def test_a_failed_rename_leaves_the_old_set_whole(tmp_path):
    safe_io.publish_together(_set(tmp_path, "old"))
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "simulated failure of the second rename")
        os.replace(src, dst)

    with pytest.raises(OSError, match="second rename"):
        safe_io.publish_together(_set(tmp_path, "new"), _replace=second_fails)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {p.name: t for p, t in _set(tmp_path, "old").items()}


def test_a_kill_between_the_renames_is_completed_by_the_next_run(tmp_path):
    old = _set(tmp_path, "old")
    safe_io.publish_together(old)
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from clipsam_lite import safe_io\n"
        "folder = Path(sys.argv[1]); n = []\n"
        "def kill_on_second(src, dst):\n"
        "    n.append(dst)\n"
        "    if len(n) == 2: os._exit(9)\n"
        "    os.replace(src, dst)\n"
        "files = {folder / 'results.json': '{\"run\": \"new\"}', folder / 'results.csv': 'run\\nnew\\n',\n"
        "         folder / 'results.md': '# new\\n'}\n"
        "safe_io.publish_together(files, _replace=kill_on_second)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 9, r.stderr
    assert (tmp_path / "results.json").read_text() == '{"run": "new"}'  # the kill left two runs mixed ...
    assert (tmp_path / "results.csv").read_text() == "run\nold\n"
    assert safe_io.recover_published(tmp_path) is True  # ... until the next run (or reader) completes the set
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {p.name: t for p, t in _set(tmp_path, "new").items()}


def test_atomic_write_on_a_full_disk_leaves_no_tmp_and_the_old_file(tmp_path):
    target = tmp_path / "adapter.pt"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        with safe_io.atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["adapter.pt"]


# ------------------------------------------------------------------------------------------------
# 11. cached SAM checkpoints and the user's own
# ------------------------------------------------------------------------------------------------

def test_cached_sam_checkpoint_is_rehashed_when_size_or_mtime_change(tmp_path, monkeypatch):
    data = b"pretend checkpoint" * 100
    monkeypatch.setitem(M.SAM_CHECKPOINTS, "vit_b", {**M.SAM_CHECKPOINTS["vit_b"],
                                                     "sha256": hashlib.sha256(data).hexdigest()})
    target = M.sam_checkpoint_path("vit_b", tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    hashed = []
    real = M._sha256
    monkeypatch.setattr(M, "_sha256", lambda p: hashed.append(p) or real(p))
    assert M.ensure_sam_checkpoint("vit_b", tmp_path, allow_download=False) == target
    assert M.ensure_sam_checkpoint("vit_b", tmp_path, allow_download=False) == target
    assert len(hashed) == 1  # hashed once, then trusted through the marker
    target.write_bytes(b"X" + data[1:])  # same size, new content, new mtime
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    with pytest.raises(M.ChecksumMismatchError, match="not the official"):
        M.ensure_sam_checkpoint("vit_b", tmp_path, allow_download=False)
    assert len(hashed) == 2
    target.write_bytes(data)
    M._marker(target).write_text(M.SAM_CHECKPOINTS["vit_b"]["sha256"])  # an old marker: the hash alone
    M.ensure_sam_checkpoint("vit_b", tmp_path, allow_download=False)
    assert len(hashed) == 3


def test_a_users_own_checkpoint_is_not_told_to_download_again(tmp_path, capsys):
    own = tmp_path / "my_sam.pth"
    own.write_bytes(b"not a checkpoint at all")
    with pytest.raises(M.CorruptCheckpointError) as info:
        M.load_sam("vit_b", own)
    assert "download" not in str(info.value) and "copied completely" in str(info.value)
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    assert main(["segment", str(fifo), "--object", "x", "--out", str(tmp_path / "o")]) == 2
    assert "FIFO" in _one_error_line(capsys)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert main(["segment", str(image), "--object", "x", "--sam-checkpoint", str(fifo), "--out",
                 str(tmp_path / "o")]) == 2
    err = _one_error_line(capsys)
    assert "FIFO" in err and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------
# 12. nothing of the user's is lost
# ------------------------------------------------------------------------------------------------

def test_synth_over_a_folder_with_user_files_refuses_and_lists_them(tmp_path, capsys):
    root = make_synthetic(tmp_path / "ds", categories=["disc"], **SMALL)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    make_synthetic(root, categories=["disc"], **SMALL)  # our own folder: replaced, same bytes
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    (root / "my_notes.txt").write_text("keep me")
    (root / "disc" / "test" / "good" / "extra.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"holds 2 file\(s\).*disc/test/good/extra.png.*my_notes.txt"):
        make_synthetic(root, categories=["disc"], **SMALL)
    assert main(["synth", "--out", str(root)]) == 2
    assert "my_notes.txt" in _one_error_line(capsys)
    assert (root / "my_notes.txt").read_text() == "keep me"
    assert (root / "disc" / "test" / "good" / "extra.png").read_bytes() == b"mine"


def test_segment_out_twice_with_fewer_stages_leaves_no_stale_stage_png(tmp_path, tiny_models):
    from clipsam_lite.pipeline import segment, write_outputs
    from clipsam_lite.synthetic import render_item

    image, _ = render_item("tablet", 0, defect="stain", signature=True)
    out = tmp_path / "seg"
    out.mkdir()
    for i in (1, 2, 3, 12):
        (out / f"stage{i}.png").write_bytes(b"an earlier run")
    (out / "stage_notes.png").write_bytes(b"not ours")
    cfg = tiny_models.cfg.replace(head="training_free", tau_mode="percentile", tau=95.0, stages=1,
                                  per_component=False)
    result = segment(image, "tablet", tiny_models, cfg)
    write_outputs(result, image, cfg, out, profile="tiny")
    n = len(result.stage_masks())
    assert n == 1, "the planted percentile threshold must prompt SAM"
    stages = sorted(p.name for p in out.glob("stage*.png"))
    assert stages == ["stage1.png", "stage_notes.png"]
    assert (out / "stage1.png").read_bytes() != b"an earlier run"


# ------------------------------------------------------------------------------------------------
# 5. adapter files: metadata checked before any layer is allocated
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def adapter_file(tiny_models, tmp_path_factory) -> Path:
    from clipsam_lite.adapter import Adapter, save_adapter

    return save_adapter(Adapter.for_models(tiny_models), tmp_path_factory.mktemp("ad") / "good.pt")


def _edited(src: Path, dst: Path, edit) -> Path:
    import torch

    obj = torch.load(src, map_location="cpu", weights_only=True)
    edit(obj)
    torch.save(obj, dst)
    return dst


@pytest.mark.parametrize("name,edit,error,match", [
    ("no_meta", lambda o: o.pop("meta"), "AdapterFileError", r"has no metadata \('meta' is missing\)"),
    ("meta_list", lambda o: o.update(meta=[1]), "AdapterFileError", r"has no metadata \('meta' is list\)"),
    ("no_in_dim", lambda o: o["meta"].pop("in_dim"), "AdapterFileError", r"metadata lacks \['in_dim'\]"),
    ("huge", lambda o: o["meta"].update(in_dim=10 ** 7), "AdapterFileError", r"in_dim=10000000, not a size in \[1, 65536\]"),
    ("negative", lambda o: o["meta"].update(out_dim=-64), "AdapterFileError", r"out_dim=-64, not a size"),
    ("layers", lambda o: o["meta"].update(layers="1234"), "AdapterFileError", r"layers='1234', not a list"),
    ("other_width", lambda o: o["meta"].update(in_dim=2048), "AdapterMismatchError", r"in_dim: adapter 2048 vs now 128"),
    ("weights", lambda o: o["state_dict"].pop("fcs.0.bias"), "AdapterFileError", r"do not match its own metadata"),
])
def test_adapter_metadata_is_checked_before_allocating(adapter_file, tiny_models, tmp_path, monkeypatch,
                                                       name, edit, error, match):
    from clipsam_lite import adapter as ad

    bad = _edited(adapter_file, tmp_path / f"{name}.pt", edit)
    built = []
    real_init = ad.Adapter.__init__
    monkeypatch.setattr(ad.Adapter, "__init__", lambda self, *a, **k: built.append(a) or real_init(self, *a, **k))
    with pytest.raises(getattr(ad, error), match=match):
        ad.load_adapter(bad, tiny_models)
    assert not built, "a layer was allocated before the metadata was checked"
    assert ad.load_adapter(adapter_file, tiny_models).in_dim == 128  # the control loads


def test_bad_adapter_through_the_cli_is_one_line(adapter_file, tmp_path, capsys):
    bad = _edited(adapter_file, tmp_path / "bad.pt", lambda o: o["meta"].update(in_dim=10 ** 7))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert main(["segment", str(image), "--object", "x", "--adapter", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "in_dim=10000000" in _one_error_line(capsys)


# ------------------------------------------------------------------------------------------------
# 9. the evaluation cache verifies every entry
# ------------------------------------------------------------------------------------------------

def test_damaged_partial_or_foreign_cache_entries_are_recomputed_with_a_warning(tiny_models, tmp_path):
    import shutil

    from clipsam_lite.eval_cache import entry_problem
    from clipsam_lite.evaluate import evaluate

    root = make_synthetic(tmp_path / "ds", categories=["disc"], **SMALL)
    kw = dict(models=tiny_models, resolution=48, batch_size=1, overrides=["head=training_free"], progress=False)
    out = tmp_path / "out"
    first = evaluate("mvtec", root, out, log=None, **kw)
    n = first.computed["disc"]
    reference = (out / "results.json").read_bytes()
    entries = sorted(first.entries["disc"])
    assert n >= 4 and all(entry_problem(e) is None for e in entries)
    half = entries[0] / "final_map.npy"  # a half-copied entry: its array cut in two
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])
    (entries[1] / "entry.json").unlink()  # a partial entry
    shutil.rmtree(entries[2])  # a foreign entry: another image's result under this key
    shutil.copytree(entries[3], entries[2])
    lines: list[str] = []
    again = evaluate("mvtec", root, out, log=lines.append, **kw)
    warnings = [s for s in lines if "warning: cache entry" in s]
    assert len(warnings) == 3 and all("recomputing it" in s for s in warnings)
    assert any("damaged (final_map.npy does not match its digest)" in s for s in warnings)
    assert any("partial (no entry.json)" in s for s in warnings)
    assert any("foreign" in s for s in warnings)
    assert again.computed["disc"] == 3 and again.cached["disc"] == n - 3
    assert (out / "results.json").read_bytes() == reference
    assert not list((out / "cache").glob(".tmp-*")) and not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------
# 12 (continued). train-adapter on a full disk
# ------------------------------------------------------------------------------------------------

def test_train_adapter_on_a_full_disk_leaves_no_tmp(tmp_path, monkeypatch, capsys):
    import torch

    root = make_synthetic(tmp_path / "ds", categories=["weave"], signature=True, image_size=64, n_train=0,
                          n_test_good=1, n_test_per_defect=1)
    out = tmp_path / "adapters"
    out.mkdir()
    (out / "old.pt").write_bytes(b"an earlier adapter")
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        Path(f).write_bytes(b"half an adapter")
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", full_disk)
    code = main(["train-adapter", "--dataset", "mvtec", "--root", str(root), "--profile", "tiny", "--epochs", "1",
                 "--out", str(out / "old.pt")])
    monkeypatch.setattr(torch, "save", real_save)
    assert code == 2
    assert f"No space left on device: {out / 'old.pt'}" in _one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["old.pt"] and (out / "old.pt").read_bytes() == b"an earlier adapter"


def test_cli_numbers_are_bounded_before_any_work(tmp_path, capsys, no_models):
    root = make_synthetic(tmp_path / "ds", categories=["disc"], **SMALL)
    for argv, match in ((["synth", "--out", str(tmp_path / "s"), "--image-size", "100000"], "above the maximum 4096"),
                        (["figures", "--tables-only", "--results", str(tmp_path), "--dpi", "1e9"], "between 1 and 1200"),
                        (["evaluate", "--dataset", "mvtec", "--root", str(root), "--out", str(tmp_path / "o"),
                          "--max-images", "0"], "below the minimum 1")):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and match in capsys.readouterr().err
    assert main(["evaluate", "--dataset", "mvtec", "--root", str(root), "--out", str(tmp_path / "o"),
                 "--batch-size", "100000"]) == 2
    assert "batch_size=100000 is out of range" in _one_error_line(capsys)
