"""This machine's signing key pair (runtime/local/keys.py): made once, private, outside."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from runtime.local.keys import LocalKeyError, key_dir, local_key_pair


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_pair_is_made_on_first_use_with_private_modes(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "keys"
    pair = local_key_pair(tmp_path / "project", {"KILN_KEY_DIR": str(folder)})
    assert pair.private == folder.resolve() / "signing.pem"
    assert (mode(folder), mode(pair.private)) == (0o700, 0o600)
    key = serialization.load_pem_private_key(pair.private.read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert pair.public_pem == public.decode() == (folder / "signing.pub").read_text()


def test_the_pair_is_reused_afterwards(tmp_path: Path) -> None:
    environ = {"KILN_KEY_DIR": str(tmp_path / "keys")}
    first = local_key_pair(None, environ)
    assert local_key_pair(None, environ) == first


def test_a_key_folder_inside_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    environ = {"KILN_KEY_DIR": str(project / ".kiln" / "keys")}
    with pytest.raises(LocalKeyError, match="inside the project"):
        local_key_pair(project, environ)
    assert not (project / ".kiln").exists()


def test_the_default_folder_is_the_user_configuration(tmp_path: Path) -> None:
    assert key_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "kiln" / "keys"
    assert key_dir({}) == Path.home() / ".config" / "kiln" / "keys"


def test_a_damaged_private_key_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "signing.pem").write_text("not a key")
    with pytest.raises(LocalKeyError, match="delete it to make a new pair"):
        local_key_pair(None, {"KILN_KEY_DIR": str(folder)})
