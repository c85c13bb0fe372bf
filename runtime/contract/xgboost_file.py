"""What an XGBoost model file says about its writer, and the one field that the xgboost
2.1 Kiln runs with (nannyml's FLAML pins xgboost < 3) reads wrong in a file of XGBoost 3.

Measured (tests/fixtures/xgboost3/make_fixtures.py writes the evidence): XGBoost 3 stores
`learner.learner_model_param.base_score` as a bracketed vector of text, one value per
output (`"[4.475E-1]"`; one per class for a multi-class model, `"[1.76E-1,1.1E-2,...]"`;
one per target for a multi-target one), in JSON and UBJSON alike, and writes UBJSON for
every file name that does not end in `.json` (it no longer writes the old binary format).
xgboost 2.1 loads such a file without a word and takes base_score as 0.5, so every
prediction is off. Nothing else in the files of a binary classifier, a regressor, a
Poisson model or a multi-class model differs in meaning: with the value given as 2.1
expects it, its predictions equal XGBoost 3's bit for bit.

`for_xgboost_2` rewrites that one field in memory (the user's file is never written):
one value becomes the scalar 2.1 reads (its text kept as written); one value per class
becomes per-row base margins to pass to every prediction, as 2.1 has one base score for
all classes. What 2.1 cannot represent (more than one target) or a writer newer than
Kiln has measured is refused. Standard library only: the local Triton adapter copies this
file beside tree_predict.py, and the compiler reads the same facts at compile time.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from json.decoder import scanstring

# Writers whose files Kiln has read right, checked against their own predictions.
NEWEST_MAJOR = 3
PARAM_PATH = ("learner", "learner_model_param")


class XGBoostFileError(Exception):
    """The file cannot be read right by the xgboost Kiln runs with; the message says why."""


@dataclass(frozen=True)
class Header:
    """The writer's version and the learner's output parameters."""

    version: tuple[int, ...] | None  # None: the file does not say (written before 1.0)
    base_score: str  # as written: "5E-1", or XGBoost 3's "[4.475E-1]"
    num_class: int
    num_target: int

    @property
    def writer(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "an unknown version"

    def scores(self) -> list[str]:
        """base_score's values as written, one per output."""
        text = self.base_score.strip()
        if not text.startswith("["):
            return [text]
        if not text.endswith("]"):
            raise XGBoostFileError(f"base_score {self.base_score!r} is not a list of numbers")
        return [part.strip() for part in text[1:-1].split(",")]


def header_from(document: object) -> Header:
    """The Header of a parsed model document (a dict as json.load gives it)."""
    try:
        assert isinstance(document, dict)
        params = document["learner"]["learner_model_param"]
        version = document.get("version")
        return Header(
            tuple(int(v) for v in version) if isinstance(version, list) else None,
            str(params.get("base_score", "0.5")),
            int(params.get("num_class", "0")),
            int(params.get("num_target", "1")),
        )
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise XGBoostFileError("not an XGBoost model (no learner.learner_model_param)") from exc


@dataclass(frozen=True)
class Problem:
    """Why the xgboost Kiln runs with would answer wrong: `writer` (a version Kiln has
    not checked) or `outputs` (base scores it cannot represent)."""

    kind: str
    message: str


def problem(header: Header) -> Problem | None:
    """What keeps the xgboost Kiln runs with from reading this model right, or None."""
    if header.version and header.version[0] > NEWEST_MAJOR:
        return Problem(
            "writer",
            f"the model was written by XGBoost {header.writer}; Kiln reads models of "
            f"XGBoost {NEWEST_MAJOR} and earlier right, and has not checked newer ones",
        )
    if header.num_target > 1:
        return Problem(
            "outputs",
            f"the model has {header.num_target} targets, which the xgboost Kiln runs "
            "(2.1, one base score) cannot represent, and FIL serves one output per class",
        )
    try:
        values = [float(v) for v in header.scores()]
    except (ValueError, XGBoostFileError):
        return Problem("outputs", f"base_score {header.base_score!r} is not a list of numbers")
    if len(values) not in (1, max(1, header.num_class)):
        outputs = max(1, header.num_class)
        message = f"base_score has {len(values)} values for a model of {outputs} outputs"
        return Problem("outputs", message)
    return None


def file_kind(payload: bytes) -> str:
    """`json`, `ubj` or `binary` (XGBoost's old format, which XGBoost 3 no longer writes:
    it saves UBJSON under any name that does not end in .json)."""
    return "json" if _is_json(payload) else "ubj" if _is_ubj(payload) else "binary"


def read_header(payload: bytes) -> Header | None:
    """The Header of a JSON or UBJSON model; None for the old binary format."""
    reader = _READERS.get(file_kind(payload))
    return None if reader is None else reader.header(payload)[2]


