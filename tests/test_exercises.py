"""``clipsam_lite.exercises``: answers computed by the package match answers worked out by hand.

The notebooks commit ``answer = None``; these tests give the hand-derived answers (the reasoning is in
each exercise's ``why``) and check that ``check`` accepts them, rejects a wrong one, and stays silent
about the solution unless a teacher asks.
"""

from __future__ import annotations

import numpy as np
import pytest

from clipsam_lite import exercises as ex
from clipsam_lite.config import get_config

HAND = {  # exercise id -> the answer worked out by hand (no model needed)
    "00.2": (False, True),
    "01.1": 0.5,
    "02.1": (768, 1024, 48),
    "02.2": [[63, 47], [10, 25]],
    "04.1": (768, 1024, 192, 256),
    "05.2": (256, 256),
    "06.1": [57, 0, 63, 8],
    "07.1": 14 / 18,
    "07.2": (8 / 9, 74 / 75),
    "08.1": (6, 1),
    "09.1": 128,
    "09.2": ["Software"],
}


@pytest.mark.parametrize("exercise_id", sorted(HAND))
def test_hand_answers_are_accepted(exercise_id, capsys):
    assert ex.check(exercise_id, HAND[exercise_id]) is True
    assert "correct" in capsys.readouterr().out


def test_answers_that_need_a_config():
    cfg = get_config("tiny")
    assert ex.check("03.1", (1, 2), cfg=cfg) is True
    assert ex.check("05.1", [[30, 12], [25, 30], [5, 2]], cfg=cfg) is True
    assert ex.check("03.3", 0.8, s_a=np.array([[0.1, 0.8]], np.float32)) is True
    assert ex.check("03.3", 0.7, s_a=np.array([[0.1, 0.8]], np.float32)) is False


def test_prior_exercise_reads_the_notebook_table():
    rows = {"prior (training_free)": {"pixel_auroc": 0.7, "region_auroc": 0.45}}
    assert ex.check("01.5", (True, False), rows=rows) is True
    rows["prior (training_free)"]["region_auroc"] = 0.55
    assert ex.check("01.5", (True, False), rows=rows) is False


def test_wrong_answer_gives_a_hint_not_the_solution(capsys):
    assert ex.check("07.1", 0.5) is False
    out = capsys.readouterr().out
    assert "not yet" in out and "Hint" in out and "14 of 18" not in out


def test_unanswered_is_silent_and_never_fails(capsys, monkeypatch):
    monkeypatch.delenv(ex.TEACHER_ENV, raising=False)
    assert ex.check("07.1", None) is None
    out = capsys.readouterr().out
    assert "not answered yet" in out and "solution" not in out


def test_teacher_flag_reveals_the_solution(capsys, monkeypatch):
    monkeypatch.setenv(ex.TEACHER_ENV, "1")
    assert ex.check("06.1", None) is None
    assert "solution: [57, 0, 63, 8]" in capsys.readouterr().out
    assert ex.show_solution("08.1") == [6, 1]


def test_unknown_id_and_missing_context_say_what_to_do():
    with pytest.raises(KeyError, match="known"):
        ex.check("99.9", 1)
    with pytest.raises(TypeError, match="notebook's objects"):
        ex.check("03.3", 0.5)


def test_comparison_rules():
    assert ex._matches("Global low score", "global_low_score", None)
    assert ex._matches(np.array([1, 2]), (1, 2), None)
    assert not ex._matches(1, True, None)  # a bool answer is not a number
    assert ex._matches(0.3334, 1 / 3, 1e-3) and not ex._matches(0.34, 1 / 3, 1e-3)
