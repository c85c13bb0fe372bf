"""A python-backend model.py, checked by parsing it: Kiln never imports user code."""

from __future__ import annotations

import ast
from pathlib import Path

from compiler.formats import NotTheFormat
from compiler.formats.python_source import SOURCE_MAX, parse
from runtime.contract.served import STEP_FUNCTION

MODEL_CLASS = "TritonPythonModel"
# The one method the python backend calls for every request (initialize and
# finalize are optional).
REQUIRED_METHOD = "execute"


def check_model_py(path: Path) -> None:
    """Raises NotTheFormat unless the file defines TritonPythonModel with execute."""
    _model_class(_parse(path))


def check_step_py(path: Path) -> None:
    """An ensemble step's model.py: TritonPythonModel with execute, and the module-level
    function the smoke test runs in process (runtime/contract/served.py)."""
    tree = _parse(path)
    _model_class(tree)
    if STEP_FUNCTION not in _module_names(tree):
        raise NotTheFormat(
            f"it defines no module-level function `{STEP_FUNCTION}(**inputs)`, which the "
            "smoke test runs in process to compare Triton's answers with"
        )


def _module_names(tree: ast.Module) -> set[str]:
    """Names bound at the top of the module: functions, assignments and imports."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _parse(path: Path) -> ast.Module:
    if path.stat().st_size > SOURCE_MAX:
        raise NotTheFormat(f"model.py is over {SOURCE_MAX} bytes")
    try:
        tree = parse(path.read_bytes(), path.name)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise NotTheFormat(f"it is not valid Python{where}") from exc
    return tree


def _model_class(tree: ast.Module) -> None:
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == MODEL_CLASS]
    if not classes:
        raise NotTheFormat(f"it defines no top-level class {MODEL_CLASS}")
    methods = {
        n.name for n in classes[-1].body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if REQUIRED_METHOD not in methods:
        raise NotTheFormat(f"class {MODEL_CLASS} has no method {REQUIRED_METHOD}")