@dataclass(frozen=True)
class Readable:
    """A model as xgboost 2.1 reads it right: the payload, and the base margin of each
    class to give every prediction (None: the payload's base score is all it needs)."""

    payload: bytes
    margins: tuple[float, ...] | None


def for_xgboost_2(payload: bytes) -> Readable:
    """The model with base_score as xgboost 2.1 reads it, or XGBoostFileError."""
    reader = _READERS.get(file_kind(payload))
    if reader is None:
        return Readable(payload, None)  # the old binary format: written by XGBoost < 3
    start, end, header = reader.header(payload)
    found = problem(header)
    if found is not None:
        raise XGBoostFileError(found.message)
    values = header.scores()
    if not header.base_score.strip().startswith("["):
        return Readable(payload, None)  # written by XGBoost 1 or 2
    # One value: 2.1 takes it as written. One per class: 2.1 has one base score for all,
    # so each class's value is passed as its base margin (softmax's link is the identity).
    scalar, margins = (values[0], None) if len(values) == 1 else ("0", tuple(map(float, values)))
    return Readable(payload[:start] + reader.encode(scalar) + payload[end:], margins)


def _is_json(payload: bytes) -> bool:
    return re.match(rb"\s*\{\s*[\"}]", payload) is not None


def _is_ubj(payload: bytes) -> bool:
    # An object whose first key's length is a UBJSON integer (XGBoost writes `L`).
    return payload[:1] == b"{" and payload[1:2] in (b"i", b"U", b"I", b"l", b"L", b"}")


class _Format:
    def header(self, payload: bytes) -> tuple[int, int, Header]:
        """base_score's byte span and the file's Header."""
        raise NotImplementedError

    def encode(self, text: str) -> bytes:
        raise NotImplementedError


# JSON: the stdlib's scanner, walked by hand so the value's place in the bytes is known
# and every other byte stays as written (a float re-printed by Python could round apart).
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Json(_Format):
    def header(self, payload: bytes) -> tuple[int, int, Header]:
        # One character per byte, so offsets are the bytes'; the values read are ASCII.
        text = payload.decode("latin-1")
        try:
            top = self._members(text, _skip(text, 0), {"version", "learner"})
            learner = self._members(text, top["learner"][0], {"learner_model_param"})
            params = self._members(text, learner["learner_model_param"][0], None)
        except (ValueError, KeyError, IndexError, RecursionError) as exc:
            raise XGBoostFileError("not an XGBoost JSON model") from exc
        values = {k: _DECODER.raw_decode(text, s)[0] for k, (s, _) in params.items()}
        version = _DECODER.raw_decode(text, top["version"][0])[0] if "version" in top else None
        document = {"version": version, "learner": {"learner_model_param": values}}
        start, end = params.get("base_score", (0, 0))
        return start, end, header_from(document)

    def _members(self, text: str, at: int, wanted: set[str] | None) -> dict[str, tuple[int, int]]:
        """The span of each wanted member's value in the object at `at` (None: all)."""
        if text[at] != "{":
            raise ValueError("not an object")
        spans: dict[str, tuple[int, int]] = {}
        at = _skip(text, at + 1)
        while text[at] != "}":
            key, at = scanstring(text, at + 1)
            at = _skip(text, at)
            if text[at] != ":":
                raise ValueError("no colon")
            start = _skip(text, at + 1)
            end = _DECODER.raw_decode(text, start)[1]
            if wanted is None or key in wanted:
                spans[key] = (start, end)
            at = _skip(text, end)
            if text[at] == ",":
                at = _skip(text, at + 1)
        return spans

    def encode(self, text: str) -> bytes:
        return json.dumps(text).encode("ascii")


def _skip(text: str, at: int) -> int:
    return _WHITESPACE.match(text, at).end()  # type: ignore[union-attr]


# UBJSON (ubjson.org), as XGBoost writes it: `{`/`[` containers, optionally typed (`$`)
# and counted (`#`); an object's keys are strings without their `S` marker.
_SIZES = {"Z": 0, "N": 0, "T": 0, "F": 0, "i": 1, "U": 1, "I": 2, "l": 4, "L": 8}
_SIZES.update({"d": 4, "D": 8, "C": 1})
_INTEGERS = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q"}
# XGBoost's files nest 7 or 8 containers deep, the top object counted (measured on
# tests/formats/xgboost3); a file nesting deeper than this is not one of its models, and
# is refused long before Python's stack runs out.
MAX_DEPTH = 32


class _Malformed(ValueError):
    """Bytes no UBJSON writer produces; the message says which and where."""


