"""Peak memory and time of ``python -m clipsam_lite segment`` against image size (issue 12, point 1).

Each size runs ``segment`` in its own subprocess (so one run's peak never hides another's); the parent
reads that child's peak resident set size from ``os.wait4`` (Linux ``ru_maxrss``, KiB) and its wall time.
The images are natural-looking (smooth colour fields, texture noise, a few planted blemishes), written
as PNG first; the threshold is a percentile so every image is prompted (SAM, PPG and the cascade all
run), and ``max_prompt_sets`` keeps its default. Prints a Markdown table:

    python benchmarks/memory_scaling.py                       # tiny profile, 512^2 .. 4096^2
    python benchmarks/memory_scaling.py --sizes 1024 4096 --set ppg_resolution=original   # the old path

Memory should grow with the image's area only through what must stay full-size (the image, ``S_a``,
the final map and mask, the output PNGs); PPG and the cascade work in SAM's input frame.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def natural_image(size: int, seed: int = 0) -> np.ndarray:
    """A ``size x size`` RGB image: smooth low-frequency colour fields + fine noise + dark and bright blemishes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    low = rng.integers(40, 220, size=(8, 8, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), dtype=np.float32)
    img += rng.normal(0, 6, size=(size, size, 1)).astype(np.float32)
    yy, xx = np.ogrid[:size, :size]
    for _ in range(5):
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        r = rng.uniform(0.01, 0.05) * size
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = rng.choice([15.0, 245.0])
    return np.clip(img, 0, 255).astype(np.uint8)


def run_one(image: Path, out: Path, profile: str, sets: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit status) of one ``segment`` subprocess."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "clipsam_lite", "segment", str(image), "--object", "object", "--profile", profile,
           "--out", str(out), "--set", "tau_mode=percentile", "--set", "tau=97"]
    for s in sets:
        cmd += ["--set", s]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"segment failed on {image.name} (exit {code}):\n{err[-2000:]}", file=sys.stderr)
    return usage.ru_maxrss / 1024.0, wall, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 3072, 4096])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="passed to segment")
    args = parser.parse_args(argv)
    from PIL import Image

    print(f"segment, profile {args.profile}, {os.environ.get('OMP_NUM_THREADS', '1')} thread(s)"
          + (f", --set {' '.join(args.set)}" if args.set else ""))
    print("| image | megapixels | peak RSS (MiB) | time (s) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"natural_{size}.png"
            Image.fromarray(natural_image(size)).save(path)
            rss, wall, code = run_one(path, Path(tmp) / f"out_{size}", args.profile, args.set)
            note = "" if code == 0 else f" (exit {code})"
            print(f"| {size} x {size} | {size * size / 1e6:.1f} | {rss:.0f}{note} | {wall:.1f} |", flush=True)
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
