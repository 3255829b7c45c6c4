"""The package's import structure: modules import one way (no cycles), and no
module imports grpc or protobuf when it is imported (only inside the functions of
the read API and the artifact calls); test_imports.py checks the same at run time."""

from __future__ import annotations

import ast
import pathlib
from typing import Iterator

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


def eager_imports(nodes: list[ast.stmt]) -> Iterator[str]:
    """The modules these statements import when they run as a module body: function
    bodies (run later) and ``if TYPE_CHECKING:`` blocks are left out."""
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            yield from eager_imports(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from eager_imports(getattr(node, field, []))


def test_no_module_imports_grpc_or_protobuf_eagerly() -> None:
    eager = {path.stem: set(eager_imports(ast.parse(path.read_text()).body)) for path in PACKAGE.glob("*.py")}
    assert eager["_run"] and eager["public"], "the walk finds imports"
    for name, mods in eager.items():
        heavy = {m for m in mods if m.split(".")[0] in ("grpc", "grpc_health", "google") or m.startswith("._proto")}
        assert not heavy, f"runcore.{name} imports {sorted(heavy)} at import time"
