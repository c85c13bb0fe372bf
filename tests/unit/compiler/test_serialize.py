"""The manifest YAML emitter reads back exactly what it was given."""

from __future__ import annotations

import random
import string

import pytest
from ruamel.yaml import YAML

from compiler.serialize import to_yaml

TRICKY = [
    "yes",
    "No",
    "on",
    "OFF",
    "null",
    "~",
    "true",
    "1",
    "1.5",
    "1e3",
    "0x1F",
    "010",
    "1:20",
    "-",
    "- x",
    "#x",
    "a #b",
    "a: b",
    "x:",
    "[a]",
    "{a}",
    "*a",
    "&a",
    "!a",
    "|",
    ">",
    "%x",
    "@x",
    "`x`",
    "'q'",
    '"q"',
    "",
    " lead",
    "trail ",
    "tab\there",
    "multi\nline\n",
    "multi\nline",
    "two\n\n",
    "gaps\n\nof\n\n\none\n\n\n\nto three\n",
    "gaps\n\n\nat the end",
    "control\ncharacter \x0b inside",
    "\nfirst",
    "ünïcode €",
    "http://host:80/path",
    "s3://bucket/key",
    "a b c",
    "100m",
    "16Gi",
    "nvidia.com/gpu",
    "=",
    "<<",
    "?x",
    "x?",
    ".inf",
    "-.inf",
    ".nan",
    "y",
    "n",
]


def _value(rng: random.Random, depth: int) -> object:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice(
            [
                rng.choice(TRICKY),
                rng.randint(-(10**12), 10**12),
                rng.random() * 10 ** rng.randint(-8, 8),
                True,
                False,
                None,
                "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12))),
            ]
        )
    if roll < 0.75:
        return {
            rng.choice(TRICKY) + str(i): _value(rng, depth + 1) for i in range(rng.randint(0, 4))
        }
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


@pytest.mark.parametrize("seed", range(300))
def test_random_documents_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    document = {f"k{i}": _value(rng, 0) for i in range(rng.randint(1, 5))}
    text = to_yaml(document)
    assert YAML(typ="safe", pure=True).load(text) == document
    assert text.endswith("\n") and "\r" not in text.replace("\\r", "")


def test_tricky_strings_are_quoted_and_read_back() -> None:
    document = {"values": TRICKY}
    assert YAML(typ="safe", pure=True).load(to_yaml(document)) == document


def test_yaml_1_1_booleans_are_quoted() -> None:
    text = to_yaml({"a": "yes", "b": "on", "c": "y"})
    assert text == 'a: "yes"\nb: "on"\nc: "y"\n'


def test_floats_never_use_exponents() -> None:
    assert to_yaml({"x": 1e-05, "z": 1e20}) == "x: 0.00001\nz: 100000000000000000000.0\n"


def test_multiline_strings_are_block_literals() -> None:
    assert to_yaml({"c": "a\nb\n"}) == "c: |\n  a\n  b\n"


def test_empty_lines_of_a_block_carry_no_indent() -> None:
    text = to_yaml({"c": {"d": "a\n\nb\n\n\n\nc\n"}})
    assert text == "c:\n  d: |\n    a\n\n    b\n\n\n\n    c\n"


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError):
        to_yaml({1: "x"})  # type: ignore[dict-item]


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError):
        to_yaml({"x": float("nan")})
