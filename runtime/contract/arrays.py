"""dtypes as numpy element types, for the jobs that build or check arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.contract.signature import DTYPES

NUMPY_TYPES: dict[str, Any] = {
    "bool": np.bool_,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "string": np.object_,
}
FLOAT_DTYPES = frozenset({"fp16", "fp32", "fp64"})
INTEGER_DTYPES = frozenset(d for d in DTYPES if d.startswith(("int", "uint")))
