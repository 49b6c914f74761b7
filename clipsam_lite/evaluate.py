"""Batched, resumable evaluation over a dataset, and its results tables (METHOD.md, "Evaluation protocol").

Taught in notebook 07 (sections 4 and 6: evaluating the method, our numbers beside the published
ones). Everything here is **[ours]**: the field's evaluation convention, not the paper's contribution.

Protocol (stated in every table this module writes)
    * Per category, then the mean over categories. Pixel level: AUROC, AP, F1-max, AUPRO
      (:data:`clipsam_lite.metrics.AUPRO_DEFINITION`); image level: AUROC, AP, F1-max, from
      ``Result.image_score`` (CLIP's global score, optionally mixed with the map's max).
    * Maps and masks are compared at ``resolution x resolution`` (``Config.resolution``; 518 for the
      real profiles), squashed to the square as the peers' code does (``Config.eval_resize="squash"``,
      :func:`clipsam_lite.images.resize_squash`) or short side + centre crop (``"crop"``); bilinear for
      maps, area + ``>= 0.5`` for masks. Every table names which.
      Masks are binarised when read: MVTec-AD at half of the maximum ("0.5"), VisA and folders with
      ``!= 0``.

Where the rest lives
    The per-image cache that makes a run resumable (keys, atomic entries): :mod:`clipsam_lite.eval_cache`.
    The ablation grid, which reuses this module's set-up and tables: :mod:`clipsam_lite.ablate`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .config import Config
from .eval_cache import (
    CACHE_FORMAT,
    EvaluationError,
    _file_digest,
    _open_cache,
    _sam_fingerprint,
    _weights_digest,
    _write_entry,
    entry_key,
    eval_mask,
    load_entry,
    usable_entry,
)
from .images import EVAL_RESIZE_TEXT
from .safe_io import recover_published
from .synthetic import synthetic_meta

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import Adapter
    from .datasets import Dataset, Record
    from .models import Models

__all__ = [
    "METRIC_KEYS", "PIXEL_KEYS", "EvaluationError", "EvalSetup", "Evaluation", "prepare",
    "parse_overrides", "select_indices", "run_identity", "evaluate", "protocol_lines", "PUBLISHED", "PUBLISHED_COLUMNS",
    "comparison_markdown", "evaluate_command",
]

PIXEL_KEYS: tuple[str, ...] = ("pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro")
IMAGE_KEYS: tuple[str, ...] = ("image_auroc", "image_ap", "image_f1_max")
METRIC_KEYS: tuple[str, ...] = PIXEL_KEYS + IMAGE_KEYS
"""The seven numbers reported per category (METHOD.md, "Evaluation protocol")."""

_HEADERS = {"pixel_auroc": "pixel AUROC", "pixel_ap": "pixel AP", "pixel_f1_max": "pixel F1-max",
            "pixel_aupro": "pixel AUPRO", "image_auroc": "image AUROC", "image_ap": "image AP",
            "image_f1_max": "image F1-max", "region_auroc": "region AUROC"}


# --------------------------------------------------------------------------------------------------
# Set-up: dataset, models, config, adapter
# --------------------------------------------------------------------------------------------------

@dataclass
class EvalSetup:
    """What an evaluation or ablation runs on, resolved once from the arguments."""

    dataset: Dataset
    models: Models
    cfg: Config
    """The Config actually used (profile preset + overrides; ``head`` set by the adapter choice)."""
    adapter: Adapter | None
    adapter_info: dict[str, Any]
    """How the CLIP head was chosen: ``source`` (``file``, ``object``, ``synthetic``, ``none``), digest, note."""
    selection: dict[str, list[int]]
    """Category -> indices into ``dataset.records`` that are evaluated, in order."""
    max_images: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def resolution(self) -> int:
        return int(self.cfg.resolution)


def select_indices(records: Sequence[Record], categories: Sequence[str], max_images: int | None
                   ) -> dict[str, list[int]]:
    """Per category, the record indices to evaluate: all, or ``max_images`` spread evenly [ours].

    A subset keeps normal and anomalous images in their proportion (at least one of each when the
    category has both), each group sampled at evenly spaced positions, in the dataset's order.
    """
    if max_images is not None and int(max_images) < 1:
        raise EvaluationError(f"max_images must be a positive integer, got {max_images!r}.")
    out: dict[str, list[int]] = {}
    for cat in categories:
        idx = [i for i, r in enumerate(records) if r.category == cat]
        if max_images is None or len(idx) <= max_images:
            out[cat] = idx
            continue
        k = int(max_images)
        normal = [i for i in idx if records[i].label == 0]
        anomalous = [i for i in idx if records[i].label == 1]
        k_norm = round(k * len(normal) / len(idx))
        if normal and anomalous and k >= 2:
            k_norm = min(max(k_norm, 1), k - 1)
        k_anom = k - k_norm

        def spread(group: list[int], n: int) -> list[int]:
            if n <= 0 or not group:
                return []
            pos = np.unique(np.linspace(0, len(group) - 1, min(n, len(group))).round().astype(int))
            return [group[p] for p in pos]

        out[cat] = sorted(spread(normal, k_norm) + spread(anomalous, k_anom))
    return out



def parse_overrides(pairs: Sequence[str], cfg: Config) -> dict[str, Any]:
    """``["tau=0.6", "per_component=false", "clip_layers=1,2"]`` -> typed Config overrides (the ``--set`` option).

    Each value is read as the type of the field's current value in ``cfg``: booleans from
    true/false/1/0/yes/no, integers, floats, comma-separated integer tuples, strings; ``none``
    gives None for fields that may be None (``working_size``, ``clip_pretrained``).
    """
    from dataclasses import fields

    known = {f.name for f in fields(cfg)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = str(pair).partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name:
            raise EvaluationError(f"--set expects FIELD=VALUE (e.g. --set tau=0.6), got {pair!r}.")
        if name not in known:
            raise EvaluationError(f"--set {pair!r}: Config has no field {name!r}; known fields: {sorted(known)}.")
        current = getattr(cfg, name)
        try:
            if text.lower() in ("none", "null") and name in ("working_size", "clip_pretrained"):
                value: Any = None
            elif isinstance(current, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError("expected true or false")
                value = text.lower() in ("true", "1", "yes")
            elif isinstance(current, int) or (current is None and name == "working_size"):
                value = int(text)
            elif isinstance(current, float):
                value = float(text)
            elif isinstance(current, tuple):
                value = tuple(int(v) for v in text.split(",") if v.strip())
            else:
                value = text
        except ValueError as e:
            raise EvaluationError(f"--set {pair!r}: cannot read {text!r} as the type of Config.{name} "
                                  f"(now {current!r}): {e}.") from None
        out[name] = value
    return out


def prepare(dataset: str, root: str | os.PathLike[str], *, profile: str | None = None,
            categories: Sequence[str] | None = None, adapter: str | os.PathLike[str] | Adapter | None = None,
            stages: int | None = None, resolution: int | None = None, batch_size: int | None = None,
            max_images: int | None = None, models: Models | None = None, cfg: Config | None = None,
            clip_checkpoint: str | None = None, sam_checkpoint: str | None = None,
            overrides: Sequence[str] | dict[str, Any] | None = None,
            log: Callable[[str], None] | None = print) -> EvalSetup:
    """Resolve the arguments of :func:`evaluate` / :func:`ablate` into an :class:`EvalSetup` [ours].

    The dataset is read (layout errors surface here, before any model loads), then the models (or
    the given ``models``), the Config (``cfg`` or the profile's preset, then ``overrides``: a dict of
    fields or ``--set`` strings, see :func:`parse_overrides`; then ``stages``, ``resolution`` and
    ``batch_size``) and the CLIP head:

    * ``adapter`` a file: loaded and checked against the backbone (head ``adapter``);
    * ``adapter`` an :class:`~clipsam_lite.adapter.Adapter` object: used as is (head ``adapter``);
    * no adapter, tiny profile, ``root`` a synthetic dataset (``make_synthetic``, e.g. the embedded
      sample): :func:`clipsam_lite.demo.synthetic_adapter`, trained on the sample's auxiliary
      categories (cached on disk);
    * otherwise: the training-free head (``cfg.head = "training_free"``).
    """
    from .config import get_config, resolve_profile
    from .datasets import load_dataset

    say = log or (lambda _s: None)
    for name, value in (("resolution", resolution), ("batch_size", batch_size)):
        if value is not None and (int(value) != value or value < 1):
            raise EvaluationError(f"{name} must be a positive integer, got {value!r}.")
    wanted: str | list[str] | None = list(categories) if categories else None
    if wanted and str(dataset).strip().lower() == "folder":  # a folder is one category: its object name
        if len(wanted) > 1:
            raise EvaluationError(f"A folder dataset is one category (the object's name); got {wanted}. "
                                  "Pass one name, e.g. --categories bottle, or evaluate each folder separately.")
        wanted = wanted[0]
    ds = load_dataset(dataset, root, category=wanted, split="test")
    if len(ds) == 0:
        raise EvaluationError(f"No test images in the {dataset} dataset at {root}.")
    unlabelled = [r.path for r in ds.records if r.label not in (0, 1)]
    if unlabelled:
        raise EvaluationError(
            f"{len(unlabelled)} image(s) under {root} have no ground-truth mask, e.g. {unlabelled[:2]}; evaluation "
            "needs one per image (an all-black mask for a normal image): put it at masks/<name>.png or "
            "<name>_mask.png next to the image, or use `python -m clipsam_lite segment` for unlabelled images.")
    selection = select_indices(ds.records, ds.categories, max_images)
    if overrides is not None and not isinstance(overrides, dict):  # typos fail before any model loads
        preset = cfg if cfg is not None else get_config(models.profile if models is not None else profile)
        overrides = parse_overrides(overrides, preset)

    if models is None:
        from .models import load_models

        name = resolve_profile(profile) if profile else (cfg.profile if cfg is not None else resolve_profile(None))
        models = load_models(name, clip_checkpoint=clip_checkpoint, sam_checkpoint=sam_checkpoint)
        say(models.banner())
    elif profile and resolve_profile(profile) != models.profile:
        raise EvaluationError(f"profile {profile!r} was asked for but the given models are the "
                              f"{models.profile!r} profile's; pass matching models or no profile.")
    base = cfg if cfg is not None else models.cfg
    if base.profile != models.profile:
        raise EvaluationError(f"The Config is for profile {base.profile!r} but the models are {models.profile!r}.")
    changes = dict(overrides or {})
    changes.update({k: v for k, v in (("stages", stages), ("resolution", resolution), ("batch_size", batch_size))
                    if v is not None})
    for name in ("resolution", "batch_size"):  # also when set through overrides
        if name in changes and int(changes[name]) < 1:
            raise EvaluationError(f"{name} must be a positive integer, got {changes[name]!r}.")
    base = base.replace(**changes)

    notes: list[str] = []
    info: dict[str, Any]
    from .demo import AUX_CATEGORIES, choose_adapter

    synthetic = models.profile == "tiny" and synthetic_meta(root) is not None
    if adapter is None and synthetic and base.head == "adapter":
        say(f"[setup] tiny profile on a synthetic dataset without --adapter: using the adapter trained on the "
            f"synthetic sample's auxiliary categories {list(AUX_CATEGORIES)} (demo.synthetic_adapter; trained once, "
            "then read from the cache).")
    asked_training_free = base.head == "training_free"
    adapter_obj, base = choose_adapter(models, base, adapter, synthetic=synthetic, log=log)
    if adapter is not None and not isinstance(adapter, (str, os.PathLike)):
        info = {"source": "object", "sha256": _weights_digest(adapter),
                "training_data": adapter.meta.get("training_data"),
                "note": "an adapter object passed to evaluate(); sha256 of its weights"}
    elif adapter is not None:
        path = Path(adapter).expanduser()
        info = {"source": "file", "path": str(path.resolve()), "sha256": _file_digest(path),
                "training_data": adapter_obj.meta.get("training_data"), "note": f"adapter file {path.name}"}
    elif adapter_obj is not None:
        info = {"source": "synthetic", "sha256": _weights_digest(adapter_obj),
                "training_data": adapter_obj.meta.get("training_data"),
                "note": f"tiny profile: adapter trained on the synthetic sample's auxiliary categories "
                        f"{list(AUX_CATEGORIES)} (demo.synthetic_adapter); sha256 of its weights"}
        seen = sorted(set(ds.categories) & set(AUX_CATEGORIES))
        if seen:
            notes.append(f"categories {seen} are the synthetic adapter's training categories: not zero-shot")
    elif asked_training_free:
        info = {"source": "none", "sha256": None, "note": "training-free head (cfg.head='training_free')"}
    else:
        info = {"source": "none", "sha256": None,
                "note": "no --adapter: training-free CLIP head (train one with `train-adapter` for the APRIL-GAN head)"}
        say("[setup] no --adapter: using the training-free CLIP head (cfg.head='training_free').")
    return EvalSetup(dataset=ds, models=models, cfg=base, adapter=adapter_obj, adapter_info=info,
                     selection=selection, max_images=max_images, notes=notes)


def run_identity(setup: EvalSetup) -> dict[str, Any]:
    """Everything run-wide that can change a cached image's numbers (hashed into every entry key) [ours]."""
    import torch

    from .adapter import backbone_fingerprint

    ds, models = setup.dataset, setup.models
    return {
        "cache_format": CACHE_FORMAT, "clipsam_lite": __version__, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": models.device.type, "dataset": ds.name, "root": str(Path(ds.root).resolve()),
        "split": ds.split, "mask_rule": ds.mask_rule, "profile": models.profile,
        "random_backbones": bool(models.random_weights),
        "backbones": {"clip": backbone_fingerprint(models), "sam": _sam_fingerprint(models)},
        "config": setup.cfg.to_dict(), "adapter_sha256": setup.adapter_info.get("sha256"),
    }


