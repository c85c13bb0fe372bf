"""Deterministic YAML for generated Kubernetes objects.

Objects are built as plain data and serialised here, once. The emitter handles
exactly what manifests hold (mappings with string keys, lists, strings, numbers,
booleans, null), quotes every string that a YAML 1.1 or 1.2 reader could take
for something else, and keeps key order as built, so the same object always
gives the same bytes. It is a few times faster than a general YAML dumper, which
matters when thousands of manifests are written; a test round-trips random
documents through ruamel.yaml to prove the output reads back identically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pydantic_core

INDENT = "  "
# Scalars that need no quotes: they start with a letter or '/', hold no YAML
# indicator characters, and are not a word YAML 1.1 resolves to bool or null.
_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./@+-]*( [A-Za-z0-9_./@+()-]+)*")
_RESERVED = frozenset(["y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf"])


def _quoted(value: str) -> str:
    """A string as YAML reads it back: plain where that is safe, else JSON-quoted."""
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    return json.dumps(value, ensure_ascii=False)


# Manifests repeat the same keys and values thousands of times: quote each once.
_STRINGS: dict[str, str] = {}
_STRINGS_MAX = 200_000


def _string(value: str) -> str:
    text = _STRINGS.get(value)
    if text is None:
        text = _quoted(value)
        if len(_STRINGS) < _STRINGS_MAX:
            _STRINGS[value] = text
    return text


def _scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return str(value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot serialise {value!r} in a manifest")
        # Always a dot and never an exponent: YAML 1.1 readers (Go's among them)
        # take `1e-05` for a string.
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, int):
        return str(int(value))
    raise TypeError(f"cannot serialise {type(value).__name__} in a manifest")


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\n"


def _block_literal(value: str, indent: str) -> str | None:
    """A multi-line string as a `|` block, when that reads back exactly."""
    if "\n" not in value or value.startswith((" ", "\n")):
        return None
    # A block cannot escape a tab or a control character; quotes can. (Generated
    # texts are ASCII, whose bytes are checked several times faster.)
    if value.isascii():
        if value.encode("ascii").translate(None, _PRINTABLE_ASCII):
            return None
    elif not value.replace("\n", "").isprintable():
        return None
    if " \n" in value or value.endswith(" "):
        return None  # trailing spaces are invisible in a block; quote instead
    body = value[:-1] if value.endswith("\n") else value
    if body.endswith("\n"):
        return None  # several trailing newlines would need `|+`
    chomp = "" if value.endswith("\n") else "-"
    # Every line indented but the empty ones (which would carry trailing spaces).
    # Indent all, then take the indent off the empty lines; neighbouring empty
    # lines share a line break, so one pass may leave some (string methods are
    # several times faster than a regular expression on config-sized texts).
    text = body.replace("\n", "\n" + indent)
    empty = f"\n{indent}\n"
    while empty in text:
        text = text.replace(empty, "\n\n")
    return f"|{chomp}\n{indent}" + text


def _key(key: Any) -> str:
    if type(key) is not str:
        raise TypeError(f"mapping key {key!r} is not a string")
    return _string(key)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Append the lines of a mapping or list nested at `indent`."""
    if type(value) is dict or (type(value) is not list and isinstance(value, Mapping)):
        _pairs(value, indent, indent, indent, out)
        return
    strings = _STRINGS
    for item in value:
        kind = type(item)
        if kind is dict and item:
            _pairs(item, f"{indent}- ", f"{indent}  ", indent + INDENT, out)
        elif kind is str and "\n" not in item:
            out.append(f"{indent}- {strings.get(item) or _string(item)}")
        elif isinstance(item, Mapping) and item:
            _pairs(item, f"{indent}- ", f"{indent}  ", indent + INDENT, out)
        else:
            _entry(f"{indent}-", item, indent, out)


def _pairs(mapping: Mapping[Any, Any], first: str, rest: str, level: str, out: list[str]) -> None:
    """The `key: value` lines of a mapping: the first key after `first` (a list item's
    dash, when the mapping is one), the others after `rest`; nested blocks go one
    indent deeper than `level`. The common cases are inline: this is the hot loop."""
    strings = _STRINGS
    append = out.append
    prefix = first
    deeper = level + INDENT
    for key, item in mapping.items():
        name = strings.get(key) or _key(key)
        kind = type(item)
        if kind is str and "\n" not in item:
            append(f"{prefix}{name}: {strings.get(item) or _string(item)}")
        elif kind is int:
            append(f"{prefix}{name}: {item}")
        elif kind is dict:
            if item:
                append(f"{prefix}{name}:")
                _pairs(item, deeper, deeper, deeper, out)
            else:
                append(f"{prefix}{name}: {{}}")
        elif kind is list:
            if item:
                append(f"{prefix}{name}:")
                _emit(item, deeper, out)
            else:
                append(f"{prefix}{name}: []")
        else:
            _entry(f"{prefix}{name}:", item, level, out)
        prefix = rest


def _entry(head: str, value: Any, indent: str, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        if "\n" in value:
            block = _block_literal(value, indent + INDENT)
            if block is not None:
                out.append(f"{head} {block}")
                return
        out.append(f"{head} {_string(value)}")
    elif kind is dict or (kind is not list and isinstance(value, Mapping)):
        if not value:
            out.append(f"{head} {{}}")
            return
        out.append(head)
        _emit(value, indent + INDENT, out)
    elif kind is list or kind is tuple:
        if not value:
            out.append(f"{head} []")
            return
        out.append(head)
        _emit(value, indent + INDENT, out)
    else:
        out.append(f"{head} {_scalar(value)}")


def to_yaml(document: Mapping[str, Any]) -> str:
    """One YAML document, LF line endings, ending with a newline."""
    lines: list[str] = []
    _emit(document, "", lines)
    return "\n".join(lines) + "\n"


def to_json(value: Any) -> str:
    """Pretty JSON with two-space indents and a final newline, keys in the order built.

    pydantic-core's encoder writes the same text as `json.dumps(indent=2)` (floats
    without exponents aside) several times faster, which the manifest of a large
    tree needs.
    """
    return pydantic_core.to_json(value, indent=2).decode("utf-8") + "\n"
