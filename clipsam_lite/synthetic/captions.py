"""Captions of the miniature world: object name, state and defect words, for CLIP pretraining. [ours]

Taught in notebook 00 (section "The miniature world") and used by :mod:`clipsam_lite.pretrain.clip`.
A caption names the object (or, some of the time, a generic noun), its state (normal / damaged) and the
defects it shows: ``"a photo of a damaged gear with a scratch and a hole."``. Templates and state words
are the prompt ensembles of :mod:`clipsam_lite.clip_maps` (METHOD.md step 1), so pretraining teaches
exactly the words the anomaly map later reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFECT_PHRASES: dict[str, tuple[str, ...]] = {
    "scratch": ("a scratch", "scratches"),
    "hole": ("a hole", "a puncture"),
    "stain": ("a stain", "a spot"),
    "crack": ("a crack", "a fracture"),
    "missing_piece": ("a missing piece", "a chipped edge"),
    "contamination": ("contamination", "dirt"),
}
"""Words for each defect type (two each, so that no single phrase is memorised)."""

GENERIC_NAMES: dict[str, str] = {"object": "object", "texture": "surface"}
"""The generic noun that replaces the category's name in some captions."""


def _prompt_lists() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    from ..clip_maps import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES  # late: clip_maps imports torch

    return NORMAL_STATES, ABNORMAL_STATES, TEMPLATES


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def state_phrase(name: str, defect_types: Sequence[str], rng: np.random.Generator) -> str:
    """The noun phrase: ``"flawless gear"`` or ``"damaged gear with a crack and a stain"``."""
    normal, abnormal, _ = _prompt_lists()
    if not defect_types:
        return _choice(rng, normal).format(name)
    words = [_choice(rng, DEFECT_PHRASES[d]) for d in dict.fromkeys(defect_types)]  # unique, in order
    tail = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    form = int(rng.integers(3))
    if form == 0:  # a state of the prompt ensemble alone: "broken gear", "gear with defect"
        return _choice(rng, abnormal).format(name)
    if form == 1:
        return f"{name} with {tail}"
    return f"{_choice(rng, ('damaged', 'broken'))} {name} with {tail}"


def make_caption(name: str, kind: str, defect_types: Sequence[str], rng: np.random.Generator,
                 generic_rate: float = 0.2) -> str:
    """A random caption of one image. [ours]

    Args:
        name: the category's noun (``"gear"``).
        kind: ``"object"`` or ``"texture"``: the generic noun (``"object"`` / ``"surface"``) replaces the
            name ``generic_rate`` of the time, so that the state words, not the name, carry the meaning.
        defect_types: the image's defects (empty for a normal image).
        rng: the random stream (captions are deterministic given it).
    """
    noun = GENERIC_NAMES[kind] if rng.random() < generic_rate else name
    return _choice(rng, _prompt_lists()[2]).format(state_phrase(noun, defect_types, rng))


def vocabulary(names: Sequence[str]) -> list[str]:
    """Every word a caption or a prompt of these category names can contain (what pretraining teaches)."""
    normal, abnormal, templates = _prompt_lists()
    text = " ".join([*names, *GENERIC_NAMES.values(), *normal, *abnormal, *templates, "damaged broken with and",
                     *(p for ps in DEFECT_PHRASES.values() for p in ps)])
    return sorted(set(text.replace(",", " ").replace(".", " ").replace("{}", " ").split()))
