"""The shipped mini-CLIP: export to safetensors, SHA-256-checked loading, untaught-word warnings. [ours]

Taught in notebook 01 (section "A CLIP that has learned something"); it is the CLIP of the ``mini``
profile, whose patch tokens METHOD.md step 1 reads. :func:`export_mini_clip` turns a pretraining run
(:mod:`clipsam_lite.pretrain.clip`) into ``weights/mini_clip/mini_clip.safetensors`` (fp16, no pickle)
and ``manifest.json`` (its SHA-256, the architecture, the token ids pretraining taught). Of the
49408 x 64 token embedding only the rows of taught tokens are shipped; :func:`load_mini_clip`
rebuilds the full table with zeros elsewhere, and its tokenizer warns, naming the word, whenever a
prompt uses a word whose tokens were never taught (the held-out object names, for instance).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "mini_clip"
WEIGHTS_FILE = "mini_clip.safetensors"
MANIFEST_FILE = "manifest.json"
MINI_CLIP_NAME = "clipsam-mini-vit"
_ROWS, _IDS = "token_embedding.rows", "token_embedding.ids"


class MiniClipChecksumError(RuntimeError):
    """The weights file is not the one the manifest describes (edited, truncated or replaced)."""


class UntaughtWordWarning(UserWarning):
    """A prompt uses a word whose tokens mini-CLIP's pretraining never taught (their embedding is zero)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_mini_clip(run: str | Path, out_dir: str | Path = WEIGHTS_DIR, *, extra: dict[str, Any] | None = None
                     ) -> Path:
    """Write ``final.pt`` of a pretraining run as fp16 safetensors + manifest; returns the weights path. [ours]"""
    from safetensors.torch import save_file

    run = Path(run)
    src = run / "final.pt" if run.is_dir() else run
    state = torch.load(src, map_location="cpu", weights_only=True)
    sd: dict[str, torch.Tensor] = dict(state["model"])
    seen: torch.Tensor = state["seen"]
    ids = torch.nonzero(seen).flatten().to(torch.int32)
    table = sd.pop("token_embedding.weight")
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}
    tensors[_ROWS] = table[ids.long()].to(torch.float16).contiguous()
    tensors[_IDS] = ids.contiguous()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WEIGHTS_FILE
    save_file(tensors, str(path), metadata={"format": "clipsam-lite-mini-clip", "model": MINI_CLIP_NAME})
    manifest = {"format": "clipsam-lite-mini-clip", "format_version": 1, "model": MINI_CLIP_NAME,
                "file": WEIGHTS_FILE, "sha256": _sha256(path), "bytes": path.stat().st_size,
                "vocab_size": int(table.shape[0]), "taught_token_ids": len(ids),
                "pretraining": {k: v for k, v in state["config"].items() if k != "extra"},
                "steps": int(state["step"]), "cpu_minutes": round(float(state["cpu_s"]) / 60.0, 2), **(extra or {})}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


class MiniTokenizer:
    """open_clip's tokenizer, plus a warning naming each word whose tokens pretraining never taught."""

    def __init__(self, tokenizer: Any, taught: Iterable[int]) -> None:
        self.tokenizer = tokenizer
        self.taught = frozenset(int(i) for i in taught)
        self.context_length = getattr(tokenizer, "context_length", 32)
        self._verdict: dict[str, bool] = {}
        self.reported: set[str] = set()

    def untaught_words(self, texts: str | Iterable[str]) -> list[str]:
        """The words of ``texts`` with at least one token that pretraining never taught (in order, unique)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out: dict[str, None] = {}
        for text in texts:
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                if word not in self._verdict:
                    ids = self.tokenizer.encode(word) if hasattr(self.tokenizer, "encode") else []
                    self._verdict[word] = all(i in self.taught for i in ids)
                if not self._verdict[word]:
                    out[word] = None
        return list(out)

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        new = [w for w in self.untaught_words(texts) if w not in self.reported]
        if new:
            self.reported.update(new)
            warnings.warn(f"mini-CLIP was never taught the word(s) {new}: their token embeddings are zero, so they "
                          "carry no meaning (held-out object names are expected here; the state words still work).",
                          UntaughtWordWarning, stacklevel=2)
        return self.tokenizer(texts) if context_length is None else self.tokenizer(texts, context_length)


def load_mini_clip(path: str | Path | None = None, device: torch.device | str = "cpu"
                   ) -> tuple[torch.nn.Module, MiniTokenizer, Callable]:
    """(model, tokenizer, preprocess) of the shipped mini-CLIP, checked against its manifest's SHA-256. [ours]

    ``path``: a ``mini_clip.safetensors`` with ``manifest.json`` beside it (default: the package's own).
    Raises :class:`MiniClipChecksumError` when the file's SHA-256 differs from the manifest's and
    ``FileNotFoundError`` when either file is missing; never touches the network.
    """
    path = Path(path) if path is not None else WEIGHTS_DIR / WEIGHTS_FILE
    manifest_path = path.parent / MANIFEST_FILE
    if not path.is_file() or not manifest_path.is_file():
        raise FileNotFoundError(
            f"mini-CLIP weights not found: expected {path} and {manifest_path}. They ship inside the package "
            "(reinstall clipsam-lite), or pretrain and export your own: python -m clipsam_lite pretrain clip --out DIR, "
            "then clipsam_lite.mini_clip.export_mini_clip(DIR, OUT_DIR).")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    got = _sha256(path)
    if got != manifest.get("sha256"):
        raise MiniClipChecksumError(
            f"mini-CLIP weights {path} have SHA-256 {got}, but {manifest_path} expects {manifest.get('sha256')}: the "
            "file was changed, truncated or replaced. Restore it (reinstall clipsam-lite, or `git checkout` it), or "
            "re-export both files together with export_mini_clip.")
    import open_clip  # after the checks: a wrong file fails before any expensive import
    from safetensors.torch import load_file

    from .models import register_model_configs

    register_model_configs()
    tensors = load_file(str(path))
    ids = tensors.pop(_IDS).long()
    rows = tensors.pop(_ROWS)
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": the weights come next
    try:
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the global RNG alone
            model = open_clip.create_model(manifest.get("model", MINI_CLIP_NAME), pretrained=None)
    finally:
        logging.disable(logging.NOTSET)
    table = torch.zeros_like(model.token_embedding.weight)
    table[ids] = rows.float()
    state = {k: v.float() for k, v in tensors.items()}
    state["token_embedding.weight"] = table
    model.load_state_dict(state, strict=True)
    model = model.to(device).eval()
    size = model.visual.image_size
    preprocess = open_clip.image_transform(size[0] if isinstance(size, tuple) else size, is_train=False)
    return model, MiniTokenizer(open_clip.get_tokenizer(manifest.get("model", MINI_CLIP_NAME)), ids.tolist()), preprocess


__all__ = ["export_mini_clip", "load_mini_clip", "MiniTokenizer", "MiniClipChecksumError", "UntaughtWordWarning",
           "WEIGHTS_DIR", "MINI_CLIP_NAME"]
