"""Tensor names read from a model file reach workflow arguments (`--signature`) as a
spec's own names do, so template syntax in them is refused as it is in a spec."""

from __future__ import annotations

from compiler.rules.signature import _tensors
from runtime.contract.signature import ONNX_DTYPES

FOUND = (
    ("label", "tensor(int64)", (-1,)),
    ("probabilities{{workflow.name}}{out}", "tensor(float)", (-1, 2)),
)


def test_a_file_tensor_name_with_template_syntax_is_refused() -> None:
    tensors, findings = _tensors(None, FOUND, "output", "KILN1705", ("spec",), ONNX_DTYPES)
    assert tensors is None
    (finding,) = findings
    assert finding.code == "KILN1212"
    assert "probabilities{{workflow.name}}{out}" in finding.message


def test_plain_names_from_the_file_are_taken() -> None:
    tensors, findings = _tensors(None, FOUND[:1], "output", "KILN1705", ("spec",), ONNX_DTYPES)
    assert findings == [] and tensors is not None and tensors[0].name == "label"
