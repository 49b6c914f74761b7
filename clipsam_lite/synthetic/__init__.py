"""The synthetic world: procedural objects and textures with planted defects and exact masks. [ours]

Taught in notebook 00 (section 4, "The embedded synthetic sample"); no METHOD.md step: the offline
stand-in for MVTec-AD / VisA (METHOD.md, "Evaluation protocol"): :mod:`.scenes` draws the clean
categories, :mod:`.defects` paints defects with exact masks, and :mod:`.writer` renders items and writes
a dataset in the MVTec-AD layout that :func:`clipsam_lite.datasets.load_dataset` reads.
"""

from .scenes import CATEGORIES, DEFECT_TYPES, GENERATOR_VERSION, SIGNATURE_RGB, CategorySpec
from .writer import (
    is_synthetic_root,
    make_synthetic,
    render_item,
    sample_root,
    signature_pixels,
    synthetic_meta,
)

__all__ = [
    "CATEGORIES", "DEFECT_TYPES", "GENERATOR_VERSION", "SIGNATURE_RGB", "CategorySpec",
    "is_synthetic_root", "make_synthetic", "render_item", "sample_root", "signature_pixels", "synthetic_meta",
]
