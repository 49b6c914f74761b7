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
