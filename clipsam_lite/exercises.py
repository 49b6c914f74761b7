"""Checkable exercises for the notebooks: ``check(exercise_id, answer, **context)`` [ours].

Taught in: used by every notebook's "Exercises" section (00-09); README, "Teaching with this".
METHOD.md: no step of its own; each solution calls the package function of the step it asks about. A student replaces ``answer = None`` by an
answer and runs the cell; :func:`check` computes the expected answer *at that moment* from the same
package calls the notebook teaches (and from the notebook's own objects, passed as keywords), so no
solution is written in any notebook and nothing depends on a profile's numbers. ``answer = None``
prints "not answered yet" and never fails, so the notebooks run headless in CI.

Teachers: :func:`show_solution` prints an exercise's answer and its reasoning; with the environment
variable ``CLIPSAM_TEACHER=1`` every unanswered ``check`` prints it too (a solution run of the series:
``CLIPSAM_TEACHER=1 pytest --nbmake notebooks``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Exercise", "EXERCISES", "check", "show_solution", "solution", "teacher_mode", "TEACHER_ENV"]

TEACHER_ENV = "CLIPSAM_TEACHER"


@dataclass(frozen=True)
class Exercise:
    """One exercise: what it asks, how to compute its answer, how to compare, and why."""

    id: str
    asks: str
    """The form of the answer, e.g. ``"an int"`` or ``"a pair (bool, bool)"``."""
    solve: Callable[..., Any]
    """Computes the expected answer from package calls and the notebook's objects (keyword context)."""
    why: str
    """The reasoning, shown with the solution and after a correct answer."""
    hint: str
    tol: float | None = None
    """Absolute tolerance for numbers (None: exact, strings compared without case or spaces)."""


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars as Python lists and numbers (for printing)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _norm(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _norm(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_norm(v) for v in value)
    if isinstance(value, str):
        return value.strip().lower().replace(" ", "_").replace("-", "_")
    return value


def _matches(answer: Any, expected: Any, tol: float | None) -> bool:
    a, e = _norm(answer), _norm(expected)
    if isinstance(a, list) and isinstance(e, list):
        return len(a) == len(e) and all(_matches(x, y, tol) for x, y in zip(a, e, strict=True))
    if isinstance(e, bool) or isinstance(a, bool):
        return a is e or (isinstance(a, bool) and isinstance(e, bool) and a == e)
    if tol is not None and isinstance(a, (int, float)) and isinstance(e, (int, float)):
        return abs(float(a) - float(e)) <= tol
    return a == e


def teacher_mode() -> bool:
    """Whether ``CLIPSAM_TEACHER`` is set to 1/true/yes: unanswered checks print the solution."""
    return os.environ.get(TEACHER_ENV, "").strip().lower() in {"1", "true", "yes"}


def _get(exercise_id: str) -> Exercise:
    if exercise_id not in EXERCISES:
        raise KeyError(f"Unknown exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}.")
    return EXERCISES[exercise_id]


def solution(exercise_id: str, **context: Any) -> Any:
    """The expected answer of an exercise, computed now (a clear error names missing context)."""
    ex = _get(exercise_id)
    try:
        return ex.solve(**context)
    except TypeError as e:
        raise TypeError(f"Exercise {exercise_id}: the check needs the notebook's objects as keywords ({e}); "
                        "run the notebook's earlier cells and keep the check(...) call as written.") from e


def show_solution(exercise_id: str, **context: Any) -> Any:
    """Print (and return) an exercise's answer and its reasoning: for teachers."""
    ex = _get(exercise_id)
    expected = solution(exercise_id, **context)
    print(f"Exercise {exercise_id}, solution: {_plain(expected)!r}\n  why: {ex.why}")
    return expected


def check(exercise_id: str, answer: Any = None, **context: Any) -> bool | None:
    """Compare a student's ``answer`` with the answer computed now; ``None`` means "not answered yet".

    Returns True or False for an answer, None for no answer (never raises for a wrong answer, so a
    notebook keeps running). ``context`` passes the notebook's objects the solution is computed from.
    """
    ex = _get(exercise_id)
    if answer is None:
        print(f"Exercise {exercise_id}: not answered yet. Replace `answer = None` by {ex.asks} and run the cell again.")
        if teacher_mode():
            show_solution(exercise_id, **context)
        return None
    expected = solution(exercise_id, **context)
    if _matches(answer, expected, ex.tol):
        print(f"Exercise {exercise_id}: correct. {ex.why}")
        return True
    print(f"Exercise {exercise_id}: not yet ({answer!r} is not it). Hint: {ex.hint}")
    return False


# ------------------------------------------------------------------------------------------------
# The solutions: computed by the package, from the notebooks' objects
# ------------------------------------------------------------------------------------------------

def _mean_area_largest() -> str:
    from .datasets import load_dataset
    from .synthetic import sample_root

    areas: dict[str, list[float]] = {}
    for it in load_dataset("mvtec", sample_root(signature=False), split="test"):
        if it.label == 1:
            areas.setdefault(it.defect_type, []).append(float(it.mask.mean()))
    return max(areas, key=lambda t: np.mean(areas[t]))


def _crop_or_squash() -> tuple[bool, bool]:
    from PIL import Image

    from .images import resize_center_crop

    m = np.zeros((300, 700), dtype=bool)
    m[140:160, 40:60] = True
    cropped = resize_center_crop(m, 518, is_mask=True)
    squashed = np.asarray(Image.fromarray(m.astype(np.float32)).resize((518, 518), Image.Resampling.BOX)) >= 0.5
    return bool(cropped.any()), bool(squashed.any())


def _equal_rows_score() -> float:
    import torch

    logits = 100 * torch.tensor([0.3, 0.3])  # identical text rows: the same logit for both states
    return float(logits.softmax(-1)[1])


def _token_index(models: Any, cfg: Any) -> int:
    gw = cfg.clip_image_size // models.clip.visual.patch_size[1]
    return 3 * gw + 5


def _direction(new: float, old: float, eps: float = 1e-3) -> str:
    return "same" if abs(new - old) < eps else ("up" if new > old else "down")


def _smoothing_effect(models: Any, cfg: Any, adapter: Any, items: list) -> str:
    from .clip_maps import anomaly_maps
    from .metrics import pixel_auroc

    def auroc(c: Any) -> float:
        maps = anomaly_maps(models, [it.image for it in items], [it.category for it in items], c, adapter=adapter)
        return pixel_auroc(list(maps.maps), [it.mask for it in items])

    return _direction(auroc(cfg.replace(smoothing_sigma=0)), auroc(cfg))


def _image_score_mix(models: Any, cfg: Any, adapter: Any, item: Any) -> float:
    from .clip_maps import anomaly_maps

    r = anomaly_maps(models, [item.image], item.category, cfg.replace(image_score_mix=0.25), adapter=adapter)
    return float(r.image_scores[0])


def _prior_beats_chance(rows: dict | None = None) -> tuple[bool, bool]:
    """(prior > 0.5 on pixel AUROC, prior > 0.5 on region AUROC): notebook 01's table, or, without one
    (profiles other than ``mini``), the silhouette prior (mean object mask of 4 normal images) on 12 world images."""
    if rows is None:
        from .synthetic import HELDOUT_CATEGORIES
        from .world_course import prior_rows, world_items

        test = world_items(HELDOUT_CATEGORIES, 3, "test", size=64)
        normal = {c: [it.region.astype(np.float32) for it in world_items([c], 4, "train", size=64, n_defects=0)]
                  for c in HELDOUT_CATEGORIES}
        rows = {"prior (training_free)": prior_rows(test, [np.zeros((64, 64), np.float32)] * len(test), normal)["prior"]}
    r = rows["prior (training_free)"]
    return bool(r["pixel_auroc"] > 0.5), bool(r["region_auroc"] > 0.5)


def _real_sam_frame() -> list[int]:
    from segment_anything.utils.transforms import ResizeLongestSide

    h, w = ResizeLongestSide.get_preprocess_shape(480, 640, 1024)
    return [h, w, int(np.ceil(h / 16))]


def _grid_cells() -> list[list[int]]:
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    from .sam_features import SamEmbedding, original_to_grid

    e = SamEmbedding(torch.zeros(256, 64, 64), (480, 640), ResizeLongestSide.get_preprocess_shape(480, 640, 1024),
                     1024)
    return original_to_grid(np.array([[639, 479], [100, 250]]), e).tolist()


def _encoder_passes(sam: Any, image: np.ndarray) -> list[int]:
    from .sam_features import EncoderCounter, embed_images

    with EncoderCounter(sam) as c:
        embed_images(sam, [image] * 5, batch_size=2)
    return [c.calls, c.images]


def _own_cell_similarity(emb: Any, point: Any) -> float:
    from .sam_features import grid_similarity, original_to_grid, prototype

    pt = np.asarray([point])
    g = original_to_grid(pt, emb)[0]
    return float(grid_similarity(emb, prototype(emb, pt))[g[1], g[0]])


def _two_point_positives(cfg: Any) -> list[int]:
    from .ppg import generate_prompts

    two = np.zeros((64, 64), np.float32)
    two[10, 10], two[28, 34] = 0.9, 0.8
    c = cfg.replace(tau_mode="absolute", tau=0.5, k_pos=5, per_component=False, negative_strategy="none",
                    min_component_area=1, length_unit="original", ppg_resolution="original")
    return [len(generate_prompts(two, c.replace(d_min=d)).positives) for d in (40.0, 30.0)]


def _farthest_negatives(results: dict) -> str:
    from scipy import ndimage

    dist = {}
    for name, res in results.items():
        if len(res.negatives):
            d = ndimage.distance_transform_edt(~res.m_apa)
            dist[name] = float(d[res.negatives[:, 1], res.negatives[:, 0]].mean())
    return max(dist, key=dist.get)


def _positives_at_triple_d_min(s_a: np.ndarray, cfg: Any, emb: Any) -> int:
    from .ppg import generate_prompts

    res = generate_prompts(s_a, cfg.replace(d_min=3 * cfg.d_min), emb)
    return len(res.prompt_sets[0].positives) if res.prompt_sets else 0


def _logit_cover() -> list[int]:
    from segment_anything.utils.transforms import ResizeLongestSide

    h, w = ResizeLongestSide.get_preprocess_shape(900, 1200, 1024)
    return [h, w, int(np.ceil(h * 256 / 1024)), int(np.ceil(w * 256 / 1024))]


def _decoder_calls(ex: Any) -> int:
    from .cps import run_cascade

    calls: list[int] = []
    hook = ex.models.sam.mask_decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        run_cascade(ex.predictor, ex.s_a, ex.points, ex.labels, ex.cfg.replace(stages=3))
    finally:
        hook.remove()
    return len(calls)


def _one_point_grows(ex: Any, s1: Any) -> bool:
    first = ex.points[ex.labels == 1][:1].astype(np.float32)
    logits, ious, _ = ex.predictor.predict(point_coords=first, point_labels=np.ones(1, np.int32),
                                           multimask_output=True, return_logits=True)
    return bool((logits[int(np.argmax(ious))] > 0).sum() > s1.area)


def _secondary_toy(cfg: Any) -> list[list[int]]:
    from .cps import secondary_points

    toy = np.zeros((40, 40), np.float32)
    toy[10, 10], toy[12, 30], toy[30, 25] = 0.9, 0.8, 0.7
    m1 = np.zeros((40, 40), bool)
    m1[5:36, 5:36] = True
    c = cfg.replace(d_min=8.0, k_secondary_pos=2, k_secondary_neg=1, secondary_ring=3)
    pts, _ = secondary_points(toy, m1, np.array([[10, 10]]), np.array([1]), c)
    return np.asarray(pts).astype(int).tolist()


def _real_mask_input() -> list[int]:
    import torch

    from .models import build_sam

    with torch.device("meta"):
        sam = build_sam("vit_b")
    return list(sam.prompt_encoder.mask_input_size)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _m2_without_secondary(ex: Any, s2: Any) -> float:
    from .cps import run_cascade

    off = run_cascade(ex.predictor, ex.s_a, ex.points, ex.labels, ex.cfg.replace(stages=2, secondary_points=False))
    return round(_iou(off.stages[-1].mask, s2.mask), 2)


def _corner_box() -> list[int]:
    from .cps import box_from_mask

    m = np.zeros((64, 64), bool)
    m[2:6, 60:64] = True
    return box_from_mask(m, 3).astype(int).tolist()


def _fusion_mask_effect(ex: Any, s3: Any) -> str:
    from .cps import fuse
    from .metrics import pixel_auroc

    def auroc(mode: str) -> float:
        return pixel_auroc(fuse(ex.s_a, s3.mask, s3.logits, ex.cfg.replace(fusion=mode)), ex.gt)

    return _direction(auroc("mask"), auroc("gate"))


def _normal_encoder_passes(ex: Any) -> int:
    from .pipeline import finish_from_maps

    cfg = ex.cfg.replace(tau_mode="absolute", tau=float(ex.s_a.max()))
    return int(finish_from_maps(ex.s_a, ex.image_score, ex.object_name, None, ex.models, cfg).sam_encoder_calls)


def _ninth_pixel_auroc() -> float:
    from .metrics import pixel_auroc

    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.95], np.float32).reshape(3, 3)
    mask = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0], bool).reshape(3, 3)
    return pixel_auroc(scores, mask)


