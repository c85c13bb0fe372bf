"""Parse: plain data -> typed spec objects, with pydantic errors turned into diagnostics."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from compiler.codes import advice
from compiler.diagnostics import Diagnostic, Locator, Path_
from compiler.inert_text import inert_text_problems
from compiler.load import Document
from compiler.spec.documents import KINDS, SpecDocument
from compiler.spec.types import API_VERSION, AT, shown

_RANGE_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "string_pattern_mismatch",
    "finite_number",
}


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (Optional, Annotated, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(root: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The spec model class that describes the mapping at `path`, if there is one."""
    candidates: list[Any] = [root]
    for segment in path:
        following: list[Any] = []
        for candidate in candidates:
            origin = typing.get_origin(candidate)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                if isinstance(segment, str):
                    for name, info in candidate.model_fields.items():
                        if segment in (name, info.alias):
                            following.extend(_unwrap(info.annotation))
            elif origin is list and isinstance(segment, int):
                following.extend(_unwrap(typing.get_args(candidate)[0]))
            elif origin is dict and isinstance(segment, str):
                following.extend(_unwrap(typing.get_args(candidate)[1]))
        candidates = following
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _child(container: Any, segment: str | int) -> tuple[bool, Any]:
    if isinstance(container, Mapping) and isinstance(segment, str) and segment in container:
        return True, container[segment]
    if isinstance(container, list) and isinstance(segment, int) and segment < len(container):
        return True, container[segment]
    return False, None


def _data_path(loc: Sequence[str | int], data: Any) -> Path_:
    """The part of a pydantic location that names nodes of the document.

    Union members add their type names to `loc`; they are not keys of the data,
    so they are dropped, leaving the path of the node a person wrote.
    """
    path: list[str | int] = []
    current = data
    for index, segment in enumerate(loc):
        found, child = _child(current, segment)
        if found:
            current = child
            path.append(segment)
        elif index == len(loc) - 1 and isinstance(current, Mapping):
            path.append(segment)  # a missing field: the key that should be there
    return tuple(path)


