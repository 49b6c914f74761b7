"""The package layout (issue 10): no import circle, every module imports alone, and the README's
"How the code is organised" table lists exactly the modules of the tree."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "clipsam_lite"


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (subpackages included)."""
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, anywhere in the file: at the top, inside functions
    (lazy imports) and under ``TYPE_CHECKING``. A stricter graph than Python's own import order: a
    circle here is a circle in what depends on what, even when it happens not to fail at import."""
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps |= {c for c in candidates if c in files and c != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search, sorted for a stable answer)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


# --------------------------------------------------------------------------------------------------
# No circle
# --------------------------------------------------------------------------------------------------

def test_find_cycle_names_a_planted_cycle_and_passes_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a2"}, "a2": set(), "b": {"a", "a2"}}) is None


def test_import_graph_reads_relative_lazy_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .leaf import x\n")
    (pkg / "sub" / "leaf.py").write_text("from .. import top\n")
    (pkg / "top.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .other import Y\n"
                                "def f():\n    from pkg.sub import leaf\n")
    (pkg / "other.py").write_text("import pkg.top\n")
    files = {"pkg": pkg / "__init__.py", "pkg.sub": pkg / "sub" / "__init__.py",
             "pkg.sub.leaf": pkg / "sub" / "leaf.py", "pkg.top": pkg / "top.py", "pkg.other": pkg / "other.py"}
    g = import_graph(files)
    assert g["pkg.sub"] == {"pkg.sub.leaf"}
    assert g["pkg.sub.leaf"] == {"pkg", "pkg.top"}
    assert g["pkg.top"] == {"pkg.other", "pkg.sub", "pkg.sub.leaf"}
    assert find_cycle(g) == ["pkg.other", "pkg.top", "pkg.other"]


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph(module_files())
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in clipsam_lite: " + " -> ".join(cycle)
    # the circle of issue 10 is gone, in the direction the docstrings state
    assert "clipsam_lite.clip_maps" in graph["clipsam_lite.adapter"]
    assert "clipsam_lite.adapter" not in graph["clipsam_lite.clip_maps"]


@pytest.mark.parametrize("module", sorted(module_files()))
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"`import {module}` alone failed:\n{proc.stderr[-2000:]}"


# --------------------------------------------------------------------------------------------------
# Docstrings and the README table
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module", sorted(module_files()))
def test_each_module_opens_with_its_notebook_and_method_step(module):
    doc = ast.get_docstring(ast.parse(module_files()[module].read_text(encoding="utf-8"))) or ""
    assert re.search(r"\bTaught in\b", doc), f"{module}: the docstring must say which notebook teaches it"
    assert "METHOD.md" in doc, f"{module}: the docstring must name its METHOD.md step (or say it has none)"


def readme_modules(text: str) -> list[str]:
    """The first-column paths of the table in the README's "How the code is organised" section."""
    m = re.search(r"^## How the code is organised\n(.*?)(?=^## )", text, flags=re.S | re.M)
    if m is None:
        raise AssertionError('README.md has no "## How the code is organised" section.')
    return re.findall(r"^\| `(clipsam_lite/[\w/]+\.py)` \|", m.group(1), flags=re.M)


def test_readme_modules_reads_the_table_of_its_section_only():
    text = ("## How the code is organised\n| module | what | taught in |\n|---|---|---|\n"
            "| `clipsam_lite/a.py` | x | 00 |\n| `clipsam_lite/sub/b.py` | y | 01 |\n\n## Next\n"
            "| `clipsam_lite/c.py` | z | 02 |\n")
    assert readme_modules(text) == ["clipsam_lite/a.py", "clipsam_lite/sub/b.py"]
    with pytest.raises(AssertionError, match="How the code is organised"):
        readme_modules("## Something else\n")


def test_readme_table_matches_the_tree():
    listed = readme_modules((REPO / "README.md").read_text(encoding="utf-8"))
    tree = sorted(str(f.relative_to(REPO)) for f in module_files().values())
    assert len(listed) == len(set(listed)), "a module is listed twice in the README table"
    missing = sorted(set(tree) - set(listed))
    stale = sorted(set(listed) - set(tree))
    assert not missing, f"README 'How the code is organised' does not list {missing}: add a row for each"
    assert not stale, f"README 'How the code is organised' lists {stale}, which are not in clipsam_lite/"
