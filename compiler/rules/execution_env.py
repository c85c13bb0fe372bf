"""A python model's execution_env: the conda-pack archive the serving pod fetches beside
model.py. Checked where the compiler can see it: its name, and a local archive's place
and digest; an environment that requires digests requires the archive's too."""

from __future__ import annotations

from pathlib import Path

from compiler.diagnostics import Path_
from compiler.ir import ArtifactIR
from compiler.rules.findings import Finding
from compiler.rules.signature import is_remote
from compiler.spec.model import ModelSpec
from compiler.spec.project import Environment
from runtime.contract.artifact_digest import file_sha256
from runtime.contract.formats import EXECUTION_ENV_FILE

# The python backend unpacks a conda-pack archive only when its name ends so.
ARCHIVE_SUFFIX = ".tar.gz"


def check_execution_envs(
    spec: ModelSpec, versions: tuple[ArtifactIR, ...], root: Path, environment: Environment
) -> list[Finding]:
    found: list[Finding] = []
    for index, artifact in enumerate(versions):
        if artifact.execution_env is None:
            continue
        at: Path_ = ("spec", "versions", index, "python", "execution_env")
        if not artifact.execution_env.endswith(ARCHIVE_SUFFIX):
            written = spec.versions[index].python  # the spec's text: one message for all
            assert written is not None
            message = (
                f"execution_env of version {artifact.version} ({written.execution_env}) is "
                f"not a {ARCHIVE_SUFFIX} archive; Triton's python backend unpacks only those"
            )
            hint = f"pack the environment with `conda pack -o {EXECUTION_ENV_FILE}`"
            found.append(Finding(at, "KILN1726", message, hint))
        elif not is_remote(artifact.execution_env):
            found += _local_archive(artifact, index, root)
        if (
            environment.kind != "local"
            and environment.policy.require_digests
            and artifact.version == spec.serving.version
            and artifact.execution_env_sha256 is None
        ):
            message = (
                f"environment {environment.name} requires digests; version "
                f"{artifact.version} has no python.execution_env_sha256"
            )
            hint = "add python.execution_env_sha256 (`sha256sum` of the archive)"
            found.append(Finding(at, "KILN1602", message, hint, key=True))
    return found


def _local_archive(artifact: ArtifactIR, index: int, root: Path) -> list[Finding]:
    """A local archive lies inside the project (links followed) and has its digest."""
    assert artifact.execution_env is not None
    at: Path_ = ("spec", "versions", index, "python", "execution_env")
    path = Path(artifact.execution_env.removeprefix("file://"))
    real = (path if path.is_absolute() else root / path).resolve()
    if not real.is_relative_to(root.resolve()):
        message = (
            f"execution_env of version {artifact.version} ({artifact.execution_env}) resolves "
            "outside the project folder, links followed"
        )
        hint = "keep local archives under the project (the environment's model store)"
        return [Finding(at, "KILN1711", message, hint)]
    if not real.is_file():
        message = f"execution_env of version {artifact.version} not found at {path}"
        hint = f"fix the path, or pack the environment there with `conda pack -o {path.name}`"
        return [Finding(at, "KILN1727", message, hint)]
    declared = artifact.execution_env_sha256
    actual = file_sha256(real)
    if declared is None or actual == declared:
        return []
    message = f"{artifact.execution_env} has sha256 {actual}, declared {declared}"
    where = ("spec", "versions", index, "python", "execution_env_sha256")
    return [Finding(where, "KILN1703", message)]
