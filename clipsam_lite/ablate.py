"""The ablation grid of METHOD.md: negative strategy x CPS stages x fusion, plus stage 0 (``S_a`` alone).

Taught in notebook 07 (section 5, "The ablation grid from one CLIP pass and one SAM encoder pass
per image"); METHOD.md steps 3-5 (the alternatives they list, switched one at a time) under its
"Evaluation protocol". Everything here is **[ours]**: the grid is the paper's, the way it is run is not.

:func:`ablate` runs the grid of METHOD.md: negative strategy x CPS stages x fusion, plus stage 0
(the CLIP map ``S_a`` alone, one row). Each image's CLIP map and SAM embedding are computed once
(one CLIP pass and at most one SAM encoder pass per image for the whole grid); the decoder
cascade runs once per strategy with the most stages asked for, the shorter cascades are its prefixes,
and the five fusions are read from each prefix's mask and logits.
Category by category, so memory stays bounded by the largest category.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import FUSIONS, NEGATIVE_STRATEGIES, Config
from .eval_cache import EvaluationError, eval_map, eval_mask
from .evaluate import (
    PIXEL_KEYS,
    EvalSetup,
    _chunks,
    _csv_text,
    _deterministic_torch,
    _json_ready,
    _mean,
    _metrics,
    _protocol,
    _table,
    prepare,
    protocol_lines,
)

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import Adapter
    from .models import Models
    from .sam_features import SamEmbedding

__all__ = ["Setting", "Ablation", "grid_settings", "ablate", "ablate_command"]


@dataclass(frozen=True)
class Setting:
    """One row of the ablation grid; ``stages == 0`` is the CLIP map alone (no strategy, no fusion)."""

    negative_strategy: str | None
    stages: int
    fusion: str | None

    @property
    def name(self) -> str:
        if self.stages == 0:
            return "stage 0 (S_a alone)"
        return f"{self.negative_strategy} / {self.stages} stage{'s' if self.stages > 1 else ''} / {self.fusion}"


def grid_settings(strategies: Sequence[str] = NEGATIVE_STRATEGIES, stages: Sequence[int] = (1, 2, 3),
                  fusions: Sequence[str] = FUSIONS) -> list[Setting]:
    """Stage 0 first, then every (negative strategy, stages, fusion) of METHOD.md's grid [ours]."""
    for s in strategies:
        if s not in NEGATIVE_STRATEGIES:
            raise EvaluationError(f"Unknown negative strategy {s!r}; choose from {list(NEGATIVE_STRATEGIES)}.")
    for f in fusions:
        if f not in FUSIONS:
            raise EvaluationError(f"Unknown fusion {f!r}; choose from {list(FUSIONS)}.")
    for n in stages:
        if n not in (1, 2, 3):
            raise EvaluationError(f"CPS stages are 1, 2 or 3 in the grid (stage 0 is always included), got {n!r}.")
    return [Setting(None, 0, None)] + [Setting(s, n, f) for s in strategies for n in stages for f in fusions]


@dataclass
class _Encoded:
    """One image's expensive parts, computed once for the whole grid."""

    s_a: np.ndarray
    image_score: float
    object_name: str
    embedding: SamEmbedding | None
    mask: np.ndarray
    label: int


@dataclass
class Ablation:
    """What :func:`ablate` returns: the table (``ablation.json``'s content) and the pass counts."""

    table: dict[str, Any]
    out: Path
    written: list[Path]
    clip_images: int
    """Images that went through CLIP's visual tower (one per evaluated image)."""
    sam_encoder_images: int
    """Images that went through SAM's image encoder (at most one per image; none when M_apa is empty)."""
    seconds: float = 0.0