def _aupro_toy(b_score: float = 0.45) -> list[float]:
    from .metrics import aupro, pixel_auroc

    toy = np.full((4, 5), 0.1, dtype=np.float32)
    regions = np.zeros((4, 5), dtype=bool)
    regions[0:2, 0:2] = True
    regions[3, 4] = True
    toy[0:2, 0:2] = 0.9
    toy[3, 4] = b_score
    toy[0, 3], toy[1, 3] = 0.5, 0.4
    toy[0, 2] = toy[1, 2] = toy[2, 0] = toy[2, 1] = toy[2, 2] = 0.2
    return [aupro(toy, regions), pixel_auroc(toy, regions)]


def _best_stages(rows: dict, cfg: Any, key: str = "pixel_f1_max") -> int:
    s, f = cfg.negative_strategy, cfg.fusion
    candidates = {n: rows[(s, n, f)][key] for n in (1, 2, 3) if (s, n, f) in rows}
    candidates[0] = rows[(None, 0, None)][key]
    return max(sorted(candidates), key=lambda n: candidates[n])


def _cache_invalidators(setup: Any, rec: Any, peers: list) -> list[str]:
    import dataclasses
    import importlib
    import importlib.util

    for module in ("clipsam_lite.evaluate", "clipsam_lite.cache", "clipsam_lite.eval_cache"):
        mod = importlib.import_module(module) if importlib.util.find_spec(module) else None
        if mod is not None and hasattr(mod, "entry_key") and hasattr(mod, "run_identity"):
            break
    else:
        raise ImportError("entry_key / run_identity not found in the evaluation modules")
    key = mod.entry_key(mod.run_identity(setup), rec, peers)
    changed = []
    for name, value in (("tau", setup.cfg.tau + 0.1), ("batch_size", setup.cfg.batch_size + 1)):
        other = dataclasses.replace(setup, cfg=setup.cfg.replace(**{name: value}))
        if mod.entry_key(mod.run_identity(other), rec, peers) != key:
            changed.append(name)
    return sorted(changed)  # the output folder holds the cache: it is never part of a key


