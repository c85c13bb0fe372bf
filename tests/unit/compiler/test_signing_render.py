"""An environment's signing trust reaches the serving pod's assemble step as data.

The public keys travel in the ConfigMap's trust.json (a file the init container reads),
never in a command line or a shell; a signed version's bundle is one `--signature` word.
Refusals of bad trust values and unsigned versions are in the error corpus
(tests/errors/cases/signing-*, policy-require-signatures-*).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from compiler.api import build
from compiler.artifact import Artifact
from runtime.contract.signing import Trust
from tests.conftest import PROJECT, SpecFiles, WriteTree
from tests.keys import key_pair, rsa_public_pem

IDENTITY = "https://github.com/example/unit/.github/workflows/train.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


def indented(pem: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in pem.strip().splitlines())


def signing_project(public: str, *, require: bool) -> str:
    staging = (
        "    - name: staging\n"
        "      namespace: ml-staging\n"
        f"      policy: {{require_signatures: {str(require).lower()}}}\n"
        "      signing:\n"
        "        public_keys:\n"
        "          - |\n"
        f"{indented(public, 12)}"
        f"        identities: [{{identity: '{IDENTITY}', issuer: '{ISSUER}'}}]\n"
    )
    return PROJECT.replace("    - {name: staging, namespace: ml-staging}\n", staging)


def built(tmp_path: Path, files: dict[str, str], write_tree: WriteTree) -> list[Artifact]:
    root = write_tree(tmp_path / "specs", files)
    result = build(root, None)
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.artifacts


def rendered(artifacts: list[Artifact], kind: str, environment: str) -> dict[str, Any]:
    for artifact in artifacts:
        document = artifact.document
        if document and document["kind"] == kind and artifact.path.startswith(environment + "/"):
            return document
    raise AssertionError(f"no {kind} in {environment}")


def assemble_command(artifacts: list[Artifact], environment: str) -> list[str]:
    workload = rendered(artifacts, "Rollout", environment)
    init = workload["spec"]["template"]["spec"]["initContainers"][0]
    command: list[str] = init["command"]
    return command


@pytest.fixture()
def public(tmp_path: Path) -> str:
    return key_pair(tmp_path / "keys")[1]


def signed_model(files: dict[str, str]) -> dict[str, str]:
    path = "models/alpha.yaml"
    files[path] = files[path].replace(
        "artifact: {uri: alpha/1/model.onnx}",
        "artifact: {uri: alpha/1/model.onnx, signature: alpha/1/model.onnx.sig}",
    )
    return files


def test_the_trust_reaches_the_assemble_step_as_a_file(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, public: str
) -> None:
    files = signed_model(spec_files(models=("alpha",)))
    files["project.yaml"] = signing_project(public, require=True)
    artifacts = built(tmp_path, files, write_tree)
    config = rendered(artifacts, "ConfigMap", "staging")
    trust = Trust.from_json(config["data"]["trust.json"])
    assert trust.public_keys == (public.strip() + "\n",)
    assert [(i.identity, i.issuer) for i in trust.identities] == [(IDENTITY, ISSUER)]
    assert trust.require_signatures
    command = assemble_command(artifacts, "staging")
    assert command[command.index("--signature") + 1] == "1=s3://unit-models/alpha/1/model.onnx.sig"
    assert command[command.index("--trust") + 1] == "/etc/kiln/triton/trust.json"
    assert not any("BEGIN PUBLIC KEY" in word for word in command)


def test_without_a_signing_section_nothing_changes(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = signed_model(spec_files(models=("alpha",)))
    artifacts = built(tmp_path, files, write_tree)
    assert "trust.json" not in rendered(artifacts, "ConfigMap", "staging")["data"]
    command = assemble_command(artifacts, "staging")
    assert "--trust" not in command and "--signature" not in command


def test_a_signed_version_satisfies_require_signatures(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, public: str
) -> None:
    files = signed_model(spec_files(models=("alpha", "beta")))
    files["project.yaml"] = signing_project(public, require=True)
    root = write_tree(tmp_path / "specs", files)
    result = build(root, None)
    # alpha is signed; beta is not and is refused, at its version's artifact.
    assert [(d.file, d.code) for d in result.diagnostics] == [
        ("specs/models/beta.yaml", "KILN1608")
    ]


def test_an_rsa_key_is_refused(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = spec_files(models=("alpha",))
    files["project.yaml"] = signing_project(rsa_public_pem(), require=False)
    result = build(write_tree(tmp_path / "specs", files), None)
    assert [d.code for d in result.diagnostics] == ["KILN1230"]
    assert "elliptic-curve" in result.diagnostics[0].message
    assert json.dumps([d.message for d in result.diagnostics]).count("BEGIN") == 0
