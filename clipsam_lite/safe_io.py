"""Files we did not write are untrusted; files we write appear whole or not at all. [ours]

Taught in notebook 00 (section 9, "Robust input: odd images and wrong folders"); no METHOD.md step
of its own: the paper says nothing about input handling. One place for three classes of fault (issue 12):

* **Reading**: :func:`read_regular_file` (and :func:`check_regular_file` for files a library opens
  itself) accepts only a *regular* file under a size limit, so a FIFO cannot hang a run and
  ``/dev/zero`` cannot fill the memory. Limits are documented constants with an environment
  variable to raise them.
* **Writing**: :func:`atomic_write` writes next to the target under a temporary name and renames it
  into place; on any failure (a full disk, Ctrl-C) the temporary file is removed and the old target
  is untouched. :func:`publish_together` does the same for a set of files that belong together
  (``results.json`` / ``.csv`` / ``.md``): a failed rename restores the old set, and a set a kill left
  half-renamed is completed by :func:`recover_published` (called by the next run and by readers).
* **Output paths**: :func:`check_output_dir` / :func:`check_output_file` refuse a file where a folder
  is expected (and the reverse) and an unwritable location *before* any computation.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = [
    "UnsafeInputError", "OutputPathError", "MAX_IMAGE_BYTES", "MAX_TEXT_BYTES", "limit_from_env",
    "check_regular_file", "read_regular_file", "atomic_write", "atomic_write_bytes", "atomic_write_text",
    "publish_together", "recover_published", "check_output_dir", "check_output_file", "inside",
]

MAX_IMAGE_BYTES = 512 * 1024 ** 2
"""Largest image or mask file read (512 MiB; a 4096 x 4096 RGB PNG is at most ~50 MB). Raise it with
``$CLIPSAM_MAX_IMAGE_BYTES``."""
MAX_TEXT_BYTES = 64 * 1024 ** 2
"""Largest csv / json file read (64 MiB; VisA's ``1cls.csv`` is ~1 MB). Raise it with ``$CLIPSAM_MAX_TEXT_BYTES``."""


class UnsafeInputError(OSError):
    """A path that should be a regular file is a FIFO, a device, a folder, or larger than the limit."""


class OutputPathError(OSError):
    """An output path cannot be used: a file where a folder is expected (or the reverse), or not writable."""


def limit_from_env(name: str, default: int) -> int:
    """An integer limit from ``$name`` (bytes or pixels), else ``default``; a bad value is a clear error."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        value = -1
    if value < 1:
        raise ValueError(f"${name}={text!r} is not a positive number; unset it or give e.g. {name}={default}.")
    return value


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular_file(path: str | os.PathLike[str], what: str, limit: int | None = None,
                       env: str | None = None) -> int:
    """Raise unless ``path`` (symlinks followed) is a regular file of at most ``limit`` bytes; return its size.

    ``what`` names the file in the message ("image", "SAM checkpoint"...); ``env`` names the
    variable that raises the limit. A missing file raises ``FileNotFoundError``.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(2, f"The {what} file does not exist (check the path)", str(p)) from None
    except OSError as e:
        raise UnsafeInputError(f"Cannot read the {what} {p}: {e.strerror or e}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeInputError(f"The {what} {p} is {_kind(st.st_mode)}, not a regular file; pass a file "
                               "(copy the data into one first if it comes from a pipe or a device).")
    if limit is not None and st.st_size > limit:
        raise UnsafeInputError(
            f"The {what} {p} is {st.st_size:,} bytes, above the limit of {limit:,} bytes"
            + (f"; raise it with {env}=<bytes> if the file is genuine" if env else "") + ".")
    return int(st.st_size)


def read_regular_file(path: str | os.PathLike[str], what: str, limit: int, env: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (checked before opening, and while reading).

    The file is opened with ``O_NONBLOCK`` so that even a FIFO swapped in after the check cannot
    block; at most ``limit + 1`` bytes are ever read.
    """
    check_regular_file(path, what, limit, env)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise UnsafeInputError(f"Cannot open the {what} {path}: {e.strerror or e}.") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between the check and the open
            raise UnsafeInputError(f"The {what} {path} is not a regular file; pass a file.")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeInputError(f"The {what} {path} is larger than the limit of {limit:,} bytes"
                               + (f"; raise it with {env}=<bytes>" if env else "") + ".")
    return data


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` resolves (symlinks and ``..`` followed) to ``root`` or below it."""
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on failure delete it.

    Whatever the body raises (``OSError: No space left on device``, ``KeyboardInterrupt``...), no
    ``*.tmp`` stays behind and an existing ``path`` keeps its old content. Parent folders are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:  # name the file the user asked for, not our temporary one
        if e.filename is not None and str(e.filename) == str(tmp):
            e.filename = str(target)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` through :func:`atomic_write`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


JOURNAL = ".publish-journal.json"
"""The journal :func:`publish_together` keeps in a folder while it renames a set of files into place."""


def recover_published(folder: str | os.PathLike[str]) -> bool:
    """Finish a :func:`publish_together` that a kill interrupted in ``folder``; True if there was one.

    The journal is written only once every new file is complete on disk, so it is safe to roll
    forward: each temporary file it lists that still exists is renamed onto its target. Temporary
    files of a publication killed *before* its journal was written are removed (the old set stands).
    """
    import json

    root = Path(folder)
    journal = root / JOURNAL
    found = journal.is_file()
    if found:
        try:
            pairs = json.loads(journal.read_text(encoding="utf-8"))["pairs"]
            for tmp_name, target_name in pairs:
                tmp = root / Path(tmp_name).name
                if tmp.is_file():
                    os.replace(tmp, root / Path(target_name).name)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a read-only folder, or a journal from elsewhere: leave the files as they are
        with contextlib.suppress(OSError):
            journal.unlink(missing_ok=True)
    if root.is_dir():
        for stale in root.glob(".*.publish.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
    return found


def publish_together(files: Mapping[str | os.PathLike[str], str | bytes],
                     _replace: Callable[[Path, Path], None] = os.replace) -> list[Path]:
    """Write a set of small files of one folder so that it is never seen mixed with an older set. [ours]

    1. Every file is written under a temporary name (a full disk fails here: nothing is published).
    2. A journal listing the renames is written atomically: from now on the new set is committed.
    3. The temporary files are renamed onto their targets; then the journal is removed.

    A kill during step 3 leaves the journal: the next :func:`publish_together` or
    :func:`recover_published` on the folder completes the renames, so the folder again holds one
    whole set. An *error* during step 3 (a rename refused) puts the old contents back before it is
    raised. ``_replace`` exists for tests (to make one rename fail).
    """
    import json

    items = [(Path(p), c.encode("utf-8") if isinstance(c, str) else bytes(c)) for p, c in files.items()]
    folders = {t.parent for t, _ in items}
    if len(folders) != 1:
        raise ValueError(f"publish_together: the files must share one folder, got {sorted(map(str, folders))}.")
    root = folders.pop()
    root.mkdir(parents=True, exist_ok=True)
    recover_published(root)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    pairs = [(root / f".{t.name}.{tag}.publish.tmp", t) for t, _ in items]
    old = {t: (t.read_bytes() if t.is_file() else None) for t, _ in items}
    journal = root / JOURNAL
    done: list[Path] = []
    try:
        for (tmp, _), (_, data) in zip(pairs, items, strict=True):
            tmp.write_bytes(data)
        atomic_write_text(journal, json.dumps({"pairs": [[a.name, b.name] for a, b in pairs]}))
        for tmp, target in pairs:
            _replace(tmp, target)
            done.append(target)
        journal.unlink()
    except BaseException:
        for target in done:  # an error, not a kill: put the old set back
            with contextlib.suppress(OSError):
                if old[target] is None:
                    target.unlink(missing_ok=True)
                else:
                    atomic_write_bytes(target, old[target])
        with contextlib.suppress(OSError):
            journal.unlink(missing_ok=True)
        raise
    finally:
        for tmp, _ in pairs:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return [t for t, _ in items]


# --------------------------------------------------------------------------------------------------
# Output paths
# --------------------------------------------------------------------------------------------------


def replace_folder(root: str | os.PathLike[str], fill: Callable[[Path], None], *, who: str,
                   foreign: Callable[[Path], list[str]]) -> Path:
    """Write a whole folder atomically: ``fill(tmp)`` writes into a temporary sibling, which then replaces
    ``root`` (an interrupted or failed run leaves ``root`` as it was and no temporary folder). [ours]

    The old folder is deleted, so first, before any work, ``root`` is refused (``FileExistsError`` naming
    ``who``, the writer) when it is a file, or when ``foreign(root)`` lists files the writer did not write:
    up to 10 of them are named, and nothing is deleted.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{who}: {root} is a file; choose a new or empty folder path.")
    found = foreign(root) if root.exists() else []
    if found:
        more = f" ... (+{len(found) - 10} more)" if len(found) > 10 else ""
        raise FileExistsError(
            f"{who}: {root} is not empty: it holds {len(found)} file(s) that {who} did not write: "
            f"{found[:10]}{more}. Nothing was deleted; choose a new or empty folder, or move those away.")
    import shutil

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        fill(tmp)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    base = _nearest_existing(path.parent if path != path.parent else path)
    if not base.is_dir():
        raise OutputPathError(f"{flag} {path}: {base} is a file, so nothing can be created below it; "
                              "choose a path inside a folder.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path}: the folder {base} is not writable (permission denied); "
                              "choose a folder you can write to.")


def check_output_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """An output *folder* that is a folder (or can be created) and is writable, checked before any work."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{flag} {p} is a file, but a folder is expected here; give a folder path "
                              f"(e.g. {p.with_suffix('')}-out) or move the file away.")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputPathError(f"{flag} {p}: the folder is not writable (permission denied); "
                                  "choose a folder you can write to.")
        return p
    _check_creatable(p, flag)
    return p


def check_output_file(path: str | os.PathLike[str], flag: str = "--out", example: str = "adapter.pt") -> Path:
    """An output *file* path that is not a folder and whose folder is writable, checked before any work."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputPathError(f"{flag} {p} is a folder, but a file is expected here; give a file path, "
                              f"e.g. {p / example}.")
    if p.exists() and not p.is_file():
        raise OutputPathError(f"{flag} {p} exists and is not a regular file; give a new file path.")
    if p.exists() and not os.access(p.parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {p}: its folder {p.parent} is not writable (permission denied).")
    _check_creatable(p, flag)
    return p
