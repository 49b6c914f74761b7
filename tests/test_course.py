"""``clipsam_lite.course``: the one repository constant, the diagram, the labels and the 04-06 set-up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from clipsam_lite import course  # noqa: E402


def test_colab_url_and_setup_cell_name_the_one_repository():
    assert course.colab_url("03_point_prompts_ppg") == (
        f"https://colab.research.google.com/github/{course.REPOSITORY}/blob/main/notebooks/03_point_prompts_ppg.ipynb")
    cell = course.setup_cell()
    assert course.INSTALL_SPEC in cell and "--upgrade" not in cell
    other = course.setup_cell("someone/fork")
    assert "github.com/someone/fork" in other and course.REPOSITORY not in other


def test_setup_cell_is_inert_outside_colab_and_one_pip_call_on_colab():
    code = compile(course.setup_cell(), "setup", "exec")
    with mock.patch.object(subprocess, "run") as run:
        with mock.patch.dict(sys.modules):
            sys.modules.pop("google.colab", None)
            exec(code, {})
        assert run.call_count == 0
        with mock.patch.dict(sys.modules, {"google.colab": type(sys)("google.colab")}):
            exec(code, {})
        args = run.call_args.args[0]
    assert run.call_count == 1 and args[-1] == course.INSTALL_SPEC and "-U" not in args


def test_retarget_rewrites_badges_and_install_lines(tmp_path):
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "notebooks").mkdir()
    nb = root / "notebooks" / "09_appendix_files_and_formats.ipynb"
    shutil.copy(nb, tmp_path / "notebooks" / nb.name)
    shutil.copy(root / "README.md", tmp_path / "README.md")
    changed = course.retarget("someone/fork", tmp_path)
    assert {p.name for p in changed} == {"README.md", nb.name}
    text = (tmp_path / "notebooks" / nb.name).read_text()
    assert course.REPOSITORY not in text and "github/someone/fork/blob/main" in text and "github.com/someone/fork" in text
    with pytest.raises(ValueError, match="owner/name"):
        course.retarget("not a repo", tmp_path)


def test_pipeline_diagram_draws_the_seven_steps_and_the_encoder():
    fig = course.pipeline_diagram()
    texts = [t.get_text() for t in fig.axes[0].texts]
    for word in ("PPG", "CPS stage 1", "CPS stage 2", "CPS stage 3", "final map", "SAM image encoder", "auxiliary"):
        assert any(word in t for t in texts), word
    plt.close(fig)


def test_profile_label_names_the_profile():
    fig = plt.figure()
    assert course.profile_label(fig, "base") == "base profile"
    assert "RANDOM" in course.profile_label(fig, "tiny")
    mini = course.profile_label(fig, "mini")
    assert mini == "mini profile: models trained on a synthetic world" and "random" not in mini.lower()
    assert fig.texts[0].get_text() == "base profile" and "RANDOM" in fig.texts[1].get_text()
    plt.close(fig)


def test_cascade_example_rejects_a_defect_the_category_lacks():
    with pytest.raises(ValueError, match="defect type 'no_such_defect'"):
        course.cascade_example("tiny", "tablet", "no_such_defect", log=None)


def test_cascade_example_follows_the_largest_prompt_set():
    ex = course.cascade_example("tiny", "tablet", "hole", log=None, tau_mode="absolute", tau=0.5, d_min=16.0,
                                ring_radius=10, box_margin=6)
    h0 = ex.item.image.shape[0]
    assert ex.image.shape[0] == round(0.7 * h0) and ex.gt.shape == ex.image.shape[:2] == ex.s_a.shape
    sizes = [1 if ps.component is None else int(ps.component.sum()) for ps in ex.ppg.prompt_sets]
    assert ex.set_index == sizes.index(max(sizes))
    assert (ex.points == ex.ppg.prompt_sets[ex.set_index].points).all()
    assert ex.cfg.head == "adapter" and "synthetic" in ex.head
    assert ex.gt.any()  # the crop keeps the defect


def _as_profile(models, profile):
    """The tiny models under another profile's name (course_adapter's rule reads models.profile)."""
    import dataclasses

    return dataclasses.replace(models, cfg=models.cfg.replace(profile=profile))


def test_course_adapter_uses_notebook_01s_adapter_and_says_when_there_is_none(tiny_models, isolated_cache):
    from clipsam_lite.adapter import Adapter, save_adapter

    models = _as_profile(tiny_models, "base")
    said = []
    adapter, cfg, head = course.course_adapter(models, models.cfg, log=said.append)
    assert adapter is None and cfg.head == "training_free" and "no adapter found" in head
    assert said and "run notebook 01" in said[0]  # never a silent fallback

    saved = save_adapter(Adapter.for_models(models, models.cfg), course.course_adapter_path("base"))
    assert saved.parent.parent == isolated_cache
    adapter, cfg, head = course.course_adapter(models, models.cfg, log=said.append)
    assert adapter is not None and cfg.head == "adapter" and "notebook 01" in head


def test_course_data_says_which_offline_data_each_profile_uses(tmp_path):
    from clipsam_lite.datasets import load_dataset
    from clipsam_lite.demo import HELD_OUT_CATEGORIES
    from clipsam_lite.synthetic import HELDOUT_CATEGORIES, sample_root
    from clipsam_lite.synthetic.world_writer import world_demo_root

    mini = course.course_data("mini")
    assert mini.root == world_demo_root() and mini.held_out == HELDOUT_CATEGORIES and mini.world
    assert "disc" not in mini.held_out  # the old sample's category: not in the world
    gear = [it for it in load_dataset("mvtec", mini.root, "gear") if it.defect_type == "hole"]
    assert gear and gear[0].image.shape == (128, 128, 3) and gear[0].mask.any()
    tiny, base = course.course_data("tiny"), course.course_data("base")
    assert tiny.root == sample_root(signature=True) and base.root == sample_root(signature=False)
    assert tiny.held_out == base.held_out == HELD_OUT_CATEGORIES and not tiny.world and not base.world
    own = course.course_data("mini", tmp_path)  # the user's DATA_ROOT wins; the categories stay the profile's
    assert own.root == tmp_path and own.held_out == HELDOUT_CATEGORIES and not own.world


def test_course_lengths_are_the_mini_preset_in_the_images_pixels():
    from clipsam_lite.config import get_config
    from clipsam_lite.ppg import generate_prompts

    mini = course.course_lengths("mini", (90, 128, 3))  # a 128-px world image cropped to 70 % of its rows
    assert mini == dict(length_unit="original", ppg_resolution="original", d_min=16.0, ring_radius=8, box_margin=4,
                        secondary_ring=8, min_component_area=8, gate_dilation=8)  # 128 / 8, 64 / 8, ..., 512 / 64
    assert course.course_lengths("tiny", (179, 256)) == {"length_unit": "original", "ppg_resolution": "original",
                                                         **course.SAMPLE_LENGTHS}
    assert course.course_lengths("base", (256, 256), d_min=10.0, ring_radius=None)["d_min"] == 10.0  # given wins
    assert course.course_lengths("mini", (128, 128), ring_radius=None)["ring_radius"] == 8  # None: the profile's
    with pytest.raises(ValueError, match="unknown length"):
        course.course_lengths("mini", (128, 128), dmin=3)
    # the same prompts as the preset's own lengths in SAM's 1024 frame (ppg.length_scale) on a planted map
    s_a = np.zeros((90, 128), np.float32)
    s_a[30:42, 20:44], s_a[60:63, 90:93] = 0.9, 0.8  # a 12 x 24 region and a 9-px one (just above 8 px)
    preset = get_config("mini", negative_strategy="ring_low_score", ppg_resolution="original")
    ours = preset.replace(**mini)
    a, b = generate_prompts(s_a, preset), generate_prompts(s_a, ours)
    assert len(a.prompt_sets) == len(b.prompt_sets) == 2
    for pa, pb in zip(a.prompt_sets, b.prompt_sets, strict=True):
        np.testing.assert_array_equal(pa.points, pb.points)
        np.testing.assert_array_equal(pa.ring, pb.ring)
    assert len(generate_prompts(s_a, ours.replace(min_component_area=10)).prompt_sets) == 1  # 9 px < 10 px


def test_course_adapter_in_mini_is_the_world_adapter_whatever_notebook_01_saved(tiny_models, isolated_cache):
    from clipsam_lite import demo
    from clipsam_lite.adapter import Adapter, save_adapter

    models = _as_profile(tiny_models, "mini")
    save_adapter(Adapter.for_models(models, models.cfg), course.course_adapter_path("mini"))
    world = object()
    with mock.patch.object(demo, "world_demo_adapter", return_value=world) as trained:
        adapter, cfg, head = course.course_adapter(models, models.cfg, log=None)
    assert adapter is world and cfg.head == "adapter" and "world" in head
    assert trained.call_args.args[1].head == "adapter"


def test_cascade_example_in_mini_uses_the_world_image_and_the_presets_lengths():
    def no_adapter(models, cfg, adapter_path=None, log=None):  # the head is course_adapter's test, not this one's
        return None, cfg.replace(head="training_free"), "none (test)"

    with mock.patch.object(course, "course_adapter", no_adapter):
        ex = course.cascade_example("mini", "gear", "hole", log=None)
    assert ex.item.category == "gear" and ex.image.shape == (90, 128, 3) and ex.gt.any()
    assert (ex.cfg.d_min, ex.cfg.ring_radius, ex.cfg.box_margin) == (16.0, 8, 4) and ex.cfg.length_unit == "original"
    assert ex.s_a.shape == ex.gt.shape and ex.ppg.length_scale == 1.0 and len(ex.ppg.prompt_sets) >= 1
