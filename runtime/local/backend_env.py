"""The Python environment Triton's python backend stub runs the adapter in.

The stub embeds libpython and ignores PYTHONPATH; it finds its site-packages
the way an embedded interpreter does, by looking for `python3` on PATH. Kiln
builds a dedicated, cached venv (numpy < 2, onnxruntime, pyarrow, the tree
libraries) and puts its `bin` first on PATH for tritonserver. Measured alternatives:
the model parameter `EXECUTION_ENV_PATH` also accepts a plain venv folder in Triton
2.51, but it would put an absolute, machine-specific path into config.pbtxt, which
Kiln generates deterministically; PATH keeps the generated config untouched.

numpy 2 silently corrupts input tensors in this backend, hence the pin; the
client side (Kiln itself) is free to use numpy 2.

The venv lives in the user's cache (see `runtime.local.triton_dist`) and is used only
with a marker whose HMAC, under the user's key, covers the requirements and every
program in its `bin` (the stub runs the `python3` it finds there first): a venv that
this user's Kiln did not build, or one changed since, is rebuilt.

Nothing goes into it unverified (docs/security.md, "Trust boundaries"):

- numpy and pyarrow are the downloads, each pinned to a version and installed by pip
  with `--require-hashes --no-deps --only-binary :all:` against the sha256 digests PyPI
  lists for its wheels, so a changed or substituted file stops the build;
- onnxruntime is not downloaded at all: its files are copied from Kiln's own
  installation, each checked against the sha256 its wheel recorded (the distribution's
  RECORD), which also makes it the very onnxruntime Kiln compares results with.
  It imports nothing but numpy, and pyarrow needs nothing, so no other package is;
- scipy, xgboost and lightgbm, for tree models, are copied the same way where Kiln's
  environment has them (the `train` extra): they import numpy and scipy alone, and
  work under numpy 1.26.4;
- torch, for TorchScript models, and every distribution it requires (the CUDA
  libraries of PyPI's build among them, 3 GB), copied the same way, only into the venv
  of a server that serves a TorchScript model: that venv is a second one, keyed apart.

"Copied" is a hard link where Kiln's environment and the cache share a file system (no
second 3 GB of torch) and the file is the current user's, writable by nobody else,
else a copy; the digest is checked on the file the venv ends up with either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from runtime.contract import user_cache
from runtime.local.triton_dist import (
    DistributionError,
    TritonDistribution,
    locked,
    private_cache,
    sha256_of,
)
from runtime.serving.capture_step.libraries import PYARROW, PYARROW_DIGESTS

INSTALL_TIMEOUT_S = 900
_READY = ".kiln-complete"


class BackendEnvError(Exception):
    """The backend environment could not be built or cannot be used by the stub."""


# What pip installs, each pinned to a version with the sha256 digests PyPI lists for its
# wheels for the CPython versions Kiln supports on the platforms the bundled tritonserver
# runs on (manylinux, glibc >= 2.35): numpy 1.26.4, the last numpy 1; pyarrow, which
# writes captured traffic (serving.capture) as parquet, at 22.0.0, the last release that
# imports with numpy 1 (measured), pinned where the cluster's capture step pins it.
PINNED: dict[str, tuple[str, ...]] = {
    "numpy==1.26.4": (
        "666dbfb6ec68962c033a450943ded891bed2d54e6755e35e5835d63f4f6931d5",  # cp311 x86_64
        "7ab55401287bfec946ced39700c053796e7cc0e3acbef09993a9ad2adba6ca6e",  # cp311 aarch64
        "675d61ffbfa78604709862923189bad94014bef562cc35cf61d3a07bba02a7ed",  # cp312 x86_64
        "9fad7dcb1aac3c7f0584a5a8133e3a43eeb2fe127f47e3632d43d677c66c102b",  # cp312 aarch64
    ),
    PYARROW: PYARROW_DIGESTS,  # the capture step's, one pin for both Pythons
}
# Distributions copied from Kiln's own environment, verified against their RECORD:
# onnxruntime always (the same as Kiln's, so that local results equal in-process ones);
# the tree libraries (and scipy, which both import) where Kiln has them (the `train`
# extra), so the adapter serves xgboost and lightgbm models with the very library
# `kiln smoke` compares with.
COPIED = ("onnxruntime",)
TREE_LIBRARIES = ("scipy", "xgboost", "lightgbm")
TORCH = "torch"  # with what it requires, for TorchScript models only (the `torch` extra)
VENV_OWN = {"pip", "setuptools"}  # what `python -m venv` installs by itself


def copied(torch: bool = False) -> tuple[str, ...]:
    """The distributions copied in: onnxruntime, each tree library installed here, and
    with `torch` torch and its requirements."""
    present = []
    for name in TREE_LIBRARIES:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        present.append(name)
    extra = [name for name in requirement_closure(TORCH) if name not in present] if torch else []
    return (*COPIED, *present, *extra)


def requirement_closure(root: str) -> list[str]:
    """`root` and every distribution it requires on this platform, transitively, with the
    extras asked for (torch takes the CUDA libraries as `cuda-toolkit[cufile,...]`), as
    installed here; left out: the pinned downloads and what the venv has of its own."""
    # The venv's own numpy 1.26.4 stays, and so do the pip and setuptools `venv` put
    # there: torch lists setuptools for building extensions, which serving never does.
    pinned = {canonical(pin.split("==")[0]) for pin in PINNED} | VENV_OWN
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    todo = [(root, "")]
    while todo:
        name, extra = todo.pop()
        name = canonical(name)
        if (name, extra) in seen or name in pinned:
            continue
        seen.add((name, extra))
        try:
            required = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise BackendEnvError(
                f"{name} is not installed in Kiln's environment (pip install 'kiln[{root}]')"
            ) from exc
        if name not in found:
            found.append(name)
        for line in required:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, e) for e in ("", *sorted(requirement.extras))]
    return found


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(torch: bool = False) -> list[str]:
    """What the venv holds, as recorded in its seal: each pin with its digests and each
    copied distribution at Kiln's own version."""
    pinned = [item for pin, digests in PINNED.items() for item in (pin, *digests)]
    taken = [f"{name}=={importlib.metadata.version(name)}" for name in copied(torch)]
    return [*pinned, *taken]


