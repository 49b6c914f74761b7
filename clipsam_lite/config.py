"""Every hyper-parameter of the method, named after the paper's symbols, and the profile presets.

Taught in notebook 00 (section 2, "Three profiles"), and in every notebook that changes a field
with ``cfg.replace``.

METHOD.md marks each choice **[paper]** (stated by Hou et al., PRCV 2024) or **[ours]** (our default
where the paper is silent). Every [ours] choice is a field here, with its alternatives listed, so a
notebook can ablate it and a reader with the PDF can switch to the paper's exact choice.

Profiles (DESIGN.md): ``paper`` (ViT-L-14-336 at 518 px + SAM vit_h), ``base`` (ViT-B-16 + SAM
vit_b, for Colab's free GPU), ``tiny`` (random backbones of the real architectures, for CI and
offline use) and ``mini`` (the miniature world's pretrained mini-CLIP shipped in the package, issue 13). ``CLIPSAM_PROFILE`` picks the profile when none is given.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PROFILES: tuple[str, ...] = ("paper", "base", "tiny", "mini")
PROFILE_ENV = "CLIPSAM_PROFILE"
DEFAULT_PROFILE = "base"

TAU_MODES = ("absolute", "otsu", "percentile")
NEGATIVE_STRATEGIES = ("cofeature", "ring_low_score", "global_low_score", "none")
FUSIONS = ("gate", "mask", "sigmoid_logits", "blend", "gate_dilated")
HEADS = ("adapter", "training_free")
IMAGE_SCORE_MODES = ("global", "global_max_mix")
MAP_ORDERS = ("upsample_softmax", "softmax_upsample")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LENGTH_UNITS = ("sam1024", "original")
PPG_RESOLUTIONS = ("sam_input", "original")
EVAL_RESIZES = ("squash", "crop")
SAM_LENGTH_FRAME = 1024
"""Lengths of PPG/CPS are measured in SAM's input frame scaled so that its long side is this many pixels."""


