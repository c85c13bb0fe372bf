"""Model signatures: read local ONNX files and check them against the spec.

Triton's python backend never compares its config with the model, and the
onnxruntime backend only does at load time in the cluster. Kiln does it at
compile time, against the declared signature, the FeatureSet and the batching.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from compiler.diagnostics import Path_
from compiler.inert_text import TEMPLATE_SYNTAX
from compiler.rules.findings import Finding
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec
from compiler.spec.model import Signature as DeclaredSignature
from compiler.spec.model import Tensor as DeclaredTensor
from runtime.contract.signature import ONNX_DTYPES, Tensor

FEATURE_TO_KILN = {
    "float32": "fp32",
    "float64": "fp64",
    "int32": "int32",
    "int64": "int64",
    "string": "string",
    "bool": "bool",
}


@dataclass(frozen=True)
class OnnxModel:
    sha256: str
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...]  # name, onnx type, shape
    outputs: tuple[tuple[str, str, tuple[int, ...]], ...]


class UnreadableModel(Exception):
    pass


def _dim(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else -1


@lru_cache(maxsize=256)
def read_onnx(path: Path, mtime_ns: int, size: int) -> OnnxModel:
    """Digest and signature of an ONNX file (cached per path, mtime and size)."""
    import onnxruntime  # heavy: imported only when a local artifact is checked

    raw = path.read_bytes()
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        # onnxruntime prefixes its reason with "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF :".
        reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ", "", first_line)
        raise UnreadableModel(reason or "onnxruntime could not load it") from exc

    def describe(args: list[object]) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
        return tuple(
            (a.name, a.type, tuple(_dim(d) for d in (a.shape or ())))  # type: ignore[attr-defined]
            for a in args
        )

    return OnnxModel(
        hashlib.sha256(raw).hexdigest(),
        describe(session.get_inputs()),
        describe(session.get_outputs()),
    )


def load_onnx(path: Path) -> OnnxModel:
    stat = path.stat()
    return read_onnx(path, stat.st_mtime_ns, stat.st_size)


def _tensors(
    declared: list[DeclaredTensor] | None,
    found: tuple[tuple[str, str, tuple[int, ...]], ...],
    side: str,
    code: str,
    at: tuple[str | int, ...],
    dtypes: Mapping[str, str],
) -> tuple[tuple[Tensor, ...] | None, list[Finding]]:
    """The model file's tensors of one side, compared with the declared ones if any."""
    actual, findings = _servable(found, side, at, dtypes)
    if declared is None:
        return (tuple(actual) if not findings else None), findings
    by_name = {t.name: t for t in actual}
    for i, tensor in enumerate(declared):
        findings += _declared_against_model(tensor, by_name, side, code, (*at, i))
    declared_names = {t.name for t in declared}
    missing = [t.name for t in actual if t.name not in declared_names]
    if missing:
        findings.append(
            Finding(
                at,
                code,
                f"the model has {side}s the signature does not declare: {', '.join(missing)}",
                key=True,
            )
        )
    return tuple(Tensor(t.name, t.dtype, tuple(t.shape)) for t in declared), findings


def _servable(
    found: tuple[tuple[str, str, tuple[int, ...]], ...],
    side: str,
    at: tuple[str | int, ...],
    dtypes: Mapping[str, str],
) -> tuple[list[Tensor], list[Finding]]:
    """The model's tensors in Kiln's dtypes; a type Triton cannot serve is a finding."""
    findings: list[Finding] = []
    actual: list[Tensor] = []
    for name, onnx_type, shape in found:
        dtype = dtypes.get(onnx_type)
        if dtype is None:
            findings.append(
                Finding(
                    at,
                    "KILN1706",
                    f"{side} `{name}` has type {onnx_type}, which Triton cannot serve",
                    "export without sequences or maps (skl2onnx: options zipmap=False)",
                    key=True,
                )
            )
            continue
        if TEMPLATE_SYNTAX.search(name):
            # Names read from the file reach workflow arguments (--signature) as a spec's do;
            # a spec's own text is refused by the same rule (KILN1212, compiler/inert_text.py).
            findings.append(
                Finding(
                    at,
                    "KILN1212",
                    f"the model file's {side} name {name!r} holds template syntax",
                    "rename the tensor when exporting the model, or declare the signature",
                    key=True,
                )
            )
            continue
        actual.append(Tensor(name, dtype, shape))
    return actual, findings


