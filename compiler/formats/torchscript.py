"""Whether a file is a TorchScript archive, told from its layout, without torch, and
the argument names of its forward(), read from the code it carries.

`torch.jit.save` writes a zip archive with one top folder holding `data.pkl`,
`constants.pkl` and the compiled code under `code/`. `torch.save` writes either a
plain pickle (the legacy format) or a zip with `data.pkl` and no `code/`: a checkpoint
of weights that Triton's libtorch backend cannot load.
"""

from __future__ import annotations

import ast
import lzma
import pickletools
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compiler.formats import NotTheFormat
from compiler.formats.python_source import SOURCE_MAX, parse

PICKLE_PROTOCOL_2 = b"\x80"  # how a pickle of protocol 2 and above begins
# data.pkl names the root module's class in its first opcodes (byte 2 in the example
# platform's archive); the rest, the module tree, can be large and is never needed.
PICKLE_HEAD = 64 * 1024
# What a damaged archive raises while an entry is read: a bad CRC or header
# (BadZipFile), a corrupt deflate or lzma stream, a stream cut short, a compression
# method zipfile lacks (NotImplementedError) or an encrypted entry (RuntimeError).
_DAMAGED = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    RuntimeError,
)


def check_torchscript(path: Path) -> None:
    """Raises NotTheFormat saying what the file is, when it is not TorchScript."""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            start = file.read(1)
        if start == PICKLE_PROTOCOL_2:
            raise NotTheFormat(
                "it is a plain pickle (torch.save of the legacy format), not TorchScript"
            )
        raise NotTheFormat("it is not a zip archive, so not TorchScript")
    with _opened(path) as archive:
        names = archive.namelist()
    # Entries sit under one top folder named after the archive.
    parts = [name.split("/", 1)[1] for name in names if "/" in name]
    if "data.pkl" not in parts:
        raise NotTheFormat("the zip archive has no data.pkl, so it is not a PyTorch file")
    if not any(part.startswith("code/") for part in parts) or "constants.pkl" not in parts:
        raise NotTheFormat(
            "it is a torch.save checkpoint (data.pkl, no code/ or constants.pkl), not TorchScript"
        )


def forward_arguments(path: Path) -> list[str] | None:
    """The argument names of the root module's forward() (self left out), read from the
    archive's TorchScript code without torch and without unpickling; None where the
    archive does not say (then libtorch's binding is checked only when it loads)."""
    with _opened(path) as archive:
        names = archive.namelist()
        top = names[0].split("/", 1)[0] if names else ""
        pickled = f"{top}/data.pkl"
        root = _root_class(_head(archive, pickled)) if pickled in names else None
        if root is None:
            return None
        module, _, cls = root.rpartition(".")
        code = f"{top}/code/{module.replace('.', '/')}.py"
        if code not in names:
            return None
        source = _source(archive, code).decode("utf-8", errors="replace")
    try:
        tree = parse(source, f"its code {code}")
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "forward":
                    return [a.arg for a in item.args.args[1:]]
    return None


@contextmanager
def _opened(path: Path) -> Iterator[zipfile.ZipFile]:
    """The archive, or NotTheFormat when its central directory is damaged."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise NotTheFormat(f"it is a damaged zip archive ({exc})") from exc
    with archive:
        yield archive


def _head(archive: zipfile.ZipFile, name: str) -> bytes:
    """The first PICKLE_HEAD bytes of an entry: however large it says it is, no more is
    inflated (a 300 MB data.pkl compresses to 300 KB)."""
    try:
        with archive.open(name) as entry:
            return entry.read(PICKLE_HEAD)
    except _DAMAGED as exc:
        raise NotTheFormat(f"its entry {name} cannot be read: {exc}") from exc


def _source(archive: zipfile.ZipFile, name: str) -> bytes:
    """A code entry, refused before it is inflated when it says it is over SOURCE_MAX
    (zipfile never inflates more than an entry says); a bad CRC is found at the end."""
    size = archive.getinfo(name).file_size
    if size > SOURCE_MAX:
        raise NotTheFormat(
            f"its code entry {name} is {size} bytes, over the {SOURCE_MAX} Kiln parses "
            "(torch.jit.save writes a few KB per module)"
        )
    try:
        return archive.read(name)
    except _DAMAGED as exc:
        raise NotTheFormat(f"its entry {name} cannot be read: {exc}") from exc


def _root_class(pickled: bytes) -> str | None:
    """`module.Class` of the object data.pkl rebuilds first: the scripted root module.
    Read from the pickle's opcodes (pickletools parses, it does not execute)."""
    strings: list[str] = []
    try:
        for opcode, argument, _ in pickletools.genops(pickled):
            if opcode.name == "GLOBAL" and isinstance(argument, str):
                module, _, name = argument.partition(" ")
                return f"{module}.{name}" if module.startswith("__torch__") else None
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(argument))
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                module, name = strings[-2], strings[-1]
                return f"{module}.{name}" if module.startswith("__torch__") else None
    except (ValueError, EOFError):
        return None
    return None
