"""The init container of generated/staging/car-price-pipeline, run as rendered: its command
line from the committed Rollout, its config mount from the committed ConfigMap, the object
store's URIs pointed at local copies of the example's artifacts. It assembles the ensemble
and its steps as Triton loads them, or, with a tampered step, nothing at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format
from model_signing import signing
from tritonclient.grpc import model_config_pb2 as mc

from runtime.contract.served import ArtifactSource, ServedStep
from runtime.contract.signing import Trust
from runtime.serving import ensemble as assemble_ensemble_cli
from runtime.serving.assemble import AssembleError
from runtime.serving.ensemble import assemble_ensemble
from tests.keys import key_pair
from tests.tools import REPO_ROOT

MODEL = "car-price-pipeline"
FOLDER = REPO_ROOT / "generated" / "staging" / MODEL
STORE = "s3://acme-models/"  # the staging environment's model store
MOUNT, REPOSITORY = "/etc/kiln/triton", "/models"
STEP_FILES = {f"{MODEL}.prep": "model.py", f"{MODEL}.regressor": "model.onnx"}


def _manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((FOLDER / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture
def pod(tmp_path: Path) -> dict[str, Path]:
    """The pod's config mount and an empty repository, and a local copy of the store."""
    mount, store = tmp_path / "config", tmp_path / "store"
    mount.mkdir()
    for key, text in _manifest(f"configmap-{MODEL}-triton-config.yaml")["data"].items():
        (mount / key).write_text(text, encoding="utf-8")
    shutil.copytree(REPO_ROOT / "specs/artifacts/models" / MODEL, store / MODEL)
    return {"mount": mount, "store": store, "repository": tmp_path / "models"}


def _run(pod: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    rollout = _manifest(f"rollout-{MODEL}.yaml")
    (init,) = rollout["spec"]["template"]["spec"]["initContainers"]
    command = []
    for arg in init["command"]:
        # Kubernetes reads `$$` as `$` (k8s.literal); the example's arguments hold none.
        assert "$" not in arg
        arg = arg.replace(STORE, f"{pod['store']}/").replace(MOUNT, str(pod["mount"]))
        command.append(str(pod["repository"]) if arg == REPOSITORY else arg)
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:], *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_rendered_init_command_assembles_the_ensemble(pod: dict[str, Path]) -> None:
    result = _run(pod)
    assert result.returncode == 0, result.stderr
    repository = pod["repository"]
    assert sorted(p.name for p in repository.iterdir()) == [MODEL, *STEP_FILES]
    for folder in repository.iterdir():
        config = mc.ModelConfig()
        text_format.Parse((folder / "config.pbtxt").read_text(encoding="utf-8"), config)
        assert config.name == folder.name
        assert list(config.version_policy.specific.versions) == [1]
    assert list((repository / MODEL / "1").iterdir()) == []  # the ensemble: config alone
    for step, file in STEP_FILES.items():
        placed = repository / step / "1"
        # Nothing beside the artifact: the stock image's backends serve it as it is.
        assert [p.name for p in placed.iterdir()] == [file]
        source = pod["store"] / MODEL / step.removeprefix(f"{MODEL}.") / file
        assert _sha256(placed / file) == _sha256(source)
        assert f"{MODEL} step {step} version 1: sha256 verified" in result.stdout


def test_a_tampered_step_leaves_nothing_and_fails(pod: dict[str, Path]) -> None:
    regressor = pod["store"] / MODEL / "regressor" / "model.onnx"
    regressor.write_bytes(regressor.read_bytes() + b"\0")
    result = _run(pod)
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stderr
    assert f"step {MODEL}.regressor version 1" in result.stderr
    # The prep step verified first, yet nothing was placed (no staging folder either).
    assert list(pod["repository"].iterdir()) == []


def test_a_tampered_step_leaves_an_assembled_repository_as_it_was(pod: dict[str, Path]) -> None:
    assert _run(pod).returncode == 0
    before = {p: p.read_bytes() for p in pod["repository"].rglob("*") if p.is_file()}
    prep = pod["store"] / MODEL / "prep" / "model.py"
    prep.write_text(prep.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    result = _run(pod)
    assert result.returncode == 1
    assert f"step {MODEL}.prep version 1" in result.stderr
    after = {p: p.read_bytes() for p in pod["repository"].rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in pod["repository"].iterdir()) == [MODEL, *STEP_FILES]


def _signed(pod: dict[str, Path], tmp_path: Path) -> list[str]:
    """Every step signed with a fresh key; the flags a trusting environment renders."""
    key, public = key_pair(tmp_path / "keys")
    flags = []
    for step, file in STEP_FILES.items():
        artifact = pod["store"] / MODEL / step.removeprefix(f"{MODEL}.") / file
        bundle = artifact.with_name(file + ".sig")
        signing.Config().use_elliptic_key_signer(private_key=key).sign(artifact, bundle)
        flags += ["--signature", f"{step}={bundle}"]
    trust = tmp_path / "trust.json"
    trust.write_text(Trust(public_keys=(public,), require_signatures=True).to_json())
    return [*flags, "--trust", str(trust)]


def test_signed_steps_are_verified_and_an_unsigned_one_is_refused(
    pod: dict[str, Path], tmp_path: Path
) -> None:
    flags = _signed(pod, tmp_path)
    result = _run(pod, *flags)
    assert result.returncode == 0, result.stderr
    for step in STEP_FILES:
        assert f"{step} version 1: sha256 verified, signed by key " in result.stdout
    # A step whose signature is left out, where signatures are required: nothing placed.
    shutil.rmtree(pod["repository"])
    unsigned = [f for f in flags if not f.startswith(f"{MODEL}.prep=")]
    unsigned.remove("--signature")
    result = _run(pod, *unsigned)
    assert result.returncode == 1
    assert "has no signature and this environment requires signatures" in result.stderr
    assert list(pod["repository"].iterdir()) == []


def test_a_step_the_ensemble_schedules_but_nobody_gave_is_refused(pod: dict[str, Path]) -> None:
    config = (pod["mount"] / "config.pbtxt").read_text(encoding="utf-8")
    prep = f"{MODEL}.prep"
    step = ServedStep(
        prep,
        (pod["mount"] / f"{prep}.config.pbtxt").read_text(encoding="utf-8"),
        ArtifactSource(1, str(pod["store"] / MODEL / "prep" / "model.py")),
    )
    with pytest.raises(AssembleError, match=r"schedules \['car-price-pipeline.prep', "):
        assemble_ensemble(MODEL, config, 1, [step], pod["repository"])
    assert not pod["repository"].exists()


def test_the_ensemble_command_carries_a_steps_archive_to_its_source() -> None:
    args = assemble_ensemble_cli.build_parser().parse_args(
        [
            "--model=m",
            "--version=2",
            "--config=/dev/null",
            "--repository=/tmp/unused",
            "--step=m.model=/dev/null",
            "--artifact=m.model=s3://models/model.py",
            "--execution-env=m.model=s3://models/env.tar.gz",
            "--execution-env-sha256=m.model=" + "b" * 64,
        ]
    )
    (step,) = assemble_ensemble_cli.steps_from_flags(args)
    assert isinstance(step, assemble_ensemble_cli.ServedStep)
    assert step.artifact.execution_env == "s3://models/env.tar.gz"
    assert step.artifact.execution_env_sha256 == "b" * 64
