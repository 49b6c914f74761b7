"""`pretrain sam` runs side by side at the same steps: the prompted IoUs, the cascade's stages and the
room a box leaves it (the mini-SAM model card's stage-F table, SAM's own recipe against the shipped one).

For each run and step: one positive point + 2 negatives and the jittered box per defect
(:func:`clipsam_lite.pretrain.sam_eval.follows_prompt`), then PPG + CPS on ground truth + noise maps with
the stage IoUs and the exact-boxes reference (:func:`~clipsam_lite.pretrain.sam_eval.cascade_stages`), on
test images of the pretraining ("seen") and held-out categories.

    python -m clipsam_lite pretrain sam --arch tiny --out runs/mixed --steps 3000 --first-prompts mixed
    python -m clipsam_lite pretrain sam --arch tiny --out runs/sam --steps 3000 --first-prompts sam
    python benchmarks/mini_sam_recipes.py runs/mixed runs/sam --steps 1000 2000 3000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mini_sam import _load  # noqa: E402  (the sibling benchmark's snapshot loader)


def _snapshot(run: str, step: int) -> Path:
    return Path(run, "snapshots", f"step{step:06d}.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="pretrain sam output folders (each with snapshots/stepNNNNNN.pt)")
    ap.add_argument("--steps", type=int, nargs="+", required=True, help="snapshot steps to compare")
    ap.add_argument("--n", type=int, default=6, help="test images per category (default 6)")
    ap.add_argument("--size", type=int, default=256, help="image size (default 256, the tiny profile's lengths)")
    args = ap.parse_args()
    missing = [str(_snapshot(r, s)) for r in args.runs for s in args.steps if not _snapshot(r, s).is_file()]
    if missing:
        sys.exit(f"no such snapshot: {', '.join(missing)} (snapshots are written every 250 steps by default)")
    torch.set_num_threads(1)
    from clipsam_lite.config import get_config
    from clipsam_lite.pretrain.sam_data import world_categories
    from clipsam_lite.pretrain.sam_eval import cascade_stages, eval_scenes, follows_prompt

    cfg = get_config("mini") if args.size == 128 else get_config("tiny")
    sets = [(name, eval_scenes(cats, args.n, size=args.size)) for name, cats in zip(("seen", "held-out"),
                                                                                     world_categories(), strict=True)]
    head = ["run", "step", "CPU-min"]
    for name, _ in sets:
        head += [f"{name} point + 2 neg", f"{name} box", f"{name} stages 1/2/3", f"{name} exact boxes"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for run in args.runs:
        for step in args.steps:
            snap = _snapshot(run, step)
            cpu = torch.load(snap, map_location="cpu", weights_only=False)["cpu_seconds"] / 60
            sam = _load(str(snap))
            cells = [Path(run).name, str(step), f"{cpu:.1f}"]
            for _, scenes in sets:
                f, c = follows_prompt(sam, scenes), cascade_stages(sam, scenes, cfg)
                stages = "/".join(f"{c[f'stage{k}_iou']:.2f}" for k in (1, 2, 3))
                cells += [f"{f['point_iou']:.2f}", f"{f['box_iou']:.2f}", stages, f"{c['exact_boxes_iou']:.2f}"]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
