"""Triton python-backend adapter: serve an ONNX model with onnxruntime, a tree model
(xgboost, lightgbm) with its own library as Triton's FIL backend would (tree_predict.py,
runtime/contract, copied beside this file), or a TorchScript model with torch as the
libtorch backend would (torch_session.py).

Kiln's `local` environment runs a CPU-only Triton (from the `nvidia-pytriton`
wheel) that has no onnxruntime backend, only the python backend. This file is
copied next to `model.onnx` in every version folder and makes the python
backend behave like the onnxruntime backend of the cluster:

* one onnxruntime call per batch Triton hands over: with dynamic batching,
  `execute` receives several requests; their inputs are concatenated on the
  batch dimension, run once, and the outputs are split back per request;
* string tensors arrive as object arrays of bytes and are decoded for
  onnxruntime, and string outputs are encoded back to bytes;
* outputs are cast and reshaped to what `config.pbtxt` declares, and refused
  with a precise error when they cannot be, because the python backend itself
  never compares the configuration with what the model returns;
* when config.pbtxt carries a capture configuration (`serving.capture`), every
  sampled request's inputs and outputs go to the capture writer (beside this file,
  see docs/capture.md), which writes them to the data store off the request path.

It runs inside Triton's python stub, in the backend environment Kiln prepares
(numpy < 2, onnxruntime), so it imports nothing from Kiln.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

# The capture writer, the tree helpers and the contracts they follow are copied beside
# this file; the stub does not put this folder on the import path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:  # in Kiln's own Python (the adapter's unit tests)
    from runtime.contract import capture as capture_contract
    from runtime.serving.capture_writer import CaptureWriter, RequestIds, triton_writer
except ImportError:  # in Triton's python stub
    import capture as capture_contract  # type: ignore[import-not-found,no-redef]
    from capture_writer import (  # type: ignore[import-not-found,no-redef]
        CaptureWriter,
        RequestIds,
        triton_writer,
    )

# Intra-op threads per model instance. Parallelism comes from instance_group
# count; one thread also keeps results bit-identical with a 1-thread session.
THREADS_ENV = "KILN_ORT_THREADS"
# runtime/contract/formats.py: LOCAL_FORMAT_PARAMETER, LOCAL_FILE_PARAMETER (this file
# imports nothing from Kiln; a test checks the names agree).
FORMAT_PARAMETER = "kiln_format"
FILE_PARAMETER = "kiln_model_file"
TREE_FORMATS = ("xgboost", "lightgbm")
TORCH_FORMAT = "torchscript"  # run with torch by torch_session.py

NUMPY_TYPES: dict[str, Any] = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}


class AdapterError(Exception):
    """A request or model output that does not fit the configuration."""


def _decode(array: np.ndarray) -> np.ndarray:
    """Triton's BYTES elements -> str, which is what onnxruntime takes."""
    flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape)


def _encode(array: np.ndarray) -> np.ndarray:
    flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape)


