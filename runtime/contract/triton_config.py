"""A compiled config.pbtxt read back: the one parse the serving tools use (assemble,
`kiln serve`, smoke, the ensemble reference) and what they read from it.

The text is parsed with Triton's own ModelConfig protobuf, as the server parses it, so
an unknown field or a bad enum value is refused with the server's message. The format
and artifact file come from the same config: `local_run` (formats.py) reads the names
the compiler writes for the local Triton.
"""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from runtime.contract.formats import local_run

ModelConfig = model_config_pb2.ModelConfig


class ConfigError(ValueError):
    """The text is not a Triton model configuration; the message is the parser's."""


def read_config(text: str) -> ModelConfig:
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(str(exc)) from exc
    return config


def parameters(config: ModelConfig) -> dict[str, str]:
    """The config's `parameters` as plain text values."""
    return {key: value.string_value for key, value in config.parameters.items()}


def served_format(config: ModelConfig) -> tuple[str, str]:
    """(format, artifact file) a compiled config serves: the local Triton's names, or a
    cluster config's own file (formats.local_run)."""
    return local_run(parameters(config), config.default_model_filename)
