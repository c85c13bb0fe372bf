"""Load spec files: YAML -> plain data plus a source map, with safety limits.

ruamel.yaml's C composer gives every node its position; we build plain Python
data from the node graph ourselves so that we can record where each value came
from, refuse duplicate keys, and bound the work an alias bomb could cause.
Nothing here raises for bad input: every problem is a `Diagnostic`.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

from compiler import cache, forking, text_guard
from compiler.diagnostics import Diagnostic, Location, Path_

MAX_SPEC_BYTES = 1024 * 1024
# A spec has hundreds of nodes; a billion-laughs document has billions once
# aliases are expanded. Counting expanded nodes stops it long before it hurts.
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = text_guard.MAX_DEPTH
SPEC_SUFFIXES = (".yaml", ".yml")

_CORE = "tag:yaml.org,2002:"
_MERGE_TAG = _CORE + "merge"
_STR_TAG = _CORE + "str"
_MAP_TAG = _CORE + "map"
_SEQ_TAG = _CORE + "seq"
# Scalars of plain YAML; anything else (!!binary, !!python/..., !custom) is refused.
_NUMBER_TAGS = frozenset((_CORE + "int", _CORE + "float"))
# Python refuses to read integers of over 4,300 digits, and no field holds a number of
# even 30; the bound keeps every number readable, with room for underscores and zeros.
MAX_NUMBER_LENGTH = 100
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp"))


SourceMap = dict[Path_, Location]


@dataclass
class Document:
    """One spec file: its data and where every value and key came from.

    The source map (`values`, `keys`) is needed only to place a diagnostic or explain
    a field. A document taken from the cache or from a worker process comes without
    it, with its bytes instead, and gets it when first asked: moving the maps
    between processes cost three times as much as moving the data.
    """

    path: str  # display path, relative to the project root, '/'-separated
    data: dict[str, Any]
    digest: str  # sha256 of the file's bytes
    _values: SourceMap | None = None
    _keys: SourceMap | None = None
    raw: bytes | None = field(default=None, repr=False)  # what the map is rebuilt from

    @property
    def values(self) -> SourceMap:
        return self._source_map()[0]

    @property
    def keys(self) -> SourceMap:
        return self._source_map()[1]

    def _source_map(self) -> tuple[SourceMap, SourceMap]:
        if self._values is None or self._keys is None:
            self._values, self._keys = _source_maps(self.path, self.raw)
        return self._values, self._keys

    def locate(self, path: Path_, *, key: bool = False) -> Location:
        """Line and column of the node at `path`, or of its nearest ancestor."""
        table = self.keys if key else self.values
        probe = tuple(path)
        if probe in table:
            return table[probe]
        if key and probe and isinstance(probe[-1], int) and probe in self.values:
            return self.values[probe]  # a list item has no key: show the item itself
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


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _Builder:
    """Turns a composed node graph into plain data and a source map.

    Aliases make the graph a DAG, or a cycle. Every node reached, and every
    mapping pair visited through a `<<` merge, counts against a budget, so an
    alias or merge bomb stops after MAX_EXPANDED_NODES steps; a node reached
    again inside itself is a recursive alias and stops at once.
    """

    def __init__(self, constructor: Any) -> None:
        self._constructor = constructor
        self._expanded = 0
        self._seen: set[int] = set()  # nodes built so far; a second visit is an alias
        self._open: set[int] = set()  # collections being built around the current node
        self._aliased = False  # whether any node was reached twice (alias or merge)
        self.values: dict[Path_, Location] = {}
        self.keys: dict[Path_, Location] = {}

    def _site(self, path: Path_, node: Node) -> Location:
        """Where to show an expansion problem: the innermost key on the path.

        An alias's own position is not kept by the composer (it yields the
        anchored node), but the key it is the value of is.
        """
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.keys:
                return self.keys[path[:cut]]
        return _position(node.start_mark)

    def _tick(self, node: Node, path: Path_, depth: int) -> None:
        self._expanded += 1
        if self._expanded > MAX_EXPANDED_NODES or depth > MAX_DEPTH:
            self._too_much(node, path, depth)

    def _too_much(self, node: Node, path: Path_, depth: int) -> None:
        if self._expanded > MAX_EXPANDED_NODES:
            line, col = self._site(path, node)
            if self._aliased:
                message = (
                    f"aliases expand the document to more than {MAX_EXPANDED_NODES} nodes "
                    "(an alias bomb?)"
                )
                hint = "write the values out instead of nesting aliases"
            else:
                message = f"the document has more than {MAX_EXPANDED_NODES} nodes"
                hint = "split it into several specs"
            raise _LoadFailure("KILN1008", message, line, col, hint)
        if depth > MAX_DEPTH:
            line, col = self._site(path, node)
            raise _LoadFailure(
                "KILN1008",
                f"the document nests more than {MAX_DEPTH} levels deep",
                line,
                col,
                text_guard.FLATTEN,
            )

    def build(self, node: Node, path: Path_, depth: int = 0) -> Any:
        """Plain data for `node` at `path`. The hot loop of loading: one call per node."""
        node_id = id(node)
        if node_id in self._open:
            line, col = self._site(path, node)
            shown = ".".join(str(p) for p in path)
            raise _LoadFailure(
                "KILN1008",
                f"recursive alias: `{shown}` refers to a node that contains it",
                line,
                col,
                "write the value out; an alias cannot point into itself",
            )
        if node_id in self._seen:
            self._aliased = True
        self._seen.add(node_id)
        self._expanded += 1
        if self._expanded > MAX_EXPANDED_NODES or depth > MAX_DEPTH:
            self._too_much(node, path, depth)
        mark = node.start_mark
        self.values.setdefault(path, (mark.line + 1, mark.column + 1))
        tag = str(node.tag)
        if type(node) is ScalarNode:
            # A string is its text: no need for the constructor's machinery, which the
            # other scalar types (numbers, booleans, null, dates) go through.
            if tag == _STR_TAG:
                return node.value
            if tag not in _SCALAR_TAGS:
                raise _unsupported_tag(node, tag)
            return self._scalar(node, tag)
        is_mapping = type(node) is MappingNode
        if tag != (_MAP_TAG if is_mapping else _SEQ_TAG):
            raise _unsupported_tag(node, tag)
        self._open.add(node_id)
        try:
            if type(node) is MappingNode:
                return self._mapping(node, path, depth)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(node_id)

    def _scalar(self, node: ScalarNode, tag: str) -> Any:
        if tag in _NUMBER_TAGS and "_" in node.value:
            return node.value  # YAML 1.1 read `1_000` as 1000; YAML 1.2 reads text
        if tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_LENGTH:
            line, col = _position(node.start_mark)
            raise _LoadFailure(
                "KILN1013",
                f"a number written with {len(node.value)} characters is beyond what any "
                "field holds",
                line,
                col,
                "write a number within the field's range (docs/spec.md gives each bound), "
                "or quote it to make it text",
            )
        try:
            return self._constructor.construct_object(node, deep=True)
        except YAMLError as exc:
            line, col = _position(node.start_mark)
            problem = str(getattr(exc, "problem", None) or exc).replace("\n", " ")
            raise _LoadFailure("KILN1005", f"invalid scalar: {problem}", line, col) from exc
        except (ValueError, OverflowError) as exc:  # a date that does not exist: 2024-02-30
            line, col = _position(node.start_mark)
            raise _LoadFailure(
                "KILN1005",
                f"invalid {tag.removeprefix(_CORE)} {node.value!r}: {exc}",
                line,
                col,
                "write a valid value, or quote it to make it text",
            ) from exc

    def _pairs(
        self, node: MappingNode, path: Path_, depth: int, chain: frozenset[int], merged: bool
    ) -> Iterator[tuple[Node, str, Node, bool]]:
        """(key node, its tag, value node, whether a `<<` merge brought it): explicit
        keys first, then merged ones, which never override them."""
        merges: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            key_tag = str(key_node.tag)  # a property chain in ruamel: read once
            if key_tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                merges.extend((key_node, m) for m in sources)
            else:
                yield key_node, key_tag, value_node, merged
        for merge_key, source in merges:
            self._tick(source, path, depth)
            if not isinstance(source, MappingNode):
                line, col = _position(source.start_mark)
                raise _LoadFailure("KILN1005", "a `<<` merge needs a mapping", line, col)
            if id(source) in chain or id(source) in self._open:
                line, col = _position(merge_key.start_mark)
                raise _LoadFailure(
                    "KILN1008",
                    "recursive merge: this `<<` merges a mapping that contains it",
                    line,
                    col,
                    "write the keys out; a merge cannot point into itself",
                )
            self._aliased = True
            yield from self._pairs(source, path, depth, chain | {id(source)}, True)

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        pairs = self._pairs(node, path, depth, frozenset({id(node)}), False)
        for key_node, key_tag, value_node, merged in pairs:
            if not isinstance(key_node, ScalarNode) or key_tag != _STR_TAG:
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
                if merged:
                    self._tick(value_node, path, depth)  # skipped, but it was work
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
            child = (*path, key)
            self.keys[child] = _position(key_node.start_mark)
            result[key] = self.build(value_node, child, depth + 1)
        return result


def _unsupported_tag(node: Node, tag: str) -> _LoadFailure:
    line, col = _position(node.start_mark)
    return _LoadFailure(
        "KILN1010",
        f"unsupported YAML tag {_shown_tag(tag)!r}",
        line,
        col,
        "remove the tag; specs use plain YAML",
    )


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
    problem = problem.replace("\n", " ")
    context = ""
    if exc.context:
        context = str(exc.context)
        start = exc.context_mark
        if start is not None and mark is not None and start.line != mark.line:
            context += f" that starts on line {start.line + 1}"
        context += ": "
    return Diagnostic(
        display,
        line,
        col,
        "KILN1005",
        f"YAML syntax error: {context}{problem}".replace("\n", " "),
        hint="check the indentation and the quoting on this line",
    )


def _kind(value: Any) -> str:
    if value is None:
        return "an empty document"
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a single value")


class _RememberingResolver(VersionedResolver):
    """ruamel's resolver, remembering the tag of each node kind and plain scalar it has resolved.

    Specs repeat the same keys and values thousands of times, and resolving one
    tries a list of regular expressions in Python (a third of composing a file).
    Used only for texts without a `%YAML` directive, so that the YAML version, and
    with it the answer, is always the same.
    """

    _tags: ClassVar[dict[tuple[Any, str, Any], Any]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        key = (kind, value, implicit)  # collections come with no value: one entry each
        tag = self._tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._tags) < 100_000:
                self._tags[key] = tag
        return tag


def _compose(text: str) -> tuple[YAML, list[Node]]:
    """Compose with the C parser, falling back to the pure one on a syntax error.

    The C parser follows YAML 1.1 and rejects `{uri: s3://bucket/x}` (a ':' inside
    a plain scalar in flow style), which YAML 1.2 and the pure parser accept. It
    is five times faster, so it goes first; its errors are never reported.
    """
    fast = YAML(typ="safe")
    if "%YAML" not in text:
        fast.Resolver = _RememberingResolver
    try:
        return fast, list(fast.compose_all(text))
    except YAMLError:
        pure = YAML(typ="safe", pure=True)
        return pure, list(pure.compose_all(text))


def _too_large(display: str, size: int) -> Diagnostic:
    return Diagnostic(
        display,
        1,
        1,
        "KILN1002",
        f"file is {size} bytes, over the {MAX_SPEC_BYTES}-byte limit for a spec",
        hint="split it into several specs",
    )


PARSE_CACHE = "specs-3"  # bump when the shape of parsed documents changes
_DATA_SIZE = 8  # bytes: the entry starts with the size of the data part, then the map
# A first compile of this many files or more parses them in every core's process.
PARALLEL_PARSE = 32


def _cached(display: str, raw: bytes) -> Document | None:
    stored = cache.get("specs", cache.key(PARSE_CACHE, raw))
    if stored is None:
        return None
    try:
        data = marshal.loads(memoryview(stored)[_DATA_SIZE:])  # noqa: S302 HMAC-checked; the map after it is left
    except (EOFError, ValueError, TypeError):
        return None  # a damaged entry: parse again
    if not isinstance(data, dict):
        # Only a clean spec, a mapping, is stored: anything else is an entry of another
        # shape under the same key (another Kiln sharing the cache folder). Parse again.
        return None
    return Document(display, data, hashlib.sha256(raw).hexdigest(), raw=raw)


def _source_maps(display: str, raw: bytes | None) -> tuple[SourceMap, SourceMap]:
    """The source map of a document that came without one: from the cache, or by
    parsing its bytes again (they parsed cleanly once, so they do again)."""
    if raw is None:
        return {}, {}
    stored = cache.get("specs", cache.key(PARSE_CACHE, raw))
    if stored is not None:
        with contextlib.suppress(EOFError, ValueError, TypeError):
            start = _DATA_SIZE + int.from_bytes(stored[:_DATA_SIZE], "little")
            values, keys = marshal.loads(memoryview(stored)[start:])  # noqa: S302 HMAC-checked cache entry
            return values, keys
    document, _ = _parse_text(display, raw)
    return (document.values, document.keys) if document is not None else ({}, {})


def _remember(raw: bytes, document: Document) -> bytes | None:
    """Store a parsed document in the cache, one entry: the size of its data, the data,
    then the source map, which is read only when asked for. Returns the data as
    stored, or None when marshal cannot store it (dates): such a file is parsed each
    time."""
    try:
        data = marshal.dumps(document.data)
        maps = marshal.dumps((document.values, document.keys))
    except ValueError:
        return None
    size = len(data).to_bytes(_DATA_SIZE, "little")
    cache.put("specs", cache.key(PARSE_CACHE, raw), size + data + maps)
    return data


def load_text(display: str, raw: bytes) -> tuple[Document | None, list[Diagnostic]]:
    """Parse one spec file's bytes. Returns the document or the diagnostics.

    A file that parsed cleanly before is taken from the cache by its digest: the pure
    parser, which YAML 1.2 flow style needs, costs milliseconds per file.
    """
    document = _cached(display, raw)
    if document is not None:
        return document, []
    document, problems = _parse_text(display, raw)
    if document is not None:
        _remember(raw, document)
    return document, problems


def _parse_for_transfer(item: tuple[str, bytes]) -> tuple[bytes | None, list[Diagnostic]]:
    """Parse in a worker process and store the result in the cache; the data travels
    back as the cache keeps it, without the source map (see `Document`)."""
    display, raw = item
    document, problems = _parse_text(display, raw)
    if document is None:
        return None, problems
    carried = _remember(raw, document)
    return (b"" if carried is None else carried), problems  # b"": the parent parses it


def _load_all(items: list[tuple[str, bytes]]) -> list[tuple[Document | None, list[Diagnostic]]]:
    """load_text for every (display, bytes), the uncached ones in parallel when many."""
    loaded: list[tuple[Document | None, list[Diagnostic]] | None] = [
        (document, []) if (document := _cached(*item)) is not None else None for item in items
    ]
    pending = [i for i, done in enumerate(loaded) if done is None]
    jobs = forking.jobs_wanted() if len(pending) >= PARALLEL_PARSE else 1
    if jobs > 1 and forking.can_fork():
        parsed = forking.forked_map(_parse_for_transfer, [items[i] for i in pending], jobs)
        for index, (carried, problems) in zip(pending, parsed, strict=True):
            display, raw = items[index]
            if not carried:
                loaded[index] = load_text(display, raw) if carried == b"" else (None, problems)
                continue
            digest = hashlib.sha256(raw).hexdigest()
            document = Document(display, marshal.loads(carried), digest, raw=raw)  # noqa: S302 from our own worker
            loaded[index] = (document, problems)
    return [done if done is not None else load_text(*items[i]) for i, done in enumerate(loaded)]


def _parse_text(display: str, raw: bytes) -> tuple[Document | None, list[Diagnostic]]:

    def fail(
        code: str, message: str, line: int = 1, col: int = 1, hint: str = ""
    ) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(display, line, col, code, message, hint=hint)]

    if len(raw) > MAX_SPEC_BYTES:
        return None, [_too_large(display, len(raw))]
    try:
        text = text_guard.readable_text(raw)
    except text_guard.TextProblem as problem:
        return fail(problem.code, problem.message, problem.line, problem.col, problem.hint)
    try:
        yaml, nodes = _compose(text)
    except MarkedYAMLError as exc:
        return None, [_yaml_error(display, exc)]
    except YAMLError as exc:
        return fail("KILN1005", f"YAML error: {exc}".replace("\n", " "))
    except RecursionError:
        return fail(
            "KILN1008",
            "the document nests too deeply to be read",
            hint=text_guard.FLATTEN,
        )
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
        return fail(
            "KILN1008",
            "the document nests too deeply to be read",
            hint=text_guard.FLATTEN,
        )
    if not isinstance(data, dict):
        # An empty document (`---` alone) has its mark after the last line: say line 1.
        line, col = builder.values[()] if data is not None else (1, 1)
        return fail(
            "KILN1011",
            f"a spec must be a mapping, found {_kind(data)}",
            line,
            col,
            "start the file with `apiVersion: kiln/v1alpha1`",
        )
    digest = hashlib.sha256(raw).hexdigest()
    return Document(display, data, digest, builder.values, builder.keys), []


# What a spec's path below the spec folder may hold (see _unsafe_name).
SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9._/-]+")


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


def _unsafe_name(display: str) -> Diagnostic:
    """A spec's path is written into generated files (header comments, the training
    workflow's arguments): a newline there would add YAML, `{{` an Argo expression."""
    return Diagnostic(
        ascii(display)[1:-1],  # shown escaped: the name itself is what is refused
        1,
        1,
        "KILN1015",
        "the file name holds characters Kiln does not write into generated files",
        hint="rename it with letters, digits, `.`, `_`, `-` and `/` only",
    )


