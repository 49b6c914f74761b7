"""The per-image evaluation cache: entry keys, atomic entries, the cache folder.

Taught in notebook 07 (section 4, "Evaluating the method on the synthetic sample"). No METHOD.md step:
the cache is **[ours]**, what makes :func:`clipsam_lite.evaluate.evaluate` resumable and
:func:`clipsam_lite.ablate.ablate` read the same maps.

Each image's result is written, as soon as it is made, to ``OUT/cache/<key>/`` (``final_map.npy``
and ``s_a.npy``: float32 at the evaluation resolution; ``entry.json``: image score, label, ...).
The folder is written under a temporary name and renamed into place, so an entry either exists
whole or not at all; its ``entry.json`` records its key and the SHA-256 of both arrays, and an entry
that does not match (a partial copy, a damaged file, another key's entry) is removed with a one-line
warning and recomputed, never read back as data (:func:`entry_problem`). ``<key>`` is a SHA-256 of everything that can change the numbers: dataset,
root, category, the image's path, size and modification time (and its mask's), profile, backbone
fingerprints, every :class:`~clipsam_lite.config.Config` field (resolution, batch size and stages
included), the adapter's SHA-256, the package and torch versions, torch's CPU thread count, the
device type, and the other images of the image's batch. The last one is there because batched forwards may round
differently with other batch peers (GPU kernels are chosen by batch size): batches are fixed
slices of a category's image list, and a batch with any missing entry is recomputed whole (only
its missing entries are written). So a run killed at any moment and restarted with the same
arguments recomputes at most the one batch in flight and ends with bit-identical maps and
results; changed arguments get other keys and never read an old entry. ``--fresh`` deletes
``OUT/cache/`` first. Metrics are always computed from the cached arrays, so the resumed and the
uninterrupted path read the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .datasets import Record
    from .models import Models

__all__ = ["CACHE_FORMAT", "CACHE_MARKER", "ENTRY_FILES", "EvaluationError", "CachedEntry", "entry_key", "eval_map",
           "eval_mask", "load_entry", "entry_problem", "usable_entry"]

CACHE_FORMAT = 2
"""2: entries carry their key and their arrays' SHA-256 (issue 12). Bumped whenever what a cache entry holds changes (it is part of every key)."""
CACHE_MARKER = "CLIPSAM_EVAL_CACHE.txt"
"""A file in ``OUT/cache/``: ``--fresh`` deletes only a cache folder that carries it."""
ENTRY_FILES: tuple[str, ...] = ("final_map.npy", "s_a.npy", "entry.json")


class EvaluationError(ValueError):
    """Bad evaluation input (unlabelled images, a foreign cache folder, ...); the message names the fix."""



