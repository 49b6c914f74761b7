"""Loading CLIP (open_clip) and SAM (segment_anything) for the four profiles.

Taught in notebook 00 (sections 2-3, "Three profiles" and "Loading CLIP and SAM"); the backbones of
METHOD.md steps 1 (CLIP) and 2 (SAM).

- ``paper``: open_clip ``ViT-L-14-336-quickgelu`` / ``openai`` at 518 px + SAM ``vit_h``.
- ``base``:  open_clip ``ViT-B-16-quickgelu`` / ``openai`` + SAM ``vit_b``.
- ``tiny``:  a small open_clip config registered through open_clip's own config mechanism and a small
  SAM assembled from ``segment_anything.modeling``: real classes of both libraries with **random
  weights**, built in about a second on CPU, never touching the network.
- ``mini``:  mini-CLIP and mini-SAM (the ``mini`` SAM architecture), both pretrained on the miniature
  world and shipped inside the package (:mod:`clipsam_lite.mini_clip`, ``weights/mini_sam/``).

Real weights: open_clip weights come through the Hugging Face cache (open_clip's own download);
SAM checkpoints from their official URLs into ``$CLIPSAM_CACHE/sam`` (default
``~/.cache/clipsam_lite/sam``), downloaded to a temporary file and renamed only after the SHA-256
matches. Without network and without cached weights, loading fails within seconds with
:class:`WeightsUnavailableError`, whose message names the file, the URL, the cache path, how to place
the file by hand, and the ``tiny`` profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .config import Config, get_config
from .paths import cache_dir, writable_cache_dir

__all__ = [
    "Models", "load_models", "load_clip", "load_sam", "build_sam", "SAM_ARCHS", "SAM_CHECKPOINTS",
    "TINY_CLIP_NAME", "WeightsUnavailableError", "CorruptCheckpointError", "ChecksumMismatchError",
    "CheckpointMismatchError", "sam_checkpoint_path", "clip_weights_status", "ensure_sam_checkpoint",
    "default_device", "resolve_precision", "encoder_autocast", "random_backbone_banner", "hub_endpoint",
    "torchscript_to_state_dict_file", "weights_report", "real_weights_cached", "tiny_clip_config",
    "SHIPPED_SAM_WEIGHTS", "shipped_sam_path", "load_shipped_sam_state",
]

TINY_CLIP_NAME = "clipsam-tiny-vit"
_ASSETS = Path(__file__).resolve().parent / "assets"


class WeightsUnavailableError(RuntimeError):
    """Real weights are neither cached nor downloadable (no network) nor given as a local path."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, not a checkpoint, wrong format)."""


class ChecksumMismatchError(RuntimeError):
    """A downloaded or cached SAM checkpoint does not have the official SHA-256."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint was read but belongs to another architecture than the one asked for."""


