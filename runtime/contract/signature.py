"""A model's signature: the tensors it takes and returns, as `signature.json` holds them.

The compiler writes this document (into the serving ConfigMap and the pipeline's
steps); the pipeline steps and the smoke test read it back with `parse_signature`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

# Element types, in Triton's names without the TYPE_ prefix.
Dtype = Literal[
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "fp16",
    "fp32",
    "fp64",
    "string",
]
DTYPES: tuple[str, ...] = get_args(Dtype)
# onnxruntime's element type strings -> dtypes.
ONNX_DTYPES = {
    "tensor(bool)": "bool",
    **{f"tensor(uint{n})": f"uint{n}" for n in (8, 16, 32, 64)},
    **{f"tensor(int{n})": f"int{n}" for n in (8, 16, 32, 64)},
    "tensor(float16)": "fp16",
    "tensor(float)": "fp32",
    "tensor(double)": "fp64",
    "tensor(string)": "string",
}
# dtypes -> the datatype names of Triton's inference protocol (KServe v2).
PROTOCOL_DATATYPES = {dtype: "BYTES" if dtype == "string" else dtype.upper() for dtype in DTYPES}


class SignatureError(ValueError):
    """A signature document that cannot be read; the message names the tensor."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # one of DTYPES
    shape: tuple[int, ...]  # batch dimension included when batching; -1 is variable


@dataclass(frozen=True)
class Signature:
    model: str
    max_batch_size: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def document(self) -> dict[str, Any]:
        """The JSON document, keys sorted as the compiler writes it."""

        def tensors(side: tuple[Tensor, ...]) -> list[dict[str, Any]]:
            return [{"dtype": t.dtype, "name": t.name, "shape": list(t.shape)} for t in side]

        return {
            "inputs": tensors(self.inputs),
            "max_batch_size": self.max_batch_size,
            "model": self.model,
            "outputs": tensors(self.outputs),
        }


def _tensor(entry: Any, where: str) -> Tensor:
    if not isinstance(entry, Mapping):
        raise SignatureError(f"signature {where}: expected an object with name, dtype, shape")
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    if not isinstance(name, str) or not name:
        raise SignatureError(f"signature {where}: missing name")
    if dtype not in DTYPES:
        known = ", ".join(sorted(DTYPES))
        raise SignatureError(
            f"signature {where} `{name}`: unknown dtype {dtype!r} (known: {known})"
        )
    valid = isinstance(shape, list) and shape and all(type(d) is int for d in shape)
    if not valid or any(d == 0 or d < -1 for d in shape):
        raise SignatureError(f"signature {where} `{name}`: shape must list -1 or positive integers")
    return Tensor(name=name, dtype=dtype, shape=tuple(shape))


def signature_from_document(document: Any) -> Signature:
    """A signature from its parsed JSON document (SignatureError if malformed)."""
    if not isinstance(document, Mapping):
        raise SignatureError("signature must be a JSON object with inputs and outputs")
    tensors: dict[str, tuple[Tensor, ...]] = {}
    for key in ("inputs", "outputs"):
        entries = document.get(key)
        if not isinstance(entries, list) or not entries:
            raise SignatureError(f"signature has no {key}")
        tensors[key] = tuple(_tensor(e, f"{key}[{i}]") for i, e in enumerate(entries))
    max_batch = document.get("max_batch_size", 0)
    if type(max_batch) is not int or max_batch < 0:
        raise SignatureError("signature max_batch_size must be an integer >= 0")
    return Signature(
        str(document.get("model", "")), max_batch, tensors["inputs"], tensors["outputs"]
    )


def parse_signature(text: str) -> Signature:
    """A signature from the text of a signature.json."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SignatureError(f"signature is not JSON: {exc}") from exc
    return signature_from_document(document)
