"""Writes the model files of the formats tests (run by hand; the files are committed).

Needs a scratch environment with xgboost, lightgbm and tensorboard:
    python -m venv /tmp/gen && /tmp/gen/bin/pip install xgboost lightgbm tensorboard
    /tmp/gen/bin/python tests/formats/make_artifacts.py

- XGBoost and LightGBM models are trained by the real libraries on four features.
- The SavedModel's MetaGraphDef is built with TensorFlow's own generated messages
  (tensorboard ships copies: tensorboard.compat.proto.meta_graph_pb2), so the reader's
  hand-declared field numbers are checked against TensorFlow's. The SavedModel wrapper
  (field 1: schema version, field 2: meta graphs) is written on the wire here because
  tensorboard does not ship saved_model_pb2. No TensorFlow is installed.
- The TorchScript archives follow the layout torch.jit.save writes (a zip with one top
  folder holding data.pkl, constants.pkl, code/ and version); torch is not installed,
  so their pickles are placeholders: Kiln checks the layout, never unpickles.

Zip entries carry the time they were written: after regenerating, refresh the
sha256 the error cases declare (`sha256sum`), then the golden and error trees.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import lightgbm
import numpy as np
import xgboost
from tensorboard.compat.proto import meta_graph_pb2, types_pb2

TESTS = Path(__file__).resolve().parents[1]
GOLDEN = TESTS / "golden" / "formats" / "specs" / "artifacts" / "models"
ARTIFACTS = TESTS / "formats" / "artifacts"  # files only the unit tests read
CASES = TESTS / "errors" / "cases"
FEATURES = ["age", "income", "debt_ratio", "tenure"]


def _data(rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(7)
    x = generator.normal(size=(rows, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.int32)
    return x, y


def xgboost_json(path: Path, names: list[str] | None) -> None:
    x, y = _data()
    matrix = xgboost.DMatrix(x, label=y, feature_names=names)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, matrix, 5)
    booster.save_model(path)


def lightgbm_text(path: Path, names: list[str]) -> None:
    x, y = _data()
    data = lightgbm.Dataset(x, label=x[:, 0] * 2 + y, feature_name=names)
    booster = lightgbm.train({"objective": "regression", "verbose": -1, "num_leaves": 7}, data, 5)
    booster.save_model(path)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def savedmodel(folder: Path) -> None:
    graph = meta_graph_pb2.MetaGraphDef()
    graph.meta_info_def.tags.append("serve")
    graph.meta_info_def.tensorflow_version = "2.16.1"
    graph.graph_def.node.add(name="features", op="Placeholder")
    signature = graph.signature_def["serving_default"]
    signature.method_name = "tensorflow/serving/predict"
    for name in FEATURES:
        info = signature.inputs[name]
        info.name = f"serving_default_{name}:0"
        info.dtype = types_pb2.DT_FLOAT
        info.tensor_shape.dim.add(size=-1)
        info.tensor_shape.dim.add(size=1)
    score = signature.outputs["score"]
    score.name = "StatefulPartitionedCall:0"
    score.dtype = types_pb2.DT_FLOAT
    score.tensor_shape.dim.add(size=-1)
    score.tensor_shape.dim.add(size=1)
    graph.signature_def["__saved_model_init_op"].outputs["__saved_model_init_op"].name = "NoOp"
    body = graph.SerializeToString()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "variables").mkdir(exist_ok=True)
    wire = b"\x08" + _varint(1) + b"\x12" + _varint(len(body)) + body
    (folder / "saved_model.pb").write_bytes(wire)


def torchscript(path: Path, scripted: bool) -> None:
    """A zip laid out as torch.jit.save writes it; `scripted=False`: torch.save's."""
    top = path.stem
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/data.pkl", pickle.dumps({"placeholder": True}, protocol=2))
        archive.writestr(f"{top}/version", "3\n")
        if scripted:
            archive.writestr(f"{top}/constants.pkl", pickle.dumps((), protocol=2))
            archive.writestr(
                f"{top}/code/__torch__.py",
                "class Model(Module):\n"
                "  def forward(self, age: Tensor) -> Tensor:\n"
                "    return age\n",
            )


def _at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    xgboost_json(_at(GOLDEN / "default-xgb" / "1" / "xgboost.json"), FEATURES)
    lightgbm_text(_at(GOLDEN / "income-lgbm" / "1" / "model.txt"), FEATURES)
    savedmodel(GOLDEN / "default-tf" / "1" / "model.savedmodel")
    torchscript(_at(GOLDEN / "default-torch" / "1" / "model.pt"), scripted=True)
    xgboost_json(_at(ARTIFACTS / "xgboost-unnamed.json"), None)
    lightgbm_text(_at(ARTIFACTS / "lightgbm-other-names.txt"), ["a", "b", "c", "d"])
    torchscript(_at(ARTIFACTS / "checkpoint.pt"), scripted=False)
    _at(ARTIFACTS / "legacy.pt").write_bytes(pickle.dumps({"weights": [1.0]}, protocol=2))
    # Error cases: a model on the applicant FeatureSet (strings among its features).
    base = "specs/artifacts/models/car-loan-default/2"
    xgboost_json(_at(CASES / "format-tree-features-differ" / base / "xgboost.json"), FEATURES)
    torchscript(_at(CASES / "format-torchscript-not-torchscript" / base / "model.pt"), False)
    for case in ("format-torchscript-output-names", "format-torchscript-features-differ"):
        torchscript(_at(CASES / case / base / "model.pt"), True)
    xgboost_json(_at(CASES / "format-fil-signature-differs" / base / "xgboost.json"), None)
    savedmodel(CASES / "format-savedmodel-signature-differs" / base / "model.savedmodel")


if __name__ == "__main__":
    main()