class OutputSpec:
    """What config.pbtxt declares for one output, batch dimension excluded."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.data_type: str = config["data_type"]
        self.dtype = NUMPY_TYPES[self.data_type]
        reshape = config.get("reshape")
        # With `reshape`, the model produces the reshape shape and Triton reports dims.
        shape = reshape.get("shape", []) if reshape is not None else config["dims"]
        self.shape = tuple(int(d) for d in shape)

    def fit(self, value: np.ndarray, batched: bool) -> np.ndarray:
        """The onnxruntime output cast and shaped as declared, or AdapterError."""
        if self.dtype is np.object_:
            if value.dtype != object and value.dtype.kind not in "US":
                raise AdapterError(
                    f"output `{self.name}` is {value.dtype} but config.pbtxt declares TYPE_STRING"
                )
            value = _encode(value)
        elif value.dtype != self.dtype:
            if value.dtype == object or not np.can_cast(value.dtype, self.dtype, "same_kind"):
                raise AdapterError(
                    f"output `{self.name}` is {value.dtype} but config.pbtxt declares "
                    f"{self.data_type}"
                )
            value = value.astype(self.dtype)
        want = ((value.shape[0],) if batched else ()) + self.shape
        if value.ndim == len(want) and all(
            w in (-1, v) for w, v in zip(want, value.shape, strict=True)
        ):
            return value
        if -1 not in want and value.size == int(np.prod(want)):
            return value.reshape(want)  # the same values, e.g. [n] declared as [n, 1]
        raise AdapterError(
            f"output `{self.name}` has shape {list(value.shape)} but config.pbtxt declares "
            f"{list(want)} (batch dimension included)"
        )


def _open(folder: str, config: dict[str, Any]) -> Any:
    """The model as an onnxruntime session, or a tree model behind the same API: the
    compiler names a non-ONNX format and its file in the config's parameters."""
    parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
    model_format = parameters.get(FORMAT_PARAMETER, "onnx")
    if model_format in TREE_FORMATS:
        # Beside this file, whose folder is on the import path already (at the top).
        from tree_predict import TreePredictor

        return TreePredictor(os.path.join(folder, parameters[FILE_PARAMETER]), parameters)
    threads = int(os.environ.get(THREADS_ENV, "1"))
    if model_format == TORCH_FORMAT:
        from torch_session import TorchSession  # beside this file, as tree_predict is

        return TorchSession(os.path.join(folder, parameters[FILE_PARAMETER]), config, threads)
    if model_format != "onnx":
        raise RuntimeError(f"the adapter does not serve {model_format} models")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


