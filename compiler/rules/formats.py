"""Rules of each model format that the spec alone decides: settings that belong to
another format, the FIL backend's parameters, GPU-only formats, and the tensor names
Triton's libtorch backend can bind."""

from __future__ import annotations

from compiler.formats import fil
from compiler.rules.findings import Finding
from compiler.spec.model import ModelSpec
from compiler.spec.project import Environment
from runtime.contract.formats import FORMATS, NOT_SERVED_LOCALLY
from runtime.contract.torch_predict import INDEXED
from runtime.contract.tree_predict import LIBRARIES

# Blocks of a version and the formats they configure.
_BLOCKS = {"fil": fil.TREE_FORMATS, "python": ("python",)}


def check_versions(spec: ModelSpec, environment: Environment) -> list[Finding]:
    found: list[Finding] = []
    for index, version in enumerate(spec.versions):
        at = ("spec", "versions", index)
        for block, formats in _BLOCKS.items():
            if getattr(version, block) is not None and version.format not in formats:
                found.append(
                    Finding(
                        (*at, block),
                        "KILN1750",
                        f"`{block}` configures {' and '.join(formats)} models; version "
                        f"{version.version} is {version.format}",
                        f"remove `{block}`, or set format to {formats[0]}",
                        key=True,
                    )
                )
        if version.format in fil.TREE_FORMATS:
            found += fil.check(spec, index)
        if FORMATS[version.format].gpu_only:
            found += _gpu_only(spec, environment, index)
        elif environment.kind == "local" and version.version == spec.serving.version:
            found += _not_served_locally(spec, index)
    return found


def _not_served_locally(spec: ModelSpec, index: int) -> list[Finding]:
    """A `local` environment is for `kiln serve`: say early when the local Triton cannot
    run the served version (a warning: the config is still compiled and checked)."""
    version = spec.versions[index]
    at = ("spec", "versions", index)
    refused = NOT_SERVED_LOCALLY.get(version.format)
    if refused is not None:
        return [
            Finding(
                (*at, "format"),
                "KILN1780",
                f"version {version.version} is a {version.format} model, which the local "
                f"Triton does not serve ({refused}); `kiln serve` refuses it here",
                "serve it in a cluster environment, or an ONNX export of it locally",
                warning=True,
            )
        ]
    if version.format in fil.TREE_FORMATS and fil.model_type(version) not in LIBRARIES:
        return [
            Finding(
                (*at, "fil", "model_type"),
                "KILN1781",
                f"model_type {fil.model_type(version)} cannot be served by the local Triton, "
                "whose adapter loads the file with xgboost or lightgbm",
                "save the model as XGBoost JSON or UBJSON, or as LightGBM text, for local use",
                warning=True,
            )
        ]
    return []


def _gpu_only(spec: ModelSpec, environment: Environment, index: int) -> list[Finding]:
    """TensorRT plans run on the GPU they were built for: no CPU instance, no local run."""
    version = spec.versions[index]
    if version.version != spec.serving.version:
        return []
    where = "the local environment" if environment.kind == "local" else None
    if where is None and spec.serving.resources.gpus == 0:
        where = "this environment, which gives the pods no GPU (serving.resources.gpus: 0)"
    cpu_groups = [g for g in spec.serving.instance_groups or () if g.kind == "cpu"]
    if where is None and cpu_groups:
        where = "CPU instance groups"
    if where is None:
        return []
    return [
        Finding(
            ("spec", "versions", index, "format"),
            "KILN1752",
            f"version {version.version} is a TensorRT plan, which runs only on GPUs, and is "
            f"served in {where}",
            "serve it with serving.resources.gpus >= 1 and GPU instance groups, in a cluster "
            "environment; elsewhere serve the ONNX export of the model",
        )
    ]


def check_torchscript_names(spec: ModelSpec) -> list[Finding]:
    """Outputs of a served TorchScript model are named `<name>__<index>`, each index once
    from 0; inputs are forward()'s argument names or follow the same convention."""
    served = [v for v in spec.versions if v.version == spec.serving.version]
    if not served or served[0].format != "torchscript" or spec.signature is None:
        return []
    found = []
    indexes: list[int] = []
    for i, tensor in enumerate(spec.signature.outputs):
        match = INDEXED.match(tensor.name)
        if match is None:
            found.append(
                _name_finding(
                    "outputs",
                    i,
                    f"output `{tensor.name}` has no index",
                    f"name it `{tensor.name}__{i}`: libtorch returns outputs by position",
                )
            )
        else:
            indexes.append(int(match.group(1)))
    if not found and sorted(indexes) != list(range(len(indexes))):
        found.append(
            _name_finding(
                "outputs",
                0,
                f"output indexes {sorted(indexes)} are not 0 to {len(indexes) - 1}",
                "number the outputs __0, __1, ... in the order forward() returns them",
            )
        )
    for i, tensor in enumerate(spec.signature.inputs):
        if not tensor.name.isidentifier() and INDEXED.match(tensor.name) is None:
            found.append(
                _name_finding(
                    "inputs",
                    i,
                    f"input `{tensor.name}` is neither a forward() argument nor `<name>__<index>`",
                    "name the input after forward()'s argument",
                )
            )
    return found


def _name_finding(side: str, i: int, message: str, hint: str) -> Finding:
    return Finding(("spec", "signature", side, i, "name"), "KILN1758", message, hint)
