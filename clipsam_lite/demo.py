"""The embedded default: the synthetic sample, its auxiliary/held-out split, and the demo run.

Taught in notebook 00 (section 6, "The auxiliary / held-out split on synthetic data"); METHOD.md,
"Task" (the zero-shot convention).

Zero-shot in this field means the adapter is trained on an *auxiliary* dataset and tested on
categories it never saw (METHOD.md, "Task"). The synthetic sample mirrors that: the adapter learns
on :data:`AUX_CATEGORIES` and the demo, tests and notebooks evaluate on :data:`HELD_OUT_CATEGORIES`.
In the tiny profile the backbones are random, so the sample uses ``signature`` defects (one hue no
normal surface has): the only thing a random backbone can carry to unseen categories. It proves the
geometry of the pipeline, not zero-shot skill [ours].

The ``mini`` profile (the default demo offline) runs on the miniature world instead (issue 13): the
adapter is trained on the world's auxiliary categories (:data:`clipsam_lite.synthetic.AUX_CATEGORIES`,
:func:`world_demo_adapter`), the method runs on its held-out categories
(:func:`clipsam_lite.synthetic.world_writer.world_demo_root`), and the table adds the region-restricted
AUROC and the prior-map baseline row (:mod:`clipsam_lite.world_eval`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config

__all__ = ["AUX_CATEGORIES", "HELD_OUT_CATEGORIES", "synthetic_adapter", "world_demo_adapter", "choose_adapter",
           "choose_demo_profile", "run_demo",
           "score_results"]

AUX_CATEGORIES: tuple[str, ...] = ("weave", "grain")
"""Synthetic categories the adapter is trained on: the two textures, the widest range of surface colours.

With a random backbone the split matters (measured pixel AUROC on the held-out pair, tiny seed 0:
weave+grain -> 0.969, disc+weave -> 0.713): the adapter can only carry "the signature hue is an
anomaly" to surfaces whose colours resemble those it was trained on [ours]."""
HELD_OUT_CATEGORIES: tuple[str, ...] = ("disc", "tablet")
"""Synthetic categories it never sees: where maps and metrics are shown."""


_TRAINING_FIELDS = ("adapter_", "clip_", "focal", "dice", "logit", "seed")


def _cached_adapter(models: Any, cfg: Config, kind: str, inputs: dict[str, Any], train: Callable[[], Any]) -> Any:
    """Load the adapter cached under (backbone fingerprint, ``inputs``, ``cfg``'s training fields), or
    ``train()`` it and cache it atomically; a stale or broken entry is retrained and overwritten. [ours]"""
    from .adapter import backbone_fingerprint, load_adapter, save_adapter
    from .paths import writable_cache_dir

    key = json.dumps({"backbone": backbone_fingerprint(models), **inputs,
                      "cfg": {k: v for k, v in cfg.to_dict().items() if k.startswith(_TRAINING_FIELDS)}},
                     sort_keys=True)
    path = writable_cache_dir() / "adapters" / f"{kind}-{cfg.profile}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if path.is_file():
        try:
            return load_adapter(path, models, cfg)
        except Exception:  # a stale or broken cache entry: retrain and overwrite it
            path.unlink(missing_ok=True)
    adapter = train()
    save_adapter(adapter, path)  # atomic: a full disk or Ctrl-C leaves no partial entry and no *.tmp
    return adapter


def synthetic_adapter(models: Any, cfg: Config | None = None, epochs: int | None = None,
                      log: Callable[[str], None] | None = print, progress: bool = False) -> Any:
    """The adapter trained on the synthetic sample's auxiliary categories, cached on disk by its inputs.

    The cache key holds the backbone's weight fingerprint, every training field of ``cfg`` and the
    sample's folder name (which encodes the generator version), so a changed input retrains.
    """
    from .adapter import train_adapter
    from .datasets import load_dataset
    from .synthetic import sample_root

    cfg = cfg or models.cfg
    root = sample_root(signature=cfg.profile == "tiny")
    epochs = cfg.adapter_epochs if epochs is None else epochs

    def train() -> Any:
        aux = load_dataset("mvtec", root, category=list(AUX_CATEGORIES), split="test")
        return train_adapter(models, aux, cfg, epochs=epochs, progress=progress, log=log,
                             description=f"synthetic sample {root.name}, auxiliary categories {list(AUX_CATEGORIES)}")[0]

    return _cached_adapter(models, cfg, "synthetic",
                           {"sample": root.name, "epochs": epochs, "categories": list(AUX_CATEGORIES)}, train)


WORLD_ADAPTER_IMAGES = 16
"""Rendered training images per world auxiliary category for the demo's adapter (1-4 defects each). [ours]"""


