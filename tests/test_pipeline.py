"""The whole pipeline on the tiny profile: what runs, how often, and what it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipsam_lite import pipeline
from clipsam_lite.synthetic import render_item


@pytest.fixture(scope="module")
def defect_image():
    image, mask = render_item("tablet", 0, defect="stain", signature=True)
    return image, mask


def _cfg(tiny_models, **kw):
    # the training-free head needs no training; a percentile threshold guarantees prompts on any map
    return tiny_models.cfg.replace(head="training_free", **{"tau_mode": "percentile", "tau": 98.0, **kw})


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_encoder_runs_once_and_decoder_once_per_stage(tiny_models, defect_image, stages, decoder_spy):
    image, _ = defect_image
    cfg = _cfg(tiny_models, stages=stages, per_component=False)
    r = pipeline.segment(image, "tablet", tiny_models, cfg)
    spy = decoder_spy
    assert r.sam_encoder_calls == 1
    assert len(r.cascades) == 1
    assert spy.calls == len(r.cascades[0].stages) <= stages
    assert r.final_map.shape == image.shape[:2] and r.final_map.dtype == np.float32
    assert r.s_a.shape == image.shape[:2]


def test_per_component_still_one_encoder_pass(tiny_models, defect_image):
    image, _ = defect_image
    cfg = _cfg(tiny_models, tau=90.0, per_component=True, min_component_area=1)
    r = pipeline.segment(image, "tablet", tiny_models, cfg)
    assert len(r.ppg.prompt_sets) >= 2, "the planted threshold should give several components"
    assert len(r.cascades) == len(r.ppg.prompt_sets)
    assert r.sam_encoder_calls == 1
    union = np.zeros(image.shape[:2], bool)
    for c in r.cascades:
        if c.final is not None:
            union |= c.final.mask
    np.testing.assert_array_equal(r.final_mask, union)


def test_normal_image_returns_s_a_without_touching_sam(tiny_models, defect_image, decoder_spy):
    image, _ = defect_image
    cfg = tiny_models.cfg.replace(head="training_free", tau_mode="absolute", tau=1.0)  # S_a > 1 never holds
    r = pipeline.segment(image, "tablet", tiny_models, cfg)
    spy = decoder_spy
    assert r.is_normal and r.ppg is None and r.sam_encoder_calls == 0 and spy.calls == 0
    np.testing.assert_array_equal(r.final_map, r.s_a)
    assert not r.final_mask.any()


def test_batch_equals_single_images(tiny_models, defect_image):
    image, _ = defect_image
    other, _ = render_item("grain", 1, defect="hole", signature=True)
    cfg = _cfg(tiny_models)
    batch = pipeline.segment_batch([image, other], ["tablet", "grain"], tiny_models, cfg)
    for img, name, b in zip([image, other], ["tablet", "grain"], batch, strict=True):
        single = pipeline.segment(img, name, tiny_models, cfg)
        np.testing.assert_allclose(b.s_a, single.s_a, atol=1e-5)
        np.testing.assert_array_equal(b.final_mask, single.final_mask)
        assert b.sam_encoder_calls == single.sam_encoder_calls == 1


def test_result_dict_has_every_documented_key(tiny_models, defect_image):
    image, _ = defect_image
    cfg = _cfg(tiny_models, per_component=False)
    r = pipeline.segment(image, "tablet", tiny_models, cfg)
    d = json.loads(json.dumps(pipeline.result_dict(r, cfg, "tiny")))
    for key in ("size", "object", "profile", "config", "tau_value", "prompts", "stages", "sam_encoder_calls",
                "timings_ms"):
        assert key in d, key
    assert d["size"] == [256, 256] and d["config"]["stages"] == 3 and d["sam_encoder_calls"] == 1
    assert set(d["prompts"]) == {"positive", "negative"}
    s1, s2, s3 = d["stages"]
    assert (s1["used_mask_input"], s2["used_mask_input"], s3["used_mask_input"]) == (False, True, True)
    assert s1["box"] is None and s2["box"] is None and len(s3["box"]) == 4
    assert [p for p, lab in zip(s1["points"], s1["labels"], strict=True) if lab == 1] == d["prompts"]["positive"]
    assert {"clip", "sam_encoder", "ppg", "cps", "fusion", "total"} <= set(d["timings_ms"])


def test_segment_works_inside_inference_mode(tiny_models, defect_image):
    """Users (and benchmarks) may wrap calls in torch.inference_mode: caches must not need version counters."""
    import torch

    image, _ = defect_image
    cfg = _cfg(tiny_models, per_component=False)
    with torch.inference_mode():
        r = pipeline.segment(image, "tablet", tiny_models, cfg)
    plain = pipeline.segment(image, "tablet", tiny_models, cfg)
    np.testing.assert_array_equal(r.final_mask, plain.final_mask)
