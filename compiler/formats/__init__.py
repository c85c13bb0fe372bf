"""Model formats other than ONNX: their Triton settings, their rules, and what Kiln
reads from their files without importing the framework that wrote them.

One module per concern: `config` lowers a version's format to the `FormatIR`
that config.pbtxt renders; `fil` holds the FIL backend's parameters and rules;
`tree_models`, `savedmodel`, `torchscript` and `python_model` read artifacts.
"""


class NotTheFormat(Exception):
    """The file is not what its version's format says; the message says what it is, and
    `hint`, where the reader knows what the file is instead, what to set."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
