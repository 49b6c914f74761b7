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
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clipsam_lite"


def repo_root() -> Path | None:
    """The checkout holding the package when installed editable (it has ``notebooks/``), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file() else None


def figures_dir() -> Path:
    """The repository's ``figures/`` in a checkout, else ``./figures`` (a pip-installed package, e.g. Colab)."""
    root = repo_root()
    return (root / "figures") if root else Path.cwd() / "figures"
