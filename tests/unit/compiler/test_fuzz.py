"""A seeded structural fuzzer: mutated spec trees never crash, hang or misplace a problem.

Each case lays the error corpus's clean tree, mutates one of its spec files one to
three times (a line deleted, duplicated, re-indented or cut; a value replaced by one
of many hostile values, or two values swapped; random bytes inserted; the file
truncated), and builds it. Kiln must answer within the time limit with either a clean
build or diagnostics, each with a documented code at a line and column that exist in
the file it names. Every tenth case also compiles into an output folder, which a
failed compile must leave as it was.

KILN_FUZZ_SEED and KILN_FUZZ_CASES change the seed (default 20261206) and the number
of cases (default 500); a failure names the seed and case to replay.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from compiler.api import build, compile_tree
from compiler.codes import CODES
from compiler.diagnostics import Diagnostic
from tests.tools import REPO_ROOT

SEED = int(os.environ.get("KILN_FUZZ_SEED", "20261206"))
CASES = int(os.environ.get("KILN_FUZZ_CASES", "500"))
TIME_LIMIT_S = 20
BASE = REPO_ROOT / "tests" / "errors" / "base" / "specs"
ONNX = REPO_ROOT / "specs" / "artifacts" / "models" / "car-loan-default"
HOSTILE = (
    "",
    "null",
    "~",
    "-1",
    "0",
    "1e400",
    "-.inf",
    ".nan",
    "1_000",
    "9" * 120,
    "0x7fffffffffffffff",
    "[]",
    "{}",
    "[1, [2, {a: b}]]",
    "'x'",
    '"\\u0000"',
    '"\\u2028"',
    "true",
    "yes",
    "2024-02-30",
    "*nope",
    "&a x",
    "!!binary aGk=",
    "!custom x",
    "{{workflow.parameters.x}}",
    "$(pwn)",
    '"\\n---\\nkind: ClusterRole"',
    "|\n  block",
    "a" * 300,
    "- - - x",
    "? x",
    "<<: {}",
    # Values at the edge of what the targets hold: Go's durations, whole seconds, int32.
    "9223372037s",
    "300000000000d",
    "500ms",
    "1:30",
    "2147483648",
    "70.5",
    "gpu",
    "NVIDIA L4",
)
# Words of Python's and pydantic's own messages, which a person should never see.
INTERNALS = (
    "Traceback",
    "Value error",
    "Input should",
    "pydantic",
    "NoneType",
    "<class ",
    "[ONNXRuntimeError]",
)
RANDOM_BYTES = (b"\x00", b"\xff", b"\xc3", b"\t", b"\r", b"\x1b", b"\xe2\x80\xa8", b"\x85", b":")


def _lines(text: bytes) -> list[bytes]:
    return text.split(b"\n")


def _delete_line(text: bytes, rng: random.Random) -> bytes:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def _duplicate_line(text: bytes, rng: random.Random) -> bytes:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return b"\n".join(lines)


def _reindent_line(text: bytes, rng: random.Random) -> bytes:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i] = b" " * rng.choice((0, 1, 3, 8, 40)) + lines[i].lstrip(b" ")
    return b"\n".join(lines)


def _replace_value(text: bytes, rng: random.Random) -> bytes:
    lines = _lines(text)
    keyed = [i for i, line in enumerate(lines) if b": " in line]
    if not keyed:
        return text
    i = rng.choice(keyed)
    key, _, _ = lines[i].partition(b": ")
    lines[i] = key + b": " + rng.choice(HOSTILE).encode()
    return b"\n".join(lines)


def _swap_values(text: bytes, rng: random.Random) -> bytes:
    lines = _lines(text)
    keyed = [i for i, line in enumerate(lines) if b": " in line]
    if len(keyed) < 2:
        return text
    a, b = rng.sample(keyed, 2)
    key_a, _, value_a = lines[a].partition(b": ")
    key_b, _, value_b = lines[b].partition(b": ")
    lines[a], lines[b] = key_a + b": " + value_b, key_b + b": " + value_a
    return b"\n".join(lines)


def _insert_bytes(text: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(RANDOM_BYTES) * rng.choice((1, 2, 5)) + text[at:]


def _truncate(text: bytes, rng: random.Random) -> bytes:
    return text[: rng.randrange(len(text) + 1)]


MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    _delete_line,
    _duplicate_line,
    _reindent_line,
    _replace_value,
    _replace_value,
    _swap_values,
    _insert_bytes,
    _truncate,
)


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


def _cases() -> Iterator[tuple[int, str, list[str]]]:
    rng = random.Random(SEED)
    files = sorted(p.relative_to(BASE).as_posix() for p in BASE.rglob("*.yaml"))
    for number in range(CASES):
        chosen = rng.choice(files)
        steps = [rng.randrange(len(MUTATIONS)) for _ in range(rng.choice((1, 1, 2, 3)))]
        yield number, chosen, [str(rng.random()) + ":" + str(s) for s in steps]


def _mutate(path: Path, steps: list[str]) -> None:
    text = path.read_bytes()
    for step in steps:
        seed, _, index = step.partition(":")
        text = MUTATIONS[int(index)](text, random.Random(seed))
    path.write_bytes(text)


def _check_placement(diagnostic: Diagnostic, specs: Path, context: str) -> None:
    assert diagnostic.code in CODES, f"{context}: undocumented code {diagnostic.code}"
    assert diagnostic.line >= 1 and diagnostic.col >= 1, f"{context}: {diagnostic}"
    path = specs.parent / diagnostic.file
    assert path.is_file(), f"{context}: {diagnostic.file} is not a file of the tree"
    text = path.read_bytes()
    # As an editor counts: LF, CRLF and CR end lines; one line more for a final newline.
    lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
    assert diagnostic.line <= max(lines, 1), f"{context}: line {diagnostic.line} of {lines}"
    leaked = [word for word in INTERNALS if word in diagnostic.message + diagnostic.hint]
    assert not leaked, f"{context}: Python internals in {diagnostic.text()}"


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KILN_JOBS", "1")
    return tmp_path


def test_mutated_trees_never_crash_hang_or_misplace(tree: Path) -> None:
    previous = signal.signal(signal.SIGALRM, _alarm)
    rejected = 0
    try:
        for number, chosen, steps in _cases():
            context = f"seed {SEED}, case {number} ({chosen})"
            root = tree / f"case-{number}"
            specs = root / "specs"
            shutil.copytree(BASE, specs)
            shutil.copytree(ONNX, specs / "artifacts" / "models" / "car-loan-default")
            _mutate(specs / chosen, steps)
            signal.alarm(TIME_LIMIT_S)
            try:
                result = build(specs)
                if number % 10 == 0:
                    out = root / "generated"
                    compiled = compile_tree(specs, out)
                    assert compiled.ok == result.ok, context
                    assert compiled.ok or not out.exists(), f"{context}: wrote on failure"
            except _Hang:
                pytest.fail(f"{context}: no answer in {TIME_LIMIT_S} s")
            finally:
                signal.alarm(0)
            errors = [d for d in result.diagnostics if d.is_error]
            assert result.ok == (not errors), context
            for diagnostic in result.diagnostics:
                _check_placement(diagnostic, specs, context)
            rejected += bool(errors)
            shutil.rmtree(root)
    finally:
        signal.signal(signal.SIGALRM, previous)
    # The mutations must mostly produce bad specs, or the fuzzer tests little.
    assert rejected >= CASES // 3, f"only {rejected} of {CASES} mutated trees were refused"