class _ClipImageCounter:
    """Counts images through CLIP's visual tower (a hook on its patch-embedding convolution)."""

    def __init__(self, models: Models) -> None:
        self.images = 0
        self._handle = models.clip.visual.conv1.register_forward_hook(self._hook)

    def _hook(self, module: Any, inputs: tuple, output: Any) -> None:
        self.images += int(inputs[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


def _encode_category(setup: EvalSetup, category: str, progress: bool) -> list[_Encoded]:
    """CLIP maps and SAM embeddings of one category, in the same fixed batches as :func:`evaluate`."""
    from tqdm.auto import tqdm

    from .clip_maps import anomaly_maps, object_name_for
    from .pipeline import needs_sam
    from .sam_features import embed_images

    ds, cfg = setup.dataset, setup.cfg
    out: list[_Encoded] = []
    with tqdm(total=len(setup.selection[category]), desc=f"encode {category}", unit="img", disable=not progress,
              leave=False) as bar:
        for chunk in _chunks(setup.selection[category], cfg.batch_size):
            records = [ds.records[i] for i in chunk]
            items = [ds.read(r) for r in records]
            names = [object_name_for(it.category) for it in items]
            clip = anomaly_maps(setup.models, [it.image for it in items], names, cfg, adapter=setup.adapter)
            need = [i for i, s_a in enumerate(clip.maps) if needs_sam(s_a, cfg, setup.models)[1]]
            embs = embed_images(setup.models.sam, [items[i].image for i in need], batch_size=cfg.sam_batch_size,
                                precision=cfg.precision)
            by_index = dict(zip(need, embs, strict=True))
            for i, rec in enumerate(records):
                out.append(_Encoded(s_a=clip.maps[i], image_score=float(clip.image_scores[i]), object_name=names[i],
                                    embedding=by_index.get(i), mask=eval_mask(rec, ds.mask_rule, setup.resolution, cfg.eval_resize),
                                    label=int(rec.label)))
            bar.update(len(records))
    return out


def _grid_maps(setup: EvalSetup, enc: list[_Encoded], settings: list[Setting], progress: bool
               ) -> Iterator[tuple[Setting, list[np.ndarray]]]:
    """Yield (setting, final maps at the evaluation resolution).

    One cascade run per (negative strategy, image), with the most stages any setting of that strategy
    asks for: the 1- and 2-stage results are its prefixes (a stage never depends on the stages after it,
    so they equal separate runs exactly) [ours, issue 11.12].
    """
    from tqdm.auto import tqdm

    from .cps import fuse
    from .pipeline import final_mask_and_logits, finish_from_maps
    from .ppg import length_scale

    res, mode = setup.resolution, setup.cfg.eval_resize
    groups: dict[str, dict[int, list[Setting]]] = {}
    for s in settings:
        if s.stages == 0:
            yield s, [eval_map(e.s_a, res, mode) for e in enc]
        else:
            groups.setdefault(s.negative_strategy, {}).setdefault(s.stages, []).append(s)
    for strategy, by_stages in tqdm(groups.items(), desc="grid", unit="strategy", disable=not progress, leave=False):
        cfg = setup.cfg.replace(negative_strategy=strategy, stages=max(by_stages))
        maps: dict[tuple[int, str], list[np.ndarray]] = {(n, s.fusion): [] for n, ms in by_stages.items() for s in ms}
        for e in enc:
            r = finish_from_maps(e.s_a, e.image_score, e.object_name, e.embedding, setup.models, cfg)
            scale = length_scale(cfg, e.s_a.shape[:2], e.s_a.shape[:2])
            for n, members in by_stages.items():
                mask, logits = final_mask_and_logits([c.prefix(n) for c in r.cascades], r.size)
                for s in members:
                    maps[(n, s.fusion)].append(eval_map(fuse(e.s_a, mask, logits, cfg.replace(fusion=s.fusion), scale),
                                                        res, mode))
        for n, members in by_stages.items():
            for s in members:
                yield s, maps.pop((n, s.fusion))


def ablate(dataset: str, root: str | os.PathLike[str], out: str | os.PathLike[str], *,
           profile: str | None = None, categories: Sequence[str] | None = None,
           adapter: str | os.PathLike[str] | Adapter | None = None, resolution: int | None = None,
           batch_size: int | None = None, max_images: int | None = None, models: Models | None = None,
           cfg: Config | None = None, strategies: Sequence[str] = NEGATIVE_STRATEGIES,
           stages: Sequence[int] = (1, 2, 3), fusions: Sequence[str] = FUSIONS,
           clip_checkpoint: str | None = None, sam_checkpoint: str | None = None,
           overrides: Sequence[str] | dict[str, Any] | None = None, progress: bool = True,
           log: Callable[[str], None] | None = print) -> Ablation:
    """The ablation grid of METHOD.md on a dataset; writes ``ablation.json``, ``ablation.csv``, ``ablation.md`` [ours].

    Rows: stage 0 (``S_a`` alone), then negative strategy x stages x fusion (4 x 3 x 5 = 60 by
    default). Columns: the mean over categories of the four pixel metrics and of image AUROC (the
    image score comes from CLIP, so it is the same in every row). Per image, CLIP runs once and SAM's
    encoder at most once for the whole grid; ``Ablation.clip_images`` / ``sam_encoder_images``
    count them with forward hooks. Not cached: a rerun recomputes.
    """
    from .metrics import image_metrics
    from .sam_features import EncoderCounter

    say = log or (lambda _s: None)
    t0 = time.perf_counter()
    out = Path(out).expanduser()
    settings = grid_settings(strategies, stages, fusions)
    setup = prepare(dataset, root, profile=profile, categories=categories, adapter=adapter, stages=None,
                    resolution=resolution, batch_size=batch_size, max_images=max_images, models=models, cfg=cfg,
                    clip_checkpoint=clip_checkpoint, sam_checkpoint=sam_checkpoint, overrides=overrides, log=log)
    keys = (*PIXEL_KEYS, "image_auroc")
    per_setting: dict[str, dict[str, dict[str, float]]] = {s.name: {} for s in settings}
    clip_counter = _ClipImageCounter(setup.models)
    sam_counter = EncoderCounter(setup.models.sam)
    try:
        with _deterministic_torch(), sam_counter:
            for cat in setup.selection:
                enc = _encode_category(setup, cat, progress)
                scores = np.array([e.image_score for e in enc], dtype=np.float64)
                labels = np.array([e.label for e in enc], dtype=np.int64)
                image_auroc = image_metrics(scores, labels, on_undefined="nan")["auroc"]
                masks = [e.mask for e in enc]
                for s, maps in _grid_maps(setup, enc, settings, progress):
                    per_setting[s.name][cat] = {**_metrics(maps, masks, scores, labels, pixel_only=True),
                                                "image_auroc": image_auroc}
                say(f"[ablate] {cat}: {len(enc)} images, {len(settings)} settings")
                del enc
    finally:
        clip_counter.close()
    rows = []
    for s in settings:
        mean = _mean(list(per_setting[s.name].values()), keys)
        rows.append({"setting": s.name, "negative_strategy": s.negative_strategy, "stages": s.stages,
                     "fusion": s.fusion, **mean, "categories": per_setting[s.name]})
    protocol = _protocol(setup)
    protocol["grid"] = {"negative_strategies": list(strategies), "stages": [0, *stages], "fusions": list(fusions),
                        "other_config": "as in protocol.config (its stages / fusion / negative_strategy are "
                                        "replaced per row)"}
    table = {"protocol": protocol, "rows": rows,
             "counts": {"images": sum(len(v) for v in setup.selection.values()), "clip_images": clip_counter.images,
                        "sam_encoder_images": sam_counter.images, "sam_encoder_calls": sam_counter.calls}}
    written = _write_ablation(table, out, keys)
    seconds = time.perf_counter() - t0
    say("")
    say("\n".join(_ablation_md(table, keys).splitlines()[2:]))
    say(f"[ablate] wrote {', '.join(p.name for p in written)} to {out} ({len(settings)} settings; CLIP saw "
        f"{clip_counter.images} images, SAM's encoder {sam_counter.images}; {seconds:.1f}s)")
    return Ablation(table=table, out=out, written=written, clip_images=clip_counter.images,
                    sam_encoder_images=sam_counter.images, seconds=seconds)


def _ablation_md(table: dict[str, Any], keys: Sequence[str]) -> str:
    rows = {r["setting"]: r for r in table["rows"]}
    c = table["counts"]
    lines = ["# Ablation", "", "Protocol:", *protocol_lines(table["protocol"]),
             "- **Grid**: rows are negative strategy / CPS stages / fusion; the other Config fields are as above. "
             "Stage 0 is the CLIP map alone. Values are means over categories, in %. The image score comes from "
             "CLIP, so image AUROC is the same in every row.",
             f"- **Passes**: {c['images']} images; CLIP's visual tower saw {c['clip_images']}, SAM's image encoder "
             f"{c['sam_encoder_images']} (once per image whose M_apa is not empty), for all {len(rows)} rows.",
             "", *_table(rows, keys, first="setting"), ""]
    return "\n".join(lines)


def _write_ablation(table: dict[str, Any], out: Path, keys: Sequence[str]) -> list[Path]:
    """ablation.json, .csv and .md, published as one set (:func:`clipsam_lite.safe_io.publish_together`)."""
    from .safe_io import publish_together

    rows = {r["setting"]: r for r in table["rows"]}
    return publish_together({
        out / "ablation.json": json.dumps(_json_ready(table), indent=2, allow_nan=False) + "\n",
        out / "ablation.csv": _csv_text(rows, keys, "setting", extra=("negative_strategy", "stages", "fusion")),
        out / "ablation.md": _ablation_md(table, keys),
    })




def ablate_command(args: Any) -> int:
    """``python -m clipsam_lite ablate``."""
    ablate(args.dataset, args.root, args.out, profile=args.profile, categories=args.categories,
           adapter=args.adapter, resolution=args.resolution, batch_size=args.batch_size,
           max_images=args.max_images, clip_checkpoint=args.clip_checkpoint, sam_checkpoint=args.sam_checkpoint,
           overrides=args.set)
    return 0