def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _weights_digest(module: Any) -> str:
    """SHA-256 of a module's state_dict (names, shapes, float32 bytes), for adapters built in memory."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        a = t.detach().cpu().float().contiguous().numpy()
        h.update(name.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _sam_fingerprint(models: Models) -> str:
    """A short SHA-256 of SAM's patch embedding and mask-decoder output tokens (like ``backbone_fingerprint``)."""
    import torch

    sam = models.sam
    h = hashlib.sha256()
    for t in (sam.image_encoder.patch_embed.proj.weight, sam.mask_decoder.mask_tokens.weight):
        h.update(t.detach().float().cpu().to(torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Cache keys and entries
# --------------------------------------------------------------------------------------------------

def _stat(path: str | None) -> list[int] | None:
    if path is None:
        return None
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def entry_key(identity: dict[str, Any], record: Record, batch_paths: Sequence[str]) -> str:
    """The cache key of one image: SHA-256 of ``identity``, the image, its mask and its batch peers [ours]."""
    payload = {
        "run": identity, "category": record.category, "image": str(Path(record.path).resolve()),
        "image_stat": _stat(record.path), "mask": record.mask_path, "mask_stat": _stat(record.mask_path),
        "label": record.label, "batch": [str(Path(p).resolve()) for p in batch_paths],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def eval_map(score_map: np.ndarray, resolution: int, mode: str = "squash") -> np.ndarray:
    """A score map at the evaluation resolution (bilinear), float32: squashed to the square (default, the
    peers' ``Resize((518, 518))``) or short side + centre crop (``mode="crop"``; ``Config.eval_resize``)."""
    from .images import resize_for_eval

    return resize_for_eval(np.asarray(score_map, dtype=np.float32), resolution, mode).astype(np.float32, copy=False)


def eval_mask(record: Record, mask_rule: str, resolution: int, mode: str = "squash") -> np.ndarray:
    """A record's ground truth at the evaluation resolution (bool); all False for a normal image.

    The mask is binarised when read (``read_mask``: MVTec half of the maximum, VisA ``!= 0``), then
    resized with area interpolation and ``>= 0.5``, squashed to the square or centre-cropped
    (``mode``, ``Config.eval_resize``; ``images.resize_for_eval``).
    """
    from .images import read_mask, resize_for_eval

    if record.mask_path is None:
        return np.zeros((resolution, resolution), dtype=bool)
    return resize_for_eval(read_mask(record.mask_path, mask_rule), resolution, mode, is_mask=True)


ENTRY_ARRAYS: tuple[str, ...] = ("final_map.npy", "s_a.npy")


def entry_problem(folder: str | os.PathLike[str], key: str | None = None) -> str | None:
    """Why ``cache/<key>/`` cannot be read back as data, or None when it is whole. [ours]

    A whole entry has every file of :data:`ENTRY_FILES`; its ``entry.json`` names its own key (the
    folder's name, unless ``key`` is given) and the SHA-256 of each array, and the arrays' bytes
    match those digests. So a partial copy, a damaged file or an entry moved under another key is
    never mistaken for a result.
    """
    folder = Path(folder)
    key = folder.name if key is None else key
    if not folder.is_dir():
        return "missing" if not folder.exists() else "not a folder"
    absent = [f for f in ENTRY_FILES if not (folder / f).is_file()]
    if absent:
        return f"partial (no {', '.join(absent)})"
    try:
        meta = json.loads((folder / "entry.json").read_text(encoding="utf-8"))
        digests = meta["digests"]
        written_for = meta["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return "damaged (entry.json is unreadable or has no digests)"
    if written_for != key:
        return f"foreign (written for key {str(written_for)[:12]}...)"
    for name in ENTRY_ARRAYS:
        if not isinstance(digests, dict) or digests.get(name) != _file_digest(folder / name):
            return f"damaged ({name} does not match its digest)"
    return None


def usable_entry(cache: Path, key: str, warn: Callable[[str], None] | None = None) -> bool:
    """True if ``cache/<key>`` is whole; a damaged, partial or foreign entry is removed (with a one-line
    warning) so that it is recomputed, never read and never in the way of the new entry."""
    folder = cache / key
    problem = entry_problem(folder, key)
    if problem is None:
        return True
    if problem != "missing":
        (warn or _warn)(f"[evaluate] warning: cache entry {folder} is {problem}: recomputing it.")
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
    return False


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def _write_entry(cache: Path, key: str, record: Record, result: Any, resolution: int, mode: str = "squash") -> None:
    """Write one image's entry into a temporary folder, then rename it to ``cache/<key>`` (atomic)."""
    final = cache / key
    tmp = cache / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        np.save(tmp / "final_map.npy", eval_map(result.final_map, resolution, mode))
        np.save(tmp / "s_a.npy", eval_map(result.s_a, resolution, mode))
        meta = {"key": key, "digests": {name: _file_digest(tmp / name) for name in ENTRY_ARRAYS},
                "image": record.path, "category": record.category, "defect_type": record.defect_type,
                "label": int(record.label), "image_score": float(result.image_score),
                "is_normal": bool(result.is_normal), "prompt_sets": len(result.cascades),
                "final_mask_area": int(result.final_mask.sum()) if result.final_mask is not None else 0,
                "size": list(result.size)}
        (tmp / "entry.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if entry_problem(final, key) is None:  # a finished twin written by a concurrent run
                return
            if not final.exists():  # a real error (permissions, disk)
                raise
            usable_entry(cache, key)  # a damaged entry in the way: removed, with a warning, then replaced
            os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class CachedEntry:
    """One image's cached result (what the metrics read)."""

    final_map: np.ndarray
    s_a: np.ndarray
    image_score: float
    label: int
    meta: dict[str, Any]


def load_entry(folder: str | os.PathLike[str]) -> CachedEntry:
    """Read ``cache/<key>/`` back, after :func:`entry_problem`; a damaged entry raises :class:`EvaluationError`."""
    folder = Path(folder)
    problem = entry_problem(folder)
    if problem is not None:
        raise EvaluationError(f"Cache entry {folder} is {problem}; rerun the evaluation (it recomputes that entry) "
                              "or use --fresh.")
    try:
        meta = json.loads((folder / "entry.json").read_text(encoding="utf-8"))
        final = np.load(folder / "final_map.npy")
        s_a = np.load(folder / "s_a.npy")
    except (OSError, ValueError) as e:
        raise EvaluationError(f"Cache entry {folder} cannot be read ({type(e).__name__}: {e}); delete that folder "
                              "(it is recomputed) or rerun with --fresh.") from None
    return CachedEntry(final_map=final, s_a=s_a, image_score=float(meta["image_score"]), label=int(meta["label"]),
                       meta=meta)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. permission denied: it exists
        return True
    return True


def _open_cache(out: Path, fresh: bool) -> Path:
    """``out/cache`` ready for use: created with its marker, wiped first if ``fresh``, stale temp folders removed."""
    cache = out / "cache"
    if cache.exists() and not (cache / CACHE_MARKER).is_file():
        raise EvaluationError(f"{cache} exists but is not an evaluation cache (no {CACHE_MARKER}); choose another "
                              "--out folder, or move that folder away. Nothing was deleted.")
    if fresh and cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    marker = cache / CACHE_MARKER
    if not marker.is_file():
        marker.write_text("Per-image evaluation cache of clipsam-lite (python -m clipsam_lite evaluate). Each folder "
                          "is one image's result, named by a hash of everything that changes it.\nSafe to delete; "
                          "--fresh deletes it.\n", encoding="utf-8")
    for tmp in cache.glob(".tmp-*"):  # left by a killed run (the pid in the name is gone)
        parts = tmp.name.split("-")
        pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else -1
        if not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
    return cache
