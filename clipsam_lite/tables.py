"""The evaluation's tables: ``results.json`` and ``ablation.json`` read, checked, and rendered as
heat-map tables, stage curves and markdown (``python -m clipsam_lite figures --results DIR``).

Taught in notebook 08 (section 5, "The tables: `results.json` and `ablation.json` as figures and
markdown"). No METHOD.md step: the tables report METHOD.md's "Evaluation protocol" and the ablation of
steps 3-5 **[ours: their layout]**. The files come from :func:`clipsam_lite.evaluate.evaluate` and
:func:`clipsam_lite.ablate.ablate`; the qualitative figures are in :mod:`clipsam_lite.figures`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .evaluate import METRIC_KEYS, PIXEL_KEYS
from .panels import (
    FIGURE_NAMES,
    caption_suptitle,
    caption_title,
    describe,
    figure_caption,
    save_png_pdf,
    style,
)

__all__ = [
    "METRIC_LABELS", "load_results", "load_ablation", "results_markdown", "ablation_markdown", "table_figure",
    "results_figure", "ablation_table_figure", "ablation_stages_figure", "render_tables",
]

TABLE_CMAP = "Blues"

METRIC_LABELS: dict[str, str] = {
    "pixel_auroc": "pixel AUROC", "pixel_ap": "pixel AP", "pixel_f1_max": "pixel F1-max",
    "pixel_aupro": "pixel AUPRO", "image_auroc": "image AUROC", "image_ap": "image AP",
    "image_f1_max": "image F1-max", "region_auroc": "region AUROC",
}
"""Column headers of the tables (the keys of :data:`clipsam_lite.evaluate.METRIC_KEYS`, and the world's
``region_auroc``, :data:`clipsam_lite.world_eval.REGION_KEY`)."""



def _read_json(path: str | Path, what: str, hint: str) -> dict[str, Any]:
    from .safe_io import MAX_TEXT_BYTES, read_regular_file, recover_published

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected the {what} file itself ({hint}).")
    recover_published(path.parent)  # complete a set of files a kill left half-published
    if not path.exists():
        raise FileNotFoundError(f"{what} not found at {path}. {hint}")
    data_bytes = read_regular_file(path, what, MAX_TEXT_BYTES)
    try:
        data = json.loads(data_bytes.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}); it is not a {what} written by clipsam-lite. "
                         f"{hint}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(data).__name__}.")
    return data


def _check_value(v: Any, where: str, path: Path) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{path}: {where} is {v!r}; metric values must be fractions in [0, 1] (as "
                         "`python -m clipsam_lite evaluate` writes them) or null for undefined.")


def _check_metrics(row: Any, where: str, path: Path) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{path}: {where} must be an object of metrics, found {type(row).__name__}.")
    for k in (*METRIC_KEYS, "region_auroc"):
        if k in row:
            _check_value(row[k], f"{where}.{k}", path)


_RESULTS_HINT = ("Write it with `python -m clipsam_lite evaluate --dataset D --root DIR --out DIR` "
                 "(clipsam_lite.evaluate.evaluate).")
_ABLATION_HINT = "Write it with clipsam_lite.ablate.ablate (`python -m clipsam_lite ablate ... --out DIR`)."


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and check a ``results.json``: ``{"protocol": {...}, "categories": {cat: {metric: value}}, "mean": {...}}``.

    Values are fractions in [0, 1] or null (undefined); at least one of
    :data:`METRIC_KEYS` must be present in ``mean``. Errors name the file and the offending key.
    """
    path = Path(path)
    data = _read_json(path, "results.json", _RESULTS_HINT)
    missing = [k for k in ("categories", "mean") if k not in data]
    if missing:
        raise ValueError(f"{path} has no {missing} key(s); a results.json holds 'protocol', 'categories' and 'mean'.")
    cats = data["categories"]
    if not isinstance(cats, dict) or not cats:
        raise ValueError(f"{path}: 'categories' must be a non-empty object {{category: {{metric: value}}}}.")
    for cat, row in cats.items():
        _check_metrics(row, f"categories.{cat}", path)
    _check_metrics(data["mean"], "mean", path)
    if not any(k in data["mean"] for k in METRIC_KEYS):
        raise ValueError(f"{path}: 'mean' has none of the metrics {list(METRIC_KEYS)}.")
    clip = data.get("clip_map_only")
    if clip is not None:
        if not isinstance(clip, dict) or not isinstance(clip.get("categories", {}), dict):
            raise ValueError(f"{path}: 'clip_map_only' must be an object with 'categories' and 'mean'.")
        for cat, row in clip.get("categories", {}).items():
            _check_metrics(row, f"clip_map_only.categories.{cat}", path)
        _check_metrics(clip.get("mean", {}), "clip_map_only.mean", path)
    prior = data.get("prior_map")
    if prior is not None:
        if not isinstance(prior, dict) or not isinstance(prior.get("categories"), dict):
            raise ValueError(f"{path}: 'prior_map' must be an object with 'categories' and 'mean'.")
        for cat, row in prior["categories"].items():
            _check_metrics(row, f"prior_map.categories.{cat}", path)
        _check_metrics(prior.get("mean", {}), "prior_map.mean", path)
    data.setdefault("protocol", {})
    return data


