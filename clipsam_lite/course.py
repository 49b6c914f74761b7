"""The course's shared pieces: the repository address, the pipeline diagram, the cascade set-up.

Taught in notebooks 00 (the diagram, :func:`pipeline_diagram`), 02-07 (which offline data each profile
uses, :func:`course_data`, and the PPG/CPS lengths in the shown image's pixels, :func:`course_lengths`) and
04-06 (the set-up of one image, :func:`cascade_example`); the set-up chains METHOD.md steps 1-3 exactly as
notebooks 01-03 build them by hand, so that 04-06 can start where 03 ended [ours]. Nothing here is an
algorithm of its own.

:data:`REPOSITORY` is the one place that names the GitHub repository: every notebook's Colab badge
and set-up cell, and the README's badges, must match :func:`colab_url` and :data:`INSTALL_SPEC`
(``tests/test_notebook_structure.py`` checks it). A fork changes it here, then runs
``python -m clipsam_lite.course OWNER/NAME`` to rewrite the notebooks and the README.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config

__all__ = ["REPOSITORY", "INSTALL_SPEC", "colab_url", "setup_cell", "pipeline_diagram", "profile_label",
           "CourseData", "course_data", "SAMPLE_LENGTHS", "course_lengths", "course_adapter_path",
           "course_adapter", "CascadeExample", "cascade_example", "retarget"]

REPOSITORY = "clipsam-lite/clipsam-lite"
"""``owner/name`` of the GitHub repository the Colab badges open and the set-up cell installs from."""
INSTALL_SPEC = f"clipsam-lite @ git+https://github.com/{REPOSITORY}"
"""What the notebooks' set-up cell gives ``pip install`` on Colab."""
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str, repository: str = REPOSITORY) -> str:
    """The Colab address that opens ``notebooks/<notebook>`` (``.ipynb`` added when missing)."""
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    return f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/{name}"


def setup_cell(repository: str = REPOSITORY) -> str:
    """The exact text of every notebook's set-up cell (DESIGN.md's template).

    Inert outside Colab. On Colab one ``pip install`` without ``--upgrade``: Colab's preinstalled
    torch and ipywidgets satisfy the package's requirements, so pip keeps them.
    """
    spec = INSTALL_SPEC.replace(REPOSITORY, repository)
    return ("# Set-up. On Colab this installs clipsam-lite (Colab's own torch and ipywidgets are kept, never\n"
            "# upgraded); everywhere else it does nothing.\n"
            "import sys\n"
            'if "google.colab" in sys.modules:\n'
            "    import subprocess\n"
            '    subprocess.run([sys.executable, "-m", "pip", "install", "-q",\n'
            f'                    "{spec}"], check=True)')


# ------------------------------------------------------------------------------------------------
# Notebook 00: the pipeline as one diagram
# ------------------------------------------------------------------------------------------------

_BOXES = [
    ("image I\n+ object name\n(e.g. 'tablet')", "#eeeeee"),
    ("CLIP ViT (frozen)\n+ small head (adapter\nor training-free)\n→ anomaly map S_a", "#cfe2f3"),
    ("PPG (eqs. 1-3)\nM_apa = S_a > τ\ntop-k positives\nco-feature negatives", "#fce5cd"),
    ("CPS stage 1\npoints\n→ M1, logit1", "#d9ead3"),
    ("CPS stage 2\n+ secondary points\n+ mask input logit1\n→ M2, logit2", "#d9ead3"),
    ("CPS stage 3\n+ box around M2\n+ mask input logit2\n→ M3", "#d9ead3"),
    ("final map\nS = S_a · M3\n+ binary mask", "#eeeeee"),
]


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", fc=color, ec="0.3",
                                lw=1.1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.3, linespacing=1.35)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], dashed: bool = False,
           color: str = "0.25") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", lw=1.3, color=color, shrinkA=2,
                                                          shrinkB=2, linestyle="--" if dashed else "-"))


