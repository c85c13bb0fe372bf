"""A real `tritonserver` for this machine, taken from the `nvidia-pytriton` wheel.

The wheel (PyPI, 0.7.0) bundles Triton 2.51 with the python backend only and
its shared libraries; it needs Linux with glibc >= 2.35 and no GPU. It is
downloaded once with pip into a cache, unpacked, and completed with the python
backend stub built for this interpreter's Python version.

The cache is the user's own (`runtime.contract.user_cache`), never the checkout: a
pull request could carry a `tritonserver`. The wheel must have one of the sha256
digests PyPI lists for it (checked by pip with `--require-hashes`, and again here
before unpacking), and an unpacked tree is used only with a marker whose HMAC,
under the user's key, covers the digests of what runs (`tritonserver` and the stub).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from runtime.contract import user_cache

PYTRITON_VERSION = "0.7.0"
MIN_GLIBC = (2, 35)
WHEEL_ENV = "KILN_TRITON_WHEEL"  # a wheel already on disk (offline machines)
CACHE_ENV = "KILN_TRITON_CACHE"
DOWNLOAD_TIMEOUT_S = 600
# sha256 of the nvidia-pytriton 0.7.0 wheels, as PyPI lists them (files.pythonhosted.org).
WHEEL_SHA256 = {
    "21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df",  # manylinux_2_35_x86_64
    "f99e07ee56fe065337453956afba17d2673e02ec6a632c3de26ce6e7b32a0898",  # manylinux_2_35_aarch64
}
_MEMBERS = ("pytriton/tritonserver/", "nvidia_pytriton.libs/")
_READY = ".kiln-complete"


class PlatformError(Exception):
    """This machine cannot run the bundled tritonserver."""


class DistributionError(Exception):
    """The wheel could not be downloaded or unpacked."""


def glibc_version() -> tuple[int, int] | None:
    """glibc's (major, minor), or None where the C library is not glibc."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    name, _, version = text.partition(" ")
    if name != "glibc":
        return None
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def check_platform() -> None:
    """Raise PlatformError saying why the bundled tritonserver cannot run here."""
    system = platform.system()
    if system != "Linux":
        raise PlatformError(
            f"the local Triton needs Linux (tritonserver from nvidia-pytriton); this is {system}. "
            "Use a Linux machine or container with glibc >= 2.35 (Ubuntu 22.04+, Debian 12+)."
        )
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64", "aarch64"):
        raise PlatformError(f"nvidia-pytriton has no tritonserver for {machine}")
    found = glibc_version()
    if found is None:
        raise PlatformError(
            "the local Triton needs glibc >= 2.35 and this system's C library is not glibc "
            "(musl/Alpine cannot run the bundled tritonserver)"
        )
    if found < MIN_GLIBC:
        raise PlatformError(
            f"the local Triton needs glibc >= {MIN_GLIBC[0]}.{MIN_GLIBC[1]}; this system has "
            f"glibc {found[0]}.{found[1]} (Ubuntu 22.04+ or Debian 12+ have a recent enough one)"
        )


def default_cache() -> Path:
    """Where downloads and environments are cached: $KILN_TRITON_CACHE, or `triton` in
    the user's cache folder (never the checkout)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else user_cache.default_root() / "triton"


def private_cache(cache: Path) -> bytes:
    """The key of `cache`, once it is known to be the user's alone (DistributionError)."""
    try:
        return user_cache.key(user_cache.private_folder(cache))
    except user_cache.UntrustedFolder as exc:
        raise DistributionError(f"{exc} (or set {CACHE_ENV})") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created), so that parallel runs build a cache once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class TritonDistribution:
    """An unpacked tritonserver with a python backend stub for one Python version."""

    root: Path
    python: str  # "3.11"

    @property
    def binary(self) -> Path:
        return self.root / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.root / "pytriton" / "tritonserver" / "backends"

    @property
    def stub(self) -> Path:
        return self.backends / "python" / "triton_python_backend_stub"


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def verified_wheel(path: Path) -> str:
    """The wheel's sha256, when it is one PyPI lists for it (else DistributionError)."""
    digest = sha256_of(path)
    if digest not in WHEEL_SHA256:
        raise DistributionError(
            f"{path} is not the nvidia-pytriton {PYTRITON_VERSION} wheel PyPI publishes "
            f"(sha256 {digest}); delete it, or set {WHEEL_ENV} to the wheel from PyPI"
        )
    return digest


