"""The evaluation: results structure and values, determinism, cache keys, --fresh, kill-and-resume, ablation reuse.

Everything runs on a 9-image synthetic category (64 px, signature defects) with the tiny profile's
training-free head, compared at 48 x 48 (so maps and masks really are resized), in batches of 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from clipsam_lite import ablate as abl
from clipsam_lite import eval_cache as ec
from clipsam_lite import evaluate as ev
from clipsam_lite.config import Config
from clipsam_lite.datasets import Record, load_dataset
from clipsam_lite.images import read_mask, resize_center_crop
from clipsam_lite.metrics import AUPRO_DEFINITION, aupro
from clipsam_lite.sam_features import EncoderCounter
from clipsam_lite.synthetic import make_synthetic

RESOLUTION = 48
BATCH = 2
N = 9  # images: 3 normal + 6 anomalous
OVERRIDES = ["head=training_free"]
CLI_ARGS = ["--profile", "tiny", "--resolution", str(RESOLUTION), "--batch-size", str(BATCH),
            "--set", "head=training_free"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one CPU thread


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One category, 3 normal + 6 anomalous images of 64 x 64."""
    return make_synthetic(tmp_path_factory.mktemp("eval") / "synthetic", categories=["tablet"], image_size=64,
                          n_train=0, n_test_good=3, n_test_per_defect=2, defect_types=["stain", "hole", "scratch"],
                          signature=True)


def _run(models, root, out, **kw):
    kw = {"resolution": RESOLUTION, "batch_size": BATCH, "overrides": OVERRIDES, "progress": False, "log": None,
          **kw}
    return ev.evaluate("mvtec", root, out, models=models, **kw)


@pytest.fixture(scope="module")
def reference(tiny_models, data_root, tmp_path_factory):
    """An uninterrupted run, in process."""
    return _run(tiny_models, data_root, tmp_path_factory.mktemp("ref") / "out")


def _entries(out: Path) -> list[Path]:
    cache = out / "cache"
    return sorted(d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".")) if cache.is_dir() else []


# --------------------------------------------------------------------------------------------------
# results.json / .csv / .md
# --------------------------------------------------------------------------------------------------

def test_results_files_state_the_protocol(reference, tiny_models):
    out = reference.out
    res = json.loads((out / "results.json").read_text())
    assert res == json.loads(json.dumps(reference.results))  # what evaluate() returned is what it wrote
    p = res["protocol"]
    assert p["dataset"] == "mvtec" and p["resolution"] == RESOLUTION and p["profile"] == "tiny"
    assert p["aupro_definition"] == AUPRO_DEFINITION
    assert p["random_backbones"] is True and p["head"] == "training_free" and p["adapter"]["source"] == "none"
    assert p["config"] == tiny_models.cfg.replace(head="training_free", resolution=RESOLUTION,
                                                  batch_size=BATCH).to_dict()
    assert p["images"] == {"tablet": {"evaluated": N, "anomalous": 6, "normal": 3, "in_dataset": N}}
    assert list(res["categories"]) == ["tablet"]
    assert set(res["categories"]["tablet"]) == set(ev.METRIC_KEYS)
    assert res["mean"] == res["categories"]["tablet"]  # one category: the mean is that category
    for v in res["categories"]["tablet"].values():
        assert 0.0 <= v <= 1.0
    assert set(res["clip_map_only"]["categories"]["tablet"]) == set(ev.PIXEL_KEYS)

    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].split(",") == ["category", *ev.METRIC_KEYS]
    assert [r.split(",")[0] for r in rows[1:]] == ["tablet", "mean"]
    assert [float(x) for x in rows[1].split(",")[1:]] == [res["categories"]["tablet"][k] for k in ev.METRIC_KEYS]

    md = (out / "results.md").read_text()
    assert md.index("Protocol") < md.index("| category |")  # the protocol comes above the table
    for text in ("RANDOM backbones", AUPRO_DEFINITION, f"{RESOLUTION} x {RESOLUTION}", "training-free"):
        assert text in md
    assert f"| tablet | {100 * res['categories']['tablet']['pixel_auroc']:.1f} |" in md


