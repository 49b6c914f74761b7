"""Every notebook follows DESIGN.md's template (the series as a course).

Checked per notebook: the title cell (``# NN · Title``, the Colab badge linking to this very file,
``## You will learn`` with a bullet list), the set-up cell (the template's exact text: inert outside
Colab, never installs torch), the ``parameters`` cell reading ``CLIPSAM_PROFILE``, numbered sections
with code, ``## Summary``, ``## Exercises`` whose every exercise is checked by
``clipsam_lite.exercises.check`` with no solution in the notebook (issue 14), code cells of at most
25 lines (and a series median under 10), no committed outputs or execution counts, kernelspec
``python3``, and no machine-specific paths. The Colab badge and the set-up cell name the repository
of ``clipsam_lite.course.REPOSITORY`` (the one place it is written). These tests read the JSON only;
``pytest --nbmake notebooks`` executes the notebooks.

Each check is a function ``check_*(nb, name)`` that raises ``AssertionError`` naming the problem;
``test_checks_catch_planted_defects`` proves each one fails on a notebook with that defect.
"""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import nbformat
import numpy as np
import pytest

from clipsam_lite import course
from clipsam_lite.exercises import EXERCISES

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = (
    "00_setup_and_data", "01_clip_anomaly_maps", "02_sam_features", "03_point_prompts_ppg",
    "04_cps_stage1_points", "05_cps_stage2_logits", "06_cps_stage3_box", "07_evaluation", "08_figures",
    "09_appendix_files_and_formats",
)
"""DESIGN.md, "Notebooks": the series, in order, and the appendix on files and formats (issue 14)."""
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

BADGE_IMAGE = course.COLAB_BADGE
COLAB_PREFIX = course.colab_url("")[: -len(".ipynb")]
SETUP_CELL = course.setup_cell()
MAX_CELL_LINES = 25
"""Issue 14: no wall of code where an idea should be."""
MAX_MEDIAN_LINES = 10
"""Issue 14: the median code cell of the series is shorter than this."""
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# Machine-specific absolute paths, at the start of a token (so URLs such as https://x/home/ pass).
_TOKEN_START = r"""(?:^|(?<=[\s'"`(\[=,]))"""
_ABS_PATH = re.compile(_TOKEN_START + r"(?:/work|/home|/tmp|/Users|/root|/mnt|/content)(?:/|\b)"
                       + "|" + _TOKEN_START + r"[A-Za-z]:\\", re.MULTILINE)


