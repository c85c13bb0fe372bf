"""Golden cases: `<case>/specs/` compiled must equal `<case>/expected/`, byte for byte.

The `example` case is the repository itself: `specs/` compiled must equal the
committed `generated/`. `KILN_REGENERATE=1 pytest tests/golden` (`make golden`)
rewrites every expected tree (for `example`, that is `kiln compile`); review the
diff before committing it.

Every rendered Triton config must also parse with Triton's own ModelConfig
protobuf and pass the rules Triton applies when it loads a model.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from pydantic import BaseModel
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build, compile_tree
from compiler.checks.triton_rules import load_time_problems
from compiler.diagnostics import render
from compiler.emit import WriteBack
from compiler.ir import ModelIR
from compiler.load import load_tree
from compiler.render import model_folder
from compiler.targets import capture
from compiler.spec.documents import KINDS
from compiler.spec.model import ModelSpec
from compiler.targets.triton import CONFIG_FILE

CASES_DIR = Path(__file__).resolve().parent
REPO_ROOT = CASES_DIR.parents[1]
REGENERATE = os.environ.get("KILN_REGENERATE") == "1"


@dataclass(frozen=True)
class Case:
    name: str
    specs: Path
    expected: Path


def _cases() -> list[Case]:
    cases = [Case("example", REPO_ROOT / "specs", REPO_ROOT / "generated")]
    for folder in sorted(CASES_DIR.iterdir()):
        if (folder / "specs").is_dir():
            cases.append(Case(folder.name, folder / "specs", folder / "expected"))
    return cases


CASES = _cases()
ids = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _difference(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    lines: list[str] = []
    for path in sorted(expected.keys() - actual.keys()):
        lines.append(f"expected but not produced: {path}")
    for path in sorted(actual.keys() - expected.keys()):
        lines.append(f"produced but not expected: {path}")
    for path in sorted(expected.keys() & actual.keys()):
        if expected[path] != actual[path]:
            lines.extend(
                difflib.unified_diff(
                    expected[path].decode("utf-8", "replace").splitlines(),
                    actual[path].decode("utf-8", "replace").splitlines(),
                    f"expected/{path}",
                    f"actual/{path}",
                    lineterm="",
                )
            )
    return "\n".join(lines)


@ids
def test_compiles_to_expected(case: Case, tmp_path: Path) -> None:
    if REGENERATE:
        result = compile_tree(case.specs, case.expected, WriteBack.YES)
        assert result.ok, render(result.diagnostics, "text")
        return
    assert case.expected.is_dir(), f"no expected tree; run `make golden` for {case.name}"
    out = tmp_path / "out"
    result = compile_tree(case.specs, out, WriteBack.YES)
    assert result.ok, render(result.diagnostics, "text")
    difference = _difference(_files(case.expected), _files(out))
    assert not difference, (
        f"{case.name}: output differs from {case.expected.relative_to(REPO_ROOT)}; "
        f"if the change is intended, run `make golden` and review the diff\n{difference}"
    )


@ids
def test_triton_configs_load(case: Case) -> None:
    """Every config.pbtxt parses as Triton's ModelConfig and passes its load-time rules."""
    result = build(case.specs)
    assert result.ok, render(result.diagnostics, "text")
    configs = {p.relative_to(case.expected).as_posix() for p in case.expected.rglob(CONFIG_FILE)}
    checked: set[str] = set()
    for model in result.resolution.models:
        if model.ensemble is not None:
            steps = [s.name for s in model.ensemble.steps]
            if capture.has_capture_step(model):
                steps.append(capture.capture_step(model))
            checked |= _ensemble_configs_load(case, model, steps, model.ensemble.version)
            continue
        if capture.is_capture_ensemble(model):
            steps = [capture.model_step(model), capture.capture_step(model)]
            checked |= _ensemble_configs_load(case, model, steps, capture.version(model))
            continue
        if not model.is_served:
            continue  # no version serves: no Triton config (the no-version case)
        relative = f"{model_folder(model)}/triton/{CONFIG_FILE}"
        text = (case.expected / relative).read_text(encoding="utf-8")
        config = mc.ModelConfig()
        text_format.Parse(text, config)  # rejects unknown fields and enum values
        assert config.name == model.name == relative.split("/")[1]
        gpus = 0 if model.is_local else model.serving.resources.gpus
        served = [artifact.version for artifact in model.served]
        assert load_time_problems(config, model.name, served, gpus) == [], relative
        checked.add(relative)
    assert checked == configs, "config.pbtxt files that no model produces"