def _naive_tie() -> list[int]:
    m = np.zeros((6, 8), np.float32)
    m[1, 6] = m[4, 2] = 0.7
    y, x = np.unravel_index(np.argmax(m), m.shape)
    return [int(x), int(y)]


def _naive_larger(cases: list) -> bool:
    c = cases[0]
    return bool(c.naive_mask.sum() > c.result.final_mask.sum())


def _sixteen_bit() -> int:
    from PIL import Image

    from .images import read_image

    with tempfile.TemporaryDirectory() as tmp:
        a = np.full((4, 4), 32896, np.uint16)
        Image.fromarray(a).save(Path(tmp) / "v.png")
        return int(read_image(Path(tmp) / "v.png")[0, 0, 0])


def _default_png_keys() -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image

    from .panels import save_figure

    with tempfile.TemporaryDirectory() as tmp:
        fig = plt.figure(figsize=(1, 1))
        fig.savefig(Path(tmp) / "default.png")
        save_figure(fig, Path(tmp) / "ours.png")
        return sorted(set(Image.open(Path(tmp) / "default.png").info) - set(Image.open(Path(tmp) / "ours.png").info))


_E = Exercise
EXERCISES: dict[str, Exercise] = {e.id: e for e in [
    # 00: data and protocol
    _E("00.1", "a defect type, e.g. 'hole'", lambda: _mean_area_largest(),
       "Stains are blobs that spread; scratches and cracks are thin lines: area follows shape, not severity. "
       "Pixel AUROC/AP pool pixels, so such large defects weigh most (notebook 07).",
       "compute each defect type's mean of it.mask.mean() over the anomalous test images"),
    _E("00.2", "a pair (anomalous after the crop, anomalous after the squash), e.g. (True, False)",
       lambda: _crop_or_squash(),
       "The centre crop keeps only the central 300 of 700 columns, so a defect near the side vanishes and the "
       "image is scored as normal; squashing to 518 x 518 (what the peers' code does) keeps every pixel.",
       "which original columns survive resize_center_crop? Squashing resizes the whole image without cropping."),
    # 01: CLIP maps
    _E("01.1", "a number between 0 and 1", lambda: _equal_rows_score(),
       "With identical rows both logits are equal, so the softmax gives 0.5 everywhere: only the difference "
       "of T's two rows carries signal.", "softmax of two equal logits"),
    _E("01.2", "an int (0-based token index, CLS dropped)", _token_index,
       "Row-major order: token r * w + c holds grid row r, column c; w is the number of patches per row.",
       "compute w = cfg.clip_image_size // patch size, then r * w + c"),
    _E("01.3", "'up', 'down' or 'same'", _smoothing_effect,
       "Smoothing averages neighbouring patches: it removes isolated false peaks and blurs the boundary; which "
       "effect wins on these images decides the direction.", "run anomaly_maps with cfg.replace(smoothing_sigma=0)"),
    _E("01.4", "a float (the image score)", _image_score_mix,
       "score = mix * global + (1 - mix) * max(S_a on the working grid).", "use global_scores and working_maps",
       tol=1e-4),
    _E("01.5", "a pair (prior beats 0.5 on pixel AUROC, prior beats 0.5 on region AUROC)", _prior_beats_chance,
       "The prior is the same map for every image: it only knows where defects can be (the object), so it ranks "
       "defect pixels above the background's easy negatives (pixel AUROC well above 0.5) but, inside the region, "
       "it has no idea which pixels are defective; whatever it keeps there (near 0.5, either side) is the small "
       "bias of where defects land within the object.",
       "a fixed map cannot follow this image's defect; which pixels does it still rank correctly?"),
    # 02: SAM features
    _E("02.1", "a triple (input height, input width, grid rows holding image)", lambda: _real_sam_frame(),
       "The longest side becomes 1024 (scale 1.6), 480 -> 768, and 768 / 16 = 48 grid rows hold image; "
       "the 16 rows below are padding.", "ResizeLongestSide.get_preprocess_shape(480, 640, 1024)"),
    _E("02.2", "two (column, row) grid cells, e.g. [[c1, r1], [c2, r2]]", lambda: _grid_cells(),
       "A pixel's centre (x + 0.5, y + 0.5) is scaled by 1024 / 640 = 1.6 and divided by the 16-px cell.",
       "scale the pixel centre, then integer-divide by 16"),
    _E("02.3", "a pair (encoder forward passes, images encoded)", _encoder_passes,
       "Batches of 2, 2 and 1: three forward passes, still exactly one encoding per image.",
       "how many batches does batch_size=2 make of 5 images?"),
    _E("02.4", "a number", _own_cell_similarity,
       "A one-point prototype IS the normalised feature of that cell: its cosine with itself is 1, whatever "
       "the weights.", "what is cos(f, f)?", tol=1e-4),
    # 03: PPG
    _E("03.1", "a pair (positives for d_min=40, positives for d_min=30)", _two_point_positives,
       "The two peaks are exactly 30 px apart; a candidate is rejected only when strictly closer than d_min.",
       "distance between (10, 10) and (34, 28)"),
    _E("03.2", "a strategy name", _farthest_negatives,
       "Global lowest-score negatives lie wherever S_a is lowest, usually far from the defect: they do not say "
       "where the anomaly ends. METHOD.md step 3: the paper says this makes SAM segment the whole object.",
       "measure each strategy's distance from its negatives to M_apa"),
    _E("03.3", "a number (the smallest such tau)", lambda s_a: float(np.max(s_a)),
       "M_apa = S_a > tau is empty exactly when tau >= max(S_a).", "when is S_a > tau false everywhere?",
       tol=5e-3),
    _E("03.4", "an int (positives in the first prompt set)", _positives_at_triple_d_min,
       "A larger d_min forbids a larger disc around each chosen point: on a small component fewer points fit.",
       "generate_prompts(s_a, cfg.replace(d_min=3 * cfg.d_min), emb)"),
    # 04: stage 1
    _E("04.1", "four ints (input height, input width, logit1 rows, logit1 columns covering the image)",
       lambda: _logit_cover(),
       "1200 -> 1024 scales by 1024/1200, so 900 -> 768; a quarter of 768 x 1024 is 192 x 256.",
       "ResizeLongestSide.get_preprocess_shape, then a quarter of each side"),
    _E("04.2", "an int (mask-decoder calls for stages=3)", _decoder_calls,
       "One decoder pass per stage that ran; a stage runs only if the mask before it is not empty.",
       "count with a forward hook on models.sam.mask_decoder"),
    _E("04.3", "True or False", _one_point_grows,
       "Without negatives nothing tells SAM where the anomaly ends; a trained SAM then tends to pick a larger "
       "part or the whole object (the ambiguity its three outputs exist for).",
       "predictor.predict with one positive and multimask_output=True; keep the highest predicted IoU"),
    # 05: stage 2
    _E("05.1", "a list of (x, y) points, positives first", _secondary_toy,
       "(10, 10) is an existing positive, so everything within d_min of it, the 0.9 peak included, is excluded; "
       "then 0.8 at (30, 12) and 0.7 at (25, 30); the ring's first zero in row-major order is (5, 2).",
       "exclude the disc of radius d_min around the old positive; ties go in row-major order"),
    _E("05.2", "a pair (h, w)", lambda: _real_mask_input(),
       "mask_input is 4 x the image embedding's grid (64 x 64 for the real SAMs): 256 x 256, shrunk back to "
       "64 x 64 by two stride-2 convolutions.", "models.sam.prompt_encoder.mask_input_size, for a real SAM"),
    _E("05.3", "a number (IoU of the two M2, 2 decimals)", _m2_without_secondary,
       "Without secondary points, stage 2 differs from stage 1 only by mask_input = logit1; the IoU says how much "
       "the extra points moved the mask.", "run_cascade(..., cfg.replace(stages=2, secondary_points=False))",
       tol=0.011),
    # 06: stage 3
    _E("06.1", "a box [x0, y0, x1, y1]", lambda: _corner_box(),
       "Grow the tight box by the margin on every side, then clip to the image: x1 = 66 -> 63, y0 = -1 -> 0.",
       "tight box [60, 2, 63, 5], then the margin, then clipping"),
    _E("06.2", "'up', 'down' or 'same'", _fusion_mask_effect,
       "fusion='mask' replaces S_a by 0/1: every pixel inside M3 ties with every other, outside too, so AUROC "
       "can only count the mask's two levels; gate keeps CLIP's ranking inside M3 (outside M3 both are 0). They "
       "differ only where M3 holds defect and normal pixels: an M3 entirely inside the defect leaves nothing to rank, "
       "and the AUROC stays the same.",
       "metrics.pixel_auroc of fuse(...) for both modes on this image"),
    _E("06.3", "an int (SAM encoder passes)", _normal_encoder_passes,
       "M_apa is empty, so there are no prompts: SAM is skipped entirely and the final map is S_a.",
       "finish_from_maps with tau = max(S_a) and no embedding"),
    # 07: metrics
    _E("07.1", "a fraction, e.g. 0.75", lambda: _ninth_pixel_auroc(),
       "0.9 and 0.8 now beat 5 of 6 normal pixels, 0.6 beats 4: 14 of 18 pairs.",
       "count the correctly ranked (anomalous, normal) pairs", tol=1e-3),
    _E("07.2", "a pair (AUPRO, pixel AUROC)", lambda: _aupro_toy(),
       "B is found at FPR 1/15: area 0.5/15 + (0.3 - 1/15), / 0.3 = 8/9; AUROC wins one pair: 74/75. "
       "Finding the small defect earlier moves AUPRO by 11 points and AUROC by 1.",
       "B is found once the threshold passes 0.45, after one normal pixel", tol=1e-3),
    _E("07.3", "a list of the changes that recompute, from 'tau', 'batch_size', 'output_folder'",
       _cache_invalidators,
       "Every Config field and every input enters the key (batch_size too: it changes which images share a CLIP "
       "batch); the output folder is where the cache lives, not an input.",
       "evaluate's entry_key of a changed setup"),
    _E("07.4", "an int (0, 1, 2 or 3)", _best_stages,
       "Read the stage curve; stage 0 is S_a alone. With a real SAM the masks sharpen stage by stage (the paper's "
       "Figure 3); mini-SAM's model card measures no IoU gain on average, so on a few images either way can win; with "
       "random backbones anything goes.", "compare the rows of the default strategy and fusion"),
    # 08: figures
    _E("08.1", "a point (x, y)", lambda: _naive_tie(),
       "argmax returns the first maximum in row-major order: row 1 comes before row 4, so (column 6, row 1).",
       "NumPy's argmax on a flattened array"),
    _E("08.2", "True or False", _naive_larger,
       "One point at the maximum says nothing about where the anomaly ends; ours adds negatives around it and "
       "a box.", "compare the two masks' pixel counts in Figure 1's first row"),
    # 09: files and formats
    _E("09.1", "an int (the 8-bit value)", lambda: _sixteen_bit(),
       "16-bit values are scaled by round(v / 257): 32896 / 257 = 128.0 (65535 -> 255).", "v / 257, rounded"),
    _E("09.2", "a list of PNG metadata keys", lambda: _default_png_keys(),
       "matplotlib writes its version under 'Software'; save_figure drops it, so the same figure gives the same "
       "bytes on every matplotlib version.", "compare Image.open(path).info of both files"),
]}