# --------------------------------------------------------------------------------------------------
# SAM
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamArch:
    """Hyper-parameters of a SAM architecture (those of ``segment_anything.build_sam``)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256


SAM_ARCHS: dict[str, SamArch] = {
    "vit_h": SamArch(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamArch(768, 12, 12, (2, 5, 8, 11)),
    # [ours] A small SAM for CI, and the first stage of the mini-SAM's recipe: same classes, 256 px input ->
    # 16 x 16 embedding, 64 x 64 low-res logits.
    "tiny": SamArch(96, 2, 2, (1,), img_size=256, window_size=8, prompt_embed_dim=64,
                    decoder_mlp_dim=256, decoder_num_heads=4, iou_head_hidden_dim=64),
    # [ours] The mini profile's SAM, pretrained on the synthetic world (clipsam_lite/weights/mini_sam/).
    # The tiny numbers with 8-px patches: 32 x 32 tokens, 128 x 128 low-res logits. Measured on 88 prompted
    # world defects, the 16 x 16 grid reached IoU 0.42 (0.24 on defects of about one token) after 8,000
    # steps; grown to 32 x 32 (pretrain/sam_grow.py) it scored 0.51 before any further training, and 0.58
    # after 2,800 more steps at ~1.6 CPU-s each (against ~0.6 on the 16 x 16 grid); see MODEL_CARD.md.
    "mini": SamArch(96, 2, 2, (1,), img_size=256, patch_size=8, window_size=8, prompt_embed_dim=64,
                    decoder_mlp_dim=256, decoder_num_heads=4, iou_head_hidden_dim=64),
}

# Official checkpoints of segment-anything (README of facebookresearch/segment-anything).
SAM_CHECKPOINTS: dict[str, dict[str, str]] = {
    "vit_h": {
        "file": "sam_vit_h_4b8939.pth",
        "url": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "sha256": "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    },
    "vit_l": {
        "file": "sam_vit_l_0b3195.pth",
        "url": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "sha256": "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    },
    "vit_b": {
        "file": "sam_vit_b_01ec64.pth",
        "url": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "sha256": "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    },
}


_WEIGHTS = Path(__file__).resolve().parent / "weights"

SHIPPED_SAM_WEIGHTS: dict[str, dict[str, str]] = {
    # [ours] trained by `python -m clipsam_lite pretrain sam` on the synthetic world; see MODEL_CARD.md beside it.
    "mini": {"file": "mini_sam/mini_sam.safetensors",
             "sha256": "5cb8090e8eb79ed70face59a44292c76ef97c37899c3decc49aac0c88295cf31"},
}
"""SAM weights that ship inside the package (safetensors, fp16), with their SHA-256."""


def shipped_sam_path(arch: str) -> Path:
    """Where the package keeps the shipped weights of ``arch`` (``mini``)."""
    if arch not in SHIPPED_SAM_WEIGHTS:
        raise ValueError(f"No shipped weights for SAM {arch!r}; shipped: {sorted(SHIPPED_SAM_WEIGHTS)}.")
    return _WEIGHTS / SHIPPED_SAM_WEIGHTS[arch]["file"]


def load_shipped_sam_state(arch: str, path: Path | None = None, expected_sha256: str | None = None
                           ) -> dict[str, torch.Tensor]:
    """The shipped state dict of ``arch`` as float32, after checking the file's SHA-256 (no network)."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else shipped_sam_path(arch)
    expected = expected_sha256 or SHIPPED_SAM_WEIGHTS[arch]["sha256"]
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The shipped SAM {arch!r} weights {path} are missing: the package is incomplete. Reinstall it "
            f"(pip install -e . from the repository keeps clipsam_lite/weights/), or use the 'tiny' profile.")
    got = _sha256(path)
    if got != expected:
        raise ChecksumMismatchError(
            f"The shipped SAM {arch!r} weights {path} have SHA-256 {got}, not {expected}: the file is damaged or "
            f"was replaced. Restore it from the repository (git checkout -- {path.name}) or reinstall the package.")
    return {k: v.float() for k, v in load_file(str(path)).items()}


