"""The command line: ``python -m clipsam_lite <command>`` (DESIGN.md, "Command line").

Taught in no notebook: the README's commands (notebook 08, section 6, shows the ``figures`` one).
No METHOD.md step of its own: it runs steps 1-5 through ``pipeline``, ``evaluate``, ``ablate``, ``figures``.

Every command prints a clear one-paragraph error and exits with status 2 on bad input (a missing
file, a wrong dataset root, no weights and no network...); ``--debug`` (before or after the command)
shows the traceback instead. What can be checked without models is checked before any work
(:func:`precheck`): output paths, input files, ``--set`` values. [ours]
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .config import PROFILES, get_config, resolve_profile


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import make_synthetic, make_world

    if args.world or args.categories:
        root = make_world(Path(args.out), args.categories, seed=args.seed, image_size=args.image_size,
                          n_train=args.n_train, n_test_good=args.n_test_good, n_test_per_defect=args.n_test_per_defect)
        n = sum(1 for _ in Path(root).rglob("*.png"))
        print(f"Wrote the miniature world (seed {args.seed}, categories {args.categories or 'all'}) in the MVTec "
              f"layout to {root}: {n} PNG files (object/region masks under <category>/world_masks/).")
        return 0
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
    from .demo import run_demo

    run_demo(args.profile, Path(args.out))
    return 0


def _cmd_segment(args: argparse.Namespace) -> int:
    from .clip_maps import object_name_for
    from .demo import choose_adapter
    from .evaluate import parse_overrides
    from .images import read_image
    from .models import load_models
    from .pipeline import check_image_pixels, segment, write_outputs

    cfg = get_config(args.profile)
    overrides = parse_overrides(args.set, cfg)  # bad --set values fail before any file is read
    if args.stages:
        overrides["stages"] = args.stages
    cfg = cfg.replace(**overrides)
    check_image_pixels(_header_size(args.image), cfg, str(args.image))  # before decoding a huge file
    image = read_image(args.image)  # clear errors for missing / corrupt files before any model loads
    check_image_pixels(image.shape[:2], cfg, str(args.image))
    models = load_models(cfg, clip_checkpoint=args.clip_checkpoint, sam_checkpoint=args.sam_checkpoint)
    print(models.banner())
    if not args.adapter:
        print("No --adapter given: using the training-free CLIP head (train one with `train-adapter`).")
    adapter, cfg = choose_adapter(models, cfg, args.adapter, log=print)
    cfg = cfg.replace(**overrides)  # what the user --set wins over the head's defaults
    result = segment(image, object_name_for(args.object), models, cfg, adapter=adapter)
    out = Path(args.out)
    written = write_outputs(result, image, cfg, out, profile=models.profile)
    state = "no prompts: treated as normal" if result.is_normal else (
        f"{len(result.cascades)} prompt set(s), final mask {int(result.final_mask.sum())} px")
    print(f"Segmented {args.image} ({result.size[1]} x {result.size[0]}), object {args.object!r}: {state}.")
    print(f"Wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written))
    return 0


def _header_size(path: str) -> tuple[int, int]:
    """``(H, W)`` from the image file's header without decoding it; ``(0, 0)`` if unreadable (read_image reports)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[1]), int(im.size[0])
    except Exception:
        return 0, 0


def _cmd_train_adapter(args: argparse.Namespace) -> int:
    from .adapter import train_adapter_command

    train_adapter_command(args.dataset, args.root, args.categories, args.profile, args.epochs, args.out,
                          clip_checkpoint=args.clip_checkpoint)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_command

    return evaluate_command(args)


def _cmd_ablate(args: argparse.Namespace) -> int:
    from .ablate import ablate_command

    return ablate_command(args)