def _src(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _headings(nb) -> list[tuple[int, str]]:
    """(cell index, line) of every level-1/2 heading in markdown cells."""
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            out += [(i, line.strip()) for line in _src(c).splitlines() if re.match(r"^#{1,2} ", line)]
    return out


def _asserts(source: str) -> bool:
    """Whether code holds an ``assert`` statement or calls an ``assert_*`` function (np.testing...)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            f = node.func
            if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")).startswith("assert_"):
                return True
    return False


# ------------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------------

def check_format(nb, name: str) -> None:
    assert nb.nbformat == 4, f"{name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)
    spec = dict(nb.metadata.get("kernelspec", {}))
    assert spec == KERNELSPEC, f"{name}: kernelspec {spec}, expected {KERNELSPEC}"


def check_clean(nb, name: str) -> None:
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{name}: cells {dirty} have outputs or execution counts; clear them before committing"
    assert "widgets" not in nb.metadata, f"{name}: saved widget state in the notebook metadata; clear it"
    stamped = [i for i, c in enumerate(nb.cells) if "execution" in c.get("metadata", {})]
    assert not stamped, f"{name}: cells {stamped} carry execution timestamps in their metadata"


def check_title(nb, name: str) -> None:
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{name}: the first cell must be the markdown title cell"
    text = _src(first)
    number = name[:2]
    assert re.match(rf"^# {number} · \S", text), \
        f"{name}: the first line must be '# {number} · Title', got {text.splitlines()[0] if text else ''!r}"
    badge = f"[![Open In Colab]({BADGE_IMAGE})]({COLAB_PREFIX}{name})"
    assert badge in text, f"{name}: the title cell needs the Colab badge linking to this notebook: {badge}"
    links = re.findall(re.escape(COLAB_PREFIX) + r"([^)\s]+)", text)
    assert links == [name], f"{name}: the title cell's Colab links point to {links}"
    head, sep, learn = text.partition("## You will learn")
    assert sep, f"{name}: the title cell needs a '## You will learn' section"
    assert re.search(r"^\s*[-*] \S", learn, re.MULTILINE), f"{name}: 'You will learn' needs a bullet list"
    prose = [ln for ln in head.splitlines()[1:] if ln.strip() and BADGE_IMAGE not in ln]
    assert prose, f"{name}: the title cell needs a paragraph of what the notebook does"


def check_setup(nb, name: str) -> None:
    cell = nb.cells[1]
    assert cell.cell_type == "code", f"{name}: cell 2 must be the set-up code cell"
    src = _src(cell).rstrip()
    assert src == SETUP_CELL, f"{name}: the set-up cell differs from DESIGN.md's template:\n{src}"
    # Inert outside Colab; on Colab (a stand-in google.colab module) one pip call, and no torch in it.
    code = compile(src, f"{name}:setup", "exec")
    with mock.patch.object(subprocess, "run") as run:
        with mock.patch.dict(sys.modules):
            sys.modules.pop("google.colab", None)
            exec(code, {})
        assert run.call_count == 0, f"{name}: the set-up cell runs {run.call_args_list} outside Colab"
        with mock.patch.dict(sys.modules, {"google.colab": type(sys)("google.colab")}):
            exec(code, {})
        assert run.call_count == 1, f"{name}: on Colab the set-up cell should make one pip call"
        args = run.call_args.args[0]
        assert not any("torch" in str(a) for a in args), f"{name}: the set-up cell installs torch: {args}"
        assert not {"-U", "--upgrade"} & set(map(str, args)), f"{name}: the set-up cell upgrades Colab's packages"


def check_parameters(nb, name: str) -> None:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged == [2], f"{name}: exactly cell 3 must carry the 'parameters' tag; tagged: {tagged}"
    cell = nb.cells[2]
    assert cell.cell_type == "code", f"{name}: the parameters cell must be code"
    src = _src(cell)
    assert re.search(r"^import os\b", src, re.MULTILINE), f"{name}: the parameters cell must import os"
    assert re.search(r'^PROFILE\s*=\s*os\.environ\.get\(\s*"CLIPSAM_PROFILE"\s*,\s*"base"\s*\)', src, re.MULTILINE), \
        f'{name}: the parameters cell must set PROFILE = os.environ.get("CLIPSAM_PROFILE", "base")'
    assert re.search(r"^SEED\s*=\s*\d+", src, re.MULTILINE), f"{name}: the parameters cell must set SEED"


def check_sections(nb, name: str) -> None:
    heads = _headings(nb)
    numbered = [(i, int(m.group(1))) for i, h in heads if (m := re.match(r"^## (\d+)\. \S", h))]
    assert numbered, f"{name}: no '## 1. ...' sections"
    assert [n for _, n in numbered] == list(range(1, len(numbered) + 1)), \
        f"{name}: sections must be numbered 1, 2, 3... in order, got {[n for _, n in numbered]}"
    summary = [i for i, h in heads if h == "## Summary"]
    exercises = [i for i, h in heads if h == "## Exercises"]
    assert len(summary) == 1 and len(exercises) == 1, f"{name}: needs one '## Summary' and one '## Exercises'"
    assert numbered[-1][0] < summary[0] < exercises[0], \
        f"{name}: the order must be the numbered sections, then '## Summary', then '## Exercises'"
    ends = [i for i, _ in numbered[1:]] + [summary[0]]
    empty = [n for (i, n), end in zip(numbered, ends, strict=True)
             if not any(c.cell_type == "code" for c in nb.cells[i:end])]
    assert not empty, f"{name}: sections {empty} have no code cell"


def _calls(source: str) -> list[tuple[str, list]]:
    """(function name, positional constant arguments) of every call in the code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            out.append((fname, [a.value if isinstance(a, ast.Constant) else None for a in node.args]))
    return out


def _assigns_none(source: str, target: str = "answer") -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target for t in n.targets)
               and isinstance(n.value, ast.Constant) and n.value.value is None for n in ast.walk(tree))


