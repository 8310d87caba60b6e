"""The layers are a contract: import-linter checks `[tool.importlinter]` (pyproject.toml) on the real package,
a wrong-way import planted in a copy of it breaks the check, and no import cycle exists anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="import-linter is not installed (pip install lyra3d[test])")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lyra3d"


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """import-linter on the package found in ``src`` (the contract file is the repository's)."""
    lint = Path(sys.executable).with_name("lint-imports")
    cmd = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run([*cmd, "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(src)})


def test_the_package_keeps_its_layers():
    r = lint_imports(PACKAGE.parent)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "src" / "lyra3d"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("weights", "__pycache__", "*.so"))
    cameras = copy / "core" / "cameras.py"
    cameras.write_text(cameras.read_text() + "\n\ndef _planted():\n    from lyra3d.pipelines import config  # noqa\n")
    r = lint_imports(copy.parent)
    assert r.returncode != 0
    assert "lyra3d.core is not allowed to import lyra3d.pipelines" in r.stdout
    assert "lyra3d.core.cameras -> lyra3d.pipelines.config" in r.stdout


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack, on_stack, found = [], set(), []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_tarjan_finds_a_planted_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = grimp.build_graph("lyra3d", cache_dir=None)
    modules = set(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    assert strongly_connected(edges) == []