def build_sam(arch: str) -> torch.nn.Module:
    """A SAM of the named architecture with random weights, from ``segment_anything.modeling``.

    Mirrors ``segment_anything.build_sam._build_sam`` (which would ``torch.load`` without
    ``weights_only``); the tiny architecture goes through the same code with smaller numbers.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if arch not in SAM_ARCHS:
        raise ValueError(f"Unknown SAM architecture {arch!r}; choose one of {sorted(SAM_ARCHS)}.")
    a = SAM_ARCHS[arch]
    grid = a.img_size // a.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=a.encoder_depth, embed_dim=a.encoder_embed_dim, img_size=a.img_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=a.encoder_num_heads,
            patch_size=a.patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=a.encoder_global_attn_indexes, window_size=a.window_size,
            out_chans=a.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=a.prompt_embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(a.img_size, a.img_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=a.prompt_embed_dim, mlp_dim=a.decoder_mlp_dim,
                                          num_heads=a.decoder_num_heads),
            transformer_dim=a.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=a.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def sam_checkpoint_path(arch: str, cache: Path | None = None) -> Path:
    """Where the official checkpoint of ``arch`` lives (or would live) in the cache."""
    if arch not in SAM_CHECKPOINTS:
        raise ValueError(f"No official checkpoint for SAM {arch!r}; known: {sorted(SAM_CHECKPOINTS)}.")
    return (cache or cache_dir()) / "sam" / SAM_CHECKPOINTS[arch]["file"]


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _unavailable(what: str, file: str, url: str, target: Path, reason: str, flag: str) -> WeightsUnavailableError:
    if "SAM" in what:
        by_hand = (f"download {url} on a machine with network and place it at the cache path above "
                   f"(or set CLIPSAM_CACHE to a folder whose sam/ holds it), or pass its path ({flag})")
    else:
        by_hand = (f"run once with network to fill the Hugging Face cache above, or download {file.split(' or ')[0]} "
                   f"from {url} and pass its path ({flag})")
    return WeightsUnavailableError(
        f"{what} weights are not available: {reason}\n"
        f"  file:  {file}\n"
        f"  url:   {url}\n"
        f"  cache: {target}\n"
        f"To fix it: {by_hand}. "
        f"To run offline without real weights, use the 'tiny' profile (random backbones, for learning the "
        f"pipeline and for tests): CLIPSAM_PROFILE=tiny or --profile tiny."
    )


def ensure_sam_checkpoint(arch: str, cache: Path | None = None, allow_download: bool = True,
                          timeout: float = 10.0) -> Path:
    """The cached official SAM checkpoint, downloading and checking it if needed.

    The download goes to a temporary file in the cache folder and is renamed into place only after
    its SHA-256 matches the official one. A cached file is checked once; a marker beside it records
    the check so later loads do not re-hash gigabytes.
    """
    meta = SAM_CHECKPOINTS[arch] if arch in SAM_CHECKPOINTS else None
    if meta is None:
        raise ValueError(f"No official checkpoint for SAM {arch!r}; known: {sorted(SAM_CHECKPOINTS)}.")
    target = sam_checkpoint_path(arch, cache)
    if target.is_file():
        _verify_cached(target, meta["sha256"])
        return target
    if not allow_download:
        raise _unavailable(f"SAM {arch}", meta["file"], meta["url"], target, "not in the cache and downloads are off.",
                           "--sam-checkpoint PATH / sam_checkpoint=")
    if cache is None:
        writable_cache_dir()  # a clear "the cache folder ..." error instead of a bare PermissionError
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        try:
            response = urllib.request.urlopen(meta["url"], timeout=timeout)  # noqa: S310 (fixed https URL)
        except (TimeoutError, urllib.error.URLError, OSError) as e:
            raise _unavailable(f"SAM {arch}", meta["file"], meta["url"], target,
                               f"not in the cache and the download failed ({e}).",
                               "--sam-checkpoint PATH / sam_checkpoint=") from None
        digest = hashlib.sha256()
        total = int(response.headers.get("Content-Length") or 0) or None
        from tqdm.auto import tqdm

        with response, open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                                      desc=f"SAM {arch}") as bar:
            while block := response.read(1 << 20):
                out.write(block)
                digest.update(block)
                bar.update(len(block))
        if digest.hexdigest() != meta["sha256"]:
            raise ChecksumMismatchError(
                f"The download of {meta['url']} has SHA-256 {digest.hexdigest()}, not the official "
                f"{meta['sha256']}; nothing was written to {target}. Try again (the transfer may have been "
                f"cut), or download the file by hand and pass its path (--sam-checkpoint PATH).")
        os.replace(tmp, target)
        _marker(target).write_text(_stamp(target, meta["sha256"]), encoding="utf-8")
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".sha256-ok")


def _stamp(target: Path, expected: str) -> str:
    """What the marker records: the hash, the file's size and its modification time in nanoseconds."""
    st = target.stat()
    return f"{expected} {st.st_size} {st.st_mtime_ns}"


def _verify_cached(target: Path, expected: str) -> None:
    """Re-hash the cached checkpoint unless the marker records this very file (hash, size and mtime). [ours]

    A marker from another file (other size or mtime: replaced, truncated, touched) or without a
    size and mtime (older clipsam-lite) is not trusted: the file is hashed again.
    """
    from .safe_io import check_regular_file

    check_regular_file(target, "cached SAM checkpoint")
    marker = _marker(target)
    try:
        recorded = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    except (OSError, UnicodeDecodeError):
        recorded = ""
    if recorded == _stamp(target, expected):
        return
    got = _sha256(target)
    if got != expected:
        marker.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"The cached SAM checkpoint {target} has SHA-256 {got}, not the official {expected}: it is "
            f"truncated or another file. Delete it and load again to re-download, or place the official "
            f"file there by hand.")
    marker.write_text(_stamp(target, expected), encoding="utf-8")