def check_exercises(nb, name: str) -> None:
    """Every exercise is answered through ``exercises.check`` and no solution is visible (issue 14).

    After ``## Exercises``, each ``**Exercise N.**`` cell is followed by a code cell that sets
    ``answer = None`` (committed unanswered) and calls ``check("NN.k", answer, ...)`` with an id of this
    notebook registered in ``clipsam_lite.exercises.EXERCISES``. No code there asserts, prints a
    solution (``show_solution``, ``solution``), and no markdown there gives an answer.
    """
    start = next((i for i, h in _headings(nb) if h == "## Exercises"), None)
    assert start is not None, f"{name}: no '## Exercises' heading"
    blurbs = [i for i in range(start, len(nb.cells))
              if nb.cells[i].cell_type == "markdown" and re.search(r"\*\*Exercise \d", _src(nb.cells[i]))]
    assert blurbs, f"{name}: '## Exercises' has no '**Exercise N.**' cell"
    bounds = blurbs + [len(nb.cells)]
    problems, seen = [], []
    for a, b in zip(bounds, bounds[1:], strict=False):
        number = re.search(r"Exercise (\d+)", _src(nb.cells[a])).group(1)
        code = [_src(c) for c in nb.cells[a + 1:b] if c.cell_type == "code"]
        ids = [args[0] for src in code for f, args in _calls(src) if f == "check" and args and isinstance(args[0], str)]
        if not ids:
            problems.append(f"exercise {number}: no code cell calls check('{name[:2]}.k', answer)")
        for i in ids:
            if not i.startswith(f"{name[:2]}.") or i not in EXERCISES:
                problems.append(f"exercise {number}: check id {i!r} is not one of this notebook's registered exercises")
        seen += ids
        if code and not any(_assigns_none(src) for src in code):
            problems.append(f"exercise {number}: commit 'answer = None' (the student fills it in)")
    for i in range(start, len(nb.cells)):
        src = _src(nb.cells[i])
        if nb.cells[i].cell_type == "code":
            if _asserts(src):
                problems.append(f"cell {i}: asserts in the exercises (a visible solution); use check() instead")
            if any(f in {"show_solution", "solution"} for f, _ in _calls(src)):
                problems.append(f"cell {i}: prints a solution in the notebook")
        elif re.search(r"^\s*(#\s*)?(answer|solution)\s*:", src, re.IGNORECASE | re.MULTILINE):
            problems.append(f"cell {i}: markdown gives the answer")
    dup = sorted({i for i in seen if seen.count(i) > 1})
    if dup:
        problems.append(f"exercises {dup} are checked twice")
    assert not problems, f"{name}: " + "; ".join(problems)


def check_cell_sizes(nb, name: str) -> None:
    """No code cell longer than MAX_CELL_LINES lines (issue 14: an idea, not a wall of code)."""
    long = [(i, n) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and (n := len(_src(c).rstrip().splitlines())) > MAX_CELL_LINES]
    assert not long, f"{name}: code cells over {MAX_CELL_LINES} lines (cell, lines): {long}; move code to the package"


