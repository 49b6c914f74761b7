"""The CPS explorer (notebook 06) headless: it builds, updates, and never runs SAM's image encoder."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import ndimage

from clipsam_lite.pipeline import finish_from_maps
from clipsam_lite.sam_features import EncoderCounter, embed_image
from clipsam_lite.synthetic import render_item
from clipsam_lite.widgets import cps_explorer, cps_figure


@pytest.fixture(scope="module")
def scene(tiny_models):
    """A synthetic defect image, a PLANTED S_a (its blurred mask, max 0.9) and its SAM embedding."""
    image, gt = render_item("tablet", 0, defect="stain", signature=True)
    blur = ndimage.gaussian_filter(gt.astype(np.float64), 3)
    s_a = (0.9 * blur / blur.max()).astype(np.float32)
    emb = embed_image(tiny_models.sam, image)
    cfg = tiny_models.cfg.replace(tau_mode="absolute", tau=0.5, stages=3, fusion="gate", d_min=16.0)
    return image, gt, s_a, emb, cfg


def _controls(explorer):
    return {wd._kwarg: wd for wd in explorer.kwargs_widgets}


def test_explorer_builds_updates_and_reuses_the_embedding(tiny_models, scene):
    image, gt, s_a, emb, cfg = scene
    from conftest import DecoderSpy

    spy = DecoderSpy(tiny_models.sam)
    try:
        with EncoderCounter(tiny_models.sam) as encoder:
            ex = cps_explorer(s_a, 0.7, "tablet", emb, tiny_models, cfg, image, gt)
            first = ex.result
            calls_first = spy.calls
            controls = _controls(ex)
            assert set(controls) == {"stages", "fusion", "tau"}
            assert controls["tau"].value == pytest.approx(0.5)  # starts at the tau cfg resolves to

            controls["stages"].value = 1
            one_stage = ex.result
            calls_one = spy.calls - calls_first
            controls["fusion"].value = "mask"
            as_mask = ex.result
            before_normal = spy.calls
            controls["tau"].value = 0.95  # above max(S_a) = 0.9: M_apa is empty
            normal = ex.result
            calls_normal = spy.calls - before_normal
    finally:
        spy.handle.remove()

    assert encoder.calls == 0, "the explorer must reuse the embedding, never run SAM's image encoder"

    # the first render: 3 stages per prompt set, one decoder pass each, identical to finish_from_maps
    assert first is not None and not first.is_normal
    assert all(len(c.stages) == 3 for c in first.cascades)
    assert calls_first == 3 * len(first.cascades)
    assert first.sam_encoder_calls == 1  # the one embedding it was given
    direct = finish_from_maps(s_a, 0.7, "tablet", emb, tiny_models, cfg)
    np.testing.assert_array_equal(first.final_map, direct.final_map)

    # stages -> 1: one decoder pass per prompt set, the final mask is M1
    assert all(len(c.stages) == 1 for c in one_stage.cascades)
    assert calls_one == len(one_stage.cascades)
    np.testing.assert_array_equal(one_stage.final_mask, one_stage.stage_masks()[0])

    # fusion -> mask: the final map is the binary mask itself
    np.testing.assert_array_equal(as_mask.final_map, as_mask.final_mask.astype(np.float32))

    # tau above the map's maximum: a normal image, no decoder pass, the final map is S_a
    assert normal.is_normal and normal.ppg is None and calls_normal == 0
    np.testing.assert_array_equal(normal.final_map, s_a)


def test_explorer_refuses_mismatched_inputs(tiny_models, scene):
    image, _, s_a, emb, cfg = scene
    with pytest.raises(ValueError, match="image's size"):
        cps_explorer(s_a[:100], 0.5, "tablet", emb, tiny_models, cfg, image)
    with pytest.raises(ValueError, match="embed_image"):
        cps_explorer(s_a, 0.5, "tablet", None, tiny_models, cfg, image)
    other = embed_image(tiny_models.sam, np.ascontiguousarray(image[:128]))
    with pytest.raises(ValueError, match="same image"):
        cps_explorer(s_a, 0.5, "tablet", other, tiny_models, cfg, image)


def test_cps_figure_titles_say_what_ran(tiny_models, scene):
    import matplotlib.pyplot as plt

    image, gt, s_a, emb, cfg = scene
    r = finish_from_maps(s_a, 0.5, "tablet", emb, tiny_models, cfg.replace(stages=2))
    fig = cps_figure(image, r, gt, fusion="gate")
    titles = [ax.get_title() for ax in fig.axes[:4]]
    plt.close(fig)
    assert titles[2].startswith("stage 2: M2 =") and "fusion 'gate'" in titles[3]
    normal = finish_from_maps(s_a, 0.5, "tablet", emb, tiny_models, cfg.replace(tau=0.95))
    fig = cps_figure(image, normal)
    titles = [ax.get_title() for ax in fig.axes[:4]]
    plt.close(fig)
    assert "SAM is skipped" in titles[2] and "= S_a" in titles[3]