def _f1_max_sklearn(y, s):
    p, r, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(f1.max())


def test_values_recomputed_independently_from_the_cache(reference, data_root):
    """Metrics from the cached maps and the dataset's own mask files, with scikit-learn, equal results.json."""
    res = reference.results["categories"]["tablet"]
    folders = reference.entries["tablet"]
    maps, masks, scores, labels = [], [], [], []
    for folder in folders:
        meta = json.loads((folder / "entry.json").read_text())
        m = np.load(folder / "final_map.npy")
        assert m.shape == (RESOLUTION, RESOLUTION) and m.dtype == np.float32
        img = Path(meta["image"])
        mask_file = data_root / "tablet" / "ground_truth" / img.parent.name / f"{img.stem}_mask.png"
        if img.parent.name == "good":
            gt = np.zeros((RESOLUTION, RESOLUTION), bool)
        else:
            gt = resize_center_crop(read_mask(mask_file), RESOLUTION, is_mask=True)
            assert gt.any()
        maps.append(m)
        masks.append(gt)
        scores.append(meta["image_score"])
        labels.append(int(img.parent.name != "good"))
    assert sorted(labels) == [0] * 3 + [1] * 6
    s, y = np.concatenate([m.ravel() for m in maps]), np.concatenate([g.ravel() for g in masks])
    assert res["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert res["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert res["pixel_f1_max"] == pytest.approx(_f1_max_sklearn(y, s), abs=1e-12)
    assert res["pixel_aupro"] == aupro(maps, masks)
    assert res["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert res["image_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert res["image_f1_max"] == pytest.approx(_f1_max_sklearn(np.array(labels), np.array(scores)), abs=1e-12)


def test_cached_maps_are_the_pipelines_output(reference, tiny_models, data_root):
    """The first batch through segment_batch, resized and cropped, is exactly what the cache holds."""
    from clipsam_lite.pipeline import segment_batch

    ds = load_dataset("mvtec", data_root)
    items = [ds[i] for i in range(BATCH)]
    cfg = tiny_models.cfg.replace(head="training_free", resolution=RESOLUTION, batch_size=BATCH)
    results = segment_batch([it.image for it in items], "tablet", tiny_models, cfg)
    for r, folder in zip(results, reference.entries["tablet"][:BATCH], strict=True):
        e = ec.load_entry(folder)
        np.testing.assert_array_equal(e.final_map, resize_center_crop(r.final_map, RESOLUTION))
        np.testing.assert_array_equal(e.s_a, resize_center_crop(r.s_a, RESOLUTION))
        assert e.image_score == float(r.image_score)


# --------------------------------------------------------------------------------------------------
# determinism, keys, --fresh
# --------------------------------------------------------------------------------------------------

def test_two_runs_give_identical_results(reference, tiny_models, data_root, tmp_path):
    again = _run(tiny_models, data_root, tmp_path / "out")
    assert again.computed == {"tablet": N}
    assert (tmp_path / "out" / "results.json").read_bytes() == (reference.out / "results.json").read_bytes()
    for a, b in zip(_entries(tmp_path / "out"), _entries(reference.out), strict=True):
        assert a.name == b.name
        for f in ("final_map.npy", "s_a.npy", "entry.json"):
            assert (a / f).read_bytes() == (b / f).read_bytes()


def _value_changed(cfg: Config, name: str):
    """A valid value different from the current one, for every Config field."""
    v = getattr(cfg, name)
    choices = {"profile": ("paper", "base", "tiny"), "head": ("adapter", "training_free"),
               "tau_mode": ("absolute", "otsu"), "negative_strategy": ("cofeature", "none"),
               "fusion": ("gate", "mask"), "image_score_mode": ("global", "global_max_mix"),
               "stages": (3, 2), "clip_model": ("a", "b"), "sam_model": ("vit_b", "tiny"),
               "map_order": ("upsample_softmax", "softmax_upsample"), "precision": ("auto", "bf16"),
               "length_unit": ("sam1024", "original"), "ppg_resolution": ("sam_input", "original"),
               "eval_resize": ("squash", "crop")}
    if name in choices:
        return next(c for c in choices[name] if c != v)
    if isinstance(v, bool):
        return not v
    if name == "clip_layers":
        return (1, 2)
    if v is None:
        return 96 if name == "working_size" else "openai"  # Config refuses working sizes below 16
    if isinstance(v, float):
        return v / 2 if name in ("alpha", "image_score_mix", "tau") else v + 1.0  # tau stays in [0, 1]
    return v // 2 if name == "clip_image_size" else v + 1  # a multiple of the patch size


def test_cache_key_changes_with_every_config_field_and_input(reference, tiny_models, data_root, tmp_path):
    setup = ev.prepare("mvtec", data_root, models=tiny_models, overrides=OVERRIDES, resolution=RESOLUTION,
                       batch_size=BATCH, log=None)
    rec = setup.dataset.records[0]
    peers = [r.path for r in setup.dataset.records[:BATCH]]
    base = ec.entry_key(ev.run_identity(setup), rec, peers)
    assert base == reference.entries["tablet"][0].name  # the same arguments give the same key
    for f in dataclasses.fields(Config):
        changed = dataclasses.replace(setup, cfg=dataclasses.replace(setup.cfg, **{f.name: _value_changed(setup.cfg, f.name)}))
        assert ec.entry_key(ev.run_identity(changed), rec, peers) != base, f"Config.{f.name} is not in the key"
    other_adapter = dataclasses.replace(setup, adapter_info={**setup.adapter_info, "sha256": "0" * 64})
    assert ec.entry_key(ev.run_identity(other_adapter), rec, peers) != base
    assert ec.entry_key(ev.run_identity(setup), rec, peers[::-1]) != base  # other batch peers
    copy = tmp_path / "image.png"
    shutil.copyfile(rec.path, copy)
    moved = dataclasses.replace(rec, path=str(copy))
    k1 = ec.entry_key(ev.run_identity(setup), moved, peers)
    os.utime(copy, ns=(os.stat(copy).st_atime_ns, os.stat(copy).st_mtime_ns + 10**9))  # an edited image
    assert k1 != base and ec.entry_key(ev.run_identity(setup), moved, peers) != k1

    # a changed argument in the same --out never reads the old entries
    out = tmp_path / "out"
    shutil.copytree(reference.out, out)
    two = _run(tiny_models, data_root, out, stages=2)
    assert two.cached == {"tablet": 0} and two.computed == {"tablet": N}
    assert len(_entries(out)) == 2 * N
    assert two.results["protocol"]["config"]["stages"] == 2


def test_fresh_starts_over_and_a_plain_rerun_reuses_everything(reference, tiny_models, data_root, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference.out, out)
    stale = out / "cache" / ("f" * 32)
    stale.mkdir()
    rerun = _run(tiny_models, data_root, out)
    assert rerun.computed == {"tablet": 0} and rerun.cached == {"tablet": N} and stale.is_dir()
    assert (out / "results.json").read_bytes() == (reference.out / "results.json").read_bytes()
    fresh = _run(tiny_models, data_root, out, fresh=True)
    assert fresh.computed == {"tablet": N} and fresh.cached == {"tablet": 0}
    assert not stale.exists() and len(_entries(out)) == N
    assert (out / "results.json").read_bytes() == (reference.out / "results.json").read_bytes()

    foreign = tmp_path / "foreign"
    (foreign / "cache").mkdir(parents=True)
    (foreign / "cache" / "precious.txt").write_text("not ours")
    with pytest.raises(ev.EvaluationError, match="not an evaluation cache"):
        _run(tiny_models, data_root, foreign, fresh=True)
    assert (foreign / "cache" / "precious.txt").is_file()


# --------------------------------------------------------------------------------------------------
# kill a real process midway, resume, compare
# --------------------------------------------------------------------------------------------------

def _cli(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "clipsam_lite", "evaluate", "--dataset", "mvtec", "--root", str(root),
            "--out", str(out), *CLI_ARGS]


def test_killed_run_resumes_to_the_uninterrupted_results(reference, data_root, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "CLIPSAM_PROFILE": "tiny", "CLIPSAM_CACHE": str(tmp_path / "cache_home"),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # the CPU, as the reference
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(_cli(data_root, out), stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 240
        try:
            while not _entries(out):
                assert proc.poll() is None, "the run ended before it could be killed: " + (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline, "no cache entry appeared in time"
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = {d.name: (d.stat().st_ino, (d / "final_map.npy").stat().st_mtime_ns) for d in _entries(out)}
    assert 1 <= len(before) < N, f"killed with {len(before)} of {N} entries: not midway"
    assert not (out / "results.json").exists()

    done = subprocess.run(_cli(data_root, out), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    m = re.search(rf"tablet: {N} images, (\d+) from cache, (\d+) computed", done.stdout)
    assert m, done.stdout
    assert (int(m[1]), int(m[2])) == (len(before), N - len(before))  # nothing done is redone
    for d in _entries(out):  # the entries made before the kill were not rewritten
        if d.name in before:
            assert (d.stat().st_ino, (d / "final_map.npy").stat().st_mtime_ns) == before[d.name]
    assert not list((out / "cache").glob(".tmp-*"))
    assert [d.name for d in _entries(out)] == [d.name for d in _entries(reference.out)]
    for a, b in zip(_entries(out), _entries(reference.out), strict=True):
        for f in ("final_map.npy", "s_a.npy", "entry.json"):
            assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (out / "results.json").read_bytes() == (reference.out / "results.json").read_bytes()


# --------------------------------------------------------------------------------------------------
# ablation
# --------------------------------------------------------------------------------------------------

def test_grid_is_methods_grid():
    settings = abl.grid_settings()
    assert len(settings) == 1 + 4 * 3 * 5
    assert settings[0].stages == 0 and settings[0].fusion is None and settings[0].negative_strategy is None
    assert len({s.name for s in settings}) == len(settings)
    assert {(s.negative_strategy, s.stages, s.fusion) for s in settings[1:]} == {
        (n, k, f) for n in ("cofeature", "ring_low_score", "global_low_score", "none") for k in (1, 2, 3)
        for f in ("gate", "mask", "sigmoid_logits", "blend", "gate_dilated")}
    with pytest.raises(ev.EvaluationError, match="negative strategy"):
        abl.grid_settings(strategies=("nearest",))
    with pytest.raises(ev.EvaluationError, match="stages"):
        abl.grid_settings(stages=(0,))


def test_ablation_reuses_one_clip_and_one_encoder_pass_per_image(reference, tiny_models, data_root, tmp_path):
    hits = []
    handle = tiny_models.clip.visual.conv1.register_forward_hook(lambda m, i, o: hits.append(i[0].shape[0]))
    try:
        with EncoderCounter(tiny_models.sam) as sam:
            ab = abl.ablate("mvtec", data_root, tmp_path / "ab", models=tiny_models, resolution=RESOLUTION,
                           batch_size=BATCH, overrides=OVERRIDES, strategies=("cofeature", "none"), stages=(1, 3),
                           progress=False, log=None)
    finally:
        handle.remove()
    n_sam = sum(not json.loads((f / "entry.json").read_text())["is_normal"] for f in reference.entries["tablet"])
    assert sum(hits) == ab.clip_images == N  # one CLIP pass per image for all 21 rows
    assert sam.images == ab.sam_encoder_images == n_sam >= 1  # one encoder pass per prompted image
    rows = {r["setting"]: r for r in ab.table["rows"]}
    assert len(rows) == 1 + 2 * 2 * 5

    # the reused CLIP maps / embeddings / cascades give exactly what evaluate() computes from scratch
    ref = reference.results
    assert {k: rows["stage 0 (S_a alone)"][k] for k in ev.PIXEL_KEYS} == ref["clip_map_only"]["mean"]
    assert {k: rows["cofeature / 3 stages / gate"][k] for k in ev.PIXEL_KEYS} == \
        {k: ref["mean"][k] for k in ev.PIXEL_KEYS}
    other = _run(tiny_models, data_root, tmp_path / "other",
                 overrides=[*OVERRIDES, "negative_strategy=none", "fusion=sigmoid_logits"], stages=1)
    assert {k: rows["none / 1 stage / sigmoid_logits"][k] for k in ev.PIXEL_KEYS} == \
        {k: other.results["mean"][k] for k in ev.PIXEL_KEYS}
    assert all(r["image_auroc"] == ref["mean"]["image_auroc"] for r in rows.values())

    saved = json.loads((tmp_path / "ab" / "ablation.json").read_text())
    assert saved["counts"] == {"images": N, "clip_images": N, "sam_encoder_images": n_sam,
                               "sam_encoder_calls": saved["counts"]["sam_encoder_calls"]}
    assert len((tmp_path / "ab" / "ablation.csv").read_text().splitlines()) == 1 + len(rows)
    md = (tmp_path / "ab" / "ablation.md").read_text()
    assert "RANDOM backbones" in md and "| none / 1 stage / sigmoid_logits |" in md


def test_comparison_table_puts_each_protocol_beside_its_numbers(reference):
    table = ev.comparison_markdown(reference.results)
    lines = table.splitlines()
    assert len(lines) == 2 + 2 * len(ev.PUBLISHED) + 1
    assert "| AnomalyCLIP | VisA | 95.4 / 27.6 / 20.7 / 86.4 |" in table
    assert all("differ in resolution and AUPRO definition" in line for line in lines[2:-1])
    m = reference.results["mean"]
    ours = " / ".join(f"{100 * m[k]:.1f}" for k in ("pixel_auroc", "pixel_f1_max", "pixel_ap", "pixel_aupro"))
    assert lines[-1].startswith(f"| clipsam-lite (this run) | synthetic mvtec (tablet) | {ours} | profile tiny (RANDOM")
    assert f"at {RESOLUTION} x {RESOLUTION}" in lines[-1] and "reference definition" in lines[-1]


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------

def test_subset_keeps_both_classes_evenly_spaced():
    recs = [Record(f"{i}.png", None, int(i >= 6), "c", "x") for i in range(10)]  # 6 normal, then 4 anomalous
    assert ev.select_indices(recs, ["c"], 5) == {"c": [0, 2, 5, 6, 9]}  # 3 normal + 2 anomalous
    assert ev.select_indices(recs, ["c"], 2) == {"c": [0, 6]}
    assert ev.select_indices(recs, ["c"], None) == {"c": list(range(10))}
    with pytest.raises(ev.EvaluationError, match="positive"):
        ev.select_indices(recs, ["c"], 0)


def test_set_option_is_typed_and_checked():
    cfg = Config()
    assert ev.parse_overrides(["tau=0.6", "per_component=false", "clip_layers=1,3", "stages=2", "fusion=mask",
                               "working_size=none"], cfg) == {
        "tau": 0.6, "per_component": False, "clip_layers": (1, 3), "stages": 2, "fusion": "mask",
        "working_size": None}
    with pytest.raises(ev.EvaluationError, match="no field 'taux'"):
        ev.parse_overrides(["taux=1"], cfg)
    with pytest.raises(ev.EvaluationError, match="FIELD=VALUE"):
        ev.parse_overrides(["tau"], cfg)
    with pytest.raises(ev.EvaluationError, match="k_pos"):
        ev.parse_overrides(["k_pos=three"], cfg)


def test_cli_errors_are_one_clear_line(tmp_path, capsys, data_root):
    from clipsam_lite.__main__ import main

    assert main(["evaluate", "--dataset", "mvtec", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["evaluate", "--dataset", "mvtec", "--root", str(data_root), "--out", str(tmp_path),
                 "--set", "taux=1"]) == 2
    assert "no field 'taux'" in capsys.readouterr().err
    folder = tmp_path / "plain"
    folder.mkdir()
    shutil.copyfile(data_root / "tablet" / "test" / "good" / "000.png", folder / "a.png")
    assert main(["ablate", "--dataset", "folder", "--root", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no ground-truth mask" in err and "a.png" in err


def test_ablation_reads_stages_1_and_2_from_the_3_stage_cascade(reference, tiny_models, data_root, tmp_path):
    """Issue 11.12: the 1- and 2-stage rows are prefixes of one 3-stage run: no more decoder passes than 3 stages
    alone, and the same numbers as separate runs (test_ablation_reuses_... checks a 1-stage row against evaluate)."""
    from conftest import DecoderSpy

    def decoder_calls(stages):
        spy = DecoderSpy(tiny_models.sam)
        try:
            ab = abl.ablate("mvtec", data_root, tmp_path / f"ab{len(stages)}", models=tiny_models, resolution=RESOLUTION,
                            batch_size=BATCH, overrides=OVERRIDES, strategies=("ring_low_score",), stages=stages,
                            fusions=("gate",), progress=False, log=None)
        finally:
            spy.handle.remove()
        return spy.calls, {r["setting"]: r for r in ab.table["rows"]}

    all3, rows = decoder_calls((1, 2, 3))
    only3, rows3 = decoder_calls((3,))
    assert all3 == only3 > 0
    assert rows["ring_low_score / 3 stages / gate"] == rows3["ring_low_score / 3 stages / gate"]
    two = _run(tiny_models, data_root, tmp_path / "two", overrides=[*OVERRIDES, "negative_strategy=ring_low_score"],
               stages=2)
    assert {k: rows["ring_low_score / 2 stages / gate"][k] for k in ev.PIXEL_KEYS} == \
        {k: two.results["mean"][k] for k in ev.PIXEL_KEYS}


def test_evaluation_squashes_to_the_square_by_default_and_names_it(reference):
    """Issue 11.5: maps and masks are squashed (APRIL-GAN / AnomalyCLIP Resize((518, 518))), no pixel cropped away;
    the crop stays an option; every table says which."""
    from clipsam_lite.eval_cache import eval_map
    from clipsam_lite.images import resize_for_eval

    wide = np.zeros((300, 700), bool)
    wide[100:200, 650:700] = True  # a defect at the right edge of a wide image
    squashed = resize_for_eval(wide, 48, "squash", is_mask=True)
    cropped = resize_for_eval(wide, 48, "crop", is_mask=True)
    assert squashed.shape == cropped.shape == (48, 48)
    assert squashed[:, 44:].any() and not cropped.any()  # the crop drops the defect from the metrics
    ramp = np.tile(np.linspace(0, 1, 700, dtype=np.float32), (300, 1))
    expected = np.asarray(Image.fromarray(ramp, mode="F").resize((48, 48), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(eval_map(ramp, 48), expected, rtol=0, atol=1e-6)
    assert eval_map(ramp, 48)[0, -1] > 0.95 and eval_map(ramp, 48, "crop")[0, -1] < 0.8
    res = reference.results
    assert res["protocol"]["eval_resize"] == "squash" and "squash" in res["protocol"]["resize"]
    assert "squash" in (reference.out / "results.md").read_text()
    assert "(squash)" in ev.comparison_markdown(res)