def load_ablation(path: str | Path) -> dict[str, Any]:
    """Read and check an ``ablation.json``: ``{"protocol": {...}, "rows": [{"setting": name, metric: value,
    "negative_strategy", "stages", "fusion", ...}, ...]}``."""
    path = Path(path)
    data = _read_json(path, "ablation.json", _ABLATION_HINT)
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty 'rows' list of {{'setting': name, metric: value, ...}}.")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "setting" not in row:
            raise ValueError(f"{path}: rows[{i}] must be an object with a 'setting' name.")
        _check_metrics(row, f"rows[{i}] ({row['setting']})", path)
    data.setdefault("protocol", {})
    return data


def _pct(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"


def _keys_in(rows: Sequence[dict[str, Any]], keys: Sequence[str] = METRIC_KEYS) -> list[str]:
    from .world_eval import with_region_key

    return [k for k in with_region_key(keys, rows) if any(k in r for r in rows)]


def _markdown_table(rows: dict[str, dict[str, Any]], keys: Sequence[str], first: str) -> str:
    lines = [f"| {first} | " + " | ".join(METRIC_LABELS.get(k, k) for k in keys) + " |",
             "|---" + "|---:" * len(keys) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_pct(r.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _protocol_caption(protocol: dict[str, Any]) -> str:
    """One line: dataset, profile (and the random-backbone warning), AUPRO definition."""
    parts = []
    if protocol.get("dataset"):
        parts.append(f"{protocol['dataset']} ({protocol.get('split', 'test')})")
    images = protocol.get("images")
    if isinstance(images, dict) and all(isinstance(v, dict) for v in images.values()):
        parts.append(f"{sum(int(v.get('evaluated', 0)) for v in images.values())} images")
    if protocol.get("profile"):
        parts.append(f"profile {protocol['profile']}")
    if protocol.get("head"):
        parts.append(f"head {protocol['head']}")
    if protocol.get("resolution"):
        parts.append(f"{protocol['resolution']} px" + (f" {protocol['eval_resize']}" if protocol.get("eval_resize") else ""))
    if protocol.get("aupro_fpr_limit") is not None:
        parts.append(f"AUPRO to FPR {protocol['aupro_fpr_limit']}")
    return "; ".join(parts)


def _table_caption(protocol: dict[str, Any]) -> str:
    return figure_caption(str(protocol.get("profile", "")), bool(protocol.get("random_backbones")))


def results_markdown(results: dict[str, Any]) -> str:
    """``results.json`` as markdown: the final map's metrics per category and their mean (in %), then
    the CLIP map alone when present. Undefined values show as ``n/a``."""
    protocol = results.get("protocol", {})
    keys = _keys_in([results["mean"], *results["categories"].values()])
    caption = _table_caption(protocol)
    head = [f"**Results** ({_protocol_caption(protocol)}); values in %."]
    if protocol.get("aupro_definition"):
        head.append(f"AUPRO: {protocol['aupro_definition']}.")
    if caption:
        head.append(f"**{caption}.**")
    out = [" ".join(head), "", _markdown_table({**results["categories"], "**mean**": results["mean"]}, keys,
                                               "category")]
    clip = results.get("clip_map_only")
    if clip:
        ck = _keys_in([clip.get("mean", {}), *clip.get("categories", {}).values()], PIXEL_KEYS)
        out += ["", "CLIP map `S_a` alone (stage 0, no SAM) on the same images (%):", "",
                _markdown_table({**clip.get("categories", {}), "**mean**": clip.get("mean", {})}, ck, "category")]
    prior = results.get("prior_map")
    if prior:
        rows = {**prior.get("categories", {}), "**mean**": prior.get("mean", {})}
        out += ["", f"Baseline: {prior.get('description', 'prior map')} (%):", "",
                _markdown_table(rows, _keys_in(list(rows.values()), PIXEL_KEYS), "category")]
    return "\n".join(out) + "\n"


def ablation_markdown(ablation: dict[str, Any]) -> str:
    """``ablation.json`` as a markdown table: one row per setting, the means over categories in %."""
    protocol = ablation.get("protocol", {})
    rows = {str(r["setting"]): r for r in ablation["rows"]}
    keys = _keys_in(list(rows.values()))
    caption = _table_caption(protocol)
    head = f"**Ablation** ({_protocol_caption(protocol)}); means over categories, in %."
    if protocol.get("aupro_definition"):
        head += f" AUPRO: {protocol['aupro_definition']}."
    if caption:
        head += f" **{caption}.**"
    return head + "\n\n" + _markdown_table(rows, keys, "setting") + "\n"


def table_figure(rows: dict[str, dict[str, Any]], keys: Sequence[str], title: str, caption: str = "",
                 first: str = "category", ax: Any | None = None) -> Figure:
    """A table as a heat map: rows x metrics, each cell coloured by its value and printed in %.

    ``n/a`` (undefined) cells are grey. A row named ``mean`` (any markup) is drawn below a rule.
    Draws into ``ax`` when given (the figure is then ``ax.figure``).
    """
    names = list(rows)
    if not names or not keys:
        raise ValueError("table_figure needs at least one row and one metric.")
    values = np.array([[np.nan if rows[n].get(k) is None else 100.0 * float(rows[n][k]) for k in keys]
                       for n in names], dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(keys), 0.9 + 0.24 * len(names)))
    else:
        fig = ax.figure
    cmap = matplotlib.colormaps[TABLE_CMAP].with_extremes(bad="#dddddd")
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    for i in range(len(names)):
        for j in range(len(keys)):
            v = values[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=6.5,
                    color="white" if (not np.isnan(v) and v > 60) else "black")
    ax.set_xticks(range(len(keys)), [METRIC_LABELS.get(k, k).replace(" ", "\n", 1) for k in keys], fontsize=6.5)
    ax.xaxis.tick_top()
    labels = [re.sub(r"^\*\*(.*)\*\*$", r"\1", n) for n in names]  # markdown bold, e.g. "**mean**"
    ax.set_yticks(range(len(names)), labels, fontsize=6.5)
    for i, n in enumerate(labels):
        if n.strip().lower() == "mean":
            ax.axhline(i - 0.5, color="black", lw=0.8)
            ax.get_yticklabels()[i].set_fontweight("bold")
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(caption_title(title, caption), fontsize=7.5)
    return fig


def results_figure(results: dict[str, Any]) -> Figure:
    """``results.json`` as a figure: the final map's table, beside the CLIP-map-alone table when present."""
    protocol = results.get("protocol", {})
    caption = _table_caption(protocol)
    rows = {**results["categories"], "mean": results["mean"]}
    keys = _keys_in(list(rows.values()))
    clip = results.get("clip_map_only")
    n_rows = len(rows)
    if clip and clip.get("categories"):
        crows = {**clip["categories"], "mean": clip.get("mean", {})}
        ckeys = _keys_in(list(crows.values()), PIXEL_KEYS)
        fig, axes = plt.subplots(1, 2, figsize=(2.2 + 0.75 * (len(keys) + len(ckeys)), 1.2 + 0.24 * n_rows),
                                 gridspec_kw={"width_ratios": [len(keys), max(len(ckeys), 1)]})
        table_figure(rows, keys, "final map (ours), %", ax=axes[0])
        table_figure(crows, ckeys, "CLIP map S_a alone, %", ax=axes[1])
    else:
        fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(keys), 1.2 + 0.24 * n_rows))
        table_figure(rows, keys, "final map (ours), %", ax=ax)
    caption_suptitle(fig, f"Results: {_protocol_caption(protocol)}", caption)
    return fig


