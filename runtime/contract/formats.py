"""Model formats: how Triton runs each, and the file name it looks for in a version folder.

The compiler renders these into `config.pbtxt` (`platform` or `backend`, and
`default_model_filename`); the assemble step reads the file name back from that
config, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

FormatName = Literal[
    "onnx", "torchscript", "savedmodel", "xgboost", "lightgbm", "tensorrt", "python"
]
FORMAT_NAMES: tuple[str, ...] = get_args(FormatName)


@dataclass(frozen=True)
class ModelFormat:
    platform: str  # Triton's `platform`, empty where the format names a backend
    backend: str  # Triton's `backend`, empty where the format names a platform
    model_file: str  # the file (or folder) Triton loads from a version folder
    gpu_only: bool = False  # Triton has no CPU path for it


FORMATS: dict[str, ModelFormat] = {
    "onnx": ModelFormat("onnxruntime_onnx", "", "model.onnx"),
    "torchscript": ModelFormat("pytorch_libtorch", "", "model.pt"),
    # A SavedModel is a folder (saved_model.pb and variables/).
    "savedmodel": ModelFormat("tensorflow_savedmodel", "", "model.savedmodel"),
    "xgboost": ModelFormat("", "fil", "xgboost.json"),
    "lightgbm": ModelFormat("", "fil", "model.txt"),
    "tensorrt": ModelFormat("tensorrt_plan", "", "model.plan", gpu_only=True),
    "python": ModelFormat("", "python", "model.py"),
}

# The file name the FIL backend expects per model type (fil_backend docs/model_config.md).
FIL_MODEL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
# The FIL backend names its one input and one output so (fil_backend docs/model_config.md).
FIL_INPUT = "input__0"
FIL_OUTPUT = "output__0"
