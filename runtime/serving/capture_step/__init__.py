"""The cluster's capture step, and how a serving pod gets it from the runtime image.

The step (`model.py`) is a python-backend model that Triton runs with its own Python
(the stock tritonserver image: numpy, no pyarrow, no Kiln). `install` copies into a
version folder of the model repository what that Python needs: the step, the capture
writer and the contract it writes by, and `libraries/`, the pyarrow the runtime image
carries for Triton's Python (Dockerfile: TRITON_LIBRARIES). The serving pod's init
container installs it as a step of the capture ensemble (runtime/serving/ensemble.py,
`--capture-step`); `python -m runtime.serving.capture_step --install DIR` installs it alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runtime.contract import capture as contract
from runtime.serving import capture_writer

STEP = Path(__file__).resolve().parent / "model.py"
LIBRARIES = "libraries"  # the folder model.py puts first on its import path
# Where the runtime image installs pyarrow for Triton's Python (Dockerfile).
TRITON_LIBRARIES = Path("/opt/kiln/triton-python")
CONFIG_FILE = "config.pbtxt"


def step_files() -> tuple[Path, ...]:
    """The Kiln modules the step imports, and the step itself."""
    return (
        STEP,
        Path(capture_writer.__file__).resolve(),
        Path(contract.__file__).resolve(),
    )


class InstallError(Exception):
    """Why the step could not be installed (the init container exits non-zero)."""


def install(folder: Path, libraries: Path | None, config: Path | None = None) -> list[str]:
    """Copy the step and its libraries into `folder` (a version folder); with `config`,
    that file becomes the step's config.pbtxt in the folder above. The lines say what
    was done. `libraries` None: the stub's own Python has pyarrow (the local backend venv),
    so nothing is copied for it."""
    if libraries is not None and not libraries.is_dir():
        raise InstallError(
            f"{libraries} is not a folder: the capture step needs pyarrow for Triton's "
            "Python there (the runtime image installs it; pass --libraries elsewhere)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for file in step_files():
        shutil.copy2(file, folder / file.name)
    target = folder / LIBRARIES
    if target.exists():
        shutil.rmtree(target)
    if libraries is not None:
        shutil.copytree(libraries, target, symlinks=True)
    copied = f", {LIBRARIES}/" if libraries is not None else ""
    lines = [f"capture step installed in {folder} ({len(step_files())} modules{copied})"]
    if config is not None:
        shutil.copy2(config, folder.parent / CONFIG_FILE)
        lines.append(f"{CONFIG_FILE} installed in {folder.parent}")
    return lines
