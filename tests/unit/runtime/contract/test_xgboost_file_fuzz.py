"""A model file is untrusted input: whatever its bytes, reading its header returns or
raises XGBoostFileError, and always ends. Each check runs in a child process under a
timeout, since a reader that loops for ever would hang the test run instead of failing.

The inputs are the real files XGBoost 3 wrote (tests/formats/xgboost3), mutated with a
fixed seed: bytes replaced, inserted or cut off, and lengths overwritten with negative or
oversized values, the shape of the file that once looped for ever.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from runtime.contract import xgboost_file
from tests.tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "formats" / "xgboost3"
# Generous for a few thousand reads of files of a few KB (under 1 s here); a hang is for ever.
TIMEOUT_S = 60
# An uncounted object whose one value is a string of length -13: that jumps back to the
# key, which is read again, and again (the reviewer's 16-byte reproducer).
BACKWARDS = b"{i\x01aSL" + struct.pack(">q", -13) + b"}"
LENGTHS = (-1, -13, -(2**63), 2**31, 2**63 - 1)


def _mutants(payload: bytes, rng: random.Random) -> Iterator[bytes]:
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    yield bytes(data)
    cut = rng.randrange(len(payload))
    yield payload[:cut]
    yield payload[:cut] + rng.randbytes(rng.randint(1, 16)) + payload[cut:]
    # Overwrite the 8 bytes after an `L` marker (how XGBoost writes lengths and counts).
    markers = [i for i in range(len(payload) - 8) if payload[i] == ord("L")]
    if markers:
        at = rng.choice(markers) + 1
        value = rng.choice((*LENGTHS, rng.randint(-(2**63), 2**63 - 1)))
        yield payload[:at] + struct.pack(">q", value) + payload[at + 8 :]
        # A length that leads back to an earlier marker, as in BACKWARDS.
        back = rng.choice([m for m in markers if m < at] or [0]) - (at + 8)
        yield payload[:at] + struct.pack(">q", back) + payload[at + 8 :]
    yield b"{L" + rng.randbytes(rng.randint(0, 64))


def fuzz(seed: int, rounds: int) -> dict[str, int]:
    """Reads every mutant; counts how each ended, raising on any other error."""
    rng = random.Random(seed)
    fixtures = sorted(p.read_bytes() for p in FIXTURES.iterdir() if p.suffix in (".json", ".ubj"))
    outcomes: Counter[str] = Counter()
    for _ in range(rounds):
        for payload in _mutants(rng.choice(fixtures), rng):
            outcomes[_read(payload)] += 1
    return dict(outcomes)


def _read(payload: bytes) -> str:
    try:
        xgboost_file.read_header(payload)
        xgboost_file.for_xgboost_2(payload)
    except xgboost_file.XGBoostFileError:
        return "refused"
    return "read"


def _in_child(code: str) -> str:
    """What `code` prints, run in a fresh interpreter that must end within TIMEOUT_S."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_negative_length_is_refused_instead_of_read_backwards() -> None:
    code = (
        "from tests.unit.runtime.contract.test_xgboost_file_fuzz import BACKWARDS, _read\n"
        "print(_read(BACKWARDS))"
    )
    assert _in_child(code).strip() == "refused"


def test_loading_such_a_model_fails_with_the_loaders_error() -> None:
    """How a serving model meets the file: tree_predict.py, at model load."""
    code = (
        "from runtime.contract.tree_predict import TreeModelError, TreePredictor\n"
        "from tests.unit.runtime.contract.test_xgboost_file_fuzz import BACKWARDS\n"
        "try:\n"
        "    TreePredictor(BACKWARDS, {'model_type': 'xgboost_ubj'})\n"
        "except TreeModelError as exc:\n"
        "    print(exc)\n"
    )
    assert "a length of -13 at byte 5" in _in_child(code)


def _ubj(value: object) -> bytes:
    """UBJSON as XGBoost writes it: untyped containers, lengths as `L`."""
    if isinstance(value, dict):
        members = (_ubj_size(k.encode()) + k.encode() + _ubj(v) for k, v in value.items())
        return b"{" + b"".join(members) + b"}"
    if isinstance(value, list):
        return b"[" + b"".join(map(_ubj, value)) + b"]"
    raw = str(value).encode()
    return b"S" + _ubj_size(raw) + raw


def _ubj_size(raw: bytes) -> bytes:
    return b"L" + struct.pack(">q", len(raw))


def _nested(depth: int) -> bytes:
    """A model whose header is fine, beside a member nesting `depth` arrays (`depth` + 1
    containers, counting the top object)."""
    deep: list[object] = []
    for _ in range(depth - 1):
        deep = [deep]
    params = {"base_score": "5E-1", "num_class": "0", "num_target": "1"}
    return _ubj({"extra": deep, "learner": {"learner_model_param": params}})


def test_nesting_deeper_than_any_model_is_refused() -> None:
    assert _read(_nested(8)) == "read"
    assert _read(_nested(xgboost_file.MAX_DEPTH - 1)) == "read"
    assert _read(_nested(xgboost_file.MAX_DEPTH)) == "refused"


@pytest.mark.parametrize(
    ("count", "why"),
    [(2**40, "a length of 1099511627776"), (-5, "a length of -5 at byte"), (100, "longer than")],
)
def test_a_count_the_bytes_left_cannot_hold_is_refused_before_it_is_walked(
    count: int, why: str
) -> None:
    """100 doubles take 800 bytes, more than the file has left."""
    payload = _nested(1).replace(b"[]", b"[$d#L" + struct.pack(">q", count), 1)
    with pytest.raises(xgboost_file.XGBoostFileError) as refused:
        xgboost_file.read_header(payload)
    assert why in str(refused.value)


def test_mutated_model_files_are_read_or_refused_and_never_hang() -> None:
    code = (
        "import json\n"
        "from tests.unit.runtime.contract.test_xgboost_file_fuzz import fuzz\n"
        "print(json.dumps(fuzz(seed=20261207, rounds=600)))"
    )
    outcomes = json.loads(_in_child(code))
    # Both ends are reached: some mutants still read, most are refused.
    assert outcomes["read"] > 0 and outcomes["refused"] > 0, outcomes
    assert set(outcomes) == {"read", "refused"}
