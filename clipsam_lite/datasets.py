"""MVTec-AD, VisA and plain-folder datasets: ``Item``, ``Record``, ``load_dataset`` and their errors.

Taught in notebook 00 (section 7, "Real data: MVTec-AD and VisA"); METHOD.md, "Evaluation protocol" (the
official layouts and VisA's ``split_csv/1cls.csv``). Items are read lazily; layout problems are reported
when the dataset is built. [ours]
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from .images import IMAGE_EXTENSIONS, MASK_RULES, read_image, read_mask

# ------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------

DATASETS: tuple[str, ...] = ("mvtec", "visa", "folder")
_DEFAULT_MASK_RULE = {"mvtec": "half", "visa": "nonzero", "folder": "nonzero"}


class DatasetError(ValueError):
    """Base class of the dataset errors below (all are ``ValueError``)."""


class DatasetLayoutError(DatasetError):
    """The root is missing or is not the expected folder layout."""


class UnknownCategoryError(DatasetError):
    """A requested category does not exist; the message lists the available ones."""


class MissingMaskError(DatasetError):
    """An anomalous image has no ground-truth mask; the message names the image and the expected mask."""


@dataclass(frozen=True)
class Record:
    """What a dataset knows about one image without reading its pixels."""

    path: str
    mask_path: str | None
    label: int  # 1 anomalous, 0 normal, -1 unknown (folder images without a mask)
    category: str
    defect_type: str  # "good" for normal images


@dataclass(eq=False)
class Item:
    """One image with its ground truth, as the pipeline and the evaluation consume it."""

    image: np.ndarray = field(repr=False)  # H x W x 3 uint8 RGB
    mask: np.ndarray = field(repr=False)  # H x W bool, all False for normal images
    label: int  # 1 anomalous, 0 normal, -1 unknown
    category: str
    defect_type: str
    path: str


class Dataset(Sequence[Item]):
    """A lazy sequence of :class:`Item`: indexing reads the image (and mask) from disk.

    ``records`` holds the metadata of every image (no pixels); ``categories`` the selected
    categories in order. Slicing (``ds[:4]``) and :meth:`subset` give smaller datasets.
    """

    def __init__(self, records: Sequence[Record], *, name: str, root: Path, split: str, mask_rule: str,
                 categories: Sequence[str]) -> None:
        self.records: list[Record] = list(records)
        self.name, self.root, self.split, self.mask_rule = name, Path(root), split, mask_rule
        self.categories: list[str] = list(categories)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> Dataset: ...

    def __getitem__(self, index: int | slice) -> Item | Dataset:
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self.read(self.records[index])

    def __iter__(self) -> Iterator[Item]:
        for rec in self.records:
            yield self.read(rec)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, root={str(self.root)!r}, split={self.split!r}, "
                f"n={len(self)}, categories={self.categories})")

    @property
    def labels(self) -> np.ndarray:
        """Image labels of all records (int array: 1, 0 or -1)."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    def subset(self, indices: Iterable[int]) -> Dataset:
        """A dataset of the records at ``indices`` (same root, split and mask rule)."""
        recs = [self.records[i] for i in indices]
        cats = [c for c in self.categories if any(r.category == c for r in recs)]
        return Dataset(recs, name=self.name, root=self.root, split=self.split, mask_rule=self.mask_rule,
                       categories=cats)

    def read(self, record: Record) -> Item:
        """Read one record's image and mask (masks must have the image's height and width)."""
        image = read_image(record.path)
        if record.mask_path is None:
            mask = np.zeros(image.shape[:2], dtype=bool)
        else:
            mask = read_mask(record.mask_path, self.mask_rule)
            if mask.shape != image.shape[:2]:
                raise DatasetLayoutError(
                    f"Mask {record.mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {record.path} is "
                    f"{image.shape[1]}x{image.shape[0]} (width x height); a mask must match its image's size."
                )
        return Item(image=image, mask=mask, label=record.label, category=record.category,
                    defect_type=record.defect_type, path=record.path)


def _check_root(root: Path, what: str) -> None:
    if not root.exists():
        raise DatasetLayoutError(f"The {what} root {root} does not exist; pass the folder that holds the dataset "
                                 "(see data/README.md for how to get it).")
    if not root.is_dir():
        raise DatasetLayoutError(f"The {what} root {root} is a file, not a folder.")


def _listing(root: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith("."))
    if not names:
        return "an empty folder"
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _select_categories(requested: str | Sequence[str] | None, available: list[str], root: Path,
                       what: str) -> list[str]:
    if requested is None:
        return available
    wanted = [requested] if isinstance(requested, str) else list(requested)
    if not wanted:
        raise UnknownCategoryError(f"An empty category list was given for {what} at {root}; "
                                   f"pass None for all, or some of {available}.")
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise UnknownCategoryError(f"Unknown {what} categor{'y' if len(unknown) == 1 else 'ies'} {unknown} "
                                   f"under {root}; available: {available}.")
    return list(dict.fromkeys(wanted))


