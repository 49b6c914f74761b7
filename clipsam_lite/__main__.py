"""The command line: ``python -m clipsam_lite <command>`` (DESIGN.md, "Command line").

Every command prints a clear one-paragraph error and exits with status 2 on bad input (a missing
file, a wrong dataset root, no weights and no network...); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .config import PROFILES, get_config, resolve_profile


def _cmd_synth(args: argparse.Namespace) -> int:
    from .data import make_synthetic

    root = make_synthetic(Path(args.out), seed=args.seed, signature=args.signature,
                          image_size=args.image_size)
    n = sum(1 for _ in Path(root).rglob("*.png"))
    print(f"Wrote a synthetic MVTec-layout dataset (seed {args.seed}{', signature defects' if args.signature else ''}) "
          f"to {root}: {n} PNG files.")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "clipsam-lite": __version__}
    for dist in ("torch", "torchvision", "open_clip_torch", "segment-anything", "numpy", "scikit-learn"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from .models import weights_report
    from .paths import cache_dir

    profile = resolve_profile(args.profile)
    print("clipsam-lite info")
    for k, v in _versions().items():
        print(f"  {k:<17} {v}")
    if torch.cuda.is_available():
        print(f"  torch device      cuda ({torch.cuda.get_device_name(0)})")
    else:
        print("  torch device      cpu (no CUDA GPU visible)")
    print(f"  profile           {profile} (from {'--profile' if args.profile else '$CLIPSAM_PROFILE or the default'})")
    print(f"  cache             {cache_dir()}  (set CLIPSAM_CACHE to move it)")
    print("weights (cached: yes / no / random = built locally, no file needed)")
    for name in PROFILES:
        marker = "*" if name == profile else " "
        for row in weights_report(get_config(name)):
            state = {True: "yes", False: "no", None: "random"}[row["cached"]]
            print(f" {marker}[{name:<5}] {row['what']:<36} cached: {state:<6} {row['where']}")
            if row["cached"] is False:
                print(f"          from {row['url']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .data import make_synthetic

    out = Path(args.out)
    data_root = make_synthetic(out / "synthetic", seed=0, signature=True)
    print(f"[demo] synthetic sample written to {data_root}")
    return _cmd_info(argparse.Namespace(profile=args.profile))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "synth": _cmd_synth,
    "info": _cmd_info,
    "demo": _cmd_demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clipsam_lite",
        description="Zero-shot anomaly segmentation with CLIP and SAM (Hou et al., PRCV 2024), step by step.")
    parser.add_argument("--version", action="version", version=f"clipsam-lite {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the main job on the embedded synthetic sample")
    p.add_argument("--profile", choices=PROFILES, default=None)
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")

    p = sub.add_parser("synth", help="write a synthetic MVTec-layout dataset")
    p.add_argument("--out", required=True, help="folder to write (created)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--signature", action="store_true",
                   help="draw every defect in one fixed hue (the planted signal for random backbones)")

    p = sub.add_parser("info", help="versions, device, profile, and where each weight file is cached")
    p.add_argument("--profile", choices=PROFILES, default=None)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from . import models

    errors: list[type[BaseException]] = [
        FileNotFoundError, ValueError, OSError, models.WeightsUnavailableError, models.CorruptCheckpointError,
        models.ChecksumMismatchError, models.CheckpointMismatchError,
    ]
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _known_errors() as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
