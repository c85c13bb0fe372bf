"""runtime/contract: the definitions the compiler renders against and the jobs parse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.contract import vocabulary
from runtime.contract.arrays import FLOAT_DTYPES, INTEGER_DTYPES, NUMPY_TYPES
from runtime.contract.durations import duration_seconds, is_duration
from runtime.contract.signature import (
    DTYPES,
    ONNX_DTYPES,
    PROTOCOL_DATATYPES,
    Signature,
    SignatureError,
    Tensor,
    parse_signature,
    signature_from_document,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("7d", 604800), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert is_duration(text)
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "7 days", "1.5h", "-1s", "1w", "10m ", "s"])
def test_text_outside_the_grammar_is_refused(text: str) -> None:
    assert not is_duration(text)
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(text)


def test_every_dtype_has_a_numpy_type_an_onnx_type_and_a_protocol_name() -> None:
    assert tuple(NUMPY_TYPES) == DTYPES
    assert set(ONNX_DTYPES.values()) == set(DTYPES)
    assert set(PROTOCOL_DATATYPES) == set(DTYPES)
    assert PROTOCOL_DATATYPES["string"] == "BYTES" and PROTOCOL_DATATYPES["fp32"] == "FP32"
    assert FLOAT_DTYPES | INTEGER_DTYPES | {"bool", "string"} == set(DTYPES)
    assert NUMPY_TYPES["fp16"] is np.float16


def test_vocabulary_is_consistent() -> None:
    assert set(vocabulary.CBPE_METRICS) <= set(vocabulary.CLASSIFICATION_METRICS)
    assert set(vocabulary.DLE_METRICS) <= set(vocabulary.REGRESSION_METRICS)
    assert vocabulary.task_metrics("regression") == vocabulary.REGRESSION_METRICS
    assert vocabulary.task_metrics("multiclass_classification") == (
        vocabulary.CLASSIFICATION_METRICS
    )
    assert "r2" in vocabulary.HIGHER_IS_BETTER and "mae" not in vocabulary.HIGHER_IS_BETTER


def test_a_signature_round_trips_through_its_document() -> None:
    signature = Signature(
        "m",
        64,
        (Tensor("x", "fp32", (-1, 3)), Tensor("c", "string", (-1, 1))),
        (Tensor("p", "fp32", (-1, 2)),),
    )
    document = signature.document()
    assert list(document) == sorted(document)
    assert parse_signature(json.dumps(document)) == signature
    assert signature.batched and not Signature("m", 0, (), ()).batched


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"outputs": [{"name": "p", "dtype": "fp32", "shape": [1]}]}, "no inputs"),
        ({"inputs": [{"name": "x", "dtype": "float", "shape": [1]}]}, "unknown dtype 'float'"),
        ({"inputs": [{"name": "x", "dtype": "fp32", "shape": [0]}]}, "shape must list"),
        ({"inputs": [{"name": "x", "dtype": "fp32", "shape": [True]}]}, "shape must list"),
        ({"inputs": [{"dtype": "fp32", "shape": [1]}]}, "missing name"),
    ],
)
def test_a_malformed_signature_names_the_problem(document: object, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        signature_from_document(document)


def test_a_signature_that_is_not_json_is_refused() -> None:
    with pytest.raises(SignatureError, match="not JSON"):
        parse_signature("{inputs")