def _read_state_dict(path: Path, what: str, cached: bool = False) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a checkpoint (``weights_only``: no pickled code ever runs).

    ``cached`` says the file is one we downloaded into the cache (then re-downloading fixes it);
    a user's own file gets advice about that file instead.
    """
    from .safe_io import UnsafeInputError, check_regular_file

    if not path.exists():
        raise WeightsUnavailableError(
            f"{what} checkpoint {path} does not exist. Check the path, or leave it out to use the cache; "
            f"the 'tiny' profile needs no weights.")
    try:
        size = check_regular_file(path, f"{what} checkpoint")
    except UnsafeInputError as e:
        raise CorruptCheckpointError(str(e)) from None
    fix = ("delete it and load again to download it again" if cached else
           f"check that it is an official {what} checkpoint (a .pth file) and that it was copied completely, "
           "or leave --sam-checkpoint out to use the cache")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds here: zip, pickle, EOF, RuntimeError
        raise CorruptCheckpointError(
            f"{what} checkpoint {path} ({size} bytes) cannot be read: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. It is truncated or not a PyTorch checkpoint: {fix}.") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CorruptCheckpointError(f"{what} checkpoint {path} is not a state dict of tensors: {fix}.")
    return obj


def load_sam(arch: str, checkpoint: str | Path | None = None, *, random_weights: bool = False,
             cache: Path | None = None, allow_download: bool = True) -> torch.nn.Module:
    """SAM of ``arch`` with weights from ``checkpoint``, the cache/official URL, or random.

    ``random_weights=True`` (and the ``tiny`` arch without a checkpoint) skips weights entirely:
    for benchmarks and CI only, never for results.
    """
    sam = build_sam(arch)
    if checkpoint is None and (random_weights or arch == "tiny"):
        return sam
    if checkpoint is None and arch in SHIPPED_SAM_WEIGHTS:
        sam.load_state_dict(load_shipped_sam_state(arch), strict=True)
        return sam.eval()
    path = Path(checkpoint) if checkpoint is not None else ensure_sam_checkpoint(arch, cache, allow_download)
    state = _read_state_dict(path, f"SAM {arch}", cached=checkpoint is None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as e:
        depth = len({k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")})
        guess = next((n for n, a in SAM_ARCHS.items() if a.encoder_depth == depth), "an unknown architecture")
        raise CheckpointMismatchError(
            f"SAM checkpoint {path} does not fit SAM {arch!r}: its image encoder has {depth} blocks, which is "
            f"{guess!r}. Pass the checkpoint of {arch!r} or change the profile. ({str(e).splitlines()[0]})"
        ) from None
    return sam.eval()


# --------------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------------

def register_model_configs() -> None:
    """Register the package's open_clip architectures (``assets/model_configs/*.json``: tiny, mini) with
    open_clip's own config mechanism, so ``open_clip.create_model(name)`` builds them."""
    import open_clip

    known = set(open_clip.list_models())
    for path in sorted((_ASSETS / "model_configs").glob("*.json")):
        if path.stem not in known:
            open_clip.add_model_config(path)


_register_tiny_clip = register_model_configs


def _hf_source(name: str, tag: str) -> tuple[dict[str, Any], str, list[str]]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(f"open_clip has no pretrained tag {tag!r} for {name!r}; known tags: {tags}.")
    # open_clip writes hf_hub as "org/repo/" (default file names) or "org/repo/file".
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    files = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    return cfg, repo, files


def clip_weights_status(name: str, tag: str) -> dict[str, Any]:
    """Where open_clip's weights for ``name``/``tag`` are cached (``path``) or would come from."""
    cfg, repo, files = _hf_source(name, tag)
    found = None
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for f in files:
            hit = try_to_load_from_cache(repo, f)
            if isinstance(hit, str) and os.path.isfile(hit):
                found = hit
                break
    if found is None and cfg.get("url"):
        legacy = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        if legacy.is_file():
            found = str(legacy)
    from huggingface_hub.constants import HF_HUB_CACHE

    return {
        "name": name, "tag": tag, "path": found, "hf_repo": repo, "files": files,
        "url": f"{hub_endpoint()}/{repo}" if repo else cfg.get("url", ""),
        "cache": str(Path(HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))) if repo else "~/.cache/clip",
    }