def _mvtec_categories(root: Path) -> list[str]:
    _check_root(root, "MVTec-AD")
    cats = sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "test").is_dir()
                  and not d.name.startswith("."))
    if not cats:
        hint = ""
        if (root / "test").is_dir() or (root / "train").is_dir():
            hint = (f" {root} itself looks like one category folder: pass its parent ({root.parent}) as the "
                    f"root and category={root.name!r}.")
        raise DatasetLayoutError(
            f"{root} is not an MVTec-AD layout: expected <root>/<category>/test/<defect_type>/*.png (with "
            f"<category>/train/good/ and <category>/ground_truth/); found {_listing(root)}.{hint}"
        )
    return cats


def _mvtec_records(root: Path, cats: list[str], split: str) -> list[Record]:
    records: list[Record] = []
    for cat in cats:
        if split == "train":
            folder = root / cat / "train" / "good"
            if not folder.is_dir():
                raise DatasetLayoutError(f"MVTec-AD category {cat!r} has no train split: expected {folder}/; "
                                         f"found in {root / cat}: {_listing(root / cat)}.")
            imgs = _images_in(folder)
            if not imgs:
                raise DatasetLayoutError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}.")
            records += [Record(str(p), None, 0, cat, "good") for p in imgs]
            continue
        test = root / cat / "test"
        n_before = len(records)
        for tdir in sorted(d for d in test.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for img in _images_in(tdir):
                if tdir.name == "good":
                    records.append(Record(str(img), None, 0, cat, "good"))
                    continue
                mp = root / cat / "ground_truth" / tdir.name / f"{img.stem}_mask.png"
                if not mp.is_file():
                    raise MissingMaskError(
                        f"Anomalous image {img} has no mask: expected {mp}. MVTec-AD keeps the mask of "
                        "test/<type>/NNN.png at ground_truth/<type>/NNN_mask.png; restore it from the archive."
                    )
                records.append(Record(str(img), str(mp), 1, cat, tdir.name))
        if len(records) == n_before:
            raise DatasetLayoutError(f"No test images in {test}: expected {test}/<defect_type>/*.png; "
                                     f"found {_listing(test)}.")
    return records


_VISA_COLUMNS = ("object", "split", "label", "image", "mask")


def _visa_csv(root: Path) -> Path:
    _check_root(root, "VisA")
    path = root / "split_csv" / "1cls.csv"
    if not path.is_file():
        raise DatasetLayoutError(
            f"{root} is not a prepared VisA root: expected {path} (written by VisA's prepare_data.py with "
            f"the 1cls split; see data/README.md); found {_listing(root)}."
        )
    return path


def _visa_rows(root: Path) -> list[dict[str, str]]:
    path = _visa_csv(root)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in _VISA_COLUMNS if c not in header]
        if missing:
            raise DatasetLayoutError(f"{path} lacks column(s) {missing}: expected {list(_VISA_COLUMNS)}, "
                                     f"found {header}.")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _visa_categories(root: Path) -> list[str]:
    cats = sorted({r["object"] for r in _visa_rows(root) if r["object"]})
    if not cats:
        raise DatasetLayoutError(f"{root / 'split_csv' / '1cls.csv'} lists no images.")
    return cats


def _visa_records(root: Path, cats: list[str], split: str) -> list[Record]:
    csv_path = root / "split_csv" / "1cls.csv"
    records: list[Record] = []
    missing: list[str] = []
    wanted = set(cats)
    for line, row in enumerate(_visa_rows(root), start=2):
        if row["split"] != split or row["object"] not in wanted:
            continue
        if row["label"] not in ("normal", "anomaly"):
            raise DatasetLayoutError(f"{csv_path} line {line}: label {row['label']!r} is neither 'normal' "
                                     "nor 'anomaly'.")
        img = root / row["image"]
        if not img.is_file():
            missing.append(str(img))
            continue
        if row["label"] == "normal":
            records.append(Record(str(img), None, 0, row["object"], "good"))
            continue
        mp = root / row["mask"] if row["mask"] else None
        if mp is None or not mp.is_file():
            expected = f"expected {mp}" if mp is not None else "the csv's mask column is empty"
            raise MissingMaskError(f"Anomalous VisA image {img} has no mask: {expected} ({csv_path} line {line}).")
        records.append(Record(str(img), str(mp), 1, row["object"], "anomaly"))
    if missing:
        raise DatasetLayoutError(f"{len(missing)} image(s) listed in {csv_path} do not exist, e.g. {missing[:3]}; "
                                 "is the root the folder that holds split_csv/ and the category folders?")
    # keep the order of ``cats`` (categories sorted or as requested), images in csv order within each
    order = {c: i for i, c in enumerate(cats)}
    return sorted(records, key=lambda r: order[r.category])