@dataclass
class Config:
    """All knobs of the pipeline. Field names follow METHOD.md (``tau``, ``k_pos``, ``k_neg``, ``d_min``...).

    Build one with :func:`get_config` (profile presets) and change fields with
    :meth:`Config.replace`; unknown or out-of-range values raise ``ValueError`` at construction.
    """

    profile: str = "tiny"

    # --- backbones (METHOD.md step 1 and 2) -----------------------------------------------------
    clip_model: str = "clipsam-tiny-vit"
    """open_clip architecture name [paper: ViT-L-14-336-quickgelu]."""
    clip_pretrained: str | None = None
    """open_clip pretrained tag (``openai``) or ``None`` for random weights (tiny only)."""
    clip_image_size: int = 224
    """CLIP input size; the paper profile forces 518 px (APRIL-GAN's setting) [ours, following APRIL-GAN]."""
    clip_layers: tuple[int, ...] = (1, 2, 3, 4)
    """1-based transformer blocks whose patch tokens make S_a [paper profile: 6, 12, 18, 24]."""
    sam_model: str = "tiny"
    """segment_anything registry key: ``vit_h``, ``vit_l``, ``vit_b``; or ``tiny`` (random, small)."""

    # --- CLIP anomaly map S_a (METHOD.md step 1) ------------------------------------------------
    head: str = "adapter"
    """``adapter`` (one nn.Linear per layer, APRIL-GAN) or ``training_free`` (ln_post + proj) [ours]."""
    vv_attention: bool = False
    """Training-free head only: value-value attention in the last blocks (CLIP Surgery / MaskCLIP) [ours]."""
    vv_last_layers: int = 1
    """How many final blocks get the value-value path when ``vv_attention`` is on [ours]."""
    logit_scale: float = 100.0
    """Temperature of softmax(logit_scale * tokens @ T^T) [ours, following APRIL-GAN/WinCLIP]."""
    map_order: str = "upsample_softmax"
    """``upsample_softmax``: bilinear upsample of the two-channel logits, then softmax (APRIL-GAN ``test.py``'s
    order; we keep ``align_corners=False``); ``softmax_upsample``: softmax on the patch grid, then upsample
    (our earlier order) [ours]."""
    training_free_tuning: bool = True
    """When a real profile (``paper``/``base``) runs the training-free head (no adapter), switch to the
    settings that suit it: value-value attention in the last blocks and an Otsu tau, and say so loudly
    (``clip_maps.tuned_for_training_free``); False keeps the Config as given [ours]."""
    smoothing_sigma: float = 4.0
    """Gaussian smoothing of S_a in pixels of the working resolution; 0 disables [ours, AnomalyCLIP]."""
    working_size: int | None = None
    """Resolution at which layer maps are upsampled and averaged; None = ``clip_image_size`` [ours]."""
    image_score_mode: str = "global_max_mix"
    """``global`` (CLS embedding vs T) or ``global_max_mix`` (mean of that and max of S_a) [ours]."""
    image_score_mix: float = 0.5
    """Weight of the global score in ``global_max_mix`` [ours]."""

    # --- adapter training (APRIL-GAN recipe) [ours] ---------------------------------------------
    adapter_epochs: int = 5
    adapter_lr: float = 1e-3
    adapter_batch_size: int = 8
    focal_gamma: float = 2.0
    dice_weight: float = 1.0

    # --- PPG: Co-Feature Point Prompt Generation (METHOD.md step 3, eqs. 1-3) ----------------------
    tau_mode: str = "absolute"
    """How the threshold of M_apa = S_a > tau is set: ``absolute``, ``otsu`` or ``percentile`` [ours]."""
    tau: float = 0.5
    """Absolute threshold, or the percentile (0-100) when ``tau_mode='percentile'`` [ours]."""
    k_pos: int = 3
    """Number of positive points P_h = TopK(R_a) (eq. 2) [ours: value]."""
    k_neg: int = 3
    """Number of negative points from the ring N_a (eq. 3) [ours: value]."""
    d_min: float = 32.0
    """Minimum distance between points of one label, in ``length_unit`` pixels (SAM's 1024 frame by default)
    [paper: "spaced by 400 pixels", read as a minimum distance; ours: the value]."""
    ring_radius: int = 16
    """Dilation radius r of N_a = dilate(M_apa, r) - M_apa in ``length_unit`` pixels (eq. 3) [ours]."""
    negative_strategy: str = "cofeature"
    """``cofeature`` (ring pixels least similar to the SAM prototype f+), ``ring_low_score``,
    ``global_low_score`` or ``none`` [paper: co-feature; exact rule ours]."""
    per_component: bool = True
    """One cascade per connected component of M_apa, masks united (True), or all points at once [ours]."""
    min_component_area: int = 16
    """Components of M_apa smaller than this many pixels (squared ``length_unit`` pixels) are ignored [ours]."""
    length_unit: str = "sam1024"
    """Unit of every PPG/CPS length (``d_min``, ``ring_radius``, ``box_margin``, ``secondary_ring``,
    ``min_component_area``, ``gate_dilation``): ``sam1024`` = pixels of SAM's input frame scaled to a long
    side of 1024 (one Config means the same on 700-px MVTec and 1500-px VisA images, METHOD.md step 3);
    ``original`` = the image's own pixels (the behaviour before issue 11.7) [ours]."""
    ppg_resolution: str = "sam_input"
    """Where PPG and the cascade's secondary points and boxes are computed: ``sam_input`` = on S_a resized to
    SAM's input frame (long side ``img_size``: 1024 for real SAMs), so memory is bounded whatever the image
    size; ``original`` = at the image's size (the behaviour before issue 12.1). Points and boxes given to SAM
    are in original-image coordinates either way [ours]."""
    max_prompt_sets: int = 8
    """At most this many prompt sets (cascades) per image: the components with the largest R_a mass are kept;
    0 = no cap (the behaviour before issue 11.11) [ours]."""
    max_image_pixels: int = 40_000_000
    """Images with more pixels (H * W) are refused before any work, with a message naming the limit and how to
    downscale or raise it; 0 = no limit. Memory grows linearly with H * W (benchmarks/memory_scaling.py) [ours]."""

    # --- CPS: Cascaded Prompts for SAM (METHOD.md step 4) --------------------------------------
    stages: int = 3
    """How many cascade stages run: 1 (points), 2 (+ secondary points and logit1), 3 (+ box) [paper: 3]."""
    box_margin: int = 8
    """``length_unit`` pixels added around bbox(M2) for the stage-3 box, clipped to the image [ours]."""
    secondary_points: bool = True
    """Stage 2 adds new positives inside M1 and new negatives around it [ours]."""
    k_secondary_pos: int = 2
    k_secondary_neg: int = 2
    secondary_ring: int = 8
    """Width (``length_unit`` pixels) of the ring around M1 where secondary negatives are sought [ours]."""
    secondary_tau: bool = True
    """Secondary positives must have S_a > tau and secondary negatives S_a <= tau, outside M_apa (METHOD.md
    step 4); False = no such condition (the behaviour before issue 11.8) [ours]."""
    batch_prompt_sets: bool = True
    """Run the decoder once per stage for all prompt sets with the same number of points (SamPredictor's
    ``predict_torch`` takes a batch); False = one ``predict`` call per set and stage [ours]."""
    multimask_stage1: bool = False
    """Stage 1 asks SAM for one mask; stages 2-3 for three and keep the best predicted IoU [ours, PerSAM]."""

    # --- final map (METHOD.md step 5) ------------------------------------------------------------
    fusion: str = "gate"
    """``gate`` (S_a * M3), ``mask`` (M3), ``sigmoid_logits``, ``blend`` or ``gate_dilated`` [ours]."""
    alpha: float = 0.5
    """``blend``: alpha * S_a + (1 - alpha) * M3 [ours]."""
    gate_dilation: int = 8
    """``gate_dilated``: S_a * dilate(M3, gate_dilation) [ours]."""

    # --- evaluation --------------------------------------------------------------------------------
    resolution: int = 518
    """Maps and masks are compared at ``resolution x resolution`` [field convention]."""
    eval_resize: str = "squash"
    """How maps and masks reach the square: ``squash`` (resize both sides, as APRIL-GAN ``test.py`` and
    AnomalyCLIP's ``Resize((518, 518))``: no pixel is dropped) or ``crop`` (short side resized, centre crop:
    a 1500 x 1000 VisA image loses a third of its pixels) [field convention; METHOD.md "Evaluation protocol"]."""
    batch_size: int = 8
    """Images per CLIP forward (and per evaluation chunk)."""
    sam_batch_size: int = 2
    """Images per SAM image-encoder forward: its global attention materialises full attention matrices
    (vit_b: ~2.35 GiB per image and block on CPU), so it has its own, small batch size [ours]."""
    precision: str = "auto"
    """Autocast dtype of the two encoders (CLIP visual tower, SAM image encoder): ``fp32`` (none), ``bf16``,
    ``fp16``, or ``auto`` = bf16 on a CUDA GPU that supports it, else fp32. Heads, PPG and the decoder
    stay fp32 [ours; APRIL-GAN runs under autocast]."""
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.clip_layers, (list, tuple)):  # lists come from JSON; numpy integers become int
            self.clip_layers = tuple(int(i) if _is_int(i) else i for i in self.clip_layers)
        _validate(self)

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated like a new Config)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"Unknown Config field(s) {sorted(unknown)}; known: {[f.name for f in fields(self)]}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @property
    def map_size(self) -> int:
        """The working resolution at which layer maps are averaged."""
        return self.working_size or self.clip_image_size


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"Config.{name}={value!r} is not one of {list(choices)}.")


