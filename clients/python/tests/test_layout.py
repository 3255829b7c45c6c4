"""The package's import structure: modules import one way (no cycles), and the
sender knows its run only through ``_sender.RunLink``."""

from __future__ import annotations

import ast
import pathlib

import runcore

PACKAGE = pathlib.Path(runcore.__file__).parent


def imports() -> dict[str, set[str]]:
    """runcore module -> the runcore modules it imports (``from . import x`` and
    ``from ._x import y``), type-checking-only imports included."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        name = path.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[name] = deps - {"_proto"}
    return graph


def test_modules_import_one_way() -> None:
    graph = imports()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + [name])}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, path + [name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_the_sender_does_not_know_the_run_module() -> None:
    graph = imports()
    assert "_run" not in graph["_sender"]
    assert "_sender" in graph["_run"]