def hub_endpoint() -> str:
    """The Hugging Face endpoint ``huggingface_hub`` itself downloads from (``$HF_ENDPOINT`` when set, read by
    ``huggingface_hub.constants`` at import), without a trailing slash (issue 11.3: a user behind a mirror)."""
    from huggingface_hub import constants

    return str(getattr(constants, "ENDPOINT", None) or "https://huggingface.co").rstrip("/")


def _network_reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens: a bare host name (port 443) or a URL (its host and port)."""
    from urllib.parse import urlsplit

    name, port = host, 443
    if "://" in host:
        parts = urlsplit(host)
        name, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((name, port), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


def _is_torchscript_archive(path: str | Path) -> bool:
    """A TorchScript archive (``torch.jit.save``): a zip whose entries hold ``constants.pkl`` or ``code/``.

    OpenAI's ``clip`` package and open_clip < 2.0 stored ``~/.cache/clip/<name>.pt`` this way;
    ``torch.load(weights_only=True)`` refuses such files (issue 11.1)."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


_TORCHSCRIPT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def torchscript_to_state_dict_file(path: str | Path) -> Path:
    """A plain state-dict copy of a TorchScript CLIP archive, for open_clip's ``weights_only`` loader (issue 11.1).

    ``torch.jit.load(path).state_dict()`` without OpenAI's ``input_resolution``, ``context_length`` and
    ``vocab_size`` entries (what open_clip's own loader drops), written once, atomically, to
    ``$CLIPSAM_CACHE/clip/<name>-<size>-<mtime>.state_dict.pt`` and reused while the source is unchanged.
    """
    src = Path(path)
    st = src.stat()
    target = cache_dir() / "clip" / f"{src.stem}-{st.st_size}-{int(st.st_mtime)}.state_dict.pt"
    if target.is_file():
        return target
    try:
        state = torch.jit.load(str(src), map_location="cpu").state_dict()
    except Exception as e:
        raise CorruptCheckpointError(
            f"CLIP checkpoint {src} is a TorchScript archive (OpenAI's clip package format) that torch.jit.load "
            f"cannot read: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Delete it, or pass "
            f"another file with --clip-checkpoint.") from None
    state = {k: v for k, v in state.items() if k not in _TORCHSCRIPT_EXTRA_KEYS}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        torch.save(state, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _clip_weights_file(name: str, tag: str, allow_download: bool) -> str:
    status = clip_weights_status(name, tag)
    if status["path"]:
        return status["path"]
    files = " or ".join(status["files"])
    if not allow_download:
        raise _unavailable(f"CLIP {name}/{tag}", files, status["url"], Path(status["cache"]),
                           "not in the Hugging Face cache and downloads are off.",
                           "--clip-checkpoint PATH / clip_checkpoint=")
    endpoint = hub_endpoint()
    if not _network_reachable(endpoint):
        raise _unavailable(f"CLIP {name}/{tag}", files, status["url"], Path(status["cache"]),
                           f"not in the Hugging Face cache and {endpoint} cannot be reached (no network? "
                           f"HF_ENDPOINT chooses a mirror).",
                           "--clip-checkpoint PATH / clip_checkpoint=")
    import open_clip

    cfg, _, _ = _hf_source(name, tag)
    try:
        return open_clip.download_pretrained(cfg)
    except Exception as e:
        raise _unavailable(f"CLIP {name}/{tag}", files, status["url"], Path(status["cache"]),
                           f"the download failed ({type(e).__name__}: {e}).",
                           "--clip-checkpoint PATH / clip_checkpoint=") from None


def load_clip(cfg: Config, checkpoint: str | Path | None = None, *, random_weights: bool = False,
              allow_download: bool = True, device: torch.device | str = "cpu") -> tuple[Any, Any, Callable]:
    """(model, tokenizer, preprocess) of open_clip for ``cfg.clip_model`` at ``cfg.clip_image_size``.

    Weights: ``checkpoint`` (a local file, any open_clip-loadable format), else the pretrained tag
    through the Hugging Face cache, else random (``random_weights=True`` or no tag, as in ``tiny``).
    """
    import open_clip

    _register_tiny_clip()
    if cfg.clip_pretrained == "shipped" and not random_weights:  # the mini profile: weights inside the package
        from .mini_clip import load_mini_clip

        return load_mini_clip(checkpoint, device)
    if cfg.clip_model not in open_clip.list_models():
        raise ValueError(f"Unknown open_clip model {cfg.clip_model!r}; see open_clip.list_models().")
    pretrained: str | None = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise WeightsUnavailableError(
                f"CLIP checkpoint {path} does not exist. Check the path, or leave it out to use the Hugging "
                f"Face cache; the 'tiny' profile needs no weights.")
        from .safe_io import UnsafeInputError, check_regular_file

        try:
            check_regular_file(path, "CLIP checkpoint")
        except UnsafeInputError as e:
            raise CorruptCheckpointError(str(e)) from None
        pretrained = str(path)
    elif cfg.clip_pretrained and not random_weights:
        pretrained = _clip_weights_file(cfg.clip_model, cfg.clip_pretrained, allow_download)
    if pretrained is not None and _is_torchscript_archive(pretrained):
        pretrained = str(torchscript_to_state_dict_file(pretrained))
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.clip_model, pretrained=pretrained, force_image_size=cfg.clip_image_size, device=device,
        )
    except Exception as e:
        if pretrained is None:
            raise
        fix = ("check that it is an open_clip checkpoint of this model and that it was copied completely"
               if checkpoint is not None else "if it is truncated, delete it and download it again")
        raise CorruptCheckpointError(
            f"CLIP checkpoint {pretrained} could not be loaded into {cfg.clip_model}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. {fix[0].upper() + fix[1:]}; if it is another model's, "
            f"pass the right file or change the profile.") from None
    tokenizer = open_clip.get_tokenizer(cfg.clip_model)
    return model.eval(), tokenizer, preprocess


