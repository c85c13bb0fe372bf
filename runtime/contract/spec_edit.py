"""Add a published version to a Model spec's text, and serve it: the one edit of both
`kiln promote` and the publish step's spec.patch and pull request.

It lives in the contract because both sides make it: the compiler's CLI may import
runtime/contract only, and the publish step (a job in the runtime image) may not
import the compiler. It needs nothing but ruamel.yaml, which both already use.

The text is edited, not re-serialised: ruamel's round-trip loader gives the line and
column of every node, and the new lines are spliced in there, so every other byte of
the file (comments, flow mappings, quoting, blank lines, line endings) stays as it
was; a round-trip dump would re-indent and re-wrap. Each result is loaded again and
must equal the old data plus exactly the change, or the edit is refused.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# serving.version as it is replaced: a plain integer (a quoted one is refused: it is a string).
INTEGER = re.compile(r"[0-9]+(?=[\s,}#]|$)")


class SpecEditError(ValueError):
    """The spec cannot take the edit; the message says where and what to do."""


@dataclass(frozen=True)
class VersionEntry:
    """One item of `spec.versions`, as the store's record gives it."""

    version: int
    uri: str
    sha256: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    signature: str | None = None  # the bundle's uri, when the version is signed
    format: str = "onnx"  # written only when it is not the default
    fil: Mapping[str, Any] | None = None  # FIL settings of a native tree model

    def data(self) -> dict[str, Any]:
        artifact = {"uri": self.uri, "sha256": self.sha256}
        if self.signature is not None:
            artifact["signature"] = self.signature
        native = {} if self.format == "onnx" else {"format": self.format}
        if self.fil:
            native["fil"] = dict(self.fil)
        return {
            "version": self.version,
            **native,
            "artifact": artifact,
            "metrics": dict(self.metrics),
        }

    def format_lines(self) -> list[str]:
        """format and fil, for a version that is not ONNX. The FIL values come from
        Kiln's own table (names and booleans), written as plain YAML scalars."""
        if self.format == "onnx":
            return []
        fil = sorted((self.fil or {}).items())
        flow = ", ".join(f"{yaml_key(k)}: {yaml_scalar(v)}" for k, v in fil)
        return [f"format: {self.format}", *([f"fil: {{{flow}}}"] if fil else [])]

    def lines(self) -> list[str]:
        """The entry as block YAML from column 0 (the caller indents it)."""
        metrics = sorted(self.metrics.items())
        flow = ", ".join(f"{yaml_key(k)}: {yaml_number(v)}" for k, v in metrics)
        signature = [f"  signature: {self.signature}"] if self.signature else []
        return [
            f"version: {self.version}",
            *self.format_lines(),
            "artifact:",
            f"  uri: {self.uri}",
            f"  sha256: {self.sha256}",
            *signature,
            f"metrics: {{{flow}}}",
        ]


def yaml_number(value: float) -> str:
    text = repr(float(value))
    # YAML 1.1 readers take 1e-07 for a string; 1.0e-07 is a float for every reader.
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def yaml_scalar(value: Any) -> str:
    """A boolean, number or text as a YAML flow scalar; text always quoted as JSON (which
    YAML reads), so no value changes the entry's structure or reads as another type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return yaml_number(value)
    return json.dumps(str(value))


def yaml_key(key: str) -> str:
    return key if PLAIN_KEY.match(key) else json.dumps(key)


def serving_path(environment: str | None) -> tuple[str, ...]:
    """Where the served version is set: the base, or an environment's overlay."""
    if environment is None:
        return ("spec", "serving", "version")
    return ("spec", "environments", environment, "serving", "version")


# ---------------------------------------------------------------------- the edit


def promote(text: str, where: str, entry: VersionEntry, serve_in: tuple[str | None, ...]) -> str:
    """`text` with `entry` in spec.versions (unless listed with the same digest) and
    serving.version set to it in each of `serve_in` (None: the base; a name: that
    environment's overlay; empty: add the version only). Raises SpecEditError."""
    before = _load_plain(text, where)
    add_version(text, where, entry)  # its refusals first, placed in the text as it is
    new = text
    for environment in serve_in:
        new = set_integer(new, where, serving_path(environment), entry.version)
    new = add_version(new, where, entry)
    expected = copy.deepcopy(before)
    spec = expected.setdefault("spec", {})
    versions = spec.setdefault("versions", [])
    if not any(isinstance(v, dict) and v.get("version") == entry.version for v in versions):
        versions.append(entry.data())
    for environment in serve_in:
        _set_plain(expected, serving_path(environment), entry.version)
    if _load_plain(new, where) != expected:
        raise SpecEditError(
            f"{where}: cannot edit this file safely; add version {entry.version} by hand"
        )
    return new


