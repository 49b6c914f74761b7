"""The whole pipeline on the tiny profile: what runs, how often, and what it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

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


def test_ppg_works_in_sams_input_frame_and_outputs_stay_full_size(tiny_models):
    """Issue 11.7 / 12.1: on a 400 x 600 image PPG runs on S_a in SAM's 171 x 256 input frame; S_a, the final map and
    mask are at 400 x 600, the final mask is SAM's own (from the low-res logits), and SAM got the points exactly."""
    from segment_anything.utils.transforms import ResizeLongestSide

    image, _ = render_item("tablet", 0, defect="stain", signature=True)
    big = np.array(Image.fromarray(image).resize((600, 400)))
    cfg = _cfg(tiny_models, per_component=False)
    r = pipeline.segment(big, "tablet", tiny_models, cfg)
    assert r.frame == (171, 256) and r.ppg.m_apa.shape == (171, 256)
    assert r.s_a.shape == r.final_map.shape == r.final_mask.shape == (400, 600)
    c = r.cascades[0]
    np.testing.assert_array_equal(r.final_mask, c.full_mask())
    s1 = c.stages[0]
    seen = ResizeLongestSide(256).apply_coords(s1.points, (400, 600))  # what SAM's prompt encoder receives
    np.testing.assert_allclose(seen, s1.points_work, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s1.points[s1.labels == 1], r.ppg.to_original(r.ppg.positives))
    assert all(m.shape == (400, 600) for m in r.stage_masks())
    old = pipeline.segment(big, "tablet", tiny_models, cfg.replace(ppg_resolution="original"))
    assert old.frame is None and old.ppg.m_apa.shape == (400, 600)


def test_batched_decoder_one_call_per_stage_and_group(tiny_models, defect_image, decoder_spy):
    """Issue 11.11: all prompt sets of a stage go through the decoder together; the answers are those of one
    call per set; max_prompt_sets caps the cascades."""
    image, _ = defect_image
    cfg = _cfg(tiny_models, tau=90.0, per_component=True, min_component_area=16, max_prompt_sets=0, k_pos=1,
               k_neg=1, secondary_points=False)
    batched = pipeline.segment(image, "tablet", tiny_models, cfg)
    n_sets = len(batched.cascades)
    assert n_sets >= 3, "the planted threshold should give several components"
    groups = {len(s.points) for c in batched.cascades for s in c.stages}
    assert decoder_spy.calls <= 3 * len(groups) < 3 * n_sets
    decoder_spy.calls = 0
    single = pipeline.segment(image, "tablet", tiny_models, cfg.replace(batch_prompt_sets=False))
    assert decoder_spy.calls == sum(len(c.stages) for c in single.cascades)
    for a, b in zip(batched.cascades, single.cascades, strict=True):
        assert len(a.stages) == len(b.stages)
        for x, y in zip(a.stages, b.stages, strict=True):
            np.testing.assert_allclose(x.low_res_logits, y.low_res_logits, rtol=0, atol=1e-4)
    capped = pipeline.segment(image, "tablet", tiny_models, cfg.replace(max_prompt_sets=2))
    assert len(capped.cascades) == 2 and capped.ppg.dropped_components == n_sets - 2


def test_image_above_the_pixel_limit_is_refused_before_any_work(defect_image):
    image, _ = defect_image
    cfg = pipeline.Config(max_image_pixels=10_000)

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"models.{name} was used before the size check")

    with pytest.raises(pipeline.ImageTooLargeError, match=r"256 x 256 = 0.1 megapixels.*refused, not downscaled.*"
                                                          r"max_image_pixels=65536"):
        pipeline.segment(image, "tablet", Untouchable(), cfg)


def test_sam_batch_size_sets_the_encoder_batches(tiny_models, defect_image):
    """Issue 11.2: the SAM encoder has its own batch size, independent of CLIP's."""
    from clipsam_lite.sam_features import EncoderCounter

    image, _ = defect_image
    cfg = _cfg(tiny_models, batch_size=8, sam_batch_size=2, stages=1)
    with EncoderCounter(tiny_models.sam) as count:
        pipeline.segment_batch([image] * 3, "tablet", tiny_models, cfg)
    assert (count.calls, count.images) == (2, 3)