def _folder_scan(root: Path) -> list[tuple[Path, Path | None]]:
    """(image, mask or None) pairs under a plain folder. [ours]

    Images: every file with an image suffix, recursively, sorted by relative path, skipping hidden
    files and folders and the ``masks/`` folder. A mask is the first that exists of
    ``masks/<rel stem>.png``, ``masks/<rel stem>_mask.png`` and ``<rel stem>_mask.png`` next to the
    image (such sibling masks are not images themselves).
    """
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.relative_to(root).parts[0] != "masks"
    )
    stems = {(p.parent, p.stem) for p in files}
    siblings = {p for p in files if p.stem.endswith("_mask") and (p.parent, p.stem[:-5]) in stems}
    pairs = []
    for p in files:
        if p in siblings:
            continue
        rel = p.relative_to(root).with_suffix("")
        candidates = [root / "masks" / rel.parent / f"{rel.name}.png", root / "masks" / rel.parent / f"{rel.name}_mask.png",
                      p.parent / f"{p.stem}_mask.png"]
        pairs.append((p, next((c for c in candidates if c.is_file()), None)))
    return pairs


def _folder_records(root: Path, category: str, mask_rule: str) -> list[Record]:
    _check_root(root, "image folder")
    pairs = _folder_scan(root)
    if not pairs:
        raise DatasetLayoutError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}; "
                                 f"found {_listing(root)}.")
    records = []
    for img, mp in pairs:
        if mp is None:
            records.append(Record(str(img), None, -1, category, "unknown"))
        else:  # masks are read once here to set the label (images stay unread)
            label = int(read_mask(mp, mask_rule).any())
            records.append(Record(str(img), str(mp), label, category, "anomaly" if label else "good"))
    return records


def _dataset_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")
    return key


def list_categories(name: str, root: str | os.PathLike[str]) -> list[str]:
    """The categories of a dataset root: sorted folder names (MVTec-AD), the csv's objects (VisA),
    or the folder's name (folder). [ours]"""
    key, root = _dataset_name(name), Path(root).expanduser()
    if key == "mvtec":
        return _mvtec_categories(root)
    if key == "visa":
        return _visa_categories(root)
    _check_root(root, "image folder")
    return [root.resolve().name]


def load_dataset(name: str, root: str | os.PathLike[str], category: str | Sequence[str] | None = None,
                 split: str = "test", mask_rule: str | None = None) -> Dataset:
    """A lazy :class:`Dataset` over MVTec-AD (``"mvtec"``), VisA (``"visa"``) or a plain folder (``"folder"``). [ours]

    Args:
        name: ``"mvtec"``, ``"visa"`` or ``"folder"``.
        root: the dataset folder (MVTec-AD: the folder holding the category folders; VisA: the folder
            holding ``split_csv/1cls.csv``; folder: any folder of images).
        category: ``None`` for all categories (sorted), a name, or a list of names (kept in that order).
            For ``"folder"`` it names the images' object (default: the folder's name).
        split: ``"train"`` or ``"test"`` (MVTec-AD, VisA). A folder has no splits: ignored.
        mask_rule: override how masks are binarised (:func:`read_mask`); default ``"half"`` for
            MVTec-AD and ``"nonzero"`` for VisA and folders (0/1 masks are common there).

    Layout problems raise :class:`DatasetLayoutError`, :class:`UnknownCategoryError` or
    :class:`MissingMaskError` here; unreadable images raise :class:`ImageReadError` when read.
    """
    key, root = _dataset_name(name), Path(root).expanduser()
    rule = _DEFAULT_MASK_RULE[key] if mask_rule is None else mask_rule
    if rule not in MASK_RULES:
        raise ValueError(f"Unknown mask rule {rule!r}; choose one of {list(MASK_RULES)}.")
    if key == "folder":
        if category is not None and not isinstance(category, str):
            raise ValueError("For a folder dataset, category is one object name (a str), e.g. 'bottle'.")
        _check_root(root, "image folder")
        cat = category or root.resolve().name
        return Dataset(_folder_records(root, cat, rule), name=key, root=root, split=split, mask_rule=rule,
                       categories=[cat])
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if key == "mvtec":
        cats = _select_categories(category, _mvtec_categories(root), root, "MVTec-AD")
        records = _mvtec_records(root, cats, split)
    else:
        cats = _select_categories(category, _visa_categories(root), root, "VisA")
        records = _visa_records(root, cats, split)
    return Dataset(records, name=key, root=root, split=split, mask_rule=rule, categories=cats)