# --------------------------------------------------------------------------------------------------
# Validation: one rule per field, checked at construction, before any model loads [ours]
# --------------------------------------------------------------------------------------------------

_CHOICES: dict[str, tuple[str, ...]] = {
    "profile": PROFILES, "head": HEADS, "tau_mode": TAU_MODES, "negative_strategy": NEGATIVE_STRATEGIES,
    "fusion": FUSIONS, "image_score_mode": IMAGE_SCORE_MODES, "map_order": MAP_ORDERS, "precision": PRECISIONS,
    "length_unit": LENGTH_UNITS, "ppg_resolution": PPG_RESOLUTIONS, "eval_resize": EVAL_RESIZES,
}
_STRINGS = ("clip_model", "sam_model")
_OPTIONAL_STRINGS = ("clip_pretrained",)
_BOOLS = ("vv_attention", "per_component", "secondary_points", "multimask_stage1", "training_free_tuning",
          "secondary_tau", "batch_prompt_sets")

_INT_RANGES: dict[str, tuple[int, int]] = {
    # inclusive [low, high]; the upper bounds keep memory and time finite (a 4096 px map is 64 MB) [ours]
    "clip_image_size": (32, 1024), "vv_last_layers": (1, 64), "adapter_epochs": (0, 100_000),
    "adapter_batch_size": (1, 4096), "k_pos": (1, 256), "k_neg": (0, 256), "ring_radius": (0, 4096),
    "min_component_area": (0, 10 ** 9), "box_margin": (0, 4096), "k_secondary_pos": (0, 256),
    "k_secondary_neg": (0, 256), "secondary_ring": (0, 4096), "gate_dilation": (0, 4096),
    "resolution": (16, 4096), "batch_size": (1, 1024), "seed": (0, 2 ** 32 - 1),
    "sam_batch_size": (1, 1024), "max_prompt_sets": (0, 4096), "max_image_pixels": (0, 10 ** 10),  # 0 = no limit
}
_OPTIONAL_INT_RANGES: dict[str, tuple[int, int]] = {"working_size": (16, 4096)}