def _declared_against_model(
    tensor: DeclaredTensor,
    by_name: dict[str, Tensor],
    side: str,
    code: str,
    where: tuple[str | int, ...],
) -> list[Finding]:
    """How one declared tensor differs from the model's tensor of that name."""
    model_tensor = by_name.get(tensor.name)
    if model_tensor is None:
        known = ", ".join(sorted(by_name)) or "none"
        message = f"{side} `{tensor.name}` is not in the model; it has {known}"
        return [Finding((*where, "name"), code, message)]
    findings = []
    if tensor.dtype != model_tensor.dtype:
        message = (
            f"{side} `{tensor.name}` is {model_tensor.dtype} in the model, declared {tensor.dtype}"
        )
        findings.append(Finding((*where, "dtype"), code, message))
    if not _shapes_agree(tuple(tensor.shape), model_tensor.shape):
        message = (
            f"{side} `{tensor.name}` has shape {list(model_tensor.shape)} in the model, "
            f"declared {list(tensor.shape)}"
        )
        findings.append(Finding((*where, "shape"), code, message))
    return findings


def _shapes_agree(declared: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    if len(declared) != len(actual):
        return False
    return all(a == -1 or d == a for d, a in zip(declared, actual, strict=True))


def declared_signature(spec: ModelSpec) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]] | None:
    if spec.signature is None:
        return None
    return (
        tuple(Tensor(t.name, t.dtype, tuple(t.shape)) for t in spec.signature.inputs),
        tuple(Tensor(t.name, t.dtype, tuple(t.shape)) for t in spec.signature.outputs),
    )


class ModelTensors(Protocol):
    """What a model file says of its tensors: (name, type as the file writes it, shape)."""

    @property
    def inputs(self) -> tuple[tuple[str, str, tuple[int, ...]], ...]: ...
    @property
    def outputs(self) -> tuple[tuple[str, str, tuple[int, ...]], ...]: ...


def check_against_model(
    spec: ModelSpec,
    model: ModelTensors,
    artifact_at: Path_,
    dtypes: Mapping[str, str] = ONNX_DTYPES,
) -> tuple[tuple[tuple[Tensor, ...], tuple[Tensor, ...]] | None, list[Finding]]:
    """The signature to serve (declared, else read) and how it differs from the file,
    which `artifact_at` (the spec path of its URI) names; `dtypes` maps the file's
    type names to Kiln's."""
    declared = spec.signature
    inputs, found_in = _tensors(
        declared.inputs if declared else None,
        model.inputs,
        "input",
        "KILN1704",
        ("spec", "signature", "inputs"),
        dtypes,
    )
    outputs, found_out = _tensors(
        declared.outputs if declared else None,
        model.outputs,
        "output",
        "KILN1705",
        ("spec", "signature", "outputs"),
        dtypes,
    )
    if declared is None:
        # Without a declared signature, problems in the file belong to the artifact.
        found_in = [_at(f, artifact_at) for f in found_in]
        found_out = [_at(f, artifact_at) for f in found_out]
    if inputs is None or outputs is None:
        return None, [*found_in, *found_out]
    return (inputs, outputs), [*found_in, *found_out]


def check_declared_against_model(
    declared: DeclaredSignature, model: ModelTensors, at: Path_
) -> list[Finding]:
    """A signature declared at `at` (an ensemble step's) against its ONNX file."""
    _, found_in = _tensors(
        declared.inputs, model.inputs, "input", "KILN1704", (*at, "inputs"), ONNX_DTYPES
    )
    _, found_out = _tensors(
        declared.outputs, model.outputs, "output", "KILN1705", (*at, "outputs"), ONNX_DTYPES
    )
    return [*found_in, *found_out]


def _at(finding: Finding, path: Path_) -> Finding:
    return Finding(path, finding.code, finding.message, finding.hint)