def ablation_table_figure(ablation: dict[str, Any]) -> Figure:
    """``ablation.json``'s every row as a heat-map table (means over categories, %)."""
    protocol = ablation.get("protocol", {})
    rows = {str(r["setting"]): r for r in ablation["rows"]}
    keys = _keys_in(list(rows.values()))
    fig, ax = plt.subplots(figsize=(2.6 + 0.75 * len(keys), 1.1 + 0.2 * len(rows)))
    table_figure(rows, keys, "Ablation: negative strategy / CPS stages / fusion, means over categories (%)",
                 first="setting", ax=ax)
    caption_suptitle(fig, _protocol_caption(protocol), _table_caption(protocol))
    return fig


def ablation_stages_figure(ablation: dict[str, Any], fusion: str | None = None) -> Figure | None:
    """The pixel metrics against the number of CPS stages (0 = ``S_a`` alone), one line per negative
    strategy, at one fusion (default: the protocol's ``config.fusion``, else the first in the table).

    Returns None when the table has no ``stages`` / ``negative_strategy`` columns.
    """
    rows = ablation["rows"]
    if not all("stages" in r for r in rows) or not any(r.get("negative_strategy") for r in rows):
        return None
    fusions = [r.get("fusion") for r in rows if r.get("fusion")]
    if fusion is None:
        wanted = ablation.get("protocol", {}).get("config", {}).get("fusion")
        fusion = wanted if wanted in fusions else (fusions[0] if fusions else None)
    elif fusion not in fusions:
        raise ValueError(f"fusion {fusion!r} is not in this ablation table; it has {sorted(set(fusions))}.")
    stage0 = next((r for r in rows if r["stages"] == 0), None)
    strategies = list(dict.fromkeys(r["negative_strategy"] for r in rows if r.get("negative_strategy")))
    keys = _keys_in(rows, PIXEL_KEYS)
    fig, axes = plt.subplots(1, len(keys), figsize=(1.9 * len(keys) + 0.4, 2.5), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        for si, strat in enumerate(strategies):
            pts = [(0, stage0.get(k))] if stage0 is not None else []
            pts += sorted((r["stages"], r.get(k)) for r in rows
                          if r.get("negative_strategy") == strat and r.get("fusion") == fusion and r["stages"] > 0)
            xs = [x for x, v in pts if v is not None]
            ys = [100 * float(v) for _, v in pts if v is not None]
            ax.plot(xs, ys, marker="o", color=f"C{si}", label=strat)
        ax.set_xticks([0, 1, 2, 3], ["S_a", "1", "2", "3"])
        ax.set_xlabel("CPS stages")
        ax.set_title(METRIC_LABELS.get(k, k) + " (%)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(strategies),
               title="negative strategy")
    protocol = ablation.get("protocol", {})
    caption_suptitle(fig, f"Ablation: CPS stages x negative strategy, fusion '{fusion}'; {_protocol_caption(protocol)}",
              _table_caption(protocol))
    return fig


def render_tables(results_dir: str | Path, out: str | Path, formats: Sequence[str] = ("png", "pdf"),
                  dpi: float | None = None) -> dict[str, list[Path]]:
    """Render ``results_dir/results.json`` and/or ``ablation.json`` into ``out`` (figures + ``tables.md``)."""
    results_dir, out = Path(results_dir), Path(out)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"--results {results_dir}: no such folder. {_RESULTS_HINT}")
    res_path, abl_path = results_dir / "results.json", results_dir / "ablation.json"
    if not res_path.is_file() and not abl_path.is_file():
        raise FileNotFoundError(f"--results {results_dir} holds neither results.json nor ablation.json. "
                                f"{_RESULTS_HINT} {_ABLATION_HINT}")
    written: dict[str, list[Path]] = {}
    md: list[str] = []
    with style():
        if res_path.is_file():
            results = load_results(res_path)
            cap = _table_caption(results.get("protocol", {}))
            stem = FIGURE_NAMES["results"]
            written[stem] = save_png_pdf(results_figure(results), out, stem, describe(stem, "results table", cap),
                                         formats, dpi)
            md.append(results_markdown(results))
        if abl_path.is_file():
            ablation = load_ablation(abl_path)
            cap = _table_caption(ablation.get("protocol", {}))
            stem = FIGURE_NAMES["ablation_table"]
            written[stem] = save_png_pdf(ablation_table_figure(ablation), out, stem,
                                         describe(stem, "ablation table", cap), formats, dpi)
            fig = ablation_stages_figure(ablation)
            if fig is not None:
                stem = FIGURE_NAMES["ablation_stages"]
                written[stem] = save_png_pdf(fig, out, stem, describe(stem, "ablation stage curves", cap), formats,
                                             dpi)
            md.append(ablation_markdown(ablation))
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text("\n".join(md), encoding="utf-8")
    written["tables.md"] = [out / "tables.md"]
    return written
