"""The capture step of a served model's ensemble: a Triton python-backend model.

In a cluster the model runs in the onnxruntime (or another) backend, which runs no
Python, so capture is its own step: Triton's ensemble scheduler hands it the request's
inputs and the model's outputs, as tensors, and it gives them to the capture writer
(the same writer the local adapter runs), which writes them to the data store off the
request path. It answers with the model's outputs unchanged, which become the
ensemble's answer (Triton refuses a step without outputs, and a step output nobody
reads); nothing waits on the store.

`python -m runtime.serving.capture_step --install DIR` copies this file, the writer, the
contract and the pyarrow built for Triton's Python (`libraries/`) into DIR, a version
folder; the stub runs it with Triton's own Python, which has numpy but no Kiln.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# The writer, the contract and pyarrow lie beside this file: the stub puts nothing on
# the import path for them. The libraries come first, ahead of anything the image has.
HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARIES = "libraries"  # runtime/serving/capture_step/__init__.py installs it by this name
sys.path[:0] = [os.path.join(HERE, LIBRARIES), HERE]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

try:  # in Kiln's own Python
    from runtime.contract import capture as contract
    from runtime.serving.capture_writer import CaptureWriter, RequestIds, decoded, triton_writer
except ImportError:  # in Triton's python stub, copied beside this file
    import capture as contract  # type: ignore[import-not-found,no-redef]
    from capture_writer import (  # type: ignore[import-not-found,no-redef]
        CaptureWriter,
        RequestIds,
        decoded,
        triton_writer,
    )


class TritonPythonModel:
    """One object per instance of the capture step."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        settings = contract.CaptureConfig.from_json(
            config["parameters"][contract.PARAMETER]["string_value"]
        )
        # The model's inputs are decoded like the adapter's; its outputs stay as they
        # come (the writer decodes a string output itself).
        self.inputs = set(settings.inputs)
        self.names = [tensor["name"] for tensor in config.get("input", [])]
        self.outputs = [tensor["name"] for tensor in config.get("output", [])]
        self.strings = {
            t["name"] for t in config.get("input", []) if t["data_type"] == "TYPE_STRING"
        }
        self.request_ids = RequestIds()
        made = triton_writer(pb_utils, settings, int(args["model_version"]), self.name)
        self.writer: CaptureWriter | None = None
        if made is not None:
            self.writer, self._metrics = made  # held: Triton forgets unheld metric families

    def _array(self, request: Any, name: str) -> np.ndarray:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            raise RuntimeError(f"{self.name}: tensor `{name}` is missing from the request")
        # Copied: input tensors live in shared memory that Triton reuses after the answer.
        array = np.array(tensor.as_numpy())
        if name in self.strings and name in self.inputs:
            array = decoded(array)  # as the local adapter hands its string inputs
        return array if self.batched else array[None]

    def execute(self, requests: list[Any]) -> list[Any]:
        # The answers first: they are the model's, whatever becomes of the capture.
        answers = [self._answer(request) for request in requests]
        if self.writer is not None:
            try:
                self._offer(self.writer, [r for r in requests if self.writer.sampled()])
            except Exception as exc:  # capture must never fail the model's answer
                pb_utils.Logger.log_warn(f"{self.name}: capture: {type(exc).__name__}: {exc}")
        return answers

    def _answer(self, request: Any) -> Any:
        """The model's outputs, passed on unchanged as the ensemble's outputs."""
        tensors = [
            pb_utils.Tensor(name, pb_utils.get_input_tensor_by_name(request, name).as_numpy())
            for name in self.outputs
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _offer(self, writer: CaptureWriter, kept: list[Any]) -> None:
        if not kept:
            return
        arrays = {name: [self._array(r, name) for r in kept] for name in self.names}
        sizes = [len(array) for array in arrays[self.names[0]]]
        joined = {name: np.concatenate(parts) for name, parts in arrays.items()}
        inputs = {name: joined[name] for name in self.inputs}
        outputs = {name: joined[name] for name in self.outputs}
        writer.offer([self.request_ids.of(r) for r in kept], sizes, inputs, outputs)

    def finalize(self) -> None:
        # Triton finalizes on a clean stop (SIGTERM): what is buffered is written now.
        if self.writer is not None:
            self.writer.close()