def check_batching(
    spec: ModelSpec, inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...]
) -> list[Finding]:
    """With max_batch_size > 0, Triton batches on dimension 0 of every tensor."""
    if spec.serving.max_batch_size == 0:
        return []
    findings: list[Finding] = []
    for side, tensors in (("inputs", inputs), ("outputs", outputs)):
        for i, tensor in enumerate(tensors):
            if tensor.shape[0] != -1:
                at: tuple[str | int, ...] = (
                    ("spec", "signature", side, i, "shape")
                    if spec.signature is not None
                    else ("spec", "serving", "max_batch_size")
                )
                findings.append(
                    Finding(
                        at,
                        "KILN1707",
                        f"`{tensor.name}` has shape {list(tensor.shape)}: with max_batch_size "
                        f"{spec.serving.max_batch_size} its first dimension must be -1",
                        "make dimension 0 variable when exporting, or set max_batch_size: 0",
                    )
                )
    return findings


def check_features(
    spec: ModelSpec, features: FeatureSetSpec, inputs: tuple[Tensor, ...]
) -> list[Finding]:
    """Model inputs are features of the FeatureSet, with the same types."""
    by_name = {f.name: f for f in features.features}
    findings: list[Finding] = []
    for i, tensor in enumerate(inputs):
        declared = spec.signature is not None
        at: tuple[str | int, ...] = ("spec", "signature", "inputs", i)
        feature = by_name.get(tensor.name)
        if feature is None:
            findings.append(
                Finding(
                    (*at, "name") if declared else ("spec", "features"),
                    "KILN1709",
                    f"input `{tensor.name}` is not a feature of {spec.features}",
                    _not_a_feature_hint(spec, tensor.name),
                )
            )
        elif FEATURE_TO_KILN[feature.dtype] != tensor.dtype:
            findings.append(
                Finding(
                    (*at, "dtype") if declared else ("spec", "features"),
                    "KILN1709",
                    f"input `{tensor.name}` is {tensor.dtype}, but feature `{feature.name}` "
                    f"of {spec.features} is {feature.dtype}",
                    _dtype_hint(tensor.dtype, feature.dtype, declared),
                )
            )
    return findings


def _not_a_feature_hint(spec: ModelSpec, name: str) -> str:
    """A TorchScript input is bound to the forward() argument of its name, so the rule
    reaches into the model's code: its arguments must carry the features' names."""
    featureset = spec.features.split("@")[0]
    served = [v.format for v in spec.versions if v.version == spec.serving.version]
    if served == ["torchscript"]:
        return (
            "name forward()'s arguments after the features they take, and each input "
            "after its argument: libtorch binds inputs by name, and `<name>__<index>` "
            f"names (bound by position) are not features of {featureset}"
        )
    return (
        f"add `{name}` to FeatureSet {featureset}, or name the model input after the "
        "feature it takes"
    )


def _dtype_hint(tensor: str, feature: str, declared: bool) -> str:
    """Which side to change: the FeatureSet's dtype is the model's input type, so the
    model (its export, or the signature written for it) follows the FeatureSet, unless the
    FeatureSet is wrong about what the model takes."""
    wanted = FEATURE_TO_KILN[feature]
    model_side = (
        f"declare the input as {wanted} and export the model to take {wanted}"
        if declared
        else f"re-export the model so the input takes {wanted}"
    )
    by_kind = {kiln: name for name, kiln in FEATURE_TO_KILN.items()}
    if tensor not in by_kind:
        return model_side
    return f"{model_side}, or, if the model is right, set the feature's dtype to {by_kind[tensor]}"


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def is_remote(uri: str) -> bool:
    return bool(_SCHEME.match(uri)) and not uri.startswith("file://")


def check_tensor_names(spec: ModelSpec) -> list[Finding]:
    """Each tensor name once across inputs and outputs: Triton keys both by name, so a
    second entry of the same name would be a second input Triton cannot tell apart."""
    if spec.signature is None:
        return []
    found: list[Finding] = []
    first: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        for i, tensor in enumerate(getattr(spec.signature, side)):
            where = f"{side}[{i}]"
            if tensor.name in first:
                found.append(
                    Finding(
                        ("spec", "signature", side, i, "name"),
                        "KILN1710",
                        f"tensor `{tensor.name}` is declared twice: {first[tensor.name]} and "
                        f"{where}",
                        "give every input and output its own name",
                    )
                )
            else:
                first[tensor.name] = where
    return found
