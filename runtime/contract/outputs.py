"""Which output tensor of a model holds what: labels, class probabilities or the value.

The evaluate step (metrics) and the batch scorer (prediction columns) both read a
model's answers through this one rule, so they agree on what "the prediction" is.
"""

from __future__ import annotations

from runtime.contract.arrays import FLOAT_DTYPES
from runtime.contract.signature import Signature, SignatureError, Tensor


def per_row_size(tensor: Tensor) -> int:
    """Elements per row (batch dimension excluded); -1 when a dimension is variable."""
    size = 1
    for dim in tensor.shape[1:]:
        if dim == -1:
            return -1
        size *= dim
    return size


def output_roles(signature: Signature, task: str) -> dict[str, Tensor]:
    """{"values"} for regression; {"probabilities", "labels"} (one at least) otherwise.

    Raises SignatureError when the signature has no output that can play the role.
    """
    floats = [t for t in signature.outputs if t.dtype in FLOAT_DTYPES]
    if task == "regression":
        scalars = [t for t in floats if per_row_size(t) == 1]
        if not scalars:
            raise SignatureError("regression needs a float output with one value per row")
        return {"values": scalars[0]}
    roles: dict[str, Tensor] = {}
    probabilities = [t for t in floats if len(t.shape) == 2 and per_row_size(t) != 1]
    if probabilities:
        named = [t for t in probabilities if t.name == "probabilities"]
        roles["probabilities"] = (named or probabilities)[0]
    labels = [t for t in signature.outputs if t.dtype not in FLOAT_DTYPES and per_row_size(t) == 1]
    if labels:
        roles["labels"] = labels[0]
    if not roles:
        raise SignatureError("classification needs a probabilities output or a label output")
    return roles
