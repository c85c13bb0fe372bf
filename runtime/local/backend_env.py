"""The Python environment Triton's python backend stub runs the adapter in.

The stub embeds libpython and ignores PYTHONPATH; it finds its site-packages
the way an embedded interpreter does, by looking for `python3` on PATH. Kiln
builds a dedicated, cached venv (numpy < 2, onnxruntime) and puts its `bin`
first on PATH for tritonserver. Measured alternatives: the model parameter
`EXECUTION_ENV_PATH` also accepts a plain venv folder in Triton 2.51, but it
would put an absolute, machine-specific path into config.pbtxt, which Kiln
generates deterministically; PATH keeps the generated config untouched.

numpy 2 silently corrupts input tensors in this backend, hence the pin; the
client side (Kiln itself) is free to use numpy 2.

The venv lives in the user's cache (see `runtime.local.triton_dist`) and is used only
with a marker whose HMAC, under the user's key, covers the requirements and every
program in its `bin` (the stub runs the `python3` it finds there first): a venv that
this user's Kiln did not build, or one changed since, is rebuilt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import onnxruntime

from runtime.contract import user_cache
from runtime.local.triton_dist import (
    DistributionError,
    TritonDistribution,
    locked,
    private_cache,
    sha256_of,
)

INSTALL_TIMEOUT_S = 900
_READY = ".kiln-complete"


class BackendEnvError(Exception):
    """The backend environment could not be built or cannot be used by the stub."""


def requirements() -> list[str]:
    # The same onnxruntime as Kiln's own, so that local results equal in-process ones;
    # pyarrow writes captured traffic (serving.capture) as parquet; pyarrow 23 and later
    # need numpy 2 (22.0.0 is the last that imports with numpy 1.26, measured).
    return ["numpy<2", f"onnxruntime=={onnxruntime.__version__}", "pyarrow>=15,<23"]


@dataclass(frozen=True)
class BackendEnv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def _run(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendEnvError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise BackendEnvError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _build(path: Path, wanted: list[str]) -> None:
    _run([sys.executable, "-m", "venv", str(path)], f"creating the backend venv {path}")
    python = str(path / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, *wanted], f"installing {' '.join(wanted)} into {path}")
    version = _run(
        [python, "-c", "import numpy, onnxruntime, pyarrow; print(numpy.__version__)"],
        "checking the backend venv",
    ).strip()
    if int(version.split(".")[0]) >= 2:
        raise BackendEnvError(f"the backend venv got numpy {version}; it needs numpy < 2")


def _seal(secret: bytes, env: BackendEnv, wanted: list[str]) -> bytes:
    """The marker of a whole venv: an HMAC over the requirements and each entry of its
    `bin` (a link by its target, a file by its sha256)."""
    parts = [json.dumps(wanted).encode()]
    for entry in sorted(env.bin.iterdir()):
        if entry.is_symlink():
            what = os.readlink(entry)
        else:
            what = "folder" if entry.is_dir() else sha256_of(entry)
        parts.append(f"{entry.name}\0{what}".encode())
    return user_cache.tag(secret, *parts).hex().encode() + b"\n"


def _sealed(secret: bytes, env: BackendEnv, wanted: list[str]) -> bool:
    marker = user_cache.read_private(env.path / _READY)
    try:
        info = os.lstat(env.path)
        fresh = _seal(secret, env, wanted)
    except OSError:
        return False
    if user_cache.untrusted_reason(info) is not None or not env.path.is_dir():
        return False
    return marker is not None and hmac.compare_digest(marker, fresh)


def ensure_backend_env(cache: Path) -> BackendEnv:
    """The cached backend venv for this Python and these requirements, built once; one
    found there that this user's Kiln did not build is replaced, never used."""
    wanted = requirements()
    try:
        secret = private_cache(cache)
    except DistributionError as exc:
        raise BackendEnvError(str(exc)) from exc
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    # Keyed by the real interpreter (python, python3 and pytest's shebang all lead to it).
    interpreter = [os.path.realpath(sys.executable), sys.version]
    key = hashlib.sha256(json.dumps([interpreter, wanted]).encode()).hexdigest()[:10]
    final = cache / f"backend-env-py{tag}-{key}"
    with locked(cache / ".backend-env.lock"):
        if _sealed(secret, BackendEnv(final), wanted):
            return BackendEnv(final)
        shutil.rmtree(final, ignore_errors=True)
        if os.path.lexists(final):  # a link or a file: nothing Kiln made
            os.unlink(final)
        # A venv records its own path, so it is built in place; the marker is written last.
        final.mkdir(mode=0o700)
        try:
            _build(final, wanted)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        (final / _READY).write_bytes(_seal(secret, BackendEnv(final), wanted))
    return BackendEnv(final)


def _libpython_dir() -> Path | None:
    """The folder of this interpreter's libpythonX.Y.so, which the stub links against."""
    libdir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    if libdir and library.endswith(".so") and (Path(libdir) / library).exists():
        return Path(libdir)
    return None


def stub_environment(env: BackendEnv, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for tritonserver so that its python stub uses `env`."""
    result = dict(os.environ if base is None else base)
    result["PATH"] = os.pathsep.join([str(env.bin), result.get("PATH", "")]).rstrip(os.pathsep)
    result.pop("PYTHONHOME", None)
    result.pop("PYTHONPATH", None)
    libdir = _libpython_dir()
    if libdir is not None:
        paths = [str(libdir), result.get("LD_LIBRARY_PATH", "")]
        result["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
    return result


def check_stub(dist: TritonDistribution, environment: dict[str, str]) -> None:
    """Fail early, and clearly, when the stub cannot find its libpython."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return
    try:
        done = subprocess.run(
            [ldd, str(dist.stub)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    missing = [line.split()[0] for line in done.stdout.splitlines() if "not found" in line]
    if missing:
        raise BackendEnvError(
            f"the python backend stub for Python {dist.python} cannot find {', '.join(missing)}; "
            f"install the shared library (Debian/Ubuntu: apt-get install "
            f"libpython{dist.python}) or use a Python built with --enable-shared"
        )
