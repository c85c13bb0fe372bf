"""Model formats: how Triton runs each, and the file name it looks for in a version folder.

The compiler renders these into `config.pbtxt` (`platform` or `backend`, and
`default_model_filename`); the assemble step reads the file name back from that
config, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# FIL's tensor names, defined with what FIL answers (tree_predict.py, which the local
# Triton's adapter copies and so cannot import this module).
from runtime.contract.tree_predict import FIL_INPUT as FIL_INPUT
from runtime.contract.tree_predict import FIL_OUTPUT as FIL_OUTPUT

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
    # How the local Triton (python backend only) runs it: "adapter" (Kiln's python-backend
    # adapter calls the format's own library), "native" (the file is a python-backend
    # model itself) or "" (not served locally; NOT_SERVED_LOCALLY says why).
    local: str = "adapter"
    folder: bool = False  # the artifact is a folder of files, fetched whole


FORMATS: dict[str, ModelFormat] = {
    "onnx": ModelFormat("onnxruntime_onnx", "", "model.onnx"),
    # Locally the adapter runs it with torch, from the optional `torch` extra.
    "torchscript": ModelFormat("pytorch_libtorch", "", "model.pt"),
    # A SavedModel is a folder (saved_model.pb and variables/).
    "savedmodel": ModelFormat(
        "tensorflow_savedmodel", "", "model.savedmodel", local="", folder=True
    ),
    "xgboost": ModelFormat("", "fil", "xgboost.json"),
    "lightgbm": ModelFormat("", "fil", "model.txt"),
    "tensorrt": ModelFormat("tensorrt_plan", "", "model.plan", gpu_only=True, local=""),
    "python": ModelFormat("", "python", "model.py", local="native"),
}

# Why a format is not served by the local Triton (figures in docs/serving.md).
NOT_SERVED_LOCALLY = {
    "savedmodel": "tensorflow-cpu 2.21 installs 33 packages, 1.6 GB, each of which the "
    "backend environment would have to pin by digest",
    "tensorrt": "TensorRT runs on NVIDIA GPUs only",
}

# The local config names the adapter's format and the artifact's file in these
# parameters: with the python backend, `default_model_filename` is the adapter itself.
LOCAL_FORMAT_PARAMETER = "kiln_format"
LOCAL_FILE_PARAMETER = "kiln_model_file"
# An ONNX model's local config names neither (they predate the other formats).
ONNX_FILE = "model.onnx"

# The python backend's parameter naming a model's Python environment, and where the
# assemble step puts a version's conda-pack archive: beside its model.py. Triton replaces
# $$TRITON_MODEL_DIRECTORY with the model's folder when it loads the model.
EXECUTION_ENV_PARAMETER = "EXECUTION_ENV_PATH"
EXECUTION_ENV_FILE = "python-env.tar.gz"
MODEL_DIRECTORY = "$$TRITON_MODEL_DIRECTORY"


def execution_env_path(version: int) -> str:
    """EXECUTION_ENV_PATH as config.pbtxt holds it for the served `version`."""
    return f"{MODEL_DIRECTORY}/{version}/{EXECUTION_ENV_FILE}"


def execution_env_place(parameter: str) -> tuple[int, str] | None:
    """(version, file name) a config's EXECUTION_ENV_PATH points at, inside the model
    folder; None when it is not a path `execution_env_path` writes."""
    prefix = f"{MODEL_DIRECTORY}/"
    version, _, name = parameter.removeprefix(prefix).partition("/")
    if not parameter.startswith(prefix) or not version.isdigit() or name != EXECUTION_ENV_FILE:
        return None
    return int(version), name


def is_folder(model_file: str) -> bool:
    """Whether a version folder's `model_file` (a config's default_model_filename) is a
    folder artifact."""
    return any(f.folder and f.model_file == model_file for f in FORMATS.values())


# The file name the FIL backend expects per model type (fil_backend docs/model_config.md).
FIL_MODEL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}


def local_run(parameters: dict[str, str], default_model_filename: str) -> tuple[str, str]:
    """(format, artifact file) of a config the compiler rendered for the local Triton,
    read back from it by the serving tools; a cluster config gives its own format's file."""
    if LOCAL_FORMAT_PARAMETER in parameters:
        return parameters[LOCAL_FORMAT_PARAMETER], parameters[LOCAL_FILE_PARAMETER]
    if default_model_filename == FORMATS["python"].model_file:
        return "python", default_model_filename
    return "onnx", default_model_filename or ONNX_FILE