def world_demo_adapter(models: Any, cfg: Config | None = None, log: Callable[[str], None] | None = print) -> Any:
    """The adapter trained on the miniature world's auxiliary categories (fold 0), cached on disk by its inputs.

    Never trained on a held-out category (:data:`clipsam_lite.synthetic.HELDOUT_CATEGORIES`); the cache key
    holds the backbone's weight fingerprint, the training fields of ``cfg`` and the world's version.
    """
    from .synthetic import AUX_CATEGORIES as WORLD_AUX
    from .synthetic.world_writer import WORLD_VERSION
    from .world_course import world_adapter

    cfg = (cfg or models.cfg).replace(head="adapter")
    inputs = {"world": WORLD_VERSION, "aux": list(WORLD_AUX), "n": WORLD_ADAPTER_IMAGES, "epochs": cfg.adapter_epochs}
    return _cached_adapter(models, cfg, "world", inputs, lambda: world_adapter(
        models, cfg, fold=0, n_per_category=WORLD_ADAPTER_IMAGES, epochs=cfg.adapter_epochs,
        size=cfg.clip_image_size, log=log))


def choose_adapter(models: Any, cfg: Config, adapter: Any | None = None, synthetic: bool = False,
                   log: Callable[[str], None] | None = print) -> tuple[Any | None, Config]:
    """The CLIP head every command uses: ``(adapter or None, cfg with head set to match)`` [ours].

    An ``Adapter`` object is checked against the backbone; a path is loaded (and checked); with
    neither and ``cfg.head == "adapter"`` on synthetic data (``synthetic=True``), the tiny profile gets
    :func:`synthetic_adapter` and the mini profile :func:`world_demo_adapter` (trained on the world's
    auxiliary categories); everything else falls back to the training-free head.
    """
    import os

    if adapter is not None and not isinstance(adapter, (str, os.PathLike)):
        adapter.check_compatible(models, cfg)
        return adapter, cfg.replace(head="adapter")
    if adapter is not None:
        from .adapter import load_adapter

        return load_adapter(adapter, models, cfg), cfg.replace(head="adapter")
    if cfg.head == "adapter" and models.profile == "tiny" and synthetic:
        return synthetic_adapter(models, cfg, log=log), cfg
    if cfg.head == "adapter" and models.profile == "mini" and synthetic:
        return world_demo_adapter(models, cfg, log=log), cfg
    return None, _training_free(cfg.replace(head="training_free"), log)


_WARNED_TRAINING_FREE: set[str] = set()


def _training_free(cfg: Config, log: Callable[[str], None] | None) -> Config:
    """A real profile without an adapter: say so once per process, loudly, and apply
    ``config.training_free_settings`` (value-value attention, Otsu tau) unless ``training_free_tuning`` is off."""
    from .config import TRAINING_FREE_SETTINGS, training_free_settings

    if cfg.profile not in TRAINING_FREE_SETTINGS:
        return cfg
    tuned = training_free_settings(cfg)
    if log is not None and cfg.profile not in _WARNED_TRAINING_FREE:
        _WARNED_TRAINING_FREE.add(cfg.profile)
        what = (", ".join(f"{k}={v}" for k, v in TRAINING_FREE_SETTINGS[cfg.profile].items())
                if cfg.training_free_tuning else "the Config as given (training_free_tuning=false)")
        log(f"*** NO ADAPTER (profile {cfg.profile!r}): the training-free CLIP head on raw patch tokens gives poor or "
            f"inverted anomaly maps, and tau=0.5 is not calibrated for it. Using {what}. For real results train "
            f"an adapter on the other dataset (`train-adapter`) and pass --adapter. ***")
    return tuned


def choose_demo_profile(profile: str | None, offline: str = "mini") -> str:
    """The profile asked for (argument or $CLIPSAM_PROFILE), else ``base`` when its weights are cached, else ``offline``.

    ``offline`` is ``mini``, which needs nothing from the network (mini-CLIP and mini-SAM ship in the
    package); ``tiny`` (random backbones) runs when asked for.
    """
    import os

    from .config import PROFILE_ENV, resolve_profile
    from .models import real_weights_cached

    if profile or os.environ.get(PROFILE_ENV):
        return resolve_profile(profile)
    return "base" if real_weights_cached("base") else offline


PRIOR_ROW = "prior map (baseline)"


def score_results(results: list[Any], masks: list[np.ndarray], labels: list[int],
                  regions: list[np.ndarray] | None = None, priors: list[np.ndarray] | None = None
                  ) -> dict[str, dict[str, float]]:
    """Pixel metrics of ``S_a`` alone (stage 0) and of the final map on the same images, and image metrics.

    On the miniature world, ``regions`` adds the region-restricted AUROC to every map's row and
    ``priors`` (one prior map per image, :func:`clipsam_lite.prior.prior_maps_for`) adds the prior row.
    """
    from .metrics import image_metrics, pixel_metrics
    from .world_eval import REGION_KEY, region_score

    maps = {"CLIP map S_a (stage 0)": [r.s_a for r in results], "final map (CPS)": [r.final_map for r in results]}
    if priors is not None:
        maps[PRIOR_ROW] = list(priors)
    rows: dict[str, dict[str, float]] = {}
    for name, m in maps.items():
        rows[name] = pixel_metrics(m, masks)
        if regions is not None:
            rows[name][REGION_KEY] = region_score(m, masks, regions)
    rows["image score"] = image_metrics(np.array([r.image_score for r in results]), np.array(labels))
    return rows