def pipeline_diagram() -> Any:
    """METHOD.md steps 1-5 as one figure: CLIP map, PPG, the three CPS stages, SAM's encoder run once.

    Returns the matplotlib figure (the caller shows or saves it). Colours: blue CLIP, orange point
    prompts, green SAM, yellow the auxiliary dataset that trains the small head only.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(15, 5.2))
    ax.set_xlim(-0.1, 18.8)
    ax.set_ylim(0, 7.0)
    ax.axis("off")
    w, h, y = 2.3, 1.9, 2.9
    xs = [0.1 + i * (w + 0.4) for i in range(len(_BOXES))]
    for x, (text, color) in zip(xs, _BOXES, strict=True):
        _box(ax, x, y, w, h, text, color)
    for a, b in zip(xs[:-1], xs[1:], strict=True):
        _arrow(ax, (a + w, y + h / 2), (b, y + h / 2))
    # SAM's encoder: computed once, feeds PPG (co-feature) and the three decoder passes
    sx, sw, sy, sh = xs[2], xs[5] + w - xs[2], 0.3, 1.3
    _box(ax, sx, sy, sw, sh, "SAM image encoder: feature map F (256 x 64 x 64 for the real SAMs), computed ONCE "
         "per image,\nreused by PPG's co-feature negatives and by all three decoder passes", "#d9ead3")
    for x in xs[2:6]:
        _arrow(ax, (x + w / 2, sy + sh), (x + w / 2, y))
    ax.plot([xs[0] + w / 2, xs[0] + w / 2], [y, sy + sh / 2], color="0.25", lw=1.3)
    _arrow(ax, (xs[0] + w / 2, sy + sh / 2), (sx, sy + sh / 2))
    top = y + h + 0.75  # the auxiliary dataset trains the small head only
    _box(ax, xs[1] - 0.8, top, w + 1.6, 1.1, "auxiliary dataset: train on MVTec-AD,\ntest on VisA (and the reverse)",
         "#fff2cc")
    _arrow(ax, (xs[1] + w / 2, top), (xs[1] + w / 2, y + h), dashed=True, color="#b45f06")
    ax.text(xs[1] + w / 2 + 0.1, y + h + 0.3, "trains the head only", fontsize=7.5, color="#b45f06", ha="left")
    ax.text(xs[3], top + 0.55, "CLIP-SAM collaboration with cascaded prompts (Hou et al., PRCV 2024)\n"
            "blue: CLIP · orange: point prompts · green: SAM", fontsize=10, va="center")
    return fig


def profile_label(fig: Any, profile: str) -> str:
    """Write which profile made a figure in its bottom-right corner (issue 14: every figure names it).

    The offline profiles get :func:`clipsam_lite.panels.offline_caption`'s label: random backbones (``tiny``)
    its warning, ``mini`` "mini profile: models trained on a synthetic world". Returns the text written.
    """
    from .panels import offline_caption

    text = offline_caption(profile) or f"{profile} profile"
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize=7, color="0.35")
    return text


# ------------------------------------------------------------------------------------------------
# Notebooks 02-07: which offline data a profile uses, and its lengths in the shown image's pixels
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CourseData:
    """The offline data the course's notebooks use in one profile (:func:`course_data`) [ours]."""

    root: Path
    """An MVTec-AD layout folder: the world demo (``mini``), the synthetic sample, or the user's ``DATA_ROOT``."""
    held_out: tuple[str, ...]
    """Categories no adapter of the course was trained on: where maps and metrics are shown."""
    world: bool
    """True when ``root`` is a miniature-world folder (:func:`clipsam_lite.world_eval.is_world_root`: region
    masks, so tables add the region AUROC and the prior row)."""
    description: str
    """The data in words, for a notebook's printout."""


