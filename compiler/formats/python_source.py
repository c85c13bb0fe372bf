"""Python source that Kiln reads without running it (a python step's model.py, the code
inside a TorchScript archive): how much it parses, and the parser's limits as errors."""

from __future__ import annotations

import ast

from compiler.formats import NotTheFormat

# Python's ast takes about 100 bytes of memory per byte of source (2.5 MB of source
# took 250 MB here), so 1 MiB keeps a parse near 100 MB; a model.py or the code of one
# TorchScript module is a few KB.
SOURCE_MAX = 1024 * 1024


def parse(source: bytes | str, name: str) -> ast.Module:
    """The module's syntax tree; SyntaxError and ValueError as ast.parse raises them.
    Nesting deeper than the parser's stack ends in RecursionError or MemoryError (a
    200,000-deep expression fits in 200 KB): NotTheFormat, saying so."""
    try:
        return ast.parse(source, filename=name)
    except (RecursionError, MemoryError) as exc:
        raise NotTheFormat(f"{name} nests deeper than Python's parser reads") from exc