def add_version(text: str, where: str, entry: VersionEntry) -> str:
    """`text` with `entry` appended to spec.versions; unchanged when the same version with
    the same digest is there already; refused when it is there with another digest."""
    document = _load(text, where)
    spec = document.get("spec") if isinstance(document, CommentedMap) else None
    if not isinstance(spec, CommentedMap):
        raise SpecEditError(f"{where} has no spec mapping")
    versions = spec.get("versions")
    for index, item in enumerate(versions if isinstance(versions, list) else []):
        if isinstance(item, dict) and item.get("version") == entry.version:
            listed = (item.get("artifact") or {}).get("sha256")
            if listed == entry.sha256:
                return text
            line, col = versions.lc.item(index)
            raise SpecEditError(
                f"{where}:{line + 1}:{col + 1}: spec.versions already lists version "
                f"{entry.version} with sha256 {listed}, and the store's version {entry.version} "
                f"is {entry.sha256}: versions are immutable; promote another version, or "
                "remove the stale entry if it was never served"
            )
    lines = text.splitlines(keepends=True)
    if "versions" not in spec:
        return "".join(_new_versions_key(lines, spec, entry))
    if not isinstance(versions, list):
        raise SpecEditError(f"{where}: spec.versions is not a list")
    if versions and versions.fa.flow_style():
        raise SpecEditError(
            f"{where}: spec.versions is a flow list [...]; write it as a block list "
            "(one `- version: ...` entry per item) so that a version can be appended to it"
        )
    return "".join(_append_item(lines, spec, versions, entry))


def set_integer(text: str, where: str, path: Sequence[str], value: int) -> str:
    """`text` with the integer at `path` set, the mappings on the way added when absent
    (`kiln promote` and `kiln rollback --to VERSION` both set serving.version with it).
    The result is loaded again and must differ from the old data in that value only."""
    new = "".join(_set_in(_load(text, where), text.splitlines(keepends=True), where, path, value))
    expected = copy.deepcopy(_load_plain(text, where))
    if not isinstance(expected, dict):
        raise SpecEditError(f"{where} is not a mapping")
    _set_plain(expected, path, value)
    if _load_plain(new, where) != expected:
        raise SpecEditError(f"{where}: cannot set {'.'.join(path)} safely; set it by hand")
    return new


def _set_in(
    document: Any, lines: list[str], where: str, path: Sequence[str], value: int
) -> list[str]:
    node: Any = document
    at: tuple[int, int] = (0, 0)  # where `node` starts in the text
    key_col = -2  # the column of the key that holds `node` (the document has none)
    for depth, key in enumerate(path):
        if not isinstance(node, CommentedMap):
            shown = ".".join(path[:depth])
            raise SpecEditError(f"{where}: {shown} is not a mapping; set {'.'.join(path)} by hand")
        if key not in node:
            return _add_keys(lines, node, at, key_col, path[depth:], value)
        if depth == len(path) - 1:
            return _replace_integer(lines, node.lc.value(key), value, where)
        key_col = node.lc.key(key)[1]
        at, node = node.lc.value(key), node[key]
    raise AssertionError("unreachable: the loop returns at the last key")


# ---------------------------------------------------------------------- helpers


