"""Whether a file is a TorchScript archive, told from its layout, without torch.

`torch.jit.save` writes a zip archive with one top folder holding `data.pkl`,
`constants.pkl` and the compiled code under `code/`. `torch.save` writes either a
plain pickle (the legacy format) or a zip with `data.pkl` and no `code/`: a checkpoint
of weights that Triton's libtorch backend cannot load.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from compiler.formats import NotTheFormat

PICKLE_PROTOCOL_2 = b"\x80"  # how a pickle of protocol 2 and above begins


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
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # Entries sit under one top folder named after the archive.
    parts = [name.split("/", 1)[1] for name in names if "/" in name]
    if "data.pkl" not in parts:
        raise NotTheFormat("the zip archive has no data.pkl, so it is not a PyTorch file")
    if not any(part.startswith("code/") for part in parts) or "constants.pkl" not in parts:
        raise NotTheFormat(
            "it is a torch.save checkpoint (data.pkl, no code/ or constants.pkl), not TorchScript"
        )