def course_data(profile: str, data_root: str | Path | None = None) -> CourseData:
    """Which offline data the course uses in ``profile`` (issue 15); ``data_root``, when given, wins [ours].

    ``mini`` (models trained on the miniature world): the world demo dataset
    (:func:`~clipsam_lite.synthetic.world_writer.world_demo_root`, 128 px) and the world's held-out
    categories :data:`clipsam_lite.synthetic.HELDOUT_CATEGORIES`, as ``demo`` and notebook 08 show them.
    ``tiny`` and the real profiles: the embedded 256-px synthetic sample (``signature`` defects in
    ``tiny``, :func:`~clipsam_lite.synthetic.sample_root`) and :data:`clipsam_lite.demo.HELD_OUT_CATEGORIES`.
    A ``data_root`` replaces the folder only (the held-out categories stay the profile's); the folder
    is written into the cache on first use.
    """
    from .config import resolve_profile
    from .demo import HELD_OUT_CATEGORIES
    from .synthetic import HELDOUT_CATEGORIES, sample_root
    from .synthetic.world_writer import world_demo_root
    from .world_eval import is_world_root

    name = resolve_profile(profile)
    if name == "mini":
        root, held_out = (Path(data_root) if data_root else world_demo_root()), tuple(HELDOUT_CATEGORIES)
        text = f"the miniature world's held-out categories {list(held_out)} (128 px images, never trained on)"
    else:
        root = Path(data_root) if data_root else sample_root(signature=name == "tiny")
        held_out = tuple(HELD_OUT_CATEGORIES)
        text = (f"the embedded synthetic sample ({'signature' if name == 'tiny' else 'natural-colour'} defects, "
                f"256 px), held-out categories {list(held_out)}")
    if data_root:
        text = f"DATA_ROOT {root.name} (the profile's held-out categories {list(held_out)})"
    return CourseData(root=root, held_out=held_out, world=is_world_root(root), description=text)


SAMPLE_LENGTHS: dict[str, Any] = dict(d_min=16.0, ring_radius=10, box_margin=6, secondary_ring=8,
                                      min_component_area=16, gate_dilation=8)
"""The course's PPG/CPS lengths in pixels of the 256-px synthetic sample (``tiny``, ``base``, ``paper``) [ours]."""
_LENGTH_FIELDS = ("d_min", "ring_radius", "box_margin", "secondary_ring", "min_component_area", "gate_dilation")


def course_lengths(profile: str, image_shape: tuple[int, ...], **given: Any) -> dict[str, Any]:
    """PPG/CPS lengths in the shown image's own pixels, with PPG at the image's size (notebooks 03-06) [ours].

    Returns Config fields: ``length_unit="original"``, ``ppg_resolution="original"`` and the six lengths
    (``d_min``, ``ring_radius``, ``box_margin``, ``secondary_ring``, ``min_component_area``,
    ``gate_dilation``). A length given (not None) wins. Otherwise, on the 256-px sample (``tiny``, ``base``,
    ``paper``): :data:`SAMPLE_LENGTHS`; in ``mini``: the profile's own preset lengths, which live in SAM's
    1024 frame (METHOD.md step 3, "PPG/CPS lengths live in SAM's 1024 frame"), converted to an image of
    ``image_shape`` by :func:`clipsam_lite.ppg.length_scale` itself: times ``max(H, W) / 1024``
    (areas times its square), so a 128-px world image gets ``d_min`` 128 / 8 = 16 px.
    """
    from .config import get_config, resolve_profile
    from .ppg import length_scale

    unknown = sorted(set(given) - set(_LENGTH_FIELDS))
    if unknown:
        raise ValueError(f"course_lengths: unknown length(s) {unknown}; known: {list(_LENGTH_FIELDS)}.")
    if len(image_shape) < 2 or min(image_shape[:2]) < 1:
        raise ValueError(f"course_lengths: image_shape must be (H, W, ...) with H, W >= 1, got {image_shape}.")
    if resolve_profile(profile) == "mini":
        preset = get_config("mini")
        scale = length_scale(preset, tuple(image_shape[:2]))  # the preset's sam1024 unit in this image's pixels
        own = {f: getattr(preset, f) * (scale ** 2 if f == "min_component_area" else scale) for f in _LENGTH_FIELDS}
        own = {f: (float(v) if f == "d_min" else max(int(round(v)), 1)) for f, v in own.items()}
    else:
        own = dict(SAMPLE_LENGTHS)
    own.update({k: v for k, v in given.items() if v is not None})
    return {"length_unit": "original", "ppg_resolution": "original", **own}


# ------------------------------------------------------------------------------------------------
# Notebooks 01 and 04-06: the adapter of notebook 01, and one image through steps 1-3
# ------------------------------------------------------------------------------------------------

def course_adapter_path(profile: str) -> Path:
    """Where notebook 01 saves the adapter it trains, and where 04-06 look for it."""
    from .paths import cache_dir

    return cache_dir() / "adapters" / f"notebook01-{profile}.pt"