_FLOAT_RANGES: dict[str, tuple[float, float, bool]] = {
    # [low, high], and whether ``low`` itself is allowed; NaN and infinities are always refused
    "logit_scale": (0.0, 1000.0, False), "smoothing_sigma": (0.0, 256.0, True), "image_score_mix": (0.0, 1.0, True),
    "adapter_lr": (0.0, 10.0, False), "focal_gamma": (0.0, 100.0, True), "dice_weight": (0.0, 1000.0, True),
    "d_min": (0.0, 1e6, False), "alpha": (0.0, 1.0, True),
}
_TAU_RANGES: dict[str, tuple[float, float, str]] = {
    "absolute": (0.0, 1.0, "a threshold on S_a, which lies in [0, 1]"),
    "percentile": (0.0, 100.0, "a percentile of S_a"),
    "otsu": (0.0, 100.0, "unused by Otsu's threshold, but kept finite"),
}
VALIDATED_FIELDS: frozenset[str] = frozenset(
    [*_CHOICES, *_STRINGS, *_OPTIONAL_STRINGS, *_BOOLS, *_INT_RANGES, *_OPTIONAL_INT_RANGES, *_FLOAT_RANGES,
     "tau", "clip_layers", "stages"])
"""Every field :func:`_validate` checks; a test asserts this is every field of :class:`Config`."""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_int_range(name: str, v: Any, low: int, high: int) -> None:
    if not _is_int(v):
        raise ValueError(f"Config.{name} must be an integer, got {v!r} ({type(v).__name__}).")
    if not low <= v <= high:
        raise ValueError(f"Config.{name}={v} is out of range: it must lie in [{low}, {high}].")


def _check_float_range(name: str, v: Any, low: float, high: float, low_ok: bool, why: str = "") -> None:
    if not _is_real(v):
        raise ValueError(f"Config.{name} must be a number, got {v!r} ({type(v).__name__}).")
    if not math.isfinite(v):
        raise ValueError(f"Config.{name}={v} is not a finite number; give a value in "
                         f"{'[' if low_ok else '('}{low:g}, {high:g}].")
    if not ((low <= v) if low_ok else (low < v)) or v > high:
        interval = f"{'[' if low_ok else '('}{low:g}, {high:g}]"
        raise ValueError(f"Config.{name}={v} is out of range: it must lie in {interval}{f' ({why})' if why else ''}.")