# --------------------------------------------------------------------------------------------------
# Metrics and tables
# --------------------------------------------------------------------------------------------------

def _metrics(maps: list[np.ndarray], masks: list[np.ndarray], scores: np.ndarray, labels: np.ndarray,
             pixel_only: bool = False) -> dict[str, float]:
    from .metrics import image_metrics, pixel_metrics

    out = pixel_metrics(maps, masks, on_undefined="nan")
    if not pixel_only:
        out.update({f"image_{k}": v for k, v in image_metrics(scores, labels, on_undefined="nan").items()})
    return out


def _mean(rows: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """Mean over categories of each metric, skipping undefined (NaN) values; NaN if none is defined."""
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if not math.isnan(r[k])]
        out[k] = float(np.mean(vals)) if vals else math.nan
    return out


def _json_ready(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    return x


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _image_score_text(cfg: Config) -> str:
    if cfg.image_score_mode == "global":
        return "CLIP's global image embedding vs the text matrix (softmax abnormal probability)"
    return (f"{cfg.image_score_mix} x CLIP's global score + {1 - cfg.image_score_mix:g} x max of S_a "
            "(image_score_mode='global_max_mix')")


def _protocol(setup: EvalSetup) -> dict[str, Any]:
    from .metrics import AUPRO_DEFINITION

    ds, cfg, models = setup.dataset, setup.cfg, setup.models
    images = {}
    for cat, idx in setup.selection.items():
        labels = [ds.records[i].label for i in idx]
        images[cat] = {"evaluated": len(idx), "anomalous": int(sum(labels)), "normal": len(idx) - int(sum(labels)),
                       "in_dataset": sum(1 for r in ds.records if r.category == cat)}
    mask_text = {"half": "binarised at half of the maximum (0.5)", "nonzero": "binarised with != 0"}[ds.mask_rule]
    return {
        "dataset": ds.name, "root": str(Path(ds.root).resolve()), "split": ds.split,
        "categories": list(setup.selection), "images": images, "max_images_per_category": setup.max_images,
        "resolution": setup.resolution,
        "eval_resize": cfg.eval_resize,
        "resize": (f"maps and masks compared at {setup.resolution} x {setup.resolution}, {cfg.eval_resize}: "
                   f"{EVAL_RESIZE_TEXT[cfg.eval_resize]} (bilinear for maps, area then >= 0.5 for masks)"),
        "masks": f"{ds.name} masks {mask_text} when read",
        "aupro_definition": AUPRO_DEFINITION, "aupro_fpr_limit": 0.3,
        "image_score": _image_score_text(cfg),
        "profile": models.profile, "random_backbones": bool(models.random_weights),
        "device": models.device.type, "head": cfg.head, "adapter": setup.adapter_info,
        "config": cfg.to_dict(), "clipsam_lite": __version__, "notes": list(setup.notes),
    }


def protocol_lines(protocol: dict[str, Any]) -> list[str]:
    """The protocol as markdown bullet lines (the header of every results table)."""
    n = sum(v["evaluated"] for v in protocol["images"].values())
    subset = protocol.get("max_images_per_category")
    cfg = protocol["config"]
    lines = [
        f"- **Dataset**: {protocol['dataset']} ({protocol['split']} split) at `{protocol['root']}`; "
        f"categories {protocol['categories']}; {n} images"
        + (f" (a subset: at most {subset} per category, spread evenly)" if subset else "") + ".",
        f"- **Profile**: {protocol['profile']}"
        + (" - **RANDOM backbones**: these numbers show the pipeline's mechanics, not real anomaly detection."
           if protocol["random_backbones"] else " (pretrained backbones).")
        + f" Device: {protocol['device']}.",
        f"- **CLIP head**: {protocol['head']}; {protocol['adapter']['note']}.",
        f"- **Method settings**: CPS stages {cfg['stages']}, fusion `{cfg['fusion']}`, negatives "
        f"`{cfg['negative_strategy']}`, tau {cfg['tau_mode']} {cfg['tau']}, k_pos {cfg['k_pos']}, k_neg {cfg['k_neg']} "
        "(every Config field is in results.json).",
        f"- **Resolution**: {protocol['resize']}; {protocol['masks']}.",
        f"- **AUPRO**: {protocol['aupro_definition']}.",
        f"- **Image score**: {protocol['image_score']}.",
    ]
    lines += [f"- **Note**: {note}." for note in protocol.get("notes", [])]
    return lines


def _table(rows: dict[str, dict[str, Any]], keys: Sequence[str], first: str = "category") -> list[str]:
    lines = [f"| {first} | " + " | ".join(_HEADERS.get(k, k) for k in keys) + " |",
             "|---" + "|---:" * len(keys) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_pct(r.get(k)) for k in keys) + " |")
    return lines


