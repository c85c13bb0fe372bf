"""A version's format lowered to what config.pbtxt needs of it (`FormatIR`)."""

from __future__ import annotations

from compiler.formats import fil
from compiler.ir import FormatIR
from compiler.spec.model import ModelSpec, Version
from runtime.contract.formats import EXECUTION_ENV_PARAMETER, FORMATS, execution_env_path


def lower_format(spec: ModelSpec, version: Version | None) -> FormatIR:
    """The format of `version` (the served one, or the newest); ONNX without one."""
    if version is None:
        return FormatIR()
    if version.format in fil.TREE_FORMATS:
        return FormatIR(version.format, fil.model_file(version), fil.parameters(version, spec.task))
    parameters: tuple[tuple[str, str], ...] = ()
    if version.python is not None and version.python.execution_env is not None:
        # The assemble step puts the archive where this says (beside model.py).
        parameters = ((EXECUTION_ENV_PARAMETER, execution_env_path(version.version)),)
    return FormatIR(version.format, FORMATS[version.format].model_file, parameters)