def download_wheel(folder: Path) -> Path:
    """The nvidia-pytriton wheel: $KILN_TRITON_WHEEL, a cached one, or one pip downloads."""
    given = os.environ.get(WHEEL_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            raise DistributionError(f"{WHEEL_ENV}={given} is not a file")
        return path
    pattern = f"nvidia_pytriton-{PYTRITON_VERSION}-*.whl"
    cached = sorted(folder.glob(pattern))
    if cached:
        return cached[0]
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(WHEEL_SHA256))
    pinned = folder / "requirements.txt"
    pinned.write_text(f"nvidia-pytriton=={PYTRITON_VERSION} {hashes}\n", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--dest",
        str(folder),
        "--requirement",
        str(pinned),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DistributionError(f"could not run pip to download nvidia-pytriton: {exc}") from exc
    cached = sorted(folder.glob(pattern))
    if done.returncode != 0 or not cached:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise DistributionError(
            f"could not download nvidia-pytriton=={PYTRITON_VERSION} with pip "
            f"(exit {done.returncode}); set {WHEEL_ENV} to a downloaded wheel on offline "
            f"machines.\n{tail}"
        )
    return cached[0]


def _unpack(wheel: Path, target: Path, python: str) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DistributionError(f"{wheel} is not a readable wheel: {exc}") from exc
    with archive:
        for info in archive.infolist():
            if not info.filename.startswith(_MEMBERS) or info.is_dir():
                continue
            path = Path(archive.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)
    dist = TritonDistribution(target, python)
    stub = target / "pytriton" / "tritonserver" / "python_backend_stubs" / python
    stub = stub / "triton_python_backend_stub"
    if not stub.is_file():
        raise DistributionError(
            f"nvidia-pytriton {PYTRITON_VERSION} has no python backend stub for Python {python}"
        )
    shutil.copyfile(stub, dist.stub)
    executable = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for path in (dist.stub, dist.binary):
        path.chmod(executable)


def _seal(secret: bytes, dist: TritonDistribution, wheel_digest: str) -> bytes:
    """The marker of a whole distribution: an HMAC over the wheel's digest and those of
    the two programs that run, so that a tree nobody's Kiln unpacked is never run."""
    digests = [wheel_digest, sha256_of(dist.binary), sha256_of(dist.stub)]
    sealed = user_cache.tag(secret, *(d.encode() for d in digests))
    return f"{wheel_digest} {sealed.hex()}\n".encode()


def _sealed(secret: bytes, dist: TritonDistribution) -> bool:
    """Whether `dist` is one this user's Kiln unpacked, unchanged since."""
    marker = user_cache.read_private(dist.root / _READY)
    try:
        info = os.lstat(dist.root)
        wheel_digest = (marker or b"").decode().split(" ")[0]
        fresh = _seal(secret, dist, wheel_digest)
    except (OSError, ValueError):
        return False
    if not stat.S_ISDIR(info.st_mode) or user_cache.untrusted_reason(info) is not None:
        return False
    return marker is not None and hmac.compare_digest(marker, fresh)


def ensure_triton(cache: Path) -> TritonDistribution:
    """The cached distribution for this Python, downloading and unpacking it once; one
    found there that this user's Kiln did not unpack is replaced, never run."""
    check_platform()
    python = _python_tag()
    secret = private_cache(cache)
    final = TritonDistribution(
        cache / f"tritonserver-pytriton{PYTRITON_VERSION}-py{python}", python
    )
    with locked(cache / ".triton.lock"):
        if _sealed(secret, final):
            return final
        shutil.rmtree(final.root, ignore_errors=True)
        if os.path.lexists(final.root):  # a link or a file: nothing Kiln made
            os.unlink(final.root)
        wheel = download_wheel(cache / "wheels")
        wheel_digest = verified_wheel(wheel)
        staged = Path(tempfile.mkdtemp(prefix=".tritonserver-", dir=cache))
        try:
            _unpack(wheel, staged, python)
            marker = _seal(secret, TritonDistribution(staged, python), wheel_digest)
            (staged / _READY).write_bytes(marker)
            staged.chmod(0o700)
            staged.rename(final.root)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return final