def check_paths(nb, name: str) -> None:
    """No absolute path of a particular machine in any cell; no working-directory path in code.

    Fair check: tokens starting with /work, /home, /tmp, /Users, /root, /mnt, /content or a Windows
    drive (URLs pass); in code, string literals starting with './', '../' or '~/', and savefig with
    a literal file name (save under ``clipsam_lite.paths.figures_dir()`` instead).
    """
    problems = []
    for i, c in enumerate(nb.cells):
        src = _src(c)
        for m in _ABS_PATH.finditer(src):
            line = src[:m.start()].count("\n")
            problems.append(f"cell {i}: {src.splitlines()[line].strip()[:90]!r}")
        if c.cell_type != "code":
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError as e:
            problems.append(f"cell {i}: not valid Python ({e.msg}, line {e.lineno})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.startswith(("./", "../", "~/")):
                problems.append(f"cell {i}: working-directory or home path {node.value!r}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "savefig" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                problems.append(f"cell {i}: savefig({node.args[0].value!r}) writes into the working directory")
    assert not problems, f"{name}: machine-specific or working-directory paths:\n" + "\n".join(problems)


def check_banner(nb, name: str) -> None:
    """A notebook that loads models prints ``models.banner()`` (the random-backbone warning in tiny)."""
    code = "\n".join(_src(c) for c in nb.cells if c.cell_type == "code")
    if "load_models(" in code:
        assert ".banner()" in code, f"{name}: loads models but never prints models.banner()"


CHECKS: list[Callable] = [check_format, check_clean, check_title, check_setup, check_parameters, check_sections,
                          check_exercises, check_cell_sizes, check_paths, check_banner]


# ------------------------------------------------------------------------------------------------
# The series
# ------------------------------------------------------------------------------------------------

def test_notebook_names_follow_the_design():
    """Every notebook present has one of DESIGN.md's names (NN_name, 00-08)."""
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    unknown = [p.stem for p in NOTEBOOKS if p.stem not in EXPECTED]
    assert not unknown, f"notebooks not in DESIGN.md's list {EXPECTED}: {unknown}"


def test_all_notebooks_exist():
    """The series is complete: 00-08 and the appendix 09."""
    missing = [n for n in EXPECTED if not (NOTEBOOK_DIR / f"{n}.ipynb").is_file()]
    assert not missing, f"missing notebooks: {missing}"


def _code_cell_lengths(paths) -> list[int]:
    return [len(_src(c).rstrip().splitlines()) for p in paths for c in nbformat.read(p, as_version=4).cells
            if c.cell_type == "code"]


def test_series_median_code_cell_is_short():
    """Issue 14: the median code cell of the whole series is under MAX_MEDIAN_LINES lines."""
    lengths = sorted(_code_cell_lengths(NOTEBOOKS))
    median = float(np.median(lengths))
    assert median < MAX_MEDIAN_LINES, f"median code cell {median} lines (>= {MAX_MEDIAN_LINES}); split or move code"


def test_every_notebook_has_exercises_of_its_own():
    """Every registered exercise is used by exactly one notebook, the one its id names."""
    used = {}
    for p in NOTEBOOKS:
        for c in nbformat.read(p, as_version=4).cells:
            for f, args in _calls(_src(c)) if c.cell_type == "code" else []:
                if f == "check" and args and isinstance(args[0], str):
                    used.setdefault(args[0], []).append(p.stem)
    unused = sorted(set(EXERCISES) - set(used))
    assert not unused, f"exercises registered in clipsam_lite.exercises but used by no notebook: {unused}"


def test_readme_badges_and_install_use_the_one_repository():
    """The README's Colab links are course.colab_url of existing notebooks; no other repository is named."""
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", readme)
    assert links, "the README has no Colab badges"
    names = {p.name for p in NOTEBOOKS}
    bad = [u for u in links if not (u.startswith(COLAB_PREFIX) and u[len(COLAB_PREFIX):] in names)]
    assert not bad, f"README Colab links not made by clipsam_lite.course.colab_url of a notebook: {bad}"
    repos = set(re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+?)(?:/blob|\.git|[)\s\"]|$)", readme))
    assert repos <= {course.REPOSITORY}, f"the README names other repositories: {repos - {course.REPOSITORY}}"


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_follows_the_template(path, check):
    check(nbformat.read(path, as_version=nbformat.NO_CONVERT), path.name)


# ------------------------------------------------------------------------------------------------
# The checks can fail
# ------------------------------------------------------------------------------------------------

def _good_notebook(name: str = "05_cps_stage2_logits.ipynb"):
    """A minimal notebook that passes every check."""
    v4 = nbformat.v4
    nb = v4.new_notebook(metadata={"kernelspec": dict(KERNELSPEC)})
    nb.cells = [
        v4.new_markdown_cell(f"# {name[:2]} · A title\n\nWhat the notebook does.\n\n"
                             f"[![Open In Colab]({BADGE_IMAGE})]({COLAB_PREFIX}{name})\n\n"
                             "## You will learn\n- one thing"),
        v4.new_code_cell(SETUP_CELL),
        v4.new_code_cell('import os\nPROFILE = os.environ.get("CLIPSAM_PROFILE", "base")  # profile\nSEED = 0',
                         metadata={"tags": ["parameters"]}),
        v4.new_markdown_cell("## 1. First\n\nText, see https://example.org/home/page."),
        v4.new_code_cell("from clipsam_lite.models import load_models\nmodels = load_models(PROFILE)\n"
                         "print(models.banner())"),
        v4.new_markdown_cell("## 2. Second"),
        v4.new_code_cell("x = 1"),
        v4.new_markdown_cell("## Summary\n- done"),
        v4.new_markdown_cell("## Exercises\n\n**Exercise 1.** Predict, then run."),
        v4.new_code_cell('from clipsam_lite.exercises import check\n\nanswer = None  # your answer\ncheck("05.1", answer, cfg=cfg)'),
        v4.new_markdown_cell("**Exercise 2.** Again."),
        v4.new_code_cell('answer = None\ncheck("05.2", answer)'),
    ]
    return nb


def _plant(mutate: Callable) -> Callable:
    def build():
        nb = copy.deepcopy(_good_notebook())
        mutate(nb)
        return nb
    return build


def _set_src(i: int, text: str) -> Callable:
    return lambda nb: nb.cells[i].__setitem__("source", text)


PLANTED = {
    "kernelspec": (check_format, lambda nb: nb.metadata.__setitem__("kernelspec", {"name": "ir", "display_name": "R",
                                                                                   "language": "R"})),
    "outputs": (check_clean, lambda nb: nb.cells[4].__setitem__("outputs", [nbformat.v4.new_output(
        "stream", text="hi")])),
    "execution count": (check_clean, lambda nb: nb.cells[6].__setitem__("execution_count", 3)),
    "title number": (check_title, _set_src(0, _src(_good_notebook().cells[0]).replace("# 05 ·", "# 5 ·"))),
    "badge of another notebook": (check_title, _set_src(0, _src(_good_notebook().cells[0]).replace(
        "notebooks/05_cps_stage2_logits.ipynb", "notebooks/04_cps_stage1_points.ipynb"))),
    "no you will learn": (check_title, _set_src(0, _src(_good_notebook().cells[0]).replace("## You will learn",
                                                                                             "## Goals"))),
    "setup installs torch": (check_setup, _set_src(1, SETUP_CELL.replace('"-q",', '"-q", "torch",'))),
    "setup not guarded": (check_setup, _set_src(1, SETUP_CELL.replace('if "google.colab" in sys.modules:',
                                                                      "if True:"))),
    "parameters untagged": (check_parameters, lambda nb: nb.cells[2].__setitem__("metadata", {})),
    "profile hard-coded": (check_parameters, _set_src(2, 'import os\nPROFILE = "tiny"\nSEED = 0')),
    "sections misnumbered": (check_sections, _set_src(5, "## 3. Second")),
    "no summary": (check_sections, _set_src(7, "## Wrap-up")),
    "section without code": (check_sections, lambda nb: nb.cells.__delitem__(6)),
    "exercise without check": (check_exercises, _set_src(11, "answer = None\nprint(answer)")),
    "exercise answered in the notebook": (check_exercises, _set_src(11, 'answer = (256, 256)\ncheck("05.2", answer)')),
    "exercise solution asserted": (check_exercises, _set_src(11, 'answer = None\ncheck("05.2", answer)\n'
                                                                 'assert (256, 256) == (256, 256)')),
    "exercise solution shown": (check_exercises, _set_src(11, 'answer = None\nshow_solution("05.2")\n'
                                                              'check("05.2", answer)')),
    "exercise of another notebook": (check_exercises, _set_src(11, 'answer = None\ncheck("04.1", answer)')),
    "unregistered exercise": (check_exercises, _set_src(11, 'answer = None\ncheck("05.99", answer)')),
    "answer in markdown": (check_exercises, _set_src(10, "**Exercise 2.** Again.\n\nAnswer: (256, 256)")),
    "long code cell": (check_cell_sizes, _set_src(6, "\n".join(f"x{i} = {i}" for i in range(26)))),
    "setup upgrades": (check_setup, _set_src(1, SETUP_CELL.replace('"-q",', '"-q", "--upgrade",'))),
    "absolute path": (check_paths, _set_src(6, 'root = "/work/main/data"')),
    "windows path": (check_paths, _set_src(3, "## 1. First\n\nPut it in C:\\data")),
    "relative savefig": (check_paths, _set_src(6, 'import matplotlib.pyplot as plt\nplt.savefig("fig.png")')),
    "no banner": (check_banner, _set_src(4, "from clipsam_lite.models import load_models\n"
                                            "models = load_models(PROFILE)")),
}


def test_good_notebook_passes_every_check():
    nb = _good_notebook()
    for check in CHECKS:
        check(nb, "05_cps_stage2_logits.ipynb")


@pytest.mark.parametrize("defect", list(PLANTED))
def test_checks_catch_planted_defects(defect):
    check, mutate = PLANTED[defect]
    with pytest.raises(AssertionError):
        check(_plant(mutate)(), "05_cps_stage2_logits.ipynb")
