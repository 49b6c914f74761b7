"""Every hyper-parameter of the method, named after the paper's symbols, and the profile presets.

METHOD.md marks each choice **[paper]** (stated by Hou et al., PRCV 2024) or **[ours]** (our default
where the paper is silent). Every [ours] choice is a field here, with its alternatives listed, so a
notebook can ablate it and a reader with the PDF can switch to the paper's exact choice.

Profiles (DESIGN.md): ``paper`` (ViT-L-14-336 at 518 px + SAM vit_h), ``base`` (ViT-B-16 + SAM
vit_b, for Colab's free GPU), ``tiny`` (random backbones of the real architectures, for CI and
offline use) and ``mini`` (the miniature world's pretrained mini-CLIP shipped in the package, issue 13). ``CLIPSAM_PROFILE`` picks the profile when none is given.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any

PROFILES: tuple[str, ...] = ("paper", "base", "tiny", "mini")
PROFILE_ENV = "CLIPSAM_PROFILE"
DEFAULT_PROFILE = "base"

TAU_MODES = ("absolute", "otsu", "percentile")
NEGATIVE_STRATEGIES = ("cofeature", "ring_low_score", "global_low_score", "none")
FUSIONS = ("gate", "mask", "sigmoid_logits", "blend", "gate_dilated")
HEADS = ("adapter", "training_free")
IMAGE_SCORE_MODES = ("global", "global_max_mix")


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
    """Minimum distance in original-image pixels between points of one label
    [paper: "spaced by 400 pixels", read as a minimum distance; ours: the value for 256-1024 px images]."""
    ring_radius: int = 16
    """Dilation radius r of N_a = dilate(M_apa, r) - M_apa in pixels (eq. 3) [ours]."""
    negative_strategy: str = "cofeature"
    """``cofeature`` (ring pixels least similar to the SAM prototype f+), ``ring_low_score``,
    ``global_low_score`` or ``none`` [paper: co-feature; exact rule ours]."""
    per_component: bool = True
    """One cascade per connected component of M_apa, masks united (True), or all points at once [ours]."""
    min_component_area: int = 16
    """Components of M_apa smaller than this many pixels are ignored (noise) [ours]."""

    # --- CPS: Cascaded Prompts for SAM (METHOD.md step 4) --------------------------------------
    stages: int = 3
    """How many cascade stages run: 1 (points), 2 (+ secondary points and logit1), 3 (+ box) [paper: 3]."""
    box_margin: int = 8
    """Pixels added around bbox(M2) for the stage-3 box, clipped to the image [ours]."""
    secondary_points: bool = True
    """Stage 2 adds new positives inside M1 and new negatives around it [ours]."""
    k_secondary_pos: int = 2
    k_secondary_neg: int = 2
    secondary_ring: int = 8
    """Width in pixels of the ring around M1 where secondary negatives are sought [ours]."""
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
    """Maps and masks are compared at this size (resize + center crop) [field convention]."""
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        self.clip_layers = tuple(int(i) for i in self.clip_layers)
        _check_choice("profile", self.profile, PROFILES)
        _check_choice("head", self.head, HEADS)
        _check_choice("tau_mode", self.tau_mode, TAU_MODES)
        _check_choice("negative_strategy", self.negative_strategy, NEGATIVE_STRATEGIES)
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_choice("image_score_mode", self.image_score_mode, IMAGE_SCORE_MODES)
        if self.stages not in (1, 2, 3):
            raise ValueError(f"Config.stages must be 1, 2 or 3, got {self.stages!r}.")
        if not self.clip_layers or min(self.clip_layers) < 1:
            raise ValueError(f"Config.clip_layers are 1-based block indices, got {self.clip_layers!r}.")
        if self.tau_mode == "percentile" and not 0.0 <= self.tau <= 100.0:
            raise ValueError(f"Config.tau is a percentile in [0, 100] when tau_mode='percentile', got {self.tau}.")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"Config.alpha must lie in [0, 1], got {self.alpha}.")
        for name in ("k_pos", "k_neg", "ring_radius", "box_margin", "k_secondary_pos", "k_secondary_neg",
                     "gate_dilation", "secondary_ring", "min_component_area"):
            if getattr(self, name) < 0:
                raise ValueError(f"Config.{name} must be >= 0, got {getattr(self, name)}.")
        if self.k_pos < 1:
            raise ValueError("Config.k_pos must be at least 1: PPG needs one positive point per region.")
        if self.d_min < 0 or self.smoothing_sigma < 0:
            raise ValueError("Config.d_min and Config.smoothing_sigma must be >= 0.")

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


_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        clip_model="ViT-L-14-336-quickgelu", clip_pretrained="openai", clip_image_size=518,
        clip_layers=(6, 12, 18, 24), sam_model="vit_h", d_min=48.0, ring_radius=24, box_margin=16,
        batch_size=8,
    ),
    "base": dict(
        clip_model="ViT-B-16-quickgelu", clip_pretrained="openai", clip_image_size=448,
        clip_layers=(3, 6, 9, 12), sam_model="vit_b", d_min=40.0, ring_radius=20, box_margin=12,
        batch_size=4,
    ),
    "tiny": dict(
        clip_model="clipsam-tiny-vit", clip_pretrained=None, clip_image_size=224,
        clip_layers=(1, 2, 3, 4), sam_model="tiny", d_min=24.0, ring_radius=12, box_margin=6,
        smoothing_sigma=2.0, resolution=256, batch_size=8,
    ),
    # mini: the shipped mini-CLIP (128 px, patch 8 -> 16 x 16 grid, 4 blocks) on 128 px world images and the
    # shipped mini-SAM (256 px input, 16 x 16 cells of 16 px = 8 px of a 128 px image): d_min = 2 cells,
    # ring_radius = box_margin = 1 cell or less, so prompts land in distinct cells [ours]
    "mini": dict(
        clip_model="clipsam-mini-vit", clip_pretrained="shipped", clip_image_size=128,
        clip_layers=(1, 2, 3, 4), sam_model="mini", d_min=16.0, ring_radius=8, box_margin=4,
        smoothing_sigma=2.0, resolution=128, batch_size=16, min_component_area=8,
    ),
}


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


__all__ = ["Config", "PROFILES", "PROFILE_ENV", "get_config", "resolve_profile", "preset"]
