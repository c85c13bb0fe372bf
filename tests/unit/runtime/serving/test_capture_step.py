"""`python -m runtime.serving.capture_step --install DIR`, run as the serving pod's init
container runs it (a real process, real files): the step, the modules it imports and
the libraries folder in the version folder, its config above.
That the installed step loads and captures in a real Triton is
tests/integration/test_capture_ensemble.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from runtime.serving.capture_step import LIBRARIES, TRITON_LIBRARIES, install, step_files
from tests.tools import REPO_ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.serving.capture_step", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )


def test_install_puts_the_step_its_modules_and_libraries_in_the_version_folder(
    tmp_path: Path,
) -> None:
    libraries = tmp_path / "image-libraries"
    (libraries / "pyarrow").mkdir(parents=True)
    (libraries / "pyarrow" / "__init__.py").write_text("# stands for the wheel's files\n")
    (tmp_path / "capture.pbtxt").write_text('name: "m.capture"\n')
    repository = tmp_path / "models"
    done = run(
        "--install",
        str(repository / "m.capture" / "3"),
        "--libraries",
        str(libraries),
        "--config",
        str(tmp_path / "capture.pbtxt"),
    )
    assert done.returncode == 0, done.stderr
    folder = repository / "m.capture" / "3"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(f.name for f in step_files()), LIBRARIES]
    )
    assert (folder / "model.py").read_bytes() == step_files()[0].read_bytes()
    assert (folder / LIBRARIES / "pyarrow" / "__init__.py").is_file()
    assert (repository / "m.capture" / "config.pbtxt").read_text() == 'name: "m.capture"\n'


def test_without_the_libraries_the_init_container_fails_and_says_why(tmp_path: Path) -> None:
    done = run("--install", str(tmp_path / "s" / "1"), "--libraries", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "needs pyarrow for Triton's Python" in done.stderr
    assert not (tmp_path / "s").exists()
    assert run("--config", str(tmp_path)).returncode == 2  # --install is required


def test_locally_the_step_is_installed_without_libraries(tmp_path: Path) -> None:
    # kiln serve's backend venv has pyarrow: nothing is copied for it, and an earlier
    # install's libraries/ does not linger to shadow the venv's.
    folder = tmp_path / "m.capture" / "1"
    (folder / LIBRARIES).mkdir(parents=True)
    lines = install(folder, None)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in step_files())
    assert LIBRARIES not in lines[0]


def test_the_step_imports_only_what_is_installed_beside_it() -> None:
    """Triton's Python has numpy and Triton's own module; everything else of the step's
    imports is a file install copies, or the libraries folder (pyarrow)."""
    installed = {f.stem for f in step_files()} | {"pyarrow"}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for file in step_files():
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "runtime":
                    continue  # tried first, in Kiln's own Python; the copies otherwise
                assert top in stdlib | installed | {"numpy", "triton_python_backend_utils"}, name


def test_the_default_libraries_are_where_the_runtime_image_puts_them() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"--target {TRITON_LIBRARIES}" in dockerfile
