"""The IR holds plain values: no spec object in any field of ModelIR.

NOT_YET_LOWERED names the ModelIR fields that still carry pydantic spec blocks. It is
empty now that every block is lowered; a field that must carry a spec object for a
while is listed there (the last test says when to take it off again).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from compiler.api import build
from compiler.diagnostics import render
from compiler.ir import ModelIR

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
# The cases that, between them, write every spec field and every rollout strategy.
CASES = ("every-field", "strategies")

NOT_YET_LOWERED: tuple[str, ...] = ()
# The fields that held spec blocks before compiler/lowering.py built them.
LOWERED_BLOCKS = (
    "project",  # its images
    "environment",
    "storage",
    "featureset",  # its spec
    "serving",
    "rollout",
    "training",
    "monitoring",
    "alerts",
    "routes",
)


def spec_objects(value: Any, path: str) -> Iterator[str]:
    """The path of every pydantic model inside `value`, through dataclasses and containers."""
    if isinstance(value, BaseModel):
        yield f"{path}: {type(value).__name__}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from spec_objects(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, tuple | list | set | frozenset):
        for index, item in enumerate(value):
            yield from spec_objects(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from spec_objects(item, f"{path}[{key!r}]")


@pytest.fixture(scope="module")
def models() -> list[ModelIR]:
    built: list[ModelIR] = []
    for case in CASES:
        result = build(GOLDEN / case / "specs")
        assert result.ok, render(result.diagnostics, "text")
        built += result.resolution.models
    return built


def test_the_walk_finds_a_spec_object_anywhere() -> None:
    @dataclasses.dataclass(frozen=True)
    class Holder:
        nested: tuple[Any, ...]

    class Block(BaseModel):
        x: int = 0

    assert list(spec_objects(Holder(({"k": [Block()]},)), "h")) == ["h.nested[0]['k'][0]: Block"]


def test_not_yet_lowered_names_fields_of_the_ir() -> None:
    names = {f.name for f in dataclasses.fields(ModelIR)}
    assert set(NOT_YET_LOWERED) <= names


def test_lowered_fields_hold_no_spec_object(models: list[ModelIR]) -> None:
    lowered = [f.name for f in dataclasses.fields(ModelIR) if f.name not in NOT_YET_LOWERED]
    assert set(LOWERED_BLOCKS) <= set(lowered)
    found = [
        found
        for model in models
        for name in lowered
        for found in spec_objects(getattr(model, name), f"{model.name}/{name}")
    ]
    assert found == []


def test_every_field_not_yet_lowered_still_holds_a_spec_object(models: list[ModelIR]) -> None:
    """When a slice lowers a field, this fails until the field leaves NOT_YET_LOWERED."""
    lowered_already = [
        name
        for name in NOT_YET_LOWERED
        if not any(next(spec_objects(getattr(m, name), name), None) for m in models)
    ]
    assert lowered_already == [], "remove these from NOT_YET_LOWERED"