def _cmd_figures(args: argparse.Namespace) -> int:
    from .figures import figures_command

    return figures_command(args)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    if args.target == "clip":
        from .pretrain.clip import PretrainConfig, pretrain_clip

        cfg = PretrainConfig(steps=300 if args.steps is None else args.steps, seed=args.seed, fold=args.fold,
                             categories=tuple(args.categories or ()), batch_size=args.batch_size,
                             dense_pos_weight=None if args.dense_pos_weight <= 0 else args.dense_pos_weight)
        pretrain_clip(Path(args.out), cfg, progress=not args.no_progress)
        return 0
    if args.target == "sam":
        from .pretrain.sam import pretrain_sam_command

        pretrain_sam_command(args.out, args.steps, args.seed, threads=args.threads, arch=args.arch, lr=args.lr,
                             warmup=args.warmup, world_share=args.world_share, warm_start=args.warm_start,
                             stop_at=args.stop_at, cascade_share=args.cascade_share,
                             first_prompts=args.first_prompts)
        return 0
    raise ValueError(f"pretrain: unknown target {args.target!r}; this version can pretrain: clip, sam.")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "synth": _cmd_synth,
    "info": _cmd_info,
    "demo": _cmd_demo,
    "segment": _cmd_segment,
    "train-adapter": _cmd_train_adapter,
    "evaluate": _cmd_evaluate,
    "ablate": _cmd_ablate,
    "figures": _cmd_figures,
    "pretrain": _cmd_pretrain,
}


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _int_between(low: int, high: int) -> Callable[[str], int]:
    at_least = _int_at_least(low)

    def parse(text: str) -> int:
        value = at_least(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{value} is above the maximum {high}")
        return value

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def _dpi(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 1 <= value <= 1200:
        raise argparse.ArgumentTypeError(f"{text!r} must be a resolution between 1 and 1200 dots per inch")
    return value


_PRECISION_HELP = "autocast of the CLIP and SAM encoders (default auto: bf16 on a CUDA GPU that has it, else fp32)"


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
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--image-size", type=_int_between(64, 4096), default=256)
    p.add_argument("--signature", action="store_true",
                   help="draw every defect in one fixed hue (the planted signal for random backbones)")
    p.add_argument("--world", action="store_true", help="write the miniature world (issue 13) instead of the 4-category sample")
    p.add_argument("--categories", nargs="+", default=None, help="world categories to write (implies --world)")
    p.add_argument("--n-train", type=int, default=8, help="--world: normal training images per category")
    p.add_argument("--n-test-good", type=int, default=4, help="--world: normal test images per category")
    p.add_argument("--n-test-per-defect", type=int, default=3, help="--world: anomalous test images per defect type")

    p = sub.add_parser("pretrain", help="pretrain a mini backbone on the miniature world (resumable; prints CPU time)")
    p.add_argument("target", choices=("clip", "sam"), help="which backbone: clip (mini-CLIP) or sam (mini-SAM)")
    p.add_argument("--out", required=True, help="folder for checkpoints (last.pt) and the curve (resumes if present)")
    p.add_argument("--steps", type=int, default=None, help="total training steps (default: clip 300, sam the recipe's)")
    p.add_argument("--threads", type=int, default=1, help="sam: torch threads (default 1)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fold", type=int, default=0, help="held-out fold (0: the shipped split); its categories are never trained on")
    p.add_argument("--categories", nargs="+", default=None, help="pretraining categories (default: all but the fold's)")
    p.add_argument("--dense-pos-weight", type=float, default=3.0,
                   help="weight of a defect patch in the dense term (default 3, the shipped recipe; 0: class-balanced)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--arch", default="mini", help="sam: tiny (16 x 16 tokens) or mini (32 x 32, the shipped one)")
    p.add_argument("--lr", type=float, default=None, help="sam: peak learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, default=None, help="sam: warm-up steps (default 100)")
    p.add_argument("--world-share", type=float, default=None,
                   help="sam: share of world scenes in a batch, the rest random shapes (default 0.5)")
    p.add_argument("--cascade-share", type=float, default=None,
                   help="sam: share of steps that also train CPS's three stages on stand-in maps (default 0)")
    p.add_argument("--first-prompts", default=None,
                   help="sam: first-prompt mix, mixed (the shipped recipe, default) or sam (SAM's: one point or one box)")
    p.add_argument("--warm-start", default=None,
                   help="sam: start a new run from this checkpoint, grown to --arch's token grid (see MODEL_CARD.md)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="sam: stop at this step, keeping the schedule of --steps (resume later)")

    p = sub.add_parser("segment", help="the method on one image: maps, masks, overlays and result.json")
    p.add_argument("image", help="an image file (any of PNG/JPEG/BMP/TIFF; grayscale, RGBA, 16-bit are converted)")
    p.add_argument("--object", required=True, help="the object's name for the CLIP prompts, e.g. bottle")
    p.add_argument("--profile", choices=PROFILES, default=None)
    p.add_argument("--adapter", default=None, help="an adapter file from train-adapter (else the training-free head)")
    p.add_argument("--stages", type=int, choices=(1, 2, 3), default=None, help="CPS stages to run (default 3)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a Config field, e.g. --set tau=0.6 --set max_prompt_sets=4 (repeatable)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None, help=_PRECISION_HELP)
    p.add_argument("--clip-checkpoint", default=None, help="a local open_clip checkpoint file (offline machines)")
    p.add_argument("--sam-checkpoint", default=None, help="a local SAM checkpoint file (offline machines)")
    p.add_argument("--out", required=True, help="output folder (created)")

    p = sub.add_parser("train-adapter", help="train the APRIL-GAN adapter head on an auxiliary dataset")
    p.add_argument("--dataset", choices=("mvtec", "visa", "folder"), required=True)
    p.add_argument("--root", required=True, help="the dataset's root folder")
    p.add_argument("--categories", nargs="+", default=None, help="only these categories (default: all)")
    p.add_argument("--profile", choices=PROFILES, default=None)
    p.add_argument("--epochs", type=_int_at_least(1), default=None)
    p.add_argument("--clip-checkpoint", default=None, help="a local open_clip checkpoint file (offline machines)")
    p.add_argument("--out", required=True, help="the adapter file to write")

    for name, help_text in (
            ("evaluate", "metrics over a dataset's test split (resumable; results.json/.csv/.md)"),
            ("ablate", "the ablation grid: negative strategies x CPS stages x fusion modes (ablation.json/.csv/.md)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dataset", choices=("mvtec", "visa", "folder"), required=True)
        p.add_argument("--root", required=True, help="the dataset's root folder")
        p.add_argument("--profile", choices=PROFILES, default=None)
        p.add_argument("--adapter", default=None,
                       help="an adapter file from train-adapter (else: tiny on synthetic data uses the synthetic "
                            "sample's adapter, everything else the training-free head)")
        p.add_argument("--categories", nargs="+", default=None, help="only these categories (default: all)")
        if name == "evaluate":
            p.add_argument("--stages", type=int, choices=(1, 2, 3), default=None, help="CPS stages (default 3)")
        p.add_argument("--resolution", type=_int_at_least(16), default=None,
                       help="maps and masks are compared at this size (default: the profile's, 518 for paper/base)")
        p.add_argument("--batch-size", type=_int_at_least(1), default=None, help="images per CLIP / SAM encoder forward")
        p.add_argument("--max-images", type=_int_at_least(1), default=None,
                       help="at most this many images per category, spread evenly (a quick subset)")
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="change a Config field, e.g. --set tau=0.6 --set head=training_free (repeatable)")
        p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None, help=_PRECISION_HELP)
        if name == "evaluate":
            p.add_argument("--fresh", action="store_true", help="delete OUT/cache first and recompute everything")
        p.add_argument("--clip-checkpoint", default=None, help="a local open_clip checkpoint file (offline machines)")
        p.add_argument("--sam-checkpoint", default=None, help="a local SAM checkpoint file (offline machines)")
        p.add_argument("--out", required=True, help="output folder (created)")

    p = sub.add_parser("figures", help="the paper's figures (PNG + PDF) and the results/ablation tables")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="default: $CLIPSAM_PROFILE, else base when its weights are cached, else tiny")
    p.add_argument("--dataset", choices=("mvtec", "visa", "folder"), default=None,
                   help="images from this dataset (with --root); default: the embedded synthetic sample")
    p.add_argument("--root", default=None, help="the dataset's root folder (with --dataset)")
    p.add_argument("--categories", nargs="+", default=None, help="only these categories of --dataset")
    p.add_argument("--per-category", type=_int_at_least(1), default=None,
                   help="images per category (default: 2 on the synthetic sample, 1 on a dataset)")
    p.add_argument("--adapter", default=None,
                   help="an adapter file from train-adapter (else: tiny on synthetic data uses the synthetic "
                        "sample's adapter, everything else the training-free head only)")
    p.add_argument("--results", default=None,
                   help="a folder holding results.json and/or ablation.json (from evaluate / ablate): render the tables")
    p.add_argument("--tables-only", action="store_true", help="only the tables of --results (no models are loaded)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="which images are shown (seeded choice); models are seeded too")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a Config field, e.g. --set stages=2 --set tau=0.6 (repeatable)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None, help=_PRECISION_HELP)
    p.add_argument("--formats", nargs="+", choices=("png", "pdf"), default=["png", "pdf"])
    p.add_argument("--dpi", type=_dpi, default=None, help="PNG resolution (default: the packaged style's, 100)")
    p.add_argument("--clip-checkpoint", default=None, help="a local open_clip checkpoint file (offline machines)")
    p.add_argument("--sam-checkpoint", default=None, help="a local SAM checkpoint file (offline machines)")
    p.add_argument("--out", default=None, help="output folder (default: the repository's figures/)")

    p = sub.add_parser("info", help="versions, device, profile, and where each weight file is cached")
    p.add_argument("--profile", choices=PROFILES, default=None)
    for p in sub.choices.values():  # --debug also after the command; SUPPRESS keeps one given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback on errors")
    return parser


# What each command writes (``folder`` or ``file``) and reads, checked by :func:`precheck` before any work.
_OUTPUTS: dict[str, tuple[str, str]] = {
    "synth": ("out", "folder"), "demo": ("out", "folder"), "segment": ("out", "folder"),
    "train-adapter": ("out", "file"), "evaluate": ("out", "folder"), "ablate": ("out", "folder"),
    "figures": ("out", "folder"),
}
_INPUT_FILES: tuple[tuple[str, str, int | None], ...] = (  # (argument, what it is, size limit in bytes)
    ("image", "image", None), ("adapter", "adapter", 256 * 1024 ** 2), ("clip_checkpoint", "CLIP checkpoint", None),
    ("sam_checkpoint", "SAM checkpoint", None),
)  # images have their own limits (images.py); an adapter of ViT-L is ~13 MB; checkpoints reach 2.6 GB


def precheck(args: argparse.Namespace) -> None:
    """Everything checkable without models, before any work: ``--out`` (a folder where a folder is
    expected, a file where a file is, writable), input files (regular files), ``--set`` values
    (every Config field's range; ``profile`` only through ``--profile``). [ours]"""
    from .safe_io import check_output_dir, check_output_file, check_regular_file

    attr, kind = _OUTPUTS.get(args.command, (None, None))
    if attr and getattr(args, attr, None) is not None:
        out = getattr(args, attr)
        if kind == "file":
            check_output_file(out, "--" + attr)
        else:
            check_output_dir(out, "--" + attr)
    for attr, what, limit in _INPUT_FILES:
        value = getattr(args, attr, None)
        if value is not None:
            flag = attr if attr == "image" else "--" + attr.replace("_", "-")
            if Path(value).is_dir():
                raise IsADirectoryError(f"{flag} {value} is a folder, but a file ({what}) is expected; give the file's path.")
            check_regular_file(value, what, limit)
    if getattr(args, "object", None) is not None and not str(args.object).strip():
        raise ValueError("--object is empty; give the object's name for the CLIP prompts, e.g. --object bottle.")
    if getattr(args, "results", None) is not None and not Path(args.results).is_dir():
        state = "is not a folder" if Path(args.results).exists() else "names no such folder"
        raise NotADirectoryError(f"--results {args.results} {state}; give the --out folder of evaluate "
                                 "or ablate (it holds results.json / ablation.json).")
    pairs = list(getattr(args, "set", None) or [])
    for pair in pairs:
        if str(pair).partition("=")[0].strip() == "profile":
            raise ValueError(f"--set {pair!r}: the profile is chosen with --profile (or $CLIPSAM_PROFILE), "
                             "not --set, so that the models and the Config agree.")
    options = {k: getattr(args, k, None) for k in ("stages", "resolution", "batch_size")}
    options = {k: v for k, v in options.items() if v is not None}
    if pairs or options:
        from .config import get_config
        from .evaluate import parse_overrides

        cfg = get_config(getattr(args, "profile", None))
        cfg.replace(**{**parse_overrides(pairs, cfg), **options})  # a ValueError names the field and its range


def _known_errors() -> tuple[type[BaseException], ...]:
    from . import models

    errors: list[type[BaseException]] = [
        FileNotFoundError, ValueError, OSError, models.WeightsUnavailableError,
        models.CorruptCheckpointError, models.ChecksumMismatchError, models.CheckpointMismatchError,
    ]
    return tuple(errors)


def _message(e: BaseException) -> str:
    """The one-paragraph message of a known error; an OSError on a path in the cache names the cache."""
    from .paths import CACHE_ENV, cache_dir, is_in_cache

    text = str(e)
    if isinstance(e, OSError) and e.filename and e.strerror and not text.startswith("The cache folder"):
        where = e.filename
        text = f"{e.strerror}: {where}"
        if is_in_cache(where):
            text += (f" (this is clipsam-lite's cache folder {cache_dir()}; set {CACHE_ENV} to a folder you can "
                     "write to, e.g. CLIPSAM_CACHE=/tmp/clipsam-cache)")
        elif isinstance(e, FileNotFoundError) and "check" not in e.strerror:
            text += " (check the path)"
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if getattr(args, "precision", None) and isinstance(getattr(args, "set", None), list):
        args.set.append(f"precision={args.precision}")  # --precision is --set precision=... for every command
    try:
        precheck(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _known_errors() as e:
        if debug:
            raise
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print("error: out of memory. Use a smaller image (or downscale it), a smaller --batch-size or "
              "--resolution, or a machine with more memory; --debug shows where it happened.", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: still one line, and the way to the traceback
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"error: unexpected {type(e).__name__}: {first}. This is a bug in clipsam-lite or an input it does "
              "not handle: rerun with --debug for the traceback and report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
