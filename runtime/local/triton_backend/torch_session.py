"""A TorchScript model behind the small part of onnxruntime's session API the adapter
uses, so that model.py serves it as it serves an ONNX model (batching, output checks,
capture).

TorchScript names no tensors: the names, types and shapes are the ones config.pbtxt
declares, and `torch_predict.py` (runtime/contract, copied beside this file) binds them
to forward() as Triton's libtorch backend does. It imports nothing from Kiln; torch is
imported when the model is opened, in the backend venv that `kiln serve` gives torch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from torch_predict import TorchPredictor


class Node(NamedTuple):
    """What onnxruntime's NodeArg tells the adapter: name, type and shape."""

    name: str
    type: str
    shape: list[Any]


def _nodes(tensors: list[dict[str, Any]], batched: bool) -> list[Node]:
    """The config's tensors as the adapter reads them: the batch dimension first, the
    type as `tensor(<Triton's type>)` (the adapter looks for `tensor(string)` only)."""
    nodes = []
    for tensor in tensors:
        dims = [int(d) for d in tensor.get("dims", [])]  # int64 in JSON is a string
        kind = tensor["data_type"].removeprefix("TYPE_").lower()
        shape = [None, *dims] if batched else dims
        nodes.append(Node(tensor["name"], f"tensor({kind})", shape))
    return nodes


class TorchSession:
    def __init__(self, path: str, config: dict[str, Any], threads: int) -> None:
        batched = int(config.get("max_batch_size", 0)) > 0
        self.inputs = _nodes(config.get("input", []), batched)
        self.outputs = _nodes(config.get("output", []), batched)
        self.predictor = TorchPredictor(
            path, [n.name for n in self.inputs], [n.name for n in self.outputs], threads
        )

    def get_inputs(self) -> list[Node]:
        return self.inputs

    def get_outputs(self) -> list[Node]:
        return self.outputs

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        answers = self.predictor.predict(feed)
        return [answers[name] for name in names]