# --------------------------------------------------------------------------------------------------
# Both
# --------------------------------------------------------------------------------------------------

@dataclass
class Models:
    """The loaded backbones of one profile and how they were obtained."""

    cfg: Config
    clip: Any
    tokenizer: Any
    preprocess: Callable
    sam: torch.nn.Module | None
    device: torch.device
    random_weights: bool

    @property
    def profile(self) -> str:
        return self.cfg.profile

    def banner(self) -> str:
        return random_backbone_banner(self.cfg) if self.random_weights else (
            f"clipsam-lite: profile {self.cfg.profile!r} with pretrained CLIP {self.cfg.clip_model} "
            f"({self.cfg.clip_pretrained}) and SAM {self.cfg.sam_model}, on {self.device}.")


def random_backbone_banner(cfg: Config) -> str:
    """The loud warning shown wherever random backbones produce an output."""
    if cfg.clip_pretrained == "shipped":
        return (f"*** RANDOM SAM (profile {cfg.profile!r}): CLIP {cfg.clip_model} is pretrained on the miniature world, "
                f"but SAM {cfg.sam_model} has random weights until mini-SAM ships: its masks are meaningless. ***")
    return (f"*** RANDOM BACKBONES (profile {cfg.profile!r}): CLIP {cfg.clip_model} and SAM {cfg.sam_model} have "
            f"random weights. Outputs show the pipeline's mechanics, not real anomaly detection. ***")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``Config.precision`` for a device: ``auto`` is ``bf16`` on a CUDA GPU that supports it, else ``fp32``
    (issue 11.2); ``fp16`` on a CPU is refused (CPU autocast is for bf16)."""
    dev = torch.device(device)
    if precision == "auto":
        return "bf16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be one of auto, fp32, bf16, fp16; got {precision!r}.")
    if precision == "fp16" and dev.type == "cpu":
        raise ValueError("precision='fp16' needs a CUDA GPU; on the CPU use 'bf16' or 'fp32' (--precision).")
    return precision


def encoder_autocast(precision: str, device: torch.device | str):
    """The autocast context of an encoder forward for ``precision`` (``nullcontext`` for fp32) [ours; APRIL-GAN
    runs its CLIP under autocast]. Only the two image encoders run in it; their outputs are cast back to fp32."""
    import contextlib

    dev = torch.device(device)
    p = resolve_precision(precision, dev)
    if p == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=_AUTOCAST_DTYPES[p])


def load_models(profile: str | Config | None = None, *, clip_checkpoint: str | Path | None = None,
                sam_checkpoint: str | Path | None = None, device: str | torch.device | None = None,
                random_weights: bool = False, allow_download: bool = True, seed: int | None = None,
                with_sam: bool = True) -> Models:
    """CLIP + tokenizer + preprocessing + SAM for a profile (or a ready Config).

    ``random_weights=True`` builds the real architectures with random weights: **for benchmarks
    only** (the compute is the same, the outputs are meaningless). The ``tiny`` profile is always
    random unless checkpoints are given. Random initialisation is seeded (``seed``, default
    ``cfg.seed``) without touching the global RNG, so tiny models are the same in every run.
    ``with_sam=False`` skips SAM (``Models.sam`` is None): for ``train-adapter``, which needs CLIP only, so an
    offline machine with just a CLIP checkpoint can train.
    """
    cfg = profile if isinstance(profile, Config) else get_config(profile)
    dev = torch.device(device) if device is not None else default_device()
    random = random_weights or cfg.profile == "tiny"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed if seed is None else seed)
        clip, tokenizer, preprocess = load_clip(cfg, clip_checkpoint, random_weights=random,
                                                allow_download=allow_download, device=dev)
        sam = load_sam(cfg.sam_model, sam_checkpoint, random_weights=random, allow_download=allow_download) \
            if with_sam else None
    random_used = (random and clip_checkpoint is None) or (with_sam and (random or cfg.sam_model == "tiny") and sam_checkpoint is None)
    return Models(cfg=cfg, clip=clip, tokenizer=tokenizer, preprocess=preprocess,
                  sam=sam.to(dev) if sam is not None else None,
                  device=dev, random_weights=bool(random_used))


def weights_report(cfg: Config) -> list[dict[str, Any]]:
    """For ``info``: each weight file the profile needs, where it is or would be cached, and whether it is there."""
    rows: list[dict[str, Any]] = []
    if cfg.clip_pretrained == "shipped":
        from .mini_clip import WEIGHTS_DIR, WEIGHTS_FILE

        p = WEIGHTS_DIR / WEIGHTS_FILE
        rows.append({"what": f"CLIP {cfg.clip_model} (shipped)", "file": p.name, "where": str(p), "cached": p.is_file(),
                     "url": "inside the package"})
    elif cfg.clip_pretrained:
        s = clip_weights_status(cfg.clip_model, cfg.clip_pretrained)
        rows.append({"what": f"CLIP {cfg.clip_model}/{cfg.clip_pretrained}", "file": " or ".join(s["files"]),
                     "where": s["path"] or s["cache"], "cached": bool(s["path"]), "url": s["url"]})
    else:
        rows.append({"what": f"CLIP {cfg.clip_model}", "file": "-", "where": "-", "cached": None,
                     "url": "random weights, built locally"})
    if cfg.sam_model in SHIPPED_SAM_WEIGHTS:
        p = shipped_sam_path(cfg.sam_model)
        rows.append({"what": f"SAM {cfg.sam_model}", "file": p.name, "where": str(p), "cached": p.is_file(),
                     "url": "shipped in the package (trained on the synthetic world)"})
    elif cfg.sam_model in SAM_CHECKPOINTS:
        p = sam_checkpoint_path(cfg.sam_model)
        rows.append({"what": f"SAM {cfg.sam_model}", "file": p.name, "where": str(p), "cached": p.is_file(),
                     "url": SAM_CHECKPOINTS[cfg.sam_model]["url"]})
    else:
        rows.append({"what": f"SAM {cfg.sam_model}", "file": "-", "where": "-", "cached": None,
                     "url": "random weights, built locally"})
    return rows


def real_weights_cached(profile: str) -> bool:
    """Whether every weight file of a real profile is in the cache (the demo's choice of profile)."""
    rows = weights_report(get_config(profile))
    return all(r["cached"] for r in rows)


def tiny_clip_config() -> dict[str, Any]:
    """The tiny open_clip architecture (registered with open_clip under :data:`TINY_CLIP_NAME`)."""
    return json.loads((_ASSETS / "model_configs" / f"{TINY_CLIP_NAME}.json").read_text())