def course_adapter(models: Any, cfg: Config, adapter_path: str | Path | None = None,
                   log: Any = print) -> tuple[Any | None, Config, str]:
    """The CLIP head for notebooks 04-06: ``(adapter or None, cfg with the head set, where it came from)``.

    In order: ``adapter_path`` when given; in ``tiny``, the synthetic-sample adapter, and in ``mini`` the
    miniature world's adapter (:func:`clipsam_lite.demo.world_demo_adapter`, the one ``demo`` uses; trained
    on the world's auxiliary categories), each trained and cached on first use, so the result does not
    depend on which notebook ran first; the adapter notebook 01 saved for this profile
    (:func:`course_adapter_path`); otherwise CLIP's training-free head, and ``log`` says so rather than
    falling back silently.
    """
    from .adapter import load_adapter
    from .demo import synthetic_adapter, world_demo_adapter

    if adapter_path:
        return load_adapter(adapter_path, models, cfg), cfg.replace(head="adapter"), f"adapter file {adapter_path}"
    if models.profile == "tiny":  # random backbones: the signature-sample adapter, the same on every run order
        return synthetic_adapter(models, cfg.replace(head="adapter"), log=None), cfg.replace(head="adapter"), \
            "the synthetic sample's adapter (trained on the auxiliary categories, cached)"
    if models.profile == "mini":  # the data is the world (course_data): its adapter, as `demo` uses it
        from .synthetic import AUX_CATEGORIES

        return world_demo_adapter(models, cfg.replace(head="adapter"), log=None), cfg.replace(head="adapter"), \
            f"the miniature world's adapter (trained on its auxiliary categories {list(AUX_CATEGORIES)}, cached)"
    saved = course_adapter_path(models.profile)
    if saved.is_file():
        try:
            return load_adapter(saved, models, cfg), cfg.replace(head="adapter"), f"notebook 01's adapter ({saved})"
        except ValueError as e:  # another backbone or a stale file: say so, then fall through
            if log:
                log(f"notebook 01's adapter at {saved} does not fit these models ({e}); not used")
    if log:
        log(f"No adapter found for {models.profile!r} (run notebook 01 to train and save one, or set ADAPTER_PATH): "
            "using CLIP's training-free head.")
    return None, cfg.replace(head="training_free"), "the training-free head (no adapter found)"


@dataclass
class CascadeExample:
    """One image carried through METHOD.md steps 1-3, ready for the cascade (notebooks 04-06)."""

    models: Any
    cfg: Config
    adapter: Any | None
    head: str
    """Which CLIP head made ``s_a``, in words."""
    item: Any
    image: np.ndarray
    gt: np.ndarray
    object_name: str
    s_a: np.ndarray
    image_score: float
    emb: Any
    ppg: Any
    set_index: int
    """The prompt set followed: the largest connected component of ``M_apa``."""
    points: np.ndarray
    labels: np.ndarray
    predictor: Any

    def describe(self) -> str:
        h, w = self.gt.shape
        return (f"{self.item.category}/{self.item.defect_type}, cropped to {h} x {w}; CLIP head: {self.head}; "
                f"S_a in [{self.s_a.min():.2f}, {self.s_a.max():.2f}]; {len(self.ppg.prompt_sets)} prompt set(s); "
                f"followed set {self.set_index}: points {self.points.tolist()}, labels {self.labels.tolist()}")