def _table(rows: dict[str, dict[str, float]]) -> str:
    from .world_eval import with_region_key

    cols = with_region_key(["pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro"],
                           [r for n, r in rows.items() if n != "image score"])
    lines = ["| map | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        if name != "image score":
            lines.append(f"| {name} | " + " | ".join(f"{100 * r[c]:.1f}" for c in cols) + " |")
    im = rows["image score"]
    lines.append("")
    lines.append("image level: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in im.items()))
    return "\n".join(lines)


def run_demo(profile: str | None, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The README's main job: the method on the held-out synthetic categories, figures and a metrics table."""
    from .clip_maps import anomaly_maps, object_name_for
    from .datasets import load_dataset
    from .metrics import AUPRO_DEFINITION
    from .models import load_models
    from .panels import offline_caption, save_figure
    from .pipeline import segment_batch
    from .prior import prior_maps_for
    from .synthetic import AUX_CATEGORIES as AUX_WORLD
    from .synthetic import HELDOUT_CATEGORIES as HELDOUT_WORLD
    from .synthetic import sample_root
    from .synthetic.world_writer import world_demo_root, world_region_mask
    from .viz import result_figure

    name = choose_demo_profile(profile)
    models = load_models(name)
    log(models.banner())
    world = name == "mini"
    held_out = list(HELDOUT_WORLD if world else HELD_OUT_CATEGORIES)
    if name == "tiny":
        log(f"[demo] training the adapter on the synthetic auxiliary categories {list(AUX_CATEGORIES)} "
            f"(cached after the first run)")
    elif world:
        log(f"[demo] mini profile on the miniature world: training the adapter on its auxiliary categories "
            f"{list(AUX_WORLD)} (cached after the first run); held-out categories {held_out}")
    else:
        log("[demo] real weights: using the training-free head (train an adapter on MVTec-AD or VisA with "
            "`python -m clipsam_lite train-adapter` for the APRIL-GAN head)")
    if world:
        adapter, cfg = choose_adapter(models, models.cfg, world_demo_adapter(models, models.cfg, log=log))
        root = world_demo_root()
    else:
        adapter, cfg = choose_adapter(models, models.cfg, synthetic=True, log=log)
        root = sample_root(signature=name == "tiny")
    ds = load_dataset("mvtec", root, category=held_out, split="test")
    items = [ds[i] for i in range(len(ds))]
    log(f"[demo] segmenting {len(items)} test images of the held-out categories {held_out}")
    results = segment_batch([it.image for it in items], [object_name_for(it.category) for it in items],
                            models, cfg, adapter=adapter)
    regions = priors = None
    if world:  # issue 13: the region-restricted AUROC and the prior-map baseline (same head, normal train images)
        regions = [world_region_mask(it.path) for it in items]
        train = load_dataset("mvtec", root, category=held_out, split="train")
        normal = {c: anomaly_maps(models, [train.read(r).image for r in train.records if r.category == c],
                                  object_name_for(c), cfg, adapter=adapter).maps for c in held_out}
        priors = prior_maps_for([it.category for it in items], normal)
    rows = score_results(results, [it.mask for it in items], [it.label for it in items], regions, priors)

    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    written: list[Path] = []
    caption = offline_caption(name)
    shown = [i for i, it in enumerate(items) if it.label == 1 and not results[i].is_normal][:3]
    for i in shown:
        it = items[i]
        title = f"{it.category} / {it.defect_type} / {Path(it.path).name}" + (f"  [{caption}]" if caption else "")
        written += save_figure(result_figure(it.image, results[i], it.mask, suptitle=title),
                               fig_dir / f"{it.category}_{it.defect_type}_{Path(it.path).stem}_stages.png")
    table = _table(rows)
    header = (f"Demo metrics (%), profile {name}{' - RANDOM backbones: mechanics only, not real detection' if name == 'tiny' else ''}; "
              f"held-out {'miniature-world' if world else 'synthetic'} categories {held_out}, {len(items)} images at "
              f"their own size; AUPRO: {AUPRO_DEFINITION}."
              + (f" region AUROC: AUROC over the pixels where a defect can occur; {PRIOR_ROW}: per category, the mean "
                 "S_a of its normal training images (same head), the same map for every image."
                 + (f" SAM {cfg.sam_model} has random weights: the final map's masks are mechanics only."
                    if cfg.sam_model == "tiny" else "") if world else ""))
    (out / "metrics.md").write_text(header + "\n\n" + table + "\n")
    (out / "metrics.json").write_text(json.dumps({"profile": name, "random_backbones": models.random_weights,
                                                  "categories": held_out, "n_images": len(items),
                                                  "aupro_definition": AUPRO_DEFINITION, "metrics": rows},
                                                 indent=2) + "\n")
    log("")
    log(header)
    log(table)
    log("")
    log(f"[demo] figures: {fig_dir} ({len(written)} files); metrics: {out / 'metrics.md'}")
    return {"profile": name, "metrics": rows, "figures": written, "out": out}