def _kind_of(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        date: "a date",
        datetime: "a date and time",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# What a wrong-type error expects, in the words `_kind_of` uses for what it found.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


# pydantic's length errors -> (the bound in its context, what is counted); its own text
# ("List should have at least 1 item after validation, not 0") reads as pydantic's.
_LENGTH_ERRORS = {
    "too_short": ("min_length", "item"),
    "too_long": ("max_length", "item"),
    "string_too_short": ("min_length", "character"),
    "string_too_long": ("max_length", "character"),
}


def _length_message(dotted: str, kind: str, ctx: dict[str, Any], value: Any) -> str:
    """`x` is empty: give at least 1 item; `x` has 3 items: give at most 2."""
    bound_key, unit = _LENGTH_ERRORS[kind]
    bound = ctx.get(bound_key)
    size = len(value) if isinstance(value, str | list | dict | tuple) else None
    limit = f"at least {bound}" if bound_key == "min_length" else f"at most {bound}"
    wanted = f"give {limit} {unit}{'' if bound == 1 else 's'}"
    if size == 0:
        return f"`{dotted}` is empty: {wanted}"
    if size is None:
        return f"`{dotted}` has the wrong length: {wanted}"
    counted = f"{size} {unit}{'' if size == 1 else 's'}"
    shown_value = f" ({shown(value, 40)})" if isinstance(value, str) else ""
    return f"`{dotted}` has {counted}{shown_value}: {wanted}"


def _found(value: Any) -> str:
    return "null" if value is None else f"{_kind_of(value)} {shown(value, 40)}"


def translate(
    exc: ValidationError, data: Any, root: type[BaseModel], file: str, locate: Locator
) -> list[Diagnostic]:
    """One diagnostic per faulty node, with Kiln's codes and hints."""
    found: dict[Path_, Diagnostic] = {}
    for error in exc.errors(include_url=False):
        path = _data_path(error["loc"], data)
        kind = error["type"]
        dotted = ".".join(str(p) for p in path)
        value = error.get("input")
        hint = ""
        if kind == "extra_forbidden":
            field = str(path[-1])
            model = _model_at(root, path[:-1])
            allowed = _field_names(model) if model else []
            close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(allowed)}"
            code, message = "KILN1101", f"unknown field `{dotted}`"
            line, col = locate(path, True)
        elif kind == "missing":
            code, message = "KILN1102", f"missing required field `{dotted}`"
            line, col = locate(path[:-1], True)
        elif kind.startswith("KILN"):
            code, message = kind, error["msg"]
            at = error.get("ctx", {}).get(AT)
            if at is not None:  # a block's check that faults one field of the block
                path = _data_path((*error["loc"], *at.split(".")), data)
            # pydantic marks a mapping's key that fails its type with a last "[key]".
            line, col = locate(path, error["loc"][-1:] == ("[key]",))
        elif kind in ("literal_error", "enum", "union_tag_invalid"):
            expected = error.get("ctx", {}).get("expected", "")
            code = "KILN1104"
            message = f"`{dotted}` cannot be {shown(value, 40)}; expected {expected}"
            line, col = locate(path, False)
        elif kind in _LENGTH_ERRORS:
            code, message = "KILN1105", _length_message(dotted, kind, error.get("ctx", {}), value)
            line, col = locate(path, False)
        elif kind in _RANGE_ERRORS:
            code = "KILN1105"
            rule = error["msg"].replace("Input should", "should").replace("Value should", "should")
            message = f"`{dotted}` is {shown(value, 40)}, which {rule}"
            line, col = locate(path, False)
        else:
            code = "KILN1103"
            expected = _EXPECTED.get(kind) or error["msg"].replace("Input should be ", "")
            message = f"`{dotted}` should be {expected}, found {_found(value)}"
            if kind == "string_type" and isinstance(value, int | float | date):
                hint = "quote it: YAML reads an unquoted number, boolean or date as such"
            elif isinstance(value, str) and "_" in value and value.replace("_", "").isdigit():
                hint = f"YAML 1.2 reads {value} as text: write {value.replace('_', '')}"
            # An empty value has no text of its own: show the key that holds it.
            line, col = locate(path, value is None)
        # A KILN12xx message, or a length one, says what to do itself.
        if not hint and not kind.startswith("KILN") and kind not in _LENGTH_ERRORS:
            hint = advice(code)
        if "[key]" in error["loc"]:
            # A map's key at fault (pydantic marks it so): shown at the key, and kept
            # apart from any problem with the value under it.
            line, col = locate(path, True)
            path = (*path, "[key]")
        diagnostic = Diagnostic(file, line, col, code, message, hint=hint)
        previous = found.get(path)
        # Of a union's several complaints keep the one that says the most.
        if previous is None or (
            code.startswith("KILN12") and not previous.code.startswith("KILN12")
        ):
            found[path] = diagnostic
    return list(found.values())


def document_locator(document: Document) -> Locator:
    return lambda path, key: document.locate(path, key=key)


def parse_document(document: Document) -> tuple[SpecDocument | None, list[Diagnostic]]:
    """Validate one loaded file against the model of its kind."""
    data = document.data
    file = document.path
    api = data.get("apiVersion")
    if api != API_VERSION:
        if "apiVersion" not in data:
            return None, [
                Diagnostic(
                    file,
                    1,
                    1,
                    "KILN1102",
                    "missing required field `apiVersion`",
                    hint=f"start the file with `apiVersion: {API_VERSION}`",
                )
            ]
        line, col = document.locate(("apiVersion",))
        return None, [
            Diagnostic(
                file,
                line,
                col,
                "KILN1112",
                f"unsupported apiVersion {shown(api, 40)}",
                hint=f"use `{API_VERSION}`",
            )
        ]
    kind = data.get("kind")
    if "kind" in data and not isinstance(kind, str):
        line, col = document.locate(("kind",))
        return None, [
            Diagnostic(
                file,
                line,
                col,
                "KILN1103",
                f"`kind` should be a string, found {_found(kind)}",
                hint=f"use one of {', '.join(KINDS)}",
            )
        ]
    if kind not in KINDS:
        line, col = document.locate(("kind",)) if "kind" in data else (1, 1)
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(KINDS)}"
        return None, [
            Diagnostic(file, line, col, "KILN1113", f"unknown kind {shown(kind, 40)}", hint=hint)
        ]
    model = KINDS[kind]
    refused = inert_text_problems(document)
    try:
        parsed: SpecDocument | None = model.model_validate(data)
        problems: list[Diagnostic] = []
    except ValidationError as exc:
        parsed, problems = None, translate(exc, data, model, file, document_locator(document))
    if not refused:
        return parsed, problems
    # A field's own complaint about a refused value would only repeat it.
    placed = {(d.line, d.col) for d in refused}
    return None, refused + [d for d in problems if (d.line, d.col) not in placed]