def display_path(path: Path, root: Path) -> str:
    return _relative_display(path, root.resolve())


def _relative_display(path: Path, resolved_root: Path) -> str:
    try:
        return path.resolve().relative_to(resolved_root).as_posix()
    except ValueError:
        return path.as_posix()


def load_tree(specs_dir: Path) -> tuple[list[Document], list[Diagnostic]]:
    """Load every spec under `specs_dir`; paths are shown relative to its parent."""
    root = specs_dir.resolve().parent
    diagnostics: list[Diagnostic] = []
    readable: list[tuple[str, bytes]] = []
    for path in discover(specs_dir):
        display = _relative_display(path, root)
        if not SAFE_FILE_NAME.fullmatch(path.relative_to(specs_dir).as_posix()):
            diagnostics.append(_unsafe_name(display))
            continue
        try:
            size = path.stat().st_size
            # A huge file is refused before it is read into memory.
            raw = b"" if size > MAX_SPEC_BYTES else path.read_bytes()
        except OSError as exc:
            # The reason only: the exception's text would show the absolute path.
            reason = exc.strerror or type(exc).__name__
            diagnostics.append(
                Diagnostic(
                    display,
                    1,
                    1,
                    "KILN1012",
                    f"cannot read the file: {reason}",
                    hint="check that it is a readable regular file",
                )
            )
            continue
        if size > MAX_SPEC_BYTES:
            diagnostics.append(_too_large(display, size))
            continue
        readable.append((display, raw))
    documents: list[Document] = []
    for document, problems in _load_all(readable):
        diagnostics.extend(problems)
        if document is not None:
            documents.append(document)
    return documents, diagnostics
