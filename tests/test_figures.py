"""The figures: deterministic files, the tiny label everywhere, the table renderers, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from clipsam_lite import figures as F
from clipsam_lite import panels as P
from clipsam_lite import tables as T
from clipsam_lite.panels import offline_caption
from clipsam_lite.synthetic import render_item

TINY = offline_caption("tiny")


def _item(category: str, index: int, defect: str):
    image, mask = render_item(category, index, defect=defect, signature=True)
    return SimpleNamespace(image=image, mask=mask, label=1, category=category, defect_type=defect,
                           path=f"{category}/test/{defect}/{index:03d}.png")


@pytest.fixture(scope="module")
def setup(tiny_models):
    """Two held-out images, an untrained (seeded) adapter, and a percentile tau so PPG always prompts."""
    from clipsam_lite.adapter import Adapter

    cfg = tiny_models.cfg.replace(tau_mode="percentile", tau=98.0, per_component=False)
    adapter = Adapter.for_models(tiny_models, cfg)
    items = [_item("tablet", 0, "stain"), _item("grain", 1, "hole")]
    return tiny_models, cfg, adapter, items


@pytest.fixture(scope="module")
def cases(setup):
    models, cfg, adapter, items = setup
    return F.compute_cases(items, models, cfg, adapter)


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(plt.Text))


# ------------------------------------------------------------------------------------------------
# What the figures compute
# ------------------------------------------------------------------------------------------------

def test_naive_point_is_the_map_maximum_first_in_row_major_order():
    m = np.zeros((5, 7), np.float32)
    m[3, 1] = m[4, 6] = 0.9  # a tie: row-major order picks (row 3, col 1)
    np.testing.assert_array_equal(F.naive_point(m), [[1.0, 3.0]])
    with pytest.raises(ValueError, match="H x W"):
        F.naive_point(np.zeros((2, 2, 3)))


def test_mask_iou_known_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 px
    b[:2, :] = True  # 8 px, containing a
    assert F.mask_iou(a, b) == 0.5
    assert math.isnan(F.mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))


def test_cases_hold_both_heads_ours_and_the_naive_baseline(setup, cases):
    models, cfg, adapter, items = setup
    assert [c.category for c in cases] == ["tablet", "grain"]
    for c, it in zip(cases, items, strict=True):
        assert c.name == Path(it.path).name  # file name only: figures never show machine paths
        assert c.s_a_adapter is not None and not np.array_equal(c.s_a_adapter, c.s_a_free)
        np.testing.assert_array_equal(c.result.s_a, c.s_a_adapter)  # ours runs on the adapter's map
        np.testing.assert_array_equal(c.naive_point, F.naive_point(c.s_a_adapter))
        x, y = c.naive_point[0].astype(int)
        assert c.naive_mask.shape == it.mask.shape and c.naive_mask.dtype == bool
        assert c.result.cascades, "a 98th-percentile tau always gives prompts"
        assert c.result.sam_encoder_calls == 1  # the case's one embedding, reused by naive and ours
        assert 0 <= x < it.image.shape[1] and 0 <= y < it.image.shape[0]
    # without an adapter: ours uses the training-free map and the adapter column stays empty
    plain = F.compute_cases(items[:1], models, cfg, adapter=None)[0]
    assert plain.s_a_adapter is None
    np.testing.assert_array_equal(plain.result.s_a, cases[0].s_a_free)


def test_select_items_is_seeded_distinct_types_and_interleaved():
    from clipsam_lite.datasets import load_dataset
    from clipsam_lite.synthetic import sample_root

    ds = load_dataset("mvtec", sample_root(signature=True), category=["tablet", "grain"], split="test")
    a = F.select_items(ds, per_category=2, seed=0)
    b = F.select_items(ds, per_category=2, seed=0)
    assert [it.path for it in a] == [it.path for it in b]
    assert [it.category for it in a] == ["tablet", "grain", "tablet", "grain"]
    assert all(it.label == 1 for it in a)
    for cat in ("tablet", "grain"):
        types = [it.defect_type for it in a if it.category == cat]
        assert len(set(types)) == 2, f"{cat}: two images of distinct defect types, got {types}"
    others = [F.select_items(ds, per_category=2, seed=s) for s in (1, 2, 3)]
    assert any([it.path for it in o] != [it.path for it in a] for o in others), "the seed changes the choice"
    with pytest.raises(ValueError, match="per_category"):
        F.select_items(ds, per_category=0)


def test_sample_items_show_each_profiles_course_data():
    """mini: the world demo's held-out categories at 128 px; tiny: the signature sample's (course.course_data)."""
    mini = F.sample_items("mini", per_category=1)
    assert sorted(it.category for it in mini) == ["gear", "marble", "tablet", "weave"]
    assert all(it.image.shape == (128, 128, 3) and it.label == 1 and it.mask.any() for it in mini)
    tiny = F.sample_items("tiny", per_category=1)
    assert sorted(it.category for it in tiny) == ["disc", "tablet"] and all(it.image.shape[0] == 256 for it in tiny)


# ------------------------------------------------------------------------------------------------
# Deterministic files and the tiny label
# ------------------------------------------------------------------------------------------------

def test_figures_are_byte_identical_when_made_twice(setup, cases, tmp_path):
    """Compute the cases again and render into a second folder: every PNG and PDF has the same bytes."""
    models, cfg, adapter, items = setup
    first = F.render_qualitative(cases, "tiny", tmp_path / "a")
    again = F.compute_cases(items, models, cfg, adapter)
    second = F.render_qualitative(again, "tiny", tmp_path / "b")
    assert set(first) == set(second) == {"fig1_motivation", "fig2_qualitative", "fig3_cascade"}
    for stem, paths in first.items():
        assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.pdf"]
        for p in paths:
            assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), f"{p.name} differs between runs"
    # no timestamps or software versions: PNG without 'Software', PDF without CreationDate / Producer
    for p in (tmp_path / "a").glob("*.png"):
        info = Image.open(p).info
        assert "Software" not in info and info["Title"] == p.stem
    for p in (tmp_path / "a").glob("*.pdf"):
        data = p.read_bytes()
        assert data.startswith(b"%PDF") and b"/CreationDate" not in data and b"/Producer" not in data


def test_every_tiny_figure_carries_the_label(cases, tmp_path):
    written = F.render_qualitative(cases, "tiny", tmp_path)
    for stem, paths in written.items():
        png = next(p for p in paths if p.suffix == ".png")
        assert TINY in Image.open(png).info["Description"], stem
        pdf = next(p for p in paths if p.suffix == ".pdf").read_bytes()
        assert b"/Subject (" in pdf and TINY.encode() in pdf, stem
    for build in (lambda: F.figure_motivation(cases, P.figure_caption("tiny")),
                  lambda: F.figure_qualitative(cases, P.figure_caption("tiny")),
                  lambda: F.figure_cascade(F.pick_cascade_case(cases), P.figure_caption("tiny"))):
        fig = build()
        assert TINY in fig._suptitle.get_text()
        plt.close(fig)


def test_captions_for_real_and_random_profiles():
    assert P.figure_caption("tiny") == TINY and TINY
    assert P.figure_caption("base") == "" and P.figure_caption("paper", random_backbones=False) == ""
    assert "RANDOM" in P.figure_caption("base", random_backbones=True)


def test_save_png_pdf_rejects_unknown_formats(tmp_path):
    fig = plt.figure()
    with pytest.raises(ValueError, match="png"):
        P.save_png_pdf(fig, tmp_path, "x", formats=("svg",))
    plt.close(fig)


def test_figure_3_without_any_prompt_still_renders(setup, tmp_path):
    """All images normal (tau above every score): Figure 3 says no stage ran instead of failing."""
    models, cfg, adapter, items = setup
    normal = F.compute_cases(items[:1], models, cfg.replace(tau_mode="absolute", tau=1.0), adapter)
    assert normal[0].result.is_normal
    fig = F.figure_cascade(F.pick_cascade_case(normal), TINY)
    assert "no prompts" in _texts(fig)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------

METRICS = ("pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro", "image_auroc", "image_ap", "image_f1_max")


def _results(tiny: bool = True) -> dict:
    a = dict(zip(METRICS, (0.9, 0.5, 0.4, 0.8, 1.0, 1.0, 1.0), strict=True))
    b = dict(zip(METRICS, (0.8, 0.3, 0.2, 0.6, None, 0.9, 0.8), strict=True))
    mean = {k: (None if a[k] is None or b[k] is None else (a[k] + b[k]) / 2) for k in METRICS}
    mean["image_auroc"] = 1.0  # evaluate's mean skips undefined values
    return {"protocol": {"dataset": "mvtec", "split": "test", "profile": "tiny" if tiny else "base",
                         "random_backbones": tiny, "head": "adapter", "resolution": 256, "aupro_fpr_limit": 0.3,
                         "aupro_definition": "MVTec AD reference AUPRO"},
            "categories": {"bottle": a, "metal_nut": b}, "mean": mean,
            "clip_map_only": {"description": "S_a alone", "categories": {"bottle": {"pixel_auroc": 0.7},
                                                                         "metal_nut": {"pixel_auroc": 0.6}},
                              "mean": {"pixel_auroc": 0.65}}}


def _ablation() -> dict:
    rows = [{"setting": "stage 0 (S_a alone)", "negative_strategy": None, "stages": 0, "fusion": None,
             "pixel_auroc": 0.90, "pixel_ap": 0.20, "pixel_f1_max": 0.25, "pixel_aupro": 0.70, "image_auroc": 0.8}]
    for si, strat in enumerate(("cofeature", "none")):
        for n in (1, 2, 3):
            for fusion in ("gate", "mask"):
                v = 0.5 + 0.1 * n - 0.2 * si + (0.05 if fusion == "mask" else 0.0)
                rows.append({"setting": f"{strat} / {n} stages / {fusion}", "negative_strategy": strat, "stages": n,
                             "fusion": fusion, "pixel_auroc": v, "pixel_ap": v / 2, "pixel_f1_max": v / 2,
                             "pixel_aupro": v, "image_auroc": 0.8})
    return {"protocol": {"dataset": "visa", "profile": "paper", "random_backbones": False,
                         "config": {"fusion": "gate"}}, "rows": rows}


def _write(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return folder / name


def test_results_markdown_known_values(tmp_path):
    res = T.load_results(_write(tmp_path, "results.json", _results()))
    md = T.results_markdown(res)
    lines = md.splitlines()
    assert "| category | pixel AUROC | pixel AP | pixel F1-max | pixel AUPRO | image AUROC | image AP | image F1-max |" \
        in lines
    assert "| bottle | 90.0 | 50.0 | 40.0 | 80.0 | 100.0 | 100.0 | 100.0 |" in lines
    assert "| metal_nut | 80.0 | 30.0 | 20.0 | 60.0 | n/a | 90.0 | 80.0 |" in lines
    assert "| **mean** | 85.0 | 40.0 | 30.0 | 70.0 | 100.0 | 95.0 | 90.0 |" in lines
    assert "| **mean** | 65.0 |" in lines  # the CLIP-map-alone table
    assert TINY in md and "MVTec AD reference AUPRO" in md
    assert TINY not in T.results_markdown(T.load_results(_write(tmp_path / "b", "results.json", _results(False))))


def test_results_figure_shows_the_values_and_the_label(tmp_path):
    fig = T.results_figure(T.load_results(_write(tmp_path, "results.json", _results())))
    text = _texts(fig)
    for v in ("90.0", "85.0", "n/a", "65.0", "pixel\nAUROC", "metal_nut", "mean"):
        assert v in text, v
    assert TINY in fig._suptitle.get_text()
    plt.close(fig)


def test_ablation_markdown_and_stage_curves(tmp_path):
    abl = T.load_ablation(_write(tmp_path, "ablation.json", _ablation()))
    md = T.ablation_markdown(abl)
    assert "| stage 0 (S_a alone) | 90.0 | 20.0 | 25.0 | 70.0 | 80.0 |" in md.splitlines()
    assert "| cofeature / 2 stages / gate | 70.0 | 35.0 | 35.0 | 70.0 | 80.0 |" in md.splitlines()
    assert TINY not in md  # a real profile: no label
    fig = T.ablation_stages_figure(abl)  # the protocol's fusion: gate
    auroc = fig.axes[0]
    lines = {ln.get_label(): ln for ln in auroc.get_lines()}
    np.testing.assert_allclose(lines["cofeature"].get_ydata(), [90.0, 60.0, 70.0, 80.0])
    np.testing.assert_allclose(lines["none"].get_ydata(), [90.0, 40.0, 50.0, 60.0])
    np.testing.assert_array_equal(lines["none"].get_xdata(), [0, 1, 2, 3])
    plt.close(fig)
    fig = T.ablation_stages_figure(abl, fusion="mask")
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [90.0, 65.0, 75.0, 85.0])
    plt.close(fig)
    with pytest.raises(ValueError, match="blend"):
        T.ablation_stages_figure(abl, fusion="blend")
    fig = T.ablation_table_figure(abl)
    assert "cofeature / 3 stages / mask" in _texts(fig)
    plt.close(fig)


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    (json.dumps({"categories": {"a": {"pixel_auroc": 0.5}}}), "'mean'"),
    (json.dumps({"categories": {"a": {"pixel_auroc": 87.5}}, "mean": {"pixel_auroc": 0.5}}),
     r"categories\.a\.pixel_auroc is 87\.5"),
    (json.dumps({"categories": {}, "mean": {"pixel_auroc": 0.5}}), "non-empty"),
    (json.dumps({"categories": {"a": {"x": 1}}, "mean": {"x": 1}}), "none of the metrics"),
])
def test_load_results_names_the_problem(tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        T.load_results(_write(tmp_path, "results.json", content))


def test_load_results_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="clipsam_lite evaluate"):
        T.load_results(tmp_path / "results.json")
    with pytest.raises(ValueError, match="'rows'"):
        T.load_ablation(_write(tmp_path, "ablation.json", {"protocol": {}}))


# ------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------

def test_cli_writes_png_and_pdf_figures_and_tables(setup, tmp_path, capsys):
    from clipsam_lite.__main__ import main
    from clipsam_lite.adapter import save_adapter

    models, cfg, adapter, _ = setup
    adapter_file = save_adapter(adapter, tmp_path / "adapter.pt")
    results = tmp_path / "results"
    _write(results, "results.json", _results())
    _write(results, "ablation.json", _ablation())
    out = tmp_path / "figs"
    rc = main(["figures", "--profile", "tiny", "--adapter", str(adapter_file), "--per-category", "1",
               "--set", "per_component=false", "--set", "tau_mode=percentile", "--set", "tau=98",
               "--results", str(results), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    stems = ["fig1_motivation", "fig2_qualitative", "fig3_cascade", "table_results", "table_ablation",
             "ablation_stages"]
    for stem in stems:
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
        assert Image.open(out / f"{stem}.png").format == "PNG"
    assert "| **mean** | 85.0 |" in (out / "tables.md").read_text()
    printed = capsys.readouterr().out
    from clipsam_lite.demo import HELD_OUT_CATEGORIES

    assert "RANDOM BACKBONES" in printed and all(c in printed for c in HELD_OUT_CATEGORIES)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "mvtec"], "--dataset and --root together"),
    (["--tables-only"], "--tables-only needs --results"),
    (["--results", "{tmp}/nothing", "--tables-only"], "no such folder"),
    (["--results", "{tmp}", "--tables-only"], "neither results.json nor ablation.json"),
    (["--profile", "tiny", "--set", "nope=1"], "no field 'nope'"),
    (["--profile", "tiny", "--set", "stages=4"], "stages must be 1, 2 or 3"),
])
def test_cli_bad_arguments_fail_fast_with_a_clear_message(tmp_path, capsys, args, message):
    from clipsam_lite.__main__ import main

    rc = main(["figures", *[a.format(tmp=tmp_path) for a in args], "--out", str(tmp_path / "o")])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_cli_tables_only_loads_no_model(tmp_path, monkeypatch):
    from clipsam_lite import models
    from clipsam_lite.__main__ import main

    monkeypatch.setattr(models, "load_models", lambda *a, **k: pytest.fail("tables-only must not load models"))
    _write(tmp_path / "r", "results.json", _results())
    assert main(["figures", "--results", str(tmp_path / "r"), "--tables-only", "--formats", "png",
                 "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["table_results.png", "tables.md"]