def _csv_text(rows: dict[str, dict[str, Any]], keys: Sequence[str], first: str, extra: Sequence[str] = ()) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([first, *extra, *keys])
    for name, r in rows.items():
        w.writerow([name, *[("" if r.get(k) is None else r.get(k)) for k in extra],
                    *[("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k])) else repr(r[k]))
                      for k in keys]])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the results (``results.json``'s content) and how the run went."""

    results: dict[str, Any]
    out: Path
    written: list[Path]
    computed: dict[str, int]
    """Per category: images whose entry this run wrote."""
    cached: dict[str, int]
    """Per category: images read from the cache."""
    recomputed: dict[str, int]
    """Per category: cached images forwarded again because their batch had a missing entry."""
    entries: dict[str, list[Path]]
    """Per category: the cache folder of each evaluated image, in order."""
    seconds: float = 0.0


@contextlib.contextmanager
def _deterministic_torch() -> Iterator[None]:
    """cuDNN in deterministic mode, no autotuning, for the duration (restored after) [ours]."""
    import torch

    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i:i + size]) for i in range(0, len(indices), max(1, size))]


def _fill_category(setup: EvalSetup, category: str, cache: Path, identity: dict[str, Any], progress: bool,
                   log: Callable[[str], None] | None = None) -> tuple[list[Path], int, int, int]:
    """Compute and cache every missing entry of one category; returns (entry folders, computed, cached, recomputed)."""
    from tqdm.auto import tqdm

    from .clip_maps import object_name_for
    from .pipeline import segment_batch

    ds, cfg = setup.dataset, setup.cfg
    folders: list[Path] = []
    computed = cached = recomputed = 0
    with tqdm(total=len(setup.selection[category]), desc=f"evaluate {category}", unit="img", disable=not progress,
              leave=False) as bar:
        for chunk in _chunks(setup.selection[category], cfg.batch_size):
            records = [ds.records[i] for i in chunk]
            keys = [entry_key(identity, r, [q.path for q in records]) for r in records]
            folders += [cache / k for k in keys]
            missing = [not usable_entry(cache, k, log) for k in keys]  # damaged entries: warned, removed
            if not any(missing):
                cached += len(records)
                bar.update(len(records))
                continue
            items = [ds.read(r) for r in records]
            results = segment_batch([it.image for it in items], [object_name_for(it.category) for it in items],
                                    setup.models, cfg, adapter=setup.adapter)
            for rec, key, miss, res in zip(records, keys, missing, results, strict=True):
                if miss:
                    _write_entry(cache, key, rec, res, setup.resolution, setup.cfg.eval_resize)
                    computed += 1
                else:
                    cached += 1
                    recomputed += 1
                bar.update(1)
    return folders, computed, cached, recomputed


