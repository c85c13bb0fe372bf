"""The import rule of the layers: every arrow points down (docs/architecture.md).

    compiler/cli/  ->  compiler/  ->  runtime/<where it runs>/  ->  runtime/contract/

runtime/ never imports compiler/; runtime/contract/ imports nothing else of Kiln;
the job packages (steps, monitor, serving) import neither each other's siblings
above them (local tools, examples) nor the compiler. Imports are read from the
syntax tree, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.tools import REPO_ROOT

# What each runtime package may import of Kiln, besides itself.
ALLOWED = {
    "runtime.contract": set(),
    "runtime.steps": {"runtime.contract"},
    "runtime.monitor": {"runtime.contract"},
    "runtime.serving": {"runtime.contract"},
    "runtime.local": {"runtime.contract", "runtime.serving", "runtime.steps"},
    "runtime.examples": {
        "runtime.contract",
        "runtime.steps",
        "runtime.monitor",
        "runtime.serving",
        "runtime.local",
    },
}


def imported_modules(source: bytes, package: str) -> list[tuple[int, str]]:
    """(line, module) of every import in a module of `package`, relative ones made absolute."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            found.extend((node.lineno, name) for name in [base, *names])
    return found


def kiln_package(module: str) -> str | None:
    """The layer a module belongs to: 'compiler', 'runtime.<folder>', or None (not Kiln)."""
    parts = module.split(".")
    if parts[0] == "compiler":
        return "compiler"
    if parts[0] == "runtime" and len(parts) > 1 and f"runtime.{parts[1]}" in ALLOWED:
        return f"runtime.{parts[1]}"
    return None


def runtime_files() -> list[Path]:
    return sorted((REPO_ROOT / "runtime").rglob("*.py"))


def test_every_runtime_module_sits_in_a_named_layer() -> None:
    loose = [
        str(p.relative_to(REPO_ROOT))
        for p in runtime_files()
        if p.parent == REPO_ROOT / "runtime" and p.name != "__init__.py"
    ]
    assert loose == [], "a runtime module belongs in the folder of where it runs"
    folders = {p.name for p in (REPO_ROOT / "runtime").iterdir() if p.is_dir()}
    assert folders - {"__pycache__"} == {name.split(".")[1] for name in ALLOWED}


@pytest.mark.parametrize("path", runtime_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_runtime_imports_point_down(path: Path) -> None:
    module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
    own = kiln_package(module) or module  # runtime/__init__.py: its own layer
    assert own in ALLOWED or own == "runtime.__init__", f"{path} is in no layer"
    wrong = []
    package = ".".join(path.relative_to(REPO_ROOT).parts[:-1])
    for line, module in imported_modules(path.read_bytes(), package):
        target = kiln_package(module)
        if module.split(".")[0] == "compiler":
            wrong.append(f"line {line}: {module} (runtime never imports the compiler)")
        elif target is not None and target != own and target not in ALLOWED.get(own, set()):
            allowed = sorted(ALLOWED.get(own, set()))
            wrong.append(f"line {line}: {module} ({own} may import {allowed})")
    assert wrong == [], f"{path.relative_to(REPO_ROOT)}: " + "; ".join(wrong)


def test_the_rule_catches_a_forbidden_import() -> None:
    """The checker itself: imports inside a function and relative ones are found."""
    source = b"def f():\n    from compiler.ir import ModelIR\n    from ..local import serve\n"
    modules = [m for _, m in imported_modules(source, "runtime.steps")]
    assert "compiler.ir" in modules
    assert "runtime.local.serve" in modules
    assert kiln_package("runtime.local.serve") == "runtime.local"
    assert kiln_package("numpy") is None


def test_the_compiler_imports_no_runtime_job_code_at_module_level() -> None:
    """compiler/ may use runtime/contract freely; other runtime code only inside the
    functions of commands that run it (so `kiln compile` never imports NannyML)."""
    wrong = []
    for path in sorted((REPO_ROOT / "compiler").rglob("*.py")):
        tree = ast.parse(path.read_bytes(), str(path))
        for node in tree.body:
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("runtime.") and not module.startswith("runtime.contract"):
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {module}")
    assert wrong == []


def test_the_runtime_image_carries_no_compiler() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert copies, "the Dockerfile copies the runtime in"
    assert not [line for line in copies if "compiler" in line]
