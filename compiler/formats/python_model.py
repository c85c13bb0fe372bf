"""A python-backend model.py, checked by parsing it: Kiln never imports user code."""

from __future__ import annotations

import ast
from pathlib import Path

from compiler.formats import NotTheFormat
from compiler.formats.python_source import SOURCE_MAX, parse

MODEL_CLASS = "TritonPythonModel"
# The one method the python backend calls for every request (initialize and
# finalize are optional).
REQUIRED_METHOD = "execute"


def check_model_py(path: Path) -> None:
    """Raises NotTheFormat unless the file defines TritonPythonModel with execute."""
    if path.stat().st_size > SOURCE_MAX:
        raise NotTheFormat(f"model.py is over {SOURCE_MAX} bytes")
    try:
        tree = parse(path.read_bytes(), path.name)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise NotTheFormat(f"it is not valid Python{where}") from exc
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == MODEL_CLASS]
    if not classes:
        raise NotTheFormat(f"it defines no top-level class {MODEL_CLASS}")
    methods = {
        n.name for n in classes[-1].body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if REQUIRED_METHOD not in methods:
        raise NotTheFormat(f"class {MODEL_CLASS} has no method {REQUIRED_METHOD}")
