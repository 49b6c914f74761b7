"""End-to-end throughput of the method on a GPU: images/s, the share of each step, peak GPU memory (issue 11.14).

The ``base`` and ``paper`` architectures with **random weights** (the same compute as the real ones; the
outputs are meaningless), at fp32 and bf16 autocast of the two encoders, for batch sizes 1/2/4 (CLIP
and SAM encoder batches alike). Each image goes through all of it: CLIP map -> SAM encoder -> PPG ->
CPS (three decoder stages, prompt sets batched) -> fusion. A percentile ``tau`` (97) makes every
image prompted, as an anomalous image is; ``max_prompt_sets`` keeps its default. The head is the
training-free one without value-value attention (an adapter costs one small matmul more).

On a GPU (the README's command; goal for ``paper`` on one H100-class GPU: >= 50 images/s end to end,
the SAM vit_h encoder's ~3 TFLOP per image putting the bf16 ceiling near 250 images/s)::

    python benchmarks/gpu_throughput.py --arch base paper --precisions fp32 bf16 --batch-sizes 1 2 4

On a CPU it runs too, with small counts (CI's smoke test uses ``--arch tiny --images 2``). Timings are
wall-clock with ``torch.cuda.synchronize()`` around each step; one warm-up batch is not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = ("clip", "sam_encoder", "ppg", "cps", "fusion")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def natural_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth colour fields with noise and a few dark/bright blemishes (deterministic)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.integers(40, 220, size=(6, 6, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), dtype=np.float32)
        img += rng.normal(0, 6, size=(size, size, 1)).astype(np.float32)
        yy, xx = np.ogrid[:size, :size]
        for _ in range(3):
            cx, cy = rng.uniform(0.1, 0.9, 2) * size
            r = rng.uniform(0.02, 0.06) * size
            img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = rng.choice([15.0, 245.0])
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def run_batch(images: list[np.ndarray], models, cfg, device: torch.device) -> dict[str, float]:
    """Seconds spent in each step for one batch (CLIP and SAM encoder batched, the rest per image)."""
    from clipsam_lite.clip_maps import anomaly_maps
    from clipsam_lite.pipeline import finish_from_maps, needs_sam
    from clipsam_lite.sam_features import embed_images

    t: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    _sync(device)
    start = time.perf_counter()
    clip = anomaly_maps(models, images, "object", cfg)
    _sync(device)
    t["clip"] = time.perf_counter() - start
    need = [i for i, s in enumerate(clip.maps) if needs_sam(s, cfg, models)[1]]
    start = time.perf_counter()
    embs = embed_images(models.sam, [images[i] for i in need], batch_size=cfg.sam_batch_size, precision=cfg.precision)
    _sync(device)
    t["sam_encoder"] = time.perf_counter() - start
    by_index = dict(zip(need, embs, strict=True))
    for i in range(len(images)):
        r = finish_from_maps(clip.maps[i], float(clip.image_scores[i]), "object", by_index.get(i), models, cfg)
        _sync(device)
        for k in ("ppg", "cps", "fusion"):
            t[k] += r.timings_ms.get(k, 0.0) / 1000.0
    return t


def measure(arch: str, precision: str, batch: int, n_images: int, size: int, device: torch.device,
            models_cache: dict) -> dict[str, float | str]:
    from clipsam_lite.config import get_config
    from clipsam_lite.models import load_models, resolve_precision

    cfg = get_config(arch, head="training_free", tau_mode="percentile", tau=97.0, batch_size=batch,
                     sam_batch_size=batch, precision=precision)
    resolve_precision(precision, device)  # a clear error for fp16 on a CPU
    if arch not in models_cache:
        models_cache.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        models_cache[arch] = load_models(cfg, random_weights=True, device=device)
    models = models_cache[arch]
    images = natural_images(max(n_images, batch), size)
    with torch.inference_mode():
        run_batch(images[:batch], models, cfg, device)  # warm-up (kernels, caches, text matrix)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        totals = dict.fromkeys(STEPS, 0.0)
        done = 0
        wall = time.perf_counter()
        while done < n_images:
            chunk = images[done:done + batch]
            for k, v in run_batch(chunk, models, cfg, device).items():
                totals[k] += v
            done += len(chunk)
        wall = time.perf_counter() - wall
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    spent = sum(totals.values()) or 1.0
    return {"arch": arch, "precision": precision, "batch": batch, "images_per_s": done / wall,
            **{k: 100.0 * v / spent for k, v in totals.items()}, "peak_mib": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["base", "paper"], choices=("tiny", "base", "paper"))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--images", type=int, default=None, help="images per setting (default 64 on a GPU, 2 on a CPU)")
    parser.add_argument("--size", type=int, default=1024, help="square image side in pixels (MVTec-like: 1024)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(1)
    n = args.images or (64 if device.type == "cuda" else 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (1 thread)"
    print(f"gpu_throughput: {name}, {n} images of {args.size} x {args.size} per setting, random weights, "
          f"training-free head, tau = 97th percentile")
    print("| arch | precision | batch | images/s | clip | sam encoder | ppg | cps | fusion | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    cache: dict = {}
    for arch in args.arch:
        for precision in args.precisions:
            for batch in args.batch_sizes:
                r = measure(arch, precision, batch, n, args.size, device, cache)
                peak = "-" if np.isnan(r["peak_mib"]) else f"{r['peak_mib']:.0f}"
                print(f"| {arch} | {precision} | {batch} | {r['images_per_s']:.2f} | "
                      + " | ".join(f"{r[k]:.1f}%" for k in STEPS) + f" | {peak} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
