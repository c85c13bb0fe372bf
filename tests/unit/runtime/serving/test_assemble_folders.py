"""Folder artifacts and a python model's execution_env in the assemble step.

The configs and pod arguments are the ones the compiler wrote for the `formats` golden
case (a SavedModel folder; a python model with a conda-pack archive), so what is
tested is what a cluster pod runs. fsspec's memory:// filesystem stands in for an
object store; it keeps any key as given, so it can hold the names an attacker would
put in a bucket.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import fsspec
import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from runtime.contract.artifact_digest import (
    UnsafeEntry,
    checked_name,
    file_sha256,
    folder_sha256,
    local_folder_sha256,
)
from runtime.contract.formats import MODEL_DIRECTORY
from runtime.serving.assemble import ArtifactSource, AssembleError, assemble, main
from tests.tools import REPO_ROOT

CASE = REPO_ROOT / "tests" / "golden" / "formats"
GPU = CASE / "expected" / "gpu"
SAVED = CASE / "specs" / "artifacts" / "models" / "default-tf" / "1" / "model.savedmodel"
PYTHON = CASE / "specs" / "artifacts" / "models" / "default-python"
ENV = PYTHON / "env" / "python-env.tar.gz"


def _config(model: str) -> str:
    return (GPU / model / "triton" / "config.pbtxt").read_text(encoding="utf-8")


def _savedmodel(target: Path) -> Path:
    """The golden SavedModel with variables beside it: bytes assemble copies, unread."""
    shutil.copytree(SAVED, target)
    (target / "variables").mkdir(exist_ok=True)
    (target / "variables" / "variables.index").write_bytes(b"index bytes")
    (target / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(256)))
    return target


def _to_memory(folder: Path, root: str) -> str:
    fs = fsspec.filesystem("memory")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe(f"{root}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    return f"memory://{root}"


def _same_files(one: Path, other: Path) -> bool:
    names = sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(other).as_posix() for p in other.rglob("*") if p.is_file())
    return names == theirs and all(
        (one / n).read_bytes() == (other / n).read_bytes() for n in names
    )


# The folder digest (runtime/contract/artifact_digest.py)


def test_folder_digest_is_the_documented_listing(tmp_path: Path) -> None:
    folder = _savedmodel(tmp_path / "m")
    pairs = [
        ("saved_model.pb", file_sha256(folder / "saved_model.pb")),
        ("variables/variables.index", file_sha256(folder / "variables" / "variables.index")),
        (
            "variables/variables.data-00000-of-00001",
            file_sha256(folder / "variables" / "variables.data-00000-of-00001"),
        ),
    ]
    assert local_folder_sha256(folder) == folder_sha256(pairs) == folder_sha256(pairs[::-1])
    # The shell recipe docs/serving.md gives, run with coreutils.
    recipe = (
        "find . -type f | sed 's|^\\./||' | LC_ALL=C sort | while read -r f; do "
        'printf \'%s\\0%s\\n\' "$f" "$(sha256sum "$f" | cut -c1-64)"; done | sha256sum'
    )
    shell = subprocess.run(
        ["bash", "-c", recipe], cwd=folder, capture_output=True, text=True, check=True
    )
    assert shell.stdout[:64] == local_folder_sha256(folder)


def test_folder_digest_changes_with_a_name_or_a_byte(tmp_path: Path) -> None:
    folder = _savedmodel(tmp_path / "m")
    before = local_folder_sha256(folder)
    index = folder / "variables" / "variables.index"
    index.rename(folder / "variables" / "variables.idx")
    renamed = local_folder_sha256(folder)
    (folder / "variables" / "variables.idx").write_bytes(b"index bytez")
    assert len({before, renamed, local_folder_sha256(folder)}) == 3


@pytest.mark.parametrize("name", ["/etc/passwd", "a/../../b", "..", "a//b", "./a", "a\\b", ""])
def test_a_name_out_of_the_folder_is_refused(name: str) -> None:
    with pytest.raises(UnsafeEntry):
        checked_name(name)


def test_a_local_folder_with_a_link_has_no_digest(tmp_path: Path) -> None:
    folder = _savedmodel(tmp_path / "m")
    (folder / "variables" / "variables.index").unlink()
    (folder / "variables" / "variables.index").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeEntry, match=r"variables/variables\.index is a link"):
        local_folder_sha256(folder)


# Fetching a folder


@pytest.mark.parametrize("store", ["local", "memory"])
def test_a_savedmodel_folder_is_fetched_whole_and_checked(tmp_path: Path, store: str) -> None:
    folder = _savedmodel(tmp_path / "store" / "model.savedmodel")
    uri = str(folder) if store == "local" else _to_memory(folder, f"/fetch-{tmp_path.name}")
    digest = local_folder_sha256(folder)
    repository = tmp_path / "models"
    source = ArtifactSource(1, uri, digest)
    assemble("default-tf", [source], _config("default-tf"), repository, require_sha256=True)
    assert _same_files(folder, repository / "default-tf" / "1" / "model.savedmodel")


def test_a_tampered_folder_writes_nothing(tmp_path: Path) -> None:
    folder = _savedmodel(tmp_path / "store" / "model.savedmodel")
    digest = local_folder_sha256(folder)
    repository = tmp_path / "models"
    config = _config("default-tf")
    assemble("default-tf", [ArtifactSource(1, str(folder), digest)], config, repository)
    served = repository / "default-tf" / "1" / "model.savedmodel"
    (folder / "variables" / "variables.index").write_bytes(b"index bytez")
    with pytest.raises(AssembleError, match=r"folder sha256 mismatch.*was not changed"):
        assemble("default-tf", [ArtifactSource(1, str(folder), digest)], config, repository)
    assert (served / "variables" / "variables.index").read_bytes() == b"index bytes"
    assert sorted(p.name for p in repository.iterdir()) == ["default-tf"]  # no staging left


def test_a_name_leading_out_of_the_bucket_folder_is_refused(tmp_path: Path) -> None:
    root = f"/traversal-{tmp_path.name}"
    uri = _to_memory(_savedmodel(tmp_path / "m"), root)
    fsspec.filesystem("memory").pipe(f"{root}/variables/../../../escaped", b"x")
    repository = tmp_path / "models"
    with pytest.raises(AssembleError, match=r"refused entry.*'\.\.' part"):
        assemble("default-tf", [ArtifactSource(1, uri)], _config("default-tf"), repository)
    assert list(repository.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_a_link_in_a_mounted_folder_is_refused(tmp_path: Path) -> None:
    folder = _savedmodel(tmp_path / "store" / "model.savedmodel")
    (folder / "variables" / "secret").symlink_to("/etc/passwd")
    repository = tmp_path / "models"
    with pytest.raises(AssembleError, match="variables/secret is a link"):
        assemble("default-tf", [ArtifactSource(1, str(folder))], _config("default-tf"), repository)
    assert list(repository.iterdir()) == []


def test_a_file_where_a_folder_is_expected_is_refused(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    with pytest.raises(AssembleError, match="is not a folder"):
        source = ArtifactSource(1, str(SAVED / "saved_model.pb"))
        assemble("default-tf", [source], _config("default-tf"), repository)


# A python model's execution_env


def _env_lands_where_config_points(folder: Path) -> Path:
    config = mc.ModelConfig()
    text_format.Parse((folder / "config.pbtxt").read_text(encoding="utf-8"), config)
    path = config.parameters["EXECUTION_ENV_PATH"].string_value
    return Path(path.replace(MODEL_DIRECTORY, str(folder)))


def test_the_archive_lands_where_execution_env_path_points(tmp_path: Path) -> None:
    source = ArtifactSource(1, str(PYTHON / "1" / "model.py"), None, None, str(ENV), None)
    folder = assemble("default-python", [source], _config("default-python"), tmp_path)
    archive = _env_lands_where_config_points(folder)
    assert archive == folder / "1" / "python-env.tar.gz"  # beside model.py
    assert archive.read_bytes() == ENV.read_bytes()
    assert (folder / "1" / "model.py").is_file()


def test_a_tampered_archive_writes_nothing(tmp_path: Path) -> None:
    wrong = "0" * 64
    source = ArtifactSource(1, str(PYTHON / "1" / "model.py"), None, None, str(ENV), wrong)
    with pytest.raises(AssembleError, match="execution env: sha256 mismatch"):
        assemble("default-python", [source], _config("default-python"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_config_that_expects_an_archive_needs_one(tmp_path: Path) -> None:
    source = ArtifactSource(1, str(PYTHON / "1" / "model.py"))
    with pytest.raises(AssembleError, match="no --execution-env archive"):
        assemble("default-python", [source], _config("default-python"), tmp_path)


def test_an_archive_the_config_does_not_point_at_is_refused(tmp_path: Path) -> None:
    # The local config drops EXECUTION_ENV_PATH: the local stub runs Kiln's backend venv.
    local = (CASE / "expected" / "local" / "default-python" / "triton" / "config.pbtxt").read_text(
        encoding="utf-8"
    )
    source = ArtifactSource(1, str(PYTHON / "1" / "model.py"), None, None, str(ENV), None)
    with pytest.raises(AssembleError, match="does not point into its version folder"):
        assemble("default-python", [source], local, tmp_path)


# The pods the compiler generated, run as they are


@pytest.mark.parametrize("model", ["default-tf", "default-python"])
def test_the_generated_init_container_assembles_the_repository(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout = yaml.safe_load((GPU / model / f"rollout-{model}.yaml").read_text(encoding="utf-8"))
    (init,) = rollout["spec"]["template"]["spec"]["initContainers"]
    command = init["command"]
    assert command[:3] == ["python", "-m", "runtime.serving.assemble"]
    args = [
        str(GPU / model / "triton" / "config.pbtxt")
        if arg == "/etc/kiln/triton/config.pbtxt"
        else str(tmp_path)
        if arg == "/models"
        else arg
        for arg in command[3:]
    ]
    monkeypatch.chdir(CASE)  # the golden project's root: its local store paths are relative
    assert main(args) == 0
    assert "--sha256" in args if model == "default-tf" else "--execution-env-sha256" in args
    if model == "default-python":
        assert _env_lands_where_config_points(tmp_path / model).read_bytes() == ENV.read_bytes()
    else:
        assert _same_files(SAVED, tmp_path / model / "1" / "model.savedmodel")


@pytest.mark.parametrize("environment", ["local", "gpu"])
def test_the_serving_tools_assemble_a_python_model_with_its_archive_only_in_a_cluster(
    tmp_path: Path, environment: str
) -> None:
    """`kiln serve` (local) gets no archive, as its config has no EXECUTION_ENV_PATH; a
    cluster environment's sources carry it to where the config points."""
    from compiler.served import artifact_sources, model_ir
    from compiler.targets import triton

    model, root = model_ir(CASE / "specs", "default-python", environment)
    sources = artifact_sources(model, root)
    config = triton.serialize(triton.build_config(model))
    folder = assemble("default-python", sources, config, tmp_path)
    archive = folder / "1" / "python-env.tar.gz"
    assert archive.is_file() == (environment == "gpu")
    if environment == "gpu":
        assert _env_lands_where_config_points(folder) == archive