class _Ubj(_Format):
    """Every position only moves forward and stays inside the payload: a length or count
    is read as a signed integer, so one that is negative or larger than the bytes left is
    refused (a negative one moved the reader back, and a crafted file looped for ever)."""

    def header(self, payload: bytes) -> tuple[int, int, Header]:
        try:
            top = self._members(payload, 0, {"version", "learner"})
            learner = self._members(payload, top["learner"][0], {"learner_model_param"})
            params = self._members(payload, learner["learner_model_param"][0], None)
            values = {k: self._string(payload, s) for k, (s, _) in params.items()}
            version = self._integers(payload, top["version"][0]) if "version" in top else None
        except _Malformed as exc:
            raise XGBoostFileError(f"not an XGBoost UBJSON model: {exc}") from exc
        except (IndexError, KeyError, ValueError, struct.error, RecursionError) as exc:
            raise XGBoostFileError("not an XGBoost UBJSON model") from exc
        document = {"version": version, "learner": {"learner_model_param": values}}
        start, end = params.get("base_score", (0, 0))
        return start, end, header_from(document)

    def _members(self, data: bytes, at: int, wanted: set[str] | None) -> dict[str, tuple[int, int]]:
        if data[at : at + 1] != b"{":
            raise ValueError("not an object")
        kind, count, at = self._container(data, at + 1)
        spans: dict[str, tuple[int, int]] = {}
        index = 0
        while (index < count) if count is not None else data[at : at + 1] != b"}":
            size, at = self._length(data, at)
            key = data[at : at + size].decode("utf-8")
            start = at + size
            end = self._skip(data, start, kind, depth=1)
            if wanted is None or key in wanted:
                spans[key] = (start, end)
            at, index = end, index + 1
        return spans

    def _container(self, data: bytes, at: int) -> tuple[str | None, int | None, int]:
        """(the type of every element, the element count, where they start)."""
        kind = None
        if data[at : at + 1] == b"$":
            kind, at = chr(data[at + 1]), at + 2
        if data[at : at + 1] == b"#":
            count, at = self._length(data, at + 1)
            if kind in _SIZES and count * _SIZES[kind] > len(data) - at:
                raise _Malformed(
                    f"{count} values of type {kind!r} at byte {at}, longer than the file"
                )
            return kind, count, at
        if kind is not None:
            raise ValueError("a typed container without a count")
        return None, None, at

    def _skip(self, data: bytes, at: int, kind: str | None = None, depth: int = 0) -> int:
        """Where the value at `at` ends (its marker there, unless typed by its container)."""
        if kind is None:
            kind, at = chr(data[at]), at + 1
        if kind in _SIZES:
            return at + _SIZES[kind]
        if kind in "SH":
            size, at = self._length(data, at)
            return at + size
        if kind not in "[{":
            raise ValueError(f"unknown UBJSON marker {kind!r}")
        if depth >= MAX_DEPTH:  # this container is at depth + 1, the top object at 1
            raise _Malformed(f"containers nested over {MAX_DEPTH} deep at byte {at}")
        inner, count, at = self._container(data, at)
        if count is not None and inner in _SIZES:
            return at + count * _SIZES[inner]
        index = 0
        while (index < count) if count is not None else data[at : at + 1] not in (b"]", b"}"):
            if kind == "{":
                size, at = self._length(data, at)
                at += size
            at, index = self._skip(data, at, inner, depth + 1), index + 1
        return at if count is not None else at + 1

    def _integer(self, data: bytes, at: int) -> tuple[int, int]:
        fmt = _INTEGERS[chr(data[at])]
        size = struct.calcsize(fmt)
        return int(struct.unpack_from(fmt, data, at + 1)[0]), at + 1 + size

    def _length(self, data: bytes, at: int) -> tuple[int, int]:
        """A size or count: never negative, and never more than the bytes left (every
        element takes at least one byte, except in a typed container, checked apart)."""
        value, end = self._integer(data, at)
        if not 0 <= value <= len(data) - end:
            raise _Malformed(f"a length of {value} at byte {at}, with {len(data) - end} bytes left")
        return value, end

    def _string(self, data: bytes, at: int) -> str:
        if data[at : at + 1] != b"S":
            raise ValueError("not a string")
        size, at = self._length(data, at + 1)
        return data[at : at + size].decode("utf-8")

    def _integers(self, data: bytes, at: int) -> list[int]:
        """XGBoost's version, an array of integers, typed or not."""
        if data[at : at + 1] != b"[":
            raise ValueError("not an array")
        kind, count, at = self._container(data, at + 1)
        found = []
        while (len(found) < count) if count is not None else data[at : at + 1] != b"]":
            marker, at = (kind, at) if kind else (chr(data[at]), at + 1)
            fmt = _INTEGERS[marker]
            found.append(int(struct.unpack_from(fmt, data, at)[0]))
            at += struct.calcsize(fmt)
        return found

    def encode(self, text: str) -> bytes:
        raw = text.encode("utf-8")
        return b"SL" + struct.pack(">q", len(raw)) + raw


_UBJ = _Ubj()
_READERS: dict[str, _Format] = {"json": _Json(), "ubj": _UBJ}