def _load(text: str, where: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except YAMLError as error:
        raise SpecEditError(f"{where} is not valid YAML: {error}") from error


def _load_plain(text: str, where: str) -> Any:
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        raise SpecEditError(f"{where} is not valid YAML: {error}") from error


def _set_plain(data: dict[str, Any], path: Sequence[str], value: int) -> None:
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return  # not a mapping: the edit was refused before this is compared
    node[path[-1]] = value


def _newline(lines: Sequence[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def _is_neutral(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: Sequence[str], first: int, col: int, dash_col: int | None = None) -> int:
    """Index after the last content line of a block node whose lines start at `first` and
    are indented by `col` or more (trailing comments and blank lines stay after it)."""
    last = first
    for index in range(first + 1, len(lines)):
        line = lines[index]
        if _is_neutral(line):
            continue
        indent = _indent(line)
        # An "indentless" list puts its dashes at the key's column.
        dash_here = dash_col is not None and indent == dash_col and line.lstrip(" ")[:1] == "-"
        if indent < col and not dash_here:
            break
        last = index
    return last + 1


def _splice(lines: list[str], at: int, block: Sequence[str]) -> list[str]:
    head = lines[:at]
    if head and not head[-1].endswith("\n"):
        head[-1] += _newline(lines)
    return [*head, *block, *lines[at:]]


def _flow(keys: Sequence[str], value: int) -> str:
    """`a: {b: {c: 1}}` for the keys (a, b, c)."""
    text = str(value)
    for key in reversed(keys[1:]):
        text = f"{{{key}: {text}}}"
    return f"{keys[0]}: {text}"


def _add_keys(
    lines: list[str],
    node: CommentedMap,
    at: tuple[int, int],
    key_col: int,
    missing: Sequence[str],
    value: int,
) -> list[str]:
    """The `missing` keys, nested, with `value` at the end, added to the mapping `node`
    (which starts at `at`): first in a flow mapping, on one line; last in a block one,
    as people write it: `qa:` then `  serving: {version: 3}` one level deeper."""
    newline = _newline(lines)
    if node.fa.flow_style() or not node:  # an empty mapping can only be `{}`
        line, col = at
        row = lines[line]
        empty = re.match(r"\{\s*\}", row[col:]) is not None
        text = _flow(missing, value) + ("" if empty else ", ")
        return [*lines[:line], row[: col + 1] + text + row[col + 1 :], *lines[line + 1 :]]
    first_line, col = node.lc.key(next(iter(node)))
    step = max(col - key_col, 2)
    opened = list(missing[:-2])
    block = [" " * (col + i * step) + f"{key}:" + newline for i, key in enumerate(opened)]
    block.append(" " * (col + len(opened) * step) + _flow(missing[len(opened) :], value) + newline)
    return _splice(lines, _block_end(lines, first_line, col), block)


def _replace_integer(lines: list[str], at: tuple[int, int], value: int, where: str) -> list[str]:
    line, col = at
    row = lines[line]
    found = INTEGER.match(row, col)
    if found is None:
        raise SpecEditError(f"{where}:{line + 1}:{col + 1}: expected a plain integer here")
    return [
        *lines[:line],
        row[: found.start()] + str(value) + row[found.end() :],
        *lines[line + 1 :],
    ]


def _item_lines(entry: VersionEntry, dash_col: int, item_col: int, newline: str) -> list[str]:
    first, *rest = entry.lines()
    return [
        " " * dash_col + "-" + " " * (item_col - dash_col - 1) + first + newline,
        *(" " * item_col + line + newline for line in rest),
    ]


def _append_item(
    lines: list[str], spec: CommentedMap, versions: Any, entry: VersionEntry
) -> list[str]:
    newline = _newline(lines)
    key_line, key_col = spec.lc.key("versions")
    if not versions:  # only a flow list is empty: `versions: []` becomes a block list
        lines = list(lines)
        lines[key_line] = re.sub(r"\[\s*\]", "", lines[key_line], count=1).rstrip() + newline
        block = _item_lines(entry, key_col + 2, key_col + 4, newline)
        return _splice(lines, key_line + 1, block)
    line, item_col = versions.lc.item(0)
    dash_col = lines[line].rfind("-", 0, item_col)
    end = _block_end(lines, key_line, key_col + 1, dash_col)
    return _splice(lines, end, _item_lines(entry, dash_col, item_col, newline))


def _new_versions_key(lines: list[str], spec: CommentedMap, entry: VersionEntry) -> list[str]:
    """A `versions:` block for a model with none yet: before `serving` (and the comments
    right above it), where the examples keep it; else last in spec."""
    newline = _newline(lines)
    first_line, col = spec.lc.key(next(iter(spec)))
    if "serving" in spec:
        at = spec.lc.key("serving")[0]
        while at > 0 and lines[at - 1].strip().startswith("#"):
            at -= 1
    else:
        at = _block_end(lines, first_line, col)
    block = [" " * col + "versions:" + newline, *_item_lines(entry, col + 2, col + 4, newline)]
    return _splice(lines, at, block)
