"""Signatures of models that are not ONNX: read from the artifact where it carries one
(SavedModel, XGBoost JSON, LightGBM text), declared where it does not (TorchScript,
TensorRT, python), after checking the file is what its format says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.diagnostics import Path_
from compiler.formats import NotTheFormat, fil, python_model, savedmodel, torchscript, tree_models
from compiler.rules import signature
from compiler.rules.findings import Finding
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec, Version
from runtime.contract import xgboost_file
from runtime.contract.artifact_digest import UnsafeEntry, file_sha256, local_folder_sha256
from runtime.contract.signature import Tensor
from runtime.contract.torch_predict import INDEXED

Signature = tuple[tuple[Tensor, ...], tuple[Tensor, ...]]


def _tf_type(number: int) -> str:
    return f"TensorFlow DataType {number}"


TF_DTYPE_NAMES = {_tf_type(n): dtype for n, dtype in savedmodel.TF_DTYPES.items()}
# Formats whose file names no tensors: the spec declares them.
UNNAMED = ("torchscript", "tensorrt", "python")
# Feature dtypes FIL takes: it reads every column as fp32.
NUMERIC = ("float32", "float64", "int32", "int64", "bool")
UNSAFE_FOLDER = "KILN1725"
_CHECKS = {"torchscript": torchscript.check_torchscript, "python": python_model.check_model_py}


@dataclass(frozen=True)
class _Read:
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...]
    outputs: tuple[tuple[str, str, tuple[int, ...]], ...]


def local_signature(
    spec: ModelSpec, index: int, path: Path, features: FeatureSetSpec
) -> tuple[Signature | None, list[Finding]]:
    """The served tensors of a local artifact that is not ONNX, and what is wrong."""
    version = spec.versions[index]
    at: Path_ = ("spec", "versions", index, "artifact", "uri")
    found = _digest(version, index, path)
    if any(f.code == UNSAFE_FOLDER for f in found):
        return None, found  # nothing is read through a link
    try:
        if version.format == "savedmodel":
            read = savedmodel.read_signature(path)
            model = _Read(_typed(read.inputs), _typed(read.outputs))
            tensors, more = signature.check_against_model(spec, model, at, TF_DTYPE_NAMES)
            return tensors, [*found, *more]
        if version.format in fil.TREE_FORMATS:
            tree = _read_tree(version, path)
            tensors, more = tree_signature(spec, index, tree, features)
            return tensors, [*found, *_misread(version, index, path, tree), *more]
        check = _CHECKS.get(version.format)
        if check is not None:
            check(path)
        if version.format == "torchscript":
            found += forward_findings(spec, torchscript.forward_arguments(path))
    except NotTheFormat as exc:
        # A reader that knows what the file is instead says so whole (XGBoost UBJSON is
        # still an xgboost model, only not the format named).
        what = "" if exc.hint else f" is not a {version.format} model"
        message = f"{version.artifact.uri}{what}: {exc}"
        code = "KILN1754" if version.format == "python" else "KILN1753"
        hint = exc.hint or _HINTS[version.format]
        return None, [*found, Finding(at, code, message, hint)]
    except OSError as exc:
        return None, [*found, Finding(at, "KILN1702", f"cannot read {version.artifact.uri}: {exc}")]
    tensors, more = declared(spec, index)
    return tensors, [*found, *more]


def forward_findings(spec: ModelSpec, arguments: list[str] | None) -> list[Finding]:
    """libtorch binds inputs named after forward()'s arguments by name: each must be one,
    and each argument needs an input (names all `<name>__<index>` bind by position)."""
    if arguments is None or spec.signature is None:
        return []
    names = [t.name for t in spec.signature.inputs]
    shown = f"forward({', '.join(arguments)})"
    if all(INDEXED.match(name) for name in names):
        if len(names) == len(arguments):
            return []
        message = f"the model's {shown} takes {len(arguments)} inputs; {len(names)} are declared"
        hint = "declare one input per argument of forward()"
        return [Finding(("spec", "signature", "inputs"), "KILN1720", message, hint)]
    found = [
        Finding(
            ("spec", "signature", "inputs", i, "name"),
            "KILN1720",
            f"input `{name}` is not an argument of the model's {shown}",
            "name each input after the forward() argument it feeds: libtorch binds by name",
        )
        for i, name in enumerate(names)
        if name not in arguments
    ]
    missing = [a for a in arguments if a not in names]
    if missing and not found:
        found.append(
            Finding(
                ("spec", "signature", "inputs"),
                "KILN1720",
                f"the model's {shown} also takes {', '.join(missing)}, which "
                "spec.signature does not declare",
                "declare an input for every argument of forward()",
            )
        )
    return found


_HINTS = {
    "savedmodel": "point artifact.uri at the folder tf.saved_model.save wrote",
    "xgboost": "save with booster.save_model('xgboost.json'), or set fil.model_type",
    "lightgbm": "save with booster.save_model('model.txt')",
    "torchscript": "save with torch.jit.save(torch.jit.script(model), 'model.pt')",
    "python": "define class TritonPythonModel with execute(self, requests) in model.py",
}


def declared(spec: ModelSpec, index: int) -> tuple[Signature | None, list[Finding]]:
    """A format whose file names no tensors: the spec must declare them."""
    tensors = signature.declared_signature(spec)
    if tensors is not None:
        return tensors, []
    version = spec.versions[index]
    return None, [
        Finding(
            ("spec", "versions", index, "format"),
            "KILN1755",
            f"a {version.format} model does not name its inputs and outputs, so "
            "spec.signature is required",
            "declare spec.signature with the inputs and outputs the model takes and returns",
        )
    ]


def _typed(
    tensors: tuple[tuple[str, int, tuple[int, ...]], ...],
) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    return tuple((name, _tf_type(dtype), shape) for name, dtype, shape in tensors)


def _digest(version: Version, index: int, path: Path) -> list[Finding]:
    """The declared sha256 of the artifact; of a folder, the folder digest
    (runtime/contract/artifact_digest.py), which covers every file in it. A folder
    whose entries assemble would refuse (a link, a name out of the folder) is refused
    here first, declared digest or not."""
    at: Path_ = ("spec", "versions", index, "artifact")
    try:
        actual = local_folder_sha256(path) if path.is_dir() else file_sha256(path)
    except UnsafeEntry as exc:
        message = f"{version.artifact.uri} cannot be fetched as a folder artifact: {exc}"
        hint = "copy the files themselves into the folder (no links), then update the digest"
        return [Finding((*at, "uri"), UNSAFE_FOLDER, message, hint)]
    if version.artifact.sha256 is None or actual == version.artifact.sha256:
        return []
    message = f"{version.artifact.uri} has sha256 {actual}, declared {version.artifact.sha256}"
    return [Finding((*at, "sha256"), "KILN1703", message)]


def _read_tree(version: Version, path: Path) -> tree_models.TreeModel | None:
    """Feature names and width, from the files whose format documents them."""
    model_type = fil.model_type(version)
    if model_type not in fil.MODEL_TYPES[version.format]:
        return None  # KILN1751 names the model_type that does not fit the format
    if model_type == "xgboost_json":
        return tree_models.read_xgboost_json(path)
    if model_type == "lightgbm":
        return tree_models.read_lightgbm_text(path)
    return None  # binary XGBoost, UBJSON and Treelite checkpoints are not read


# What keeps Kiln's xgboost from reading an XGBoost file right, by Problem.kind.
MISREAD_CODES = {"writer": "KILN1732", "outputs": "KILN1733", "format": "KILN1734"}
MISREAD_HINTS = {
    "writer": "save the model with XGBoost 3 or earlier, as booster.save_model('xgboost.json')",
    "outputs": "train one model per target, or serve an ONNX export",
}


def _misread(
    version: Version, index: int, path: Path, tree: tree_models.TreeModel | None
) -> list[Finding]:
    """An XGBoost file that the local adapter, smoke's reference and the pipeline steps
    (xgboost 2.1) or FIL would read wrong."""
    if version.format != "xgboost":
        return []
    model_type = fil.model_type(version)
    if tree is not None:
        problem = tree.problem
    elif model_type in ("xgboost", "xgboost_ubj"):
        problem = tree_models.xgboost_problem(path, model_type)
    else:
        return []  # a Treelite checkpoint
    if problem is None:
        return []
    at: Path_ = ("spec", "versions", index, "artifact", "uri")
    message = f"{version.artifact.uri}: {problem.message}"
    return [Finding(at, MISREAD_CODES[problem.kind], message, _misread_hint(problem))]


def _misread_hint(problem: xgboost_file.Problem) -> str:
    """For content of another kind, the model_type that reads what the file holds."""
    if not isinstance(problem, tree_models.FormatMismatch):
        return MISREAD_HINTS[problem.kind]
    if problem.reader == "xgboost_json":
        return "set fil.model_type: xgboost_json"
    return f"set fil.model_type: {problem.reader}, or save the model as xgboost.json"


def tree_signature(
    spec: ModelSpec,
    index: int,
    tree: tree_models.TreeModel | None,
    features: FeatureSetSpec,
) -> tuple[Signature | None, list[Finding]]:
    """FIL's one input and output; the model's features checked against the FeatureSet.
    Without a file to read (remote, or a format whose header is not read) the width
    is the declared one, else the FeatureSet's."""
    version = spec.versions[index]
    batching = spec.serving.max_batch_size > 0
    width = tree.width if tree is not None else _declared_width(spec) or len(features.features)
    tensors = fil.signature(width, fil.output_width(spec, version), batching)
    found = _tree_features(spec, index, tree, width, features)
    if spec.signature is not None:
        found += _declared_fil(spec, tensors)
    return tensors, found