def _crop_rows(item: Any, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``fraction`` of the rows around the defect: a non-square image, so SAM's padding shows [ours]."""
    h0 = item.image.shape[0]
    h = int(round(fraction * h0))
    cy = int(np.nonzero(item.mask)[0].mean()) if item.mask.any() else h0 // 2
    y0 = int(np.clip(cy - h // 2, 0, h0 - h))
    return np.ascontiguousarray(item.image[y0:y0 + h]), item.mask[y0:y0 + h]


def cascade_example(profile: str, category: str = "tablet", defect: str = "hole", data_root: str | Path | None = None,
                    adapter_path: str | Path | None = None, crop_fraction: float = 0.7, seed: int = 0,
                    log: Any = print, **cfg_fields: Any) -> CascadeExample:
    """Load the models, pick one test image, and run steps 1-3: ``S_a`` (01), SAM's embedding (02), PPG (03).

    The image is the first ``defect`` test image of ``category`` in the profile's data (:func:`course_data`:
    the world demo in ``mini``, the 256-px sample otherwise; ``data_root`` wins). ``cfg_fields`` override
    the profile's Config (e.g. ``tau=0.5, d_min=16.0``); lengths are in the shown image's pixels and PPG
    runs at its size (:func:`course_lengths`: a length left out or None is the profile's own). When PPG
    finds no anomalous region (``M_apa`` empty, e.g. a training-free map below ``tau``), the 99th
    percentile of ``S_a`` is used instead and ``log`` says so [ours]. The cascade itself is left to the notebook.
    """
    from .clip_maps import anomaly_maps, object_name_for
    from .config import get_config
    from .datasets import load_dataset
    from .models import load_models
    from .ppg import generate_prompts
    from .sam_features import embed_image, predictor_for

    data = course_data(profile, data_root)
    found = [it for it in load_dataset("mvtec", data.root, category) if it.defect_type == defect]
    if not found:
        raise ValueError(f"No test image of defect type {defect!r} in category {category!r} under {data.root}; "
                         "pick a defect type the category has (see notebook 00's grid).")
    item = found[0]
    image, gt = _crop_rows(item, crop_fraction)
    lengths = course_lengths(profile, image.shape, **{k: cfg_fields.pop(k) for k in _LENGTH_FIELDS if k in cfg_fields})
    models = load_models(profile, seed=seed)
    cfg = get_config(profile, seed=seed, **{**lengths, **cfg_fields})
    adapter, cfg, head = course_adapter(models, cfg, adapter_path, log=log)
    object_name = object_name_for(item.category)
    clip = anomaly_maps(models, [image], object_name, cfg, adapter=adapter)  # step 1 (notebook 01)
    s_a = clip.maps[0]
    emb = embed_image(models.sam, image)  # step 2: the only encoder pass for this image (notebook 02)
    ppg = generate_prompts(s_a, cfg, emb)  # step 3 (notebook 03)
    if ppg.is_normal:
        if log:
            log(f"M_apa is empty at tau = {ppg.tau_value:.2f} (max S_a = {s_a.max():.2f}): using the 99th percentile")
        cfg = cfg.replace(tau_mode="percentile", tau=99.0)
        ppg = generate_prompts(s_a, cfg, emb)
    sizes = [1 if ps.component is None else int(ps.component.sum()) for ps in ppg.prompt_sets]
    k = int(np.argmax(sizes))
    return CascadeExample(models=models, cfg=cfg, adapter=adapter, head=head, item=item, image=image, gt=gt,
                          object_name=object_name, s_a=s_a, image_score=float(clip.image_scores[0]), emb=emb, ppg=ppg,
                          set_index=k, points=ppg.prompt_sets[k].points, labels=ppg.prompt_sets[k].labels,
                          predictor=predictor_for(models.sam, emb))


# ------------------------------------------------------------------------------------------------
# A fork: point every badge and set-up cell at another repository
# ------------------------------------------------------------------------------------------------

def retarget(repository: str, root: Path | None = None) -> list[Path]:
    """Rewrite the notebooks' badges and set-up cells and the README's badges for ``owner/name``.

    Change :data:`REPOSITORY` to the same value so the structure test agrees. Returns the changed files.
    """
    from .paths import repo_root

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise ValueError(f"repository must be 'owner/name', got {repository!r}")
    root = root or repo_root()
    if root is None:
        raise ValueError("retarget needs a checkout of the repository (notebooks/ and README.md)")
    changed = []
    for path in [root / "README.md", *sorted((root / "notebooks").glob("*.ipynb"))]:
        text = path.read_text(encoding="utf-8")
        new = text.replace(f"github/{REPOSITORY}/", f"github/{repository}/").replace(
            f"github.com/{REPOSITORY}", f"github.com/{repository}")
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m clipsam_lite.course OWNER/NAME
    if len(sys.argv) != 2:
        sys.exit("usage: python -m clipsam_lite.course OWNER/NAME")
    for p in retarget(sys.argv[1]):
        print("rewrote", p)
