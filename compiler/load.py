"""Load spec files: YAML -> plain data plus a source map, with safety limits.

ruamel.yaml's C composer gives every node its position; we build plain Python
data from the node graph ourselves so that we can record where each value came
from, refuse duplicate keys, and bound the work an alias bomb could cause.
Nothing here raises for bad input: every problem is a `Diagnostic`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from compiler.diagnostics import Diagnostic

MAX_SPEC_BYTES = 1024 * 1024
# A spec has hundreds of nodes; a billion-laughs document has billions once
# aliases are expanded. Counting expanded nodes stops it long before it hurts.
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64
SPEC_SUFFIXES = (".yaml", ".yml")

Path_ = tuple[str | int, ...]
Location = tuple[int, int]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass
class Document:
    """One spec file: its data and where every value and key came from."""

    path: str  # display path, relative to the project root, '/'-separated
    data: dict[str, Any]
    digest: str  # sha256 of the file's bytes
    values: dict[Path_, Location] = field(default_factory=dict)
    keys: dict[Path_, Location] = field(default_factory=dict)

    def locate(self, path: Path_, *, key: bool = False) -> Location:
        """Line and column of the node at `path`, or of its nearest ancestor."""
        table = self.keys if key else self.values
        probe = tuple(path)
        if probe in table:
            return table[probe]
        while probe:
            probe = probe[:-1]
            # A missing child is best shown at the key that should hold it.
            if probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
        return (1, 1)


class _LoadFailure(Exception):
    def __init__(self, code: str, message: str, line: int, col: int, hint: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.line, self.col, self.hint = code, message, line, col, hint


def _position(mark: Any) -> Location:
    return (mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed node graph into plain data and a source map."""

    def __init__(self, constructor: Any) -> None:
        self._constructor = constructor
        self._expanded = 0
        self.values: dict[Path_, Location] = {}
        self.keys: dict[Path_, Location] = {}

    def build(self, node: Node, path: Path_, depth: int = 0) -> Any:
        self._expanded += 1
        if self._expanded > MAX_EXPANDED_NODES or depth > MAX_DEPTH:
            line, col = _position(node.start_mark)
            raise _LoadFailure(
                "KILN1008",
                f"document expands to more than {MAX_EXPANDED_NODES} nodes or "
                f"{MAX_DEPTH} levels (recursive or exponential aliases?)",
                line,
                col,
                "remove the anchors and aliases and write the values out",
            )
        self.values.setdefault(path, _position(node.start_mark))
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node)

    def _scalar(self, node: ScalarNode) -> Any:
        tag = str(node.tag)
        if not tag.startswith("tag:yaml.org,2002:"):
            line, col = _position(node.start_mark)
            raise _LoadFailure(
                "KILN1010", f"unsupported YAML tag {tag!r}", line, col, "remove the tag"
            )
        try:
            return self._constructor.construct_object(node, deep=True)
        except YAMLError as exc:
            line, col = _position(node.start_mark)
            raise _LoadFailure("KILN1005", f"invalid scalar: {exc}", line, col) from exc

    def _pairs(self, node: MappingNode) -> Iterator[tuple[Node, Node]]:
        # Explicit keys first, then `<<` merges, which never override them.
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if str(key_node.tag) == _MERGE_TAG:
                merges.extend(
                    value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                )
            else:
                yield key_node, value_node
        for merged in merges:
            if not isinstance(merged, MappingNode):
                line, col = _position(merged.start_mark)
                raise _LoadFailure("KILN1005", "a `<<` merge needs a mapping", line, col)
            yield from ((k, v) for k, v in self._pairs(merged))

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        explicit: set[str] = set()
        merged_region = False
        explicit_count = sum(1 for k, _ in node.value if str(k.tag) != _MERGE_TAG)
        for index, (key_node, value_node) in enumerate(self._pairs(node)):
            merged_region = index >= explicit_count
            if not isinstance(key_node, ScalarNode) or str(key_node.tag) != _STR_TAG:
                line, col = _position(key_node.start_mark)
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                raise _LoadFailure(
                    "KILN1009",
                    f"mapping keys must be strings, found {shown!r}",
                    line,
                    col,
                    "quote the key",
                )
            key = key_node.value
            if key in result:
                if merged_region:
                    continue  # merged keys never override explicit ones
                line, col = _position(key_node.start_mark)
                first_line, _ = self.keys[(*path, key)]
                raise _LoadFailure(
                    "KILN1007",
                    f"duplicate key `{key}` (first defined on line {first_line})",
                    line,
                    col,
                    "keep one of them",
                )
            if not merged_region:
                explicit.add(key)
            child = (*path, key)
            self.keys[child] = _position(key_node.start_mark)
            result[key] = self.build(value_node, child, depth + 1)
        return result