def _score_category(setup: EvalSetup, category: str, folders: list[Path], world: bool = False
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics of the final map, pixel metrics of S_a alone) for one category, from its cache entries.

    On a world dataset (``world``) both also get the region-restricted AUROC (:mod:`clipsam_lite.world_eval`).
    """
    ds = setup.dataset
    records = [ds.records[i] for i in setup.selection[category]]
    entries = [load_entry(f) for f in folders]
    masks = [eval_mask(r, ds.mask_rule, setup.resolution, setup.cfg.eval_resize) for r in records]
    scores = np.array([e.image_score for e in entries], dtype=np.float64)
    labels = np.array([r.label for r in records], dtype=np.int64)
    final = _metrics([e.final_map for e in entries], masks, scores, labels)
    clip = _metrics([e.s_a for e in entries], masks, scores, labels, pixel_only=True)
    if world:
        from .world_eval import REGION_KEY, eval_region, region_score

        regions = [eval_region(r, setup.resolution) for r in records]
        final[REGION_KEY] = region_score([e.final_map for e in entries], masks, regions)
        clip[REGION_KEY] = region_score([e.s_a for e in entries], masks, regions)
    return final, clip


def evaluate(dataset: str, root: str | os.PathLike[str], out: str | os.PathLike[str], *,
             profile: str | None = None, categories: Sequence[str] | None = None,
             adapter: str | os.PathLike[str] | Adapter | None = None, stages: int | None = None,
             resolution: int | None = None, batch_size: int | None = None, max_images: int | None = None,
             fresh: bool = False, models: Models | None = None, cfg: Config | None = None,
             clip_checkpoint: str | None = None, sam_checkpoint: str | None = None,
             overrides: Sequence[str] | dict[str, Any] | None = None, progress: bool = True,
             log: Callable[[str], None] | None = print) -> Evaluation:
    """Evaluate the method on a dataset's test split; write ``results.json``, ``results.csv``, ``results.md`` [ours].

    Arguments as the ``evaluate`` command (see :func:`prepare` for the adapter choice); ``max_images``
    evaluates at most that many images per category (spread evenly, both classes kept); ``models`` /
    ``cfg`` reuse loaded models or a custom Config. Per-image results go to ``out/cache/`` as they
    are made (see the module docstring); an interrupted run resumes where it stopped.
    """
    say = log or (lambda _s: None)
    t0 = time.perf_counter()
    out = Path(out).expanduser()
    setup = prepare(dataset, root, profile=profile, categories=categories, adapter=adapter, stages=stages,
                    resolution=resolution, batch_size=batch_size, max_images=max_images, models=models, cfg=cfg,
                    clip_checkpoint=clip_checkpoint, sam_checkpoint=sam_checkpoint, overrides=overrides, log=log)
    cache = _open_cache(out, fresh)
    recover_published(out)  # a set of results a kill left half-published is completed first
    identity = run_identity(setup)
    from .world_eval import is_world_root, prior_section, with_region_key

    world = is_world_root(setup.dataset.root)
    per_cat: dict[str, dict[str, float]] = {}
    per_cat_clip: dict[str, dict[str, float]] = {}
    computed, cached, recomputed, entries = {}, {}, {}, {}
    with _deterministic_torch():
        for cat in setup.selection:
            folders, n_new, n_old, n_re = _fill_category(setup, cat, cache, identity, progress, log)
            computed[cat], cached[cat], recomputed[cat], entries[cat] = n_new, n_old, n_re, folders
            per_cat[cat], per_cat_clip[cat] = _score_category(setup, cat, folders, world)
            extra = f" (+{n_re} cached image(s) forwarded again to keep their batch identical)" if n_re else ""
            say(f"[evaluate] {cat}: {len(folders)} images, {n_old} from cache, {n_new} computed{extra}; "
                f"pixel AUROC {_pct(per_cat[cat]['pixel_auroc'])}, pixel AUPRO {_pct(per_cat[cat]['pixel_aupro'])}, "
                f"image AUROC {_pct(per_cat[cat]['image_auroc'])}")
    results = {
        "protocol": _protocol(setup),
        "categories": per_cat,
        "mean": _mean(list(per_cat.values()), with_region_key(METRIC_KEYS, list(per_cat.values()))),
        "clip_map_only": {"description": "the same metrics of S_a alone (stage 0, no SAM) on the same images",
                          "categories": per_cat_clip,
                          "mean": _mean(list(per_cat_clip.values()), with_region_key(PIXEL_KEYS, list(per_cat_clip.values())))},
    }
    if world:  # issue 13: the prior-map baseline row beside every table on the miniature world
        with _deterministic_torch():
            prior = prior_section(setup)
        prior["mean"] = _mean(list(prior["categories"].values()), with_region_key(PIXEL_KEYS, list(prior["categories"].values())))
        results["prior_map"] = prior
    written = _write_results(results, out)
    seconds = time.perf_counter() - t0
    say("")
    say("\n".join(_results_md(results).splitlines()[2:]))
    say(f"[evaluate] wrote {', '.join(p.name for p in written)} to {out} "
        f"({sum(computed.values())} images computed, {sum(cached.values())} from cache, {seconds:.1f}s)")
    return Evaluation(results=results, out=out, written=written, computed=computed, cached=cached,
                      recomputed=recomputed, entries=entries, seconds=seconds)


def _results_md(results: dict[str, Any]) -> str:
    from .world_eval import with_region_key

    rows = {**results["categories"], "**mean**": results["mean"]}
    clip_rows = {**results["clip_map_only"]["categories"], "**mean**": results["clip_map_only"]["mean"]}
    lines = ["# Evaluation results", "", "Protocol:", *protocol_lines(results["protocol"]), "",
             "Final map (values in %):", "", *_table(rows, with_region_key(METRIC_KEYS, list(rows.values()))), "",
             "CLIP map `S_a` alone (stage 0, no SAM) on the same images, for reference (%):", "",
             *_table(clip_rows, with_region_key(PIXEL_KEYS, list(clip_rows.values()))), ""]
    prior = results.get("prior_map")
    if prior:
        prior_rows = {**prior["categories"], "**mean**": prior["mean"]}
        lines += [f"Baseline, {prior['description']} (%); region AUROC = AUROC over the pixels where a defect can "
                  "occur. A head is useful only where it beats this row:", "",
                  *_table(prior_rows, with_region_key(PIXEL_KEYS, list(prior_rows.values()))), ""]
    return "\n".join(lines)


def _csv_keys(results: dict[str, Any]) -> list[str]:
    from .world_eval import with_region_key

    return with_region_key(METRIC_KEYS, [results["mean"], *results["categories"].values()])


def _write_results(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, .csv and .md, published as one set (:func:`clipsam_lite.safe_io.publish_together`)."""
    from .safe_io import publish_together

    return publish_together({
        out / "results.json": json.dumps(_json_ready(results), indent=2, allow_nan=False) + "\n",
        out / "results.csv": _csv_text({**results["categories"], "mean": results["mean"]},
                                       _csv_keys(results), "category"),
        out / "results.md": _results_md(results),
    })


