"""The synthetic world: procedural objects and textures with planted defects and exact masks. [ours]

Taught in notebook 00 (section "The synthetic world"). It stands in for MVTec-AD and VisA offline:
:mod:`.scenes` draws the clean categories, :mod:`.defects` paints defects with exact masks, and
:mod:`.writer` renders items and writes a dataset in the MVTec-AD layout that
:func:`clipsam_lite.datasets.load_dataset` reads. The miniature world of the ``mini`` profile (issue 13)
builds on them: :mod:`.world` (twelve categories, 0-4 defects per image, captions, folds),
:mod:`.world_categories` (its renderers), :mod:`.captions` and :mod:`.world_writer` (MVTec layout).
"""

from .scenes import CATEGORIES, DEFECT_TYPES, GENERATOR_VERSION, SIGNATURE_RGB, CategorySpec
from .world import (
    AUX_CATEGORIES,
    FOLDS,
    HELDOUT_CATEGORIES,
    PRETRAIN_CATEGORIES,
    WORLD,
    WorldCategory,
    WorldSample,
    fold_split,
    render_world,
)
from .world_writer import make_world, world_region_mask
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
    "AUX_CATEGORIES", "FOLDS", "HELDOUT_CATEGORIES", "PRETRAIN_CATEGORIES", "WORLD", "WorldCategory",
    "WorldSample", "fold_split", "render_world", "make_world", "world_region_mask",
    "is_synthetic_root", "make_synthetic", "render_item", "sample_root", "signature_pixels", "synthetic_meta",
]
