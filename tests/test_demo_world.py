"""The demo on the ``mini`` profile: the miniature world's held-out categories, region AUROC and the prior row."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from clipsam_lite import demo


def test_demo_profile_is_mini_offline_and_tiny_when_asked(monkeypatch):
    import clipsam_lite.models as models

    monkeypatch.delenv("CLIPSAM_PROFILE", raising=False)
    monkeypatch.setattr(models, "real_weights_cached", lambda profile: False)
    assert demo.choose_demo_profile(None) == "mini"
    assert demo.choose_demo_profile("tiny") == "tiny"
    monkeypatch.setattr(models, "real_weights_cached", lambda profile: profile == "base")
    assert demo.choose_demo_profile(None) == "base"
    monkeypatch.setenv("CLIPSAM_PROFILE", "tiny")
    assert demo.choose_demo_profile(None) == "tiny"


def test_score_results_with_regions_and_a_prior_row():
    masks = [np.array([[1, 0, 0], [0, 0, 0]], bool), np.zeros((2, 3), bool)]
    regions = [np.array([[1, 1, 0], [1, 1, 0]], bool)] * 2
    truth = [m.astype(np.float32) for m in masks]
    results = [SimpleNamespace(s_a=t, final_map=t, image_score=float(t.max())) for t in truth]
    priors = [r.astype(np.float32) for r in regions]  # the silhouette: the same map for every image
    rows = demo.score_results(results, masks, [1, 0], regions, priors)
    assert rows["CLIP map S_a (stage 0)"]["region_auroc"] == pytest.approx(1.0)
    # the prior ranks the defect above the 4 pixels outside the regions and ties with the 7 inside them
    assert rows[demo.PRIOR_ROW]["region_auroc"] == pytest.approx(0.5)
    assert rows[demo.PRIOR_ROW]["pixel_auroc"] == pytest.approx((4 + 0.5 * 7) / 11)
    assert "region_auroc" in demo._table(rows).splitlines()[0]
    plain = demo.score_results(results, masks, [1, 0])
    assert demo.PRIOR_ROW not in plain and "region" not in demo._table(plain)


def test_mini_demo_on_the_held_out_world(tmp_path, monkeypatch):
    """About 20 CPU-seconds: mini-CLIP, the world adapter (cached) and the held-out world categories."""
    import torch

    from clipsam_lite.synthetic import AUX_CATEGORIES, HELDOUT_CATEGORIES

    monkeypatch.setenv("CLIPSAM_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    out = demo.run_demo("mini", tmp_path / "demo", log=lambda _s: None)
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["profile"] == "mini" and metrics["categories"] == list(HELDOUT_CATEGORIES)
    assert not set(AUX_CATEGORIES) & set(metrics["categories"])
    rows = out["metrics"]
    assert {"region_auroc", "pixel_auroc"} <= set(rows[demo.PRIOR_ROW]) and "region_auroc" in rows["final map (CPS)"]
    # mini-CLIP has learned something: its map beats the prior inside the region (model card: by 0.2 or more)
    assert rows["CLIP map S_a (stage 0)"]["region_auroc"] > rows[demo.PRIOR_ROW]["region_auroc"] + 0.1
    table = (tmp_path / "demo" / "metrics.md").read_text()
    assert "| prior map (baseline) |" in table and "region AUROC" in table
    assert list((tmp_path / "demo" / "figures").glob("*_stages.png"))