class TritonPythonModel:
    """The python backend's entry point: one object per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        major = int(np.__version__.split(".")[0])
        if major >= 2:
            # The python backend silently corrupts input tensors with numpy 2: fail loudly.
            raise RuntimeError(
                f"numpy {np.__version__} in the python backend environment; it needs numpy < 2 "
                "(numpy 2 corrupts input tensors there). Use the environment `kiln serve` builds."
            )
        config = json.loads(args["model_config"])
        self.name = config["name"]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.session = _open(folder, config)
        self.inputs = [(i.name, i.type, i.shape) for i in self.session.get_inputs()]
        self.input_types = {i["name"]: i["data_type"] for i in config.get("input", [])}
        self.outputs = [OutputSpec(o) for o in config.get("output", [])]
        produced = {o.name for o in self.session.get_outputs()}
        missing = [o.name for o in self.outputs if o.name not in produced]
        if missing:
            raise RuntimeError(
                f"config.pbtxt declares outputs {missing} that the model does not produce "
                f"(it produces {sorted(produced)})"
            )
        self.capture = self._capture_writer(config, int(args["model_version"]))
        # Triton runs each warm-up sample on each instance after initialize and before
        # the model is ready, as `batch_size` requests of one row (measured on 2.51):
        # they are no one's traffic and are not captured.
        self.request_ids = RequestIds()
        self.warmup_left = sum(
            max(1, int(w.get("batch_size", 1))) * max(1, int(w.get("count", 1)))
            for w in config.get("model_warmup", [])
        )

    def _capture_writer(self, config: dict[str, Any], version: int) -> CaptureWriter | None:
        parameter = config.get("parameters", {}).get(capture_contract.PARAMETER)
        if parameter is None:
            return None
        settings = capture_contract.CaptureConfig.from_json(parameter["string_value"])
        made = triton_writer(pb_utils, settings, version, self.name)
        if made is None:
            return None
        writer, self._metrics = made  # dropped with them, they leave Triton
        return writer

    def _feed(self, requests: list[Any]) -> tuple[dict[str, np.ndarray], list[int]]:
        columns: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in self.inputs}
        sizes: list[int] = []
        for request in requests:
            size = None
            for name, onnx_type, onnx_shape in self.inputs:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is None:
                    raise AdapterError(f"input `{name}` is missing from the request")
                array = tensor.as_numpy()
                if onnx_type == "tensor(string)":
                    array = _decode(array)
                if self.batched:
                    rows = array.shape[0] if array.ndim else 1
                    if size is not None and rows != size:
                        raise AdapterError(
                            f"input `{name}` has {rows} rows, other inputs have {size}"
                        )
                    size = rows
                    if len(onnx_shape) != array.ndim:
                        static = [d if isinstance(d, int) else -1 for d in onnx_shape[1:]]
                        array = array.reshape([rows, *static])
                columns[name].append(array)
            sizes.append(size or 0)
        if self.batched:
            feed = {n: p[0] if len(p) == 1 else np.concatenate(p) for n, p in columns.items()}
        else:
            feed = {n: p[0] for n, p in columns.items()}
        return feed, sizes

    def _run_one(self, requests: list[Any]) -> list[Any]:
        feed, sizes = self._feed(requests)
        names = [o.name for o in self.outputs]
        values = self.session.run(names, feed)
        shaped = [
            spec.fit(value, self.batched) for spec, value in zip(self.outputs, values, strict=True)
        ]
        responses = []
        start = 0
        for size in sizes:
            if self.batched:
                parts = [v[start : start + size] for v in shaped]
                start += size
            else:
                parts = shaped
            tensors = [
                pb_utils.Tensor(n, np.ascontiguousarray(p))
                for n, p in zip(names, parts, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        if self.capture is not None:
            self._capture(requests, feed, dict(zip(names, shaped, strict=True)), sizes)
        return responses

    def _capture(
        self,
        requests: list[Any],
        feed: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        sizes: list[int],
    ) -> None:
        """Hand the sampled requests of this execution to the writer, as one batch."""
        assert self.capture is not None
        rows = sizes if self.batched else [1] * len(requests)
        skipped = min(self.warmup_left, len(requests))
        self.warmup_left -= skipped
        kept = [i for i in range(skipped, len(requests)) if self.capture.sampled()]
        if not kept:
            return
        if not self.batched:
            feed = {n: v[None] for n, v in feed.items()}
            outputs = {n: v[None] for n, v in outputs.items()}
        if len(kept) == len(requests):
            # Copied: a request's input tensors live in shared memory that Triton reuses
            # once the request is answered.
            inputs = {n: np.array(v) for n, v in feed.items()}
        else:
            starts = np.cumsum([0, *rows[:-1]])
            index = np.concatenate([np.arange(starts[i], starts[i] + rows[i]) for i in kept])
            inputs = {n: v[index] for n, v in feed.items()}  # indexing copies
            outputs = {n: v[index] for n, v in outputs.items()}
        ids = [self.request_ids.of(requests[i]) for i in kept]
        self.capture.offer(ids, [rows[i] for i in kept], inputs, outputs)

    def _message(self, exc: Exception) -> str:
        return f"{self.name}: {exc}" if isinstance(exc, AdapterError) else repr(exc)

    def execute(self, requests: list[Any]) -> list[Any]:
        if len(requests) == 1:
            try:
                return self._run_one(requests)
            except Exception as exc:
                # Raised, not returned: Triton counts a request whose execute raised in
                # nv_inference_request_failure (reason BACKEND), but one answered with an
                # error response as a success (measured on tritonserver 2.51), and the
                # rollout analysis reads that counter.
                raise pb_utils.TritonModelException(self._message(exc)) from exc
        if self.batched:
            try:
                return self._run_one(requests)
            except Exception:  # noqa: S110 answered one by one below, each with its own error
                pass  # one bad request must not fail the others it was batched with
        return [self._answer_alone(request) for request in requests]

    def _answer_alone(self, request: Any) -> Any:
        try:
            return self._run_one([request])[0]
        except Exception as exc:
            # Only an error response keeps the other requests' answers, at the price of
            # Triton counting this one as a success.
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(self._message(exc)))

    def finalize(self) -> None:
        # Triton finalizes on a clean stop (SIGTERM): what is buffered is written now.
        if self.capture is not None:
            self.capture.close()
        self.session = None