def _model_geometry(clip_model: str) -> tuple[int | None, int | None]:
    """(patch size, number of blocks) of an open_clip architecture, when known from its name or asset."""
    asset = Path(__file__).resolve().parent / "assets" / "model_configs" / f"{clip_model}.json"
    if asset.is_file():
        try:
            vision = json.loads(asset.read_text(encoding="utf-8"))["vision_cfg"]
            return int(vision["patch_size"]), int(vision["layers"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, None
    m = re.match(r"ViT-([A-Za-z]+)-(\d+)", clip_model)
    if not m:
        return None, None
    return int(m.group(2)), {"B": 12, "L": 24, "H": 32, "g": 40, "bigG": 48}.get(m.group(1))


def _validate(cfg: Config) -> None:
    """Check every field against its rule (type, range, finiteness, consistency); raise ``ValueError`` naming it."""
    for name, choices in _CHOICES.items():
        _check_choice(name, getattr(cfg, name), choices)
    for name in _STRINGS:
        if not isinstance(getattr(cfg, name), str) or not getattr(cfg, name).strip():
            raise ValueError(f"Config.{name} must be a non-empty string, got {getattr(cfg, name)!r}.")
    for name in _OPTIONAL_STRINGS:
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), str):
            raise ValueError(f"Config.{name} must be a string or None, got {getattr(cfg, name)!r}.")
    for name in _BOOLS:
        if not isinstance(getattr(cfg, name), (bool, _np_bool_types())):
            raise ValueError(f"Config.{name} must be True or False, got {getattr(cfg, name)!r}.")
    if not _is_int(cfg.stages) or cfg.stages not in (1, 2, 3):
        raise ValueError(f"Config.stages must be 1, 2 or 3 (the CPS stages to run), got {cfg.stages!r}.")
    for name, (low, high) in _INT_RANGES.items():
        _check_int_range(name, getattr(cfg, name), low, high)
    for name, (low, high) in _OPTIONAL_INT_RANGES.items():
        if getattr(cfg, name) is not None:
            _check_int_range(name, getattr(cfg, name), low, high)
    for name, (lo, hi, lo_ok) in _FLOAT_RANGES.items():
        _check_float_range(name, getattr(cfg, name), lo, hi, lo_ok)
    lo, hi, why = _TAU_RANGES[cfg.tau_mode]
    _check_float_range("tau", cfg.tau, lo, hi, True, f"tau_mode={cfg.tau_mode!r}: {why}")

    layers = cfg.clip_layers
    if not isinstance(layers, tuple) or not layers or not all(_is_int(i) for i in layers):
        raise ValueError(f"Config.clip_layers must be a non-empty tuple of 1-based block indices, got {layers!r}.")
    if min(layers) < 1:
        raise ValueError(f"Config.clip_layers are 1-based block indices, got {layers!r}.")
    if len(set(layers)) != len(layers):
        raise ValueError(f"Config.clip_layers has a repeated block: {layers!r}; list each block once.")
    patch, depth = _model_geometry(cfg.clip_model)
    if depth is not None and max(layers) > depth:
        raise ValueError(f"Config.clip_layers={layers!r} asks for block {max(layers)}, but {cfg.clip_model} has "
                         f"{depth} blocks (1-based indices 1..{depth}).")
    if patch is not None and cfg.clip_image_size % patch:
        below = cfg.clip_image_size // patch * patch
        raise ValueError(f"Config.clip_image_size={cfg.clip_image_size} is not a multiple of {cfg.clip_model}'s patch "
                         f"size {patch}; use e.g. {max(below, patch)} or {below + patch}.")


