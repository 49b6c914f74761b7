"""How much the method costs beyond its two backbone forwards (issue 5's target: <= 1.10 for `base` on CPU).

Measures, in one run and on one machine, the per-image time of ``pipeline.segment`` with 3 CPS
stages, divided by the time of one CLIP image forward plus one SAM image-encoder forward on the same
image. Everything else the method does (text matrix, heads, upsampling, PPG, three decoder passes,
fusion) is the overhead. The real architectures are built with random weights
(``load_models(..., random_weights=True)``): the compute is the same as with real weights, the maps
are meaningless, so a percentile threshold forces prompts and the full cascade runs every time.

    python benchmarks/pipeline_overhead.py                     # tiny architectures, seconds
    python benchmarks/pipeline_overhead.py --arch base         # ViT-B-16 @ 448 + SAM vit_b, CPU: minutes
    python benchmarks/pipeline_overhead.py --arch paper --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _timed(fn, repeats: int, sync) -> list[float]:
    out = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    from clipsam_lite.adapter import Adapter
    from clipsam_lite.clip_maps import clip_mean_std, preprocess_images
    from clipsam_lite.config import get_config
    from clipsam_lite.models import load_models
    from clipsam_lite.pipeline import segment
    from clipsam_lite.synthetic import render_item

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("tiny", "base", "paper"), default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--image-size", type=int, default=None, help="square test image side (default: 256 tiny, 1024 real)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    cfg = get_config(args.arch, tau_mode="percentile", tau=98.0, per_component=False, stages=3)
    models = load_models(cfg, random_weights=True, device=dev)
    adapter = Adapter.for_models(models, cfg).to(dev).eval()  # random linear head: same compute as a trained one
    size = args.image_size or (256 if args.arch == "tiny" else 1024)
    image, _ = render_item("tablet", 0, defect="stain", image_size=size)

    # the baseline: one CLIP image forward + one SAM image-encoder forward, on the same image
    mean, std = clip_mean_std(models)
    with torch.inference_mode():
        clip_in = preprocess_images([image], cfg.clip_image_size, mean, std, dev)
        from segment_anything.utils.transforms import ResizeLongestSide

        resized = ResizeLongestSide(models.sam.image_encoder.img_size).apply_image(image)
        sam_in = models.sam.preprocess(torch.as_tensor(resized, device=dev).permute(2, 0, 1)[None].contiguous())

        def backbones() -> None:
            models.clip.visual(clip_in)
            models.sam.image_encoder(sam_in)

        def method() -> None:
            segment(image, "tablet", models, cfg, adapter=adapter)

        segment(image, "tablet", models, cfg, adapter=adapter)  # warm-up: text matrix cache, kernels
        backbones()
        # interleave so that machine load drifts hit both alike
        t_b, t_m = [], []
        for _ in range(args.repeats):
            t_b += _timed(backbones, 1, sync)
            t_m += _timed(method, 1, sync)
        r = segment(image, "tablet", models, cfg, adapter=adapter)

    b, m = statistics.median(t_b), statistics.median(t_m)
    stages = [len(c.stages) for c in r.cascades]
    print(f"arch {args.arch} on {dev} ({torch.get_num_threads()} threads), image {size} x {size}, "
          f"CLIP {cfg.clip_model} @ {cfg.clip_image_size}, SAM {cfg.sam_model}, random weights")
    print(f"prompt sets {len(r.cascades)}, stages run {stages}, SAM encoder passes {r.sam_encoder_calls}")
    print(f"one CLIP forward + one SAM encoder forward: median {1000 * b:.1f} ms  (runs: "
          + ", ".join(f"{1000 * x:.0f}" for x in t_b) + ")")
    print(f"segment, 3 stages:                         median {1000 * m:.1f} ms  (runs: "
          + ", ".join(f"{1000 * x:.0f}" for x in t_m) + ")")
    print("segment step times of the last run (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings_ms.items()))
    print(f"overhead ratio segment / (CLIP + SAM encoder) = {m / b:.3f}")
    assert np.isfinite(m / b)


if __name__ == "__main__":
    main()