def _ensemble_configs_load(case: Case, model: ModelIR, steps: list[str], version: int) -> set[str]:
    """An ensemble's config and each step's: parsed, named after their folders, loadable,
    and the ensemble schedules exactly the steps beside it (a declared ensemble, or the
    capture ensemble of a cluster model; a step's GPUs are the pod's)."""
    folder = f"{model_folder(model)}/triton"
    names = {f"{folder}/{CONFIG_FILE}": model.name}  # file -> the model name it must hold
    names |= {f"{folder}/steps/{step}/{CONFIG_FILE}": step for step in steps}
    configs = {}
    for relative, name in names.items():
        config = mc.ModelConfig()
        text_format.Parse((case.expected / relative).read_text(encoding="utf-8"), config)
        assert config.name == name, relative
        gpus = 0 if model.is_local else model.serving.resources.gpus
        assert load_time_problems(config, config.name, [version], gpus) == [], relative
        configs[config.name] = config
    ensemble = configs.pop(model.name)
    assert ensemble.platform == "ensemble"
    assert {s.model_name for s in ensemble.ensemble_scheduling.step} == set(configs)
    return set(names)


# --- the every-field case really uses every field --------------------------------------


def _model_types(annotation: Any, suffix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """Spec models reachable from a field's type: '' itself, '[]' list items, '{}' values."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield suffix, annotation
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for argument in typing.get_args(annotation):
            yield from _model_types(argument, suffix)
    elif origin is list:
        yield from _model_types(typing.get_args(annotation)[0], suffix + "[]")
    elif origin is dict:
        yield from _model_types(typing.get_args(annotation)[1], suffix + "{}")


def _key(name: str, model: type[BaseModel]) -> str:
    return model.model_fields[name].alias or name


def declared_fields(model: type[BaseModel], prefix: str) -> set[str]:
    found: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{_key(name, model)}"
        found.add(path)
        for suffix, inner in _model_types(info.annotation):
            found |= declared_fields(inner, path + suffix)
    return found


def used_fields(model: type[BaseModel], data: dict[str, Any], prefix: str) -> set[str]:
    keys = {_key(name, model): name for name in model.model_fields}
    found: set[str] = set()
    for key, value in data.items():
        if key not in keys:
            continue
        path = f"{prefix}.{key}"
        found.add(path)
        for suffix, inner in _model_types(model.model_fields[keys[key]].annotation):
            found |= _used_below(inner, value, path, suffix)
    return found


def _used_below(model: type[BaseModel], value: Any, path: str, suffix: str) -> set[str]:
    if not suffix:
        return used_fields(model, value, path) if isinstance(value, dict) else set()
    found: set[str] = set()
    if suffix[:2] == "[]" and isinstance(value, list):
        for item in value:
            found |= _used_below(model, item, path + "[]", suffix[2:])
    elif suffix[:2] == "{}" and isinstance(value, dict):
        for item in value.values():
            found |= _used_below(model, item, path + "{}", suffix[2:])
    return found


def test_every_field_case_uses_every_field() -> None:
    specs = CASES_DIR / "every-field" / "specs"
    documents, problems = load_tree(specs)
    assert not problems
    declared: set[str] = set()
    used: set[str] = set()
    for kind, model in KINDS.items():
        declared |= declared_fields(model, kind)
    for document in documents:
        kind = document.data["kind"]
        used |= used_fields(KINDS[kind], document.data, kind)
        if kind == "Model":
            # Environment overlays are partial Model specs: what they set counts too.
            for overlay in document.data["spec"].get("environments", {}).values():
                used |= used_fields(ModelSpec, overlay, "Model.spec")
    missing = sorted(declared - used)
    assert not missing, f"every-field/specs does not use: {', '.join(missing)}"