def _np_bool_types() -> tuple[type, ...]:
    """numpy's bool type (``np.bool_``) when numpy is importable: a ``--set`` or a notebook may pass one."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return ()
    return (np.bool_,)


_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        clip_model="ViT-L-14-336-quickgelu", clip_pretrained="openai", clip_image_size=518,
        clip_layers=(6, 12, 18, 24), sam_model="vit_h", d_min=48.0, ring_radius=24, box_margin=16,
        batch_size=8, sam_batch_size=1,
    ),
    "base": dict(
        clip_model="ViT-B-16-quickgelu", clip_pretrained="openai", clip_image_size=448,
        clip_layers=(3, 6, 9, 12), sam_model="vit_b", d_min=40.0, ring_radius=20, box_margin=12,
        batch_size=4, sam_batch_size=2,
    ),
    "tiny": dict(
        clip_model="clipsam-tiny-vit", clip_pretrained=None, clip_image_size=224,
        clip_layers=(1, 2, 3, 4), sam_model="tiny", smoothing_sigma=2.0, resolution=256, batch_size=8,
        sam_batch_size=8,
        # lengths in SAM's 1024 frame: the tiny SAM's 256-px frame is a quarter of it, so these are the
        # earlier 24 / 12 / 6 / 8 / 16 / 8 pixels of a 256-px image, times 4 (areas times 16)
        d_min=96.0, ring_radius=48, box_margin=24, secondary_ring=32, min_component_area=256, gate_dilation=32,
    ),
    # mini: the shipped mini-CLIP (128 px, patch 8 -> 16 x 16 grid, 4 blocks) on 128 px world images and the
    # shipped mini-SAM (256 px input, 32 x 32 cells of 8 px = 4 px of a 128 px image): d_min = 2 CLIP patches
    # (4 SAM cells), ring_radius = 1 CLIP patch, box_margin = half of one, so prompts land in distinct cells;
    # chosen for the first mini-SAM's 16 x 16 grid and kept when its grid was grown to 32 x 32 [ours]
    "mini": dict(
        clip_model="clipsam-mini-vit", clip_pretrained="shipped", clip_image_size=128,
        clip_layers=(1, 2, 3, 4), sam_model="mini", smoothing_sigma=2.0, resolution=128, batch_size=16,
        # lengths in SAM's 1024 frame: the world's 128-px images are an eighth of it, so these are 16 / 8 / 4 /
        # 8 / 8 pixels of a 128-px image, times 8 (the minimum area 8 px, times 64)
        d_min=128.0, ring_radius=64, box_margin=32, secondary_ring=64, gate_dilation=64, min_component_area=512,
    ),
}


TRAINING_FREE_SETTINGS: dict[str, dict[str, Any]] = {
    "paper": dict(vv_attention=True, vv_last_layers=12, tau_mode="otsu"),
    "base": dict(vv_attention=True, vv_last_layers=6, tau_mode="otsu"),
}
"""What a real profile switches to when it runs the training-free head (no adapter) [ours, issue 11.10]:
raw patch tokens through ``ln_post``/``proj`` give poor or inverted maps (why CLIP Surgery exists), so
the value-value attention path runs in the last half of the blocks (CLIP Surgery / MaskCLIP), and the
uncalibrated absolute ``tau = 0.5`` becomes a per-image Otsu threshold. ``Config.training_free_tuning``
turns this off; ``--set`` overrides any of these fields afterwards."""


def training_free_settings(cfg: Config) -> Config:
    """``cfg`` with :data:`TRAINING_FREE_SETTINGS` of its profile applied (unchanged for ``tiny``, or when
    ``cfg.training_free_tuning`` is False)."""
    changes = TRAINING_FREE_SETTINGS.get(cfg.profile)
    if not changes or not cfg.training_free_tuning:
        return cfg
    return cfg.replace(**changes)


def resolve_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``$CLIPSAM_PROFILE``, else ``base``."""
    name = profile or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r} (from {'the argument' if profile else '$' + PROFILE_ENV}); "
            f"choose one of {list(PROFILES)}. Use 'tiny' offline or in CI."
        )
    return name


def get_config(profile: str | None = None, **overrides: Any) -> Config:
    """The preset Config of a profile (``paper``, ``base``, ``tiny``), with optional field overrides."""
    name = resolve_profile(profile)
    return Config(profile=name, **{**_PRESETS[name], **overrides})


def preset(profile: str) -> dict[str, Any]:
    """The raw preset of a profile (what differs from the dataclass defaults)."""
    return dict(_PRESETS[resolve_profile(profile)])


__all__ = ["Config", "PROFILES", "PROFILE_ENV", "get_config", "resolve_profile", "preset", "TRAINING_FREE_SETTINGS",
           "training_free_settings"]