# --------------------------------------------------------------------------------------------------
# Published numbers (METHOD.md, "Numbers to compare against")
# --------------------------------------------------------------------------------------------------

PUBLISHED_COLUMNS: tuple[str, ...] = ("pixel AUROC", "pixel F1-max", "pixel AP", "PRO")
"""Column order of METHOD.md's table (pixel AUROC / F1-max / AP / PRO, in %)."""

PUBLISHED: dict[str, dict[str, str]] = {
    "WinCLIP (training-free, re-evaluated)": {"MVTec-AD": "82.3 / 24.8 / 18.2 / 62.0",
                                              "VisA": "73.2 / 9.0 / 5.4 / 51.1"},
    "APRIL-GAN (adapter trained on the other dataset)": {"MVTec-AD": "87.5 / 42.3 / 39.1 / 43.7",
                                                         "VisA": "93.8 / 32.6 / 26.2 / 86.5"},
    "AnomalyCLIP": {"MVTec-AD": "91.0 / 38.9 / 34.4 / 81.7", "VisA": "95.4 / 27.6 / 20.7 / 86.4"},
    "AdaCLIP": {"MVTec-AD": "88.5 / 43.9 / 41.0 / 47.6", "VisA": "95.1 / 33.8 / 29.2 / 71.3"},
    "SAA+ (GroundingDINO + SAM)": {"MVTec-AD": "F1-max 39.4", "VisA": "F1-max 27.1"},
    "this paper": {"MVTec-AD": '"state of the art"', "VisA": "prior best + 10.3 F1-max, + 7.7 AP; AUROC slightly lower"},
}
"""The published zero-shot numbers METHOD.md lists, copied verbatim (pixel AUROC / F1-max / AP / PRO, %)."""