def hashed_requirements() -> str:
    """The pins in pip's hash-checking requirements format, one line each."""
    lines = []
    for pin, digests in PINNED.items():
        hashes = " ".join(f"--hash=sha256:{digest}" for digest in digests)
        lines.append(f"{pin} {hashes}\n")
    return "".join(lines)


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


def _build(path: Path, torch: bool) -> None:
    _run([sys.executable, "-m", "venv", str(path)], f"creating the backend venv {path}")
    python = str(path / "bin" / "python")
    pinned = path / "requirements.txt"
    pinned.write_text(hashed_requirements(), encoding="utf-8")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    verified = ["--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", str(pinned)]
    _run([*pip, *verified], f"installing {', '.join(PINNED)} (hash-checked) into {path}")
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            "finding the backend venv's site-packages",
        ).strip()
    )
    for name in copied(torch):
        copy_verified(importlib.metadata.distribution(name), site)
    imports = "numpy, onnxruntime, pyarrow" + (", torch" if torch else "")
    version = _run(
        [python, "-c", f"import {imports}; print(numpy.__version__)"],
        "checking the backend venv",
    ).strip()
    if int(version.split(".")[0]) >= 2:
        raise BackendEnvError(f"the backend venv got numpy {version}; it needs numpy < 2")


def copy_verified(dist: importlib.metadata.Distribution, site: Path) -> None:
    """Copy an installed distribution's files into `site`, each checked on the way against
    the digest in its RECORD. Files the RECORD gives no digest for (bytecode, RECORD
    itself) are left behind; scripts outside site-packages (`../..`) are not needed."""
    name = dist.metadata["Name"]
    copied = 0
    for entry in dist.files or ():
        parts = entry.parts
        if entry.hash is None or ".." in parts or entry.is_absolute():
            continue
        if entry.hash.mode != "sha256":
            raise BackendEnvError(f"{name}'s RECORD uses {entry.hash.mode}, not sha256")
        source = Path(str(dist.locate_file(entry)))
        target = site.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = _place(source, target)
        recorded = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
        if not hmac.compare_digest(digest, recorded):
            target.unlink()
            raise BackendEnvError(
                f"{name}'s installed file {entry} does not match the digest its wheel recorded; "
                f"reinstall it (pip install --force-reinstall {name})"
            )
        copied += 1
    if copied == 0:
        raise BackendEnvError(f"{name} has no RECORD of its files to copy them from")


def _place(source: Path, target: Path) -> bytes:
    """Put `source` at `target`, a hard link where that is safe and the file system allows
    one, else a copy; the sha256 of what is at `target` afterwards (read once either way)."""
    if _linkable(source):
        try:
            os.link(source, target)
        except OSError:  # another file system (EXDEV), or links refused (EPERM)
            pass
        else:
            return bytes.fromhex(sha256_of(target))
    digest = hashlib.sha256()
    with source.open("rb") as reading, target.open("wb") as writing:
        for block in iter(lambda: reading.read(1 << 20), b""):
            digest.update(block)
            writing.write(block)
    # The source's mode, less others' write: the copy is only the current user's to change.
    target.chmod(source.stat().st_mode & 0o755)
    return digest.digest()


def _linkable(source: Path) -> bool:
    """A link shares the file, so whoever may write the source may change the venv's file
    after its digest was checked: link only a file of the current user's that neither
    group nor others may write."""
    status = source.stat()
    return status.st_uid == os.getuid() and status.st_mode & 0o022 == 0


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


def ensure_backend_env(cache: Path, torch: bool = False) -> BackendEnv:
    """The cached backend venv for this Python and these requirements, built once; one
    found there that this user's Kiln did not build is replaced, never used. With `torch`,
    the venv that also holds torch (a TorchScript model is served)."""
    wanted = requirements(torch)
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
            _build(final, torch)
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