def _declared_width(spec: ModelSpec) -> int | None:
    if spec.signature is None or len(spec.signature.inputs) != 1:
        return None
    shape = spec.signature.inputs[0].shape
    return shape[-1] if shape[-1] > 0 else None


def _tree_features(
    spec: ModelSpec,
    index: int,
    tree: tree_models.TreeModel | None,
    width: int,
    features: FeatureSetSpec,
) -> list[Finding]:
    at: Path_ = ("spec", "versions", index, "artifact", "uri")
    dtypes = {f.name: f.dtype for f in features.features}
    if tree is None or tree.features is None:
        text = [n for n, dtype in dtypes.items() if dtype not in NUMERIC]
        if width == len(dtypes) and text:
            message = f"features {', '.join(text)} are strings, and FIL reads only numbers"
            hint = "encode them as numbers in the FeatureSet, or serve an ONNX export"
            return [Finding(("spec", "features"), "KILN1756", message, hint)]
        if width == len(dtypes):
            return []
        message = f"the model reads {width} features; {spec.features} has {len(dtypes)}"
        hint = "train on all the FeatureSet's features, in its order"
        return [Finding(("spec", "features"), "KILN1756", message, hint)]
    found = []
    unknown = [n for n in tree.features if n not in dtypes]
    if unknown:
        message = f"the model's features {', '.join(unknown)} are not in {spec.features}"
        found.append(Finding(at, "KILN1756", message, "train on the FeatureSet's features"))
    text = [n for n in tree.features if dtypes.get(n, "float32") not in NUMERIC]
    if text:
        message = f"features {', '.join(text)} are strings, and FIL reads only numbers"
        hint = "encode them as numbers in the FeatureSet, or serve an ONNX export"
        found.append(Finding(("spec", "features"), "KILN1756", message, hint))
    if not unknown and list(tree.features) != [n for n in dtypes if n in tree.features]:
        message = f"the model takes its features in another order than {spec.features}"
        found.append(Finding(at, "KILN1756", message, "train on the FeatureSet's column order"))
    return found


def _declared_fil(spec: ModelSpec, tensors: Signature) -> list[Finding]:
    """A declared signature of a tree model must be the one FIL serves."""
    if signature.declared_signature(spec) == tensors:
        return []
    shown = "; ".join(
        f"{side} {t.name} {t.dtype} {list(t.shape)}"
        for side, side_tensors in (("input", tensors[0]), ("output", tensors[1]))
        for t in side_tensors
    )
    return [
        Finding(
            ("spec", "signature"),
            "KILN1757",
            f"FIL serves this model as {shown}; the declared signature differs",
            "declare exactly that, or leave spec.signature out for a local model file",
        )
    ]