PUBLISHED_PROTOCOL = ("as published by each paper: peer numbers differ in resolution and AUPRO definition "
                      "(METHOD.md); not re-run here")


def comparison_markdown(results: dict[str, Any] | None = None, label: str = "clipsam-lite (this run)") -> str:
    """METHOD.md's published numbers beside ours, each row with its protocol, as a markdown table [ours].

    ``results``: an :func:`evaluate` results dict (``results.json``); its mean pixel AUROC / F1-max /
    AP / AUPRO is added as one row, on its own dataset, with its protocol (profile, random backbones,
    resolution, AUPRO definition).
    """
    lines = ["| method | dataset | pixel AUROC / F1-max / AP / PRO (%) | protocol |", "|---|---|---|---|"]
    for method, by_dataset in PUBLISHED.items():
        for dataset, numbers in by_dataset.items():
            lines.append(f"| {method} | {dataset} | {numbers} | {PUBLISHED_PROTOCOL} |")
    if results is not None:
        p, m = results["protocol"], results["mean"]
        numbers = " / ".join(_pct(m[k]) for k in ("pixel_auroc", "pixel_f1_max", "pixel_ap", "pixel_aupro"))
        synthetic = synthetic_meta(p["root"]) is not None
        dataset = f"{'synthetic ' if synthetic else ''}{p['dataset']} ({', '.join(p['categories'])})"
        n = sum(v["evaluated"] for v in p["images"].values())
        protocol = (f"profile {p['profile']}{' (RANDOM backbones: mechanics only, not comparable)' if p['random_backbones'] else ''}; "
                    f"head {p['head']}; {n} images at {p['resolution']} x {p['resolution']} "
                    f"({p.get('eval_resize', 'crop')}); "
                    "AUPRO: MVTec AD reference definition (integrated to FPR 0.3, divided by 0.3)")
        lines.append(f"| {label} | {dataset} | {numbers} | {protocol} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Command-line entry points (called by __main__)
# --------------------------------------------------------------------------------------------------

def evaluate_command(args: Any) -> int:
    """``python -m clipsam_lite evaluate``."""
    evaluate(args.dataset, args.root, args.out, profile=args.profile, categories=args.categories,
             adapter=args.adapter, stages=args.stages, resolution=args.resolution, batch_size=args.batch_size,
             max_images=args.max_images, fresh=args.fresh, clip_checkpoint=args.clip_checkpoint,
             sam_checkpoint=args.sam_checkpoint, overrides=args.set)
    return 0
