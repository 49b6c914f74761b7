"""Where things live: the cache, the repository's folders. Nothing depends on the working directory.

Taught in notebook 00 (where outputs and the cache go). No METHOD.md step **[ours]**.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CLIPSAM_CACHE"
PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$CLIPSAM_CACHE``, else ``~/.cache/clipsam_lite``: SAM checkpoints, the synthetic sample, adapters."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    try:
        return Path.home() / ".cache" / "clipsam_lite"
    except RuntimeError:  # no $HOME and no password entry (some containers)
        raise CacheDirError(f"There is no home folder to hold clipsam-lite's cache; set {CACHE_ENV} to a folder "
                            "you can write to, e.g. CLIPSAM_CACHE=/tmp/clipsam-cache.") from None


def repo_root() -> Path | None:
    """The checkout holding the package when installed editable (it has ``notebooks/``), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file() else None


def figures_dir() -> Path:
    """The repository's ``figures/`` in a checkout, else ``./figures`` (a pip-installed package, e.g. Colab)."""
    root = repo_root()
    return (root / "figures") if root else Path.cwd() / "figures"


class CacheDirError(OSError):
    """The cache folder cannot be used (it is a file, or not writable); the message says how to choose another."""


def writable_cache_dir() -> Path:
    """:func:`cache_dir`, created if needed, or :class:`CacheDirError` naming it and how to choose another. [ours]"""
    path = cache_dir()
    source = f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else f"the default (no ${CACHE_ENV} set)"
    fix = f"set {CACHE_ENV} to a folder you can write to, e.g. {CACHE_ENV}=/tmp/clipsam-cache"
    if path.exists() and not path.is_dir():
        raise CacheDirError(f"The cache folder {path} (from {source}) is a file, not a folder; {fix}.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheDirError(f"The cache folder {path} (from {source}) cannot be created ({e.strerror or e}); "
                            f"{fix}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"The cache folder {path} (from {source}) is not writable; {fix}.")
    return path


def is_in_cache(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies in the cache folder (for error messages that should name the cache)."""
    try:
        return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(cache_dir())))
    except (OSError, ValueError):
        return False
