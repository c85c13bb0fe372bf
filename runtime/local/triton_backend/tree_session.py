"""A tree model (xgboost or lightgbm) behind the small part of onnxruntime's session API
the adapter uses, so that model.py serves it exactly as it serves an ONNX model.

Copied beside model.py with `tree_predict.py` (runtime/contract), which holds what FIL
answers; it imports nothing from Kiln.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tree_predict import TreePredictor

FIL_INPUT = "input__0"  # the names the FIL backend gives its one input and output
FIL_OUTPUT = "output__0"


@dataclass(frozen=True)
class Node:
    """What onnxruntime's NodeArg tells the adapter: name, type and shape."""

    name: str
    type: str
    shape: list[Any]


class TreeSession:
    def __init__(self, path: str, parameters: dict[str, str]) -> None:
        self.predictor = TreePredictor(path, parameters)

    def get_inputs(self) -> list[Node]:
        return [Node(FIL_INPUT, "tensor(float)", [None, self.predictor.width])]

    def get_outputs(self) -> list[Node]:
        return [Node(FIL_OUTPUT, "tensor(float)", [None, None])]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        answer = self.predictor.predict(feed[FIL_INPUT])
        return [answer for _ in names]
