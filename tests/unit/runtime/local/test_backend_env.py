"""The backend venv holds nothing unverified: numpy is hash-pinned for pip, and the
packages copied from Kiln's own environment are checked against their wheels' RECORD."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.local import backend_env
from runtime.local.backend_env import BackendEnvError, copy_verified

MODULE = b"ANSWER = 42\n"


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def installed(site: Path, module: bytes = MODULE) -> importlib.metadata.Distribution:
    """A distribution `tiny` 1.0 installed in `site` as pip leaves one, with a script
    outside site-packages and bytecode without a digest."""
    (site / "tiny").mkdir(parents=True)
    (site / "tiny" / "__init__.py").write_bytes(module)
    info = site / "tiny-1.0.dist-info"
    info.mkdir()
    metadata = b"Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n"
    (info / "METADATA").write_bytes(metadata)
    lines = [
        record_line("tiny/__init__.py", MODULE),  # what the wheel held
        record_line("tiny-1.0.dist-info/METADATA", metadata),
        "tiny/__pycache__/__init__.cpython-311.pyc,,",
        record_line("../../../bin/tiny", b"#!/bin/sh\n"),
        "tiny-1.0.dist-info/RECORD,,",
    ]
    (info / "RECORD").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return importlib.metadata.PathDistribution(info)


def test_a_distribution_is_copied_file_by_file_as_its_wheel_recorded(tmp_path: Path) -> None:
    target = tmp_path / "venv-site"
    copy_verified(installed(tmp_path / "kiln-site"), target)
    assert (target / "tiny" / "__init__.py").read_bytes() == MODULE
    assert (target / "tiny-1.0.dist-info" / "METADATA").is_file()
    assert not (tmp_path / "bin").exists()  # nothing is written outside site-packages
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["METADATA", "__init__.py"]


def test_a_file_changed_since_installation_stops_the_copy(tmp_path: Path) -> None:
    dist = installed(tmp_path / "kiln-site", module=b"import os; os.system('id')\n")
    with pytest.raises(BackendEnvError, match=r"tiny's installed file .* does not match"):
        copy_verified(dist, tmp_path / "venv-site")


def test_kilns_own_onnxruntime_is_copied_verified(tmp_path: Path) -> None:
    target = tmp_path / "site"
    copy_verified(importlib.metadata.distribution("onnxruntime"), target)
    version = importlib.metadata.version("onnxruntime")
    assert (target / f"onnxruntime-{version}.dist-info" / "METADATA").is_file()
    assert any((target / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so"))


def pip_download(requirements: str, folder: Path) -> subprocess.CompletedProcess[str]:
    listed = folder / "requirements.txt"
    listed.write_text(requirements, encoding="utf-8")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(folder)]
    verified = ["--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", str(listed)]
    return subprocess.run(
        [*command, *verified], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the pinned digests are for Linux wheels")
def test_pip_gets_the_pinned_packages_only_with_a_listed_digest(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    done = pip_download(backend_env.hashed_requirements(), tmp_path / "good")
    assert done.returncode == 0, done.stderr
    for pin, digests in backend_env.PINNED.items():
        name, version = pin.split("==")
        (wheel,) = (tmp_path / "good").glob(f"{name}-{version}-*.whl")
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() in digests

    (tmp_path / "bad").mkdir()
    forged = f"numpy==1.26.4 --hash=sha256:{'0' * 64}\n"
    refused = pip_download(forged, tmp_path / "bad")
    assert refused.returncode != 0
    assert "DO NOT MATCH THE HASHES" in refused.stderr
    assert not list((tmp_path / "bad").glob("*.whl"))


def test_the_seal_covers_the_pinned_digests_and_copied_versions() -> None:
    wanted = backend_env.requirements()
    for pin, digests in backend_env.PINNED.items():
        assert pin in wanted
        assert all(digest in wanted for digest in digests)
    assert f"onnxruntime=={importlib.metadata.version('onnxruntime')}" in wanted


def test_a_copy_on_the_same_file_system_is_a_hard_link_checked_all_the_same(
    tmp_path: Path,
) -> None:
    source = tmp_path / "kiln-site"
    copy_verified(installed(source), tmp_path / "venv-site")
    linked = tmp_path / "venv-site" / "tiny" / "__init__.py"
    # The same file, not a second one: torch's 3 GB are not copied again.
    assert linked.stat().st_ino == (source / "tiny" / "__init__.py").stat().st_ino
    tampered = installed(tmp_path / "other-site", module=b"import os\n")
    with pytest.raises(BackendEnvError, match="does not match"):
        copy_verified(tampered, tmp_path / "venv-2")
    assert not (tmp_path / "venv-2" / "tiny" / "__init__.py").exists()  # the link is removed


@pytest.mark.parametrize(
    ("mode", "someone_else"),
    [(0o664, False), (0o646, False), (0o644, True)],
    ids=["group-writable", "world-writable", "another-users"],
)
def test_a_file_others_may_write_is_copied_not_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, someone_else: bool
) -> None:
    """A link would let whoever may write the source change the venv's file after its
    digest was checked; such a file gets a copy of its own."""
    source = tmp_path / "kiln-site"
    dist = installed(source)
    module = source / "tiny" / "__init__.py"
    module.chmod(mode)
    if someone_else:  # the file stays the test's; the current user becomes another
        owner = module.stat().st_uid
        monkeypatch.setattr(backend_env.os, "getuid", lambda: owner + 1)
    copy_verified(dist, tmp_path / "venv-site")
    copied = tmp_path / "venv-site" / "tiny" / "__init__.py"
    assert copied.stat().st_ino != module.stat().st_ino
    assert copied.read_bytes() == MODULE
    assert copied.stat().st_mode & 0o777 == 0o644  # the mode, less others' write
    module.write_bytes(b"import os\n")  # what the other writer does afterwards
    assert copied.read_bytes() == MODULE


def test_torch_goes_in_with_what_it_requires_and_only_when_asked() -> None:
    closure = backend_env.requirement_closure("torch")
    assert closure[0] == "torch"
    # nvidia-cufile is reached only through an extra (cuda-toolkit[cufile,...]); torch's
    # import fails without it (libcufile.so.0), which is how this rule was found.
    assert "nvidia-cufile" in closure and "cuda-toolkit" in closure
    assert "numpy" not in closure  # the venv's own numpy 1.26.4 stays
    assert "setuptools" not in closure  # as does the setuptools `venv` installs
    assert "torch" not in backend_env.copied()
    with_torch = backend_env.requirements(torch=True)
    assert f"torch=={importlib.metadata.version('torch')}" in with_torch
    assert set(backend_env.requirements()) < set(with_torch)  # a venv of its own
    with pytest.raises(BackendEnvError, match=r"pip install 'kiln\[no-such-thing\]'"):
        backend_env.requirement_closure("no-such-thing")