def _utf8_error_location(raw: bytes, offset: int) -> Location:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    col = offset - (before.rfind(b"\n") + 1) + 1
    return (line, col)


def _yaml_error(display: str, exc: MarkedYAMLError) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = _position(mark) if mark is not None else (1, 1)
    problem = (exc.problem or str(exc)).strip()
    if "'\\t'" in problem or "\\t" in problem or "tab" in problem.lower():
        return Diagnostic(
            display,
            line,
            col,
            "KILN1006",
            "tab character where YAML expects spaces",
            hint="indent with spaces only",
        )
    context = f"{exc.context} " if exc.context else ""
    return Diagnostic(
        display,
        line,
        col,
        "KILN1005",
        f"YAML syntax error: {context}{problem}".replace("\n", " "),
        hint="check the indentation and the quoting on this line",
    )


def _compose(text: str) -> tuple[YAML, list[Node]]:
    """Compose with the C parser, falling back to the pure one on a syntax error.

    The C parser follows YAML 1.1 and rejects `{uri: s3://bucket/x}` (a ':' inside
    a plain scalar in flow style), which YAML 1.2 and the pure parser accept. It
    is five times faster, so it goes first; its errors are never reported.
    """
    fast = YAML(typ="safe")
    try:
        return fast, list(fast.compose_all(text))
    except YAMLError:
        pure = YAML(typ="safe", pure=True)
        return pure, list(pure.compose_all(text))


def load_text(display: str, raw: bytes) -> tuple[Document | None, list[Diagnostic]]:
    """Parse one spec file's bytes. Returns the document or the diagnostics."""

    def fail(
        code: str, message: str, line: int = 1, col: int = 1, hint: str = ""
    ) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(display, line, col, code, message, hint=hint)]

    if len(raw) > MAX_SPEC_BYTES:
        return fail(
            "KILN1002",
            f"file is {len(raw)} bytes, over the {MAX_SPEC_BYTES}-byte limit for a spec",
            hint="split it into several specs",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _utf8_error_location(raw, exc.start)
        return fail(
            "KILN1001",
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            line,
            col,
            "save the file as UTF-8",
        )
    text = text.removeprefix("\ufeff")
    try:
        yaml, nodes = _compose(text)
    except MarkedYAMLError as exc:
        return None, [_yaml_error(display, exc)]
    except YAMLError as exc:
        return fail("KILN1005", f"YAML error: {exc}".replace("\n", " "))
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        return fail(
            "KILN1003",
            "file holds no YAML document",
            hint="write a spec with apiVersion, kind, metadata and spec, or delete the file",
        )
    if len(nodes) > 1:
        line, col = _position(nodes[1].start_mark)
        return fail(
            "KILN1004",
            f"file holds {len(nodes)} YAML documents; a spec file holds exactly one",
            line,
            col,
            "move each document to a file of its own",
        )
    builder = _Builder(yaml.constructor)
    try:
        data = builder.build(nodes[0], ())
    except _LoadFailure as failure:
        return fail(failure.code, failure.message, failure.line, failure.col, failure.hint)
    except RecursionError:
        return fail("KILN1008", "document nests too deeply")
    if not isinstance(data, dict):
        line, col = builder.values[()]
        return fail(
            "KILN1011",
            f"a spec must be a mapping, found a {type(data).__name__}",
            line,
            col,
            "start the file with `apiVersion: kiln/v1alpha1`",
        )
    digest = hashlib.sha256(raw).hexdigest()
    return Document(display, data, digest, builder.values, builder.keys), []


def discover(specs_dir: Path) -> list[Path]:
    """Every spec file under `specs_dir`, in an order that does not depend on the OS."""
    found = [
        p
        for p in specs_dir.rglob("*")
        if p.suffix in SPEC_SUFFIXES and p.is_file() and not _hidden(p, specs_dir)
    ]
    return sorted(found, key=lambda p: p.relative_to(specs_dir).as_posix())


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def display_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def load_tree(specs_dir: Path) -> tuple[list[Document], list[Diagnostic]]:
    """Load every spec under `specs_dir`; paths are shown relative to its parent."""
    root = specs_dir.resolve().parent
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    for path in discover(specs_dir):
        display = display_path(path, root)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            diagnostics.append(Diagnostic(display, 1, 1, "KILN1012", f"cannot read: {exc}"))
            continue
        document, problems = load_text(display, raw)
        diagnostics.extend(problems)
        if document is not None:
            documents.append(document)
    return documents, diagnostics
