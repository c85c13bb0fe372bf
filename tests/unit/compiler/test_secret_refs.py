"""Secrets reach the training workflow by reference, never as text.

`training.secret_env` becomes `valueFrom.secretKeyRef` on the train step alone, and
an environment's `signing.key_secret` a read-only Secret volume on the publish step
alone, with KILN_SIGNING_KEY naming the file. The local runner reads the same
variables from its own environment and names, never shows, the ones missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from compiler.api import build
from compiler.cli import cli
from compiler.diagnostics import Diagnostic
from compiler.spec.model import Training
from compiler.spec.project import AlertRoute, WebhookTarget
from compiler.spec.signing import Signing
from runtime.contract.signing import SIGNING_KEY_ENV
from runtime.local import local_run
from tests.conftest import PROJECT, SpecFiles, WriteTree

TRAINING = """\
  training:
    image: ghcr.io/example/train:1.0
    command: [python, train.py]
{extra}"""

STAGING = "    - {name: staging, namespace: ml-staging}\n"


def with_training(files: dict[str, str], extra: str = "") -> dict[str, str]:
    path = "models/alpha.yaml"
    files[path] = files[path] + TRAINING.format(extra=extra)
    return files


def with_staging(files: dict[str, str], staging: str) -> dict[str, str]:
    files["project.yaml"] = PROJECT.replace(STAGING, staging)
    return files


def diagnostics(tmp_path: Path, files: dict[str, str], write_tree: WriteTree) -> list[Diagnostic]:
    return build(write_tree(tmp_path / "specs", files), None).diagnostics


def templates(tmp_path: Path, files: dict[str, str], write_tree: WriteTree) -> dict[str, Any]:
    """The staging WorkflowTemplate's step templates by name."""
    result = build(write_tree(tmp_path / "specs", files), None)
    assert result.ok, [d.text() for d in result.diagnostics]
    for artifact in result.artifacts:
        document = artifact.document
        if (
            document
            and document["kind"] == "WorkflowTemplate"
            and artifact.path.startswith("staging/alpha/")
        ):
            return {t["name"]: t for t in document["spec"]["templates"]}
    raise AssertionError("no WorkflowTemplate for alpha in staging")


SECRET_ENV = "    secret_env:\n      DB_PASSWORD: {name: warehouse, key: password}\n"


def test_secret_env_is_a_secret_key_ref_on_the_train_step_only(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    steps = templates(tmp_path, with_training(spec_files(), SECRET_ENV), write_tree)
    train_env = steps["train"]["container"]["env"]
    assert {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "warehouse", "key": "password"}},
    } in train_env
    for name in ("features", "evaluate", "validate", "publish"):
        variables = [e["name"] for e in steps[name]["container"].get("env", [])]
        assert "DB_PASSWORD" not in variables, name


@pytest.mark.parametrize("name", ["1DB", "DB-PASSWORD", "KILN_DATA", "kiln_seed", "A B"])
def test_a_variable_name_a_shell_cannot_read_or_kiln_keeps_is_refused(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, name: str
) -> None:
    extra = f"    secret_env:\n      '{name}': {{name: warehouse, key: password}}\n"
    found = diagnostics(tmp_path, with_training(spec_files(), extra), write_tree)
    assert [(d.code, d.file, d.line) for d in found] == [
        ("KILN1630", "specs/models/alpha.yaml", 25)
    ]


def test_a_secret_key_outside_the_kubernetes_grammar_is_refused(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    extra = "    secret_env:\n      TOKEN_FILE: {name: warehouse, key: ../token}\n"
    found = diagnostics(tmp_path, with_training(spec_files(), extra), write_tree)
    assert [d.code for d in found] == ["KILN1105"]


KEY_SECRET = (
    "    - name: staging\n"
    "      namespace: ml-staging\n"
    "      signing: {key_secret: {name: model-signing, key: signing.pem}}\n"
)


def test_the_signing_key_secret_is_mounted_into_the_publish_step_only(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = with_staging(with_training(spec_files()), KEY_SECRET)
    steps = templates(tmp_path, files, write_tree)
    publish = steps["publish"]
    [volume] = publish["volumes"]
    assert volume["secret"] == {
        "secretName": "model-signing",
        "items": [{"key": "signing.pem", "path": "value"}],
        "defaultMode": 0o440,
        "optional": False,
    }
    [mount] = [m for m in publish["container"]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    [variable] = [e for e in publish["container"]["env"] if e["name"] == SIGNING_KEY_ENV]
    assert variable["value"] == f"{mount['mountPath']}/value"
    for name in ("features", "train", "evaluate", "validate"):
        assert "volumes" not in steps[name], name
        assert [m["name"] for m in steps[name]["container"]["volumeMounts"]] == ["scratch"]
        variables = [e["name"] for e in steps[name]["container"].get("env", [])]
        assert SIGNING_KEY_ENV not in variables, name


def test_without_a_key_secret_publish_gets_no_key(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    publish = templates(tmp_path, with_training(spec_files()), write_tree)["publish"]
    assert "volumes" not in publish
    assert "env" not in publish["container"]


REQUIRES = (
    "    - name: staging\n"
    "      namespace: ml-staging\n"
    "      policy: {{require_signatures: true}}\n"
    "      signing:\n"
    "        identities: [{{identity: someone@example.com, issuer: 'https://issuer.example'}}]\n"
    "{more}"
)


def _signed_alpha(files: dict[str, str]) -> dict[str, str]:
    path = "models/alpha.yaml"
    files[path] = files[path].replace(
        "artifact: {uri: alpha/1/model.onnx}",
        "artifact: {uri: alpha/1/model.onnx, signature: alpha/1/model.onnx.sig}",
    )
    return files


def test_a_trained_model_where_signatures_are_required_and_no_key_is_given_warns(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    staging = REQUIRES.format(more="").replace(
        "        identities: [{identity: someone@example.com, issuer: 'https://issuer.example'}]\n",
        "        public_keys: [PLACEHOLDER]\n",
    )
    files = with_staging(_signed_alpha(with_training(spec_files(models=("alpha",)))), staging)
    files["project.yaml"] = files["project.yaml"].replace("[PLACEHOLDER]", "[]")
    found = diagnostics(tmp_path, files, write_tree)
    warnings = [d for d in found if d.code == "KILN1631"]
    assert [(d.file, d.line, d.severity.value) for d in warnings] == [
        ("specs/models/alpha.yaml", 21, "warning")
    ]


@pytest.mark.parametrize(
    "more", ["", "        key_secret: {name: model-signing, key: signing.pem}\n"]
)
def test_a_keyless_identity_or_a_key_secret_is_a_way_to_sign(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, more: str
) -> None:
    files = with_staging(
        _signed_alpha(with_training(spec_files(models=("alpha",)))), REQUIRES.format(more=more)
    )
    assert [d.code for d in diagnostics(tmp_path, files, write_tree)] == []


def test_a_signing_key_secret_in_the_local_environment_is_refused(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    files = spec_files()
    files["project.yaml"] = PROJECT.replace(
        "    - {name: local, kind: local}\n",
        "    - name: local\n"
        "      kind: local\n"
        "      signing: {key_secret: {name: model-signing, key: signing.pem}}\n",
    )
    found = diagnostics(tmp_path, files, write_tree)
    assert [(d.code, d.file, d.line) for d in found] == [("KILN1632", "specs/project.yaml", 11)]


def test_the_local_runner_names_a_missing_secret_variable_and_runs_nothing(
    tmp_path: Path,
) -> None:
    plan = {
        "model": "alpha",
        "environment": "local",
        "spec": "models/alpha.yaml",
        "parameters": {},
        "steps": [
            {
                "name": "train",
                "image": "x",
                "command": ["python", "-c", "pass"],
                "env": {},
                "secret_env": ["DB_PASSWORD"],
                "depends": [],
            }
        ],
    }
    run_dir = tmp_path / "run-1"
    with pytest.raises(local_run.MissingSecret, match="DB_PASSWORD") as raised:
        local_run.run(plan, tmp_path, run_dir, {}, lambda _: None, {"PATH": "/usr/bin"})
    assert raised.value.names == ["DB_PASSWORD"]
    assert not run_dir.exists()


def test_the_local_runner_passes_the_variable_to_the_step(tmp_path: Path) -> None:
    check = "import os, pathlib; pathlib.Path('seen').write_text(os.environ['DB_PASSWORD'])"
    plan = {
        "spec": "models/alpha.yaml",
        "parameters": {},
        "steps": [
            {
                "name": "train",
                "command": ["python", "-c", check],
                "env": {},
                "secret_env": ["DB_PASSWORD"],
                "depends": [],
            }
        ],
    }
    said: list[str] = []
    environ = {"PATH": "/usr/bin", "DB_PASSWORD": "hunter2-local"}
    local_run.run(plan, tmp_path, tmp_path / "run-1", {}, said.append, environ)
    assert (tmp_path / "seen").read_text() == "hunter2-local"
    assert not any("hunter2" in line for line in said)


# --- every hint names a reference the spec accepts ----------------------------------

GITHUB_TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
TRAINING_SPEC = {"image": "ghcr.io/example/train:1.0", "command": ["python", "train.py"]}
PLACEHOLDERS = {"SECRET": "api-tokens", "KEY": "token", "NAME": "X-Token", "VAR": "API_TOKEN"}

# (spec file, path, value holding a secret, what the hint must say when it names no form)
SECRET_FIELDS: list[tuple[str, tuple[str | int, ...], str, str | None]] = [
    ("models/alpha.yaml", ("spec", "training", "args", 1), GITHUB_TOKEN, None),
    ("models/alpha.yaml", ("spec", "training", "command", 1), f"--token={GITHUB_TOKEN}", None),
    ("models/alpha.yaml", ("spec", "versions", 0, "description"), GITHUB_TOKEN, None),
    ("project.yaml", ("metadata", "description"), GITHUB_TOKEN, None),
    (
        "project.yaml",
        ("spec", "alert_routes", 0, "webhook", "url"),
        f"https://hooks.example.com/alerts?token={GITHUB_TOKEN}",
        None,
    ),
    (
        "project.yaml",
        ("spec", "alert_routes", 0, "webhook", "url"),
        "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/abcdefABCDEF0123",
        None,
    ),
    (
        "project.yaml",
        ("spec", "alert_routes", 1, "alertmanager", "url"),
        "https://admin:Zq8rT2wXk5pL@alertmanager.example.com",
        None,
    ),
    (
        "project.yaml",
        ("spec", "environments", 1, "signing", "public_keys", 0),
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n",
        None,
    ),
    (
        "project.yaml",
        ("spec", "git", "repo"),
        f"https://x:{GITHUB_TOKEN}@github.com/example/unit.git",
        "argocd.argoproj.io/secret-type: repository",
    ),
    (
        "project.yaml",
        ("spec", "images", "runtime"),
        f"ghcr.io/example/runtime:{GITHUB_TOKEN}",
        "imagePullSecrets",
    ),
    (
        "models/alpha.yaml",
        ("spec", "training", "image"),
        f"ghcr.io/example/train:{GITHUB_TOKEN}",
        "imagePullSecrets",
    ),
    (
        "project.yaml",
        ("spec", "storage", "models"),
        "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY@bucket",
        "workload identity",
    ),
    (
        "models/alpha.yaml",
        ("spec", "training", "data", "uri"),
        "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY@bucket/rows",
        "workload identity",
    ),
]

ROUTES = [
    {"name": "hook", "webhook": {"url": "https://hooks.example.com/alerts"}},
    {"name": "pager", "alertmanager": {"url": "http://alertmanager-operated.monitoring:9093"}},
]


def _tree_with_secret(
    files: dict[str, str], file: str, path: tuple[str | int, ...], value: str
) -> dict[str, str]:
    project = yaml.safe_load(files["project.yaml"])
    project["spec"]["alert_routes"] = ROUTES
    project["spec"]["environments"][1]["signing"] = {"public_keys": ["x"]}
    files["project.yaml"] = yaml.safe_dump(project, sort_keys=False)
    model = yaml.safe_load(files["models/alpha.yaml"])
    model["spec"]["training"] = {
        **TRAINING_SPEC,
        "data": {"uri": "rows.parquet"},
        "args": ["--token", "x"],
    }
    files["models/alpha.yaml"] = yaml.safe_dump(model, sort_keys=False)
    data = yaml.safe_load(files[file])
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    files[file] = yaml.safe_dump(data, sort_keys=False)
    return files


def _forms(hint: str) -> list[Any]:
    """The secret references a hint names (its code spans that hold one), as YAML data
    with their placeholders filled in."""
    spans = [s for s in re.findall(r"`([^`]+)`", hint) if "{name: SECRET" in s]
    filled = []
    for span in spans:
        for placeholder, value in PLACEHOLDERS.items():
            span = re.sub(rf"\b{placeholder}\b", value, span)
        filled.append(yaml.safe_load(span))
    return filled


def _accepted(form: dict[str, Any]) -> None:
    """Parse a named form with the spec model of the block it belongs in."""
    [(field, value)] = form.items()
    if field in ("slack", "webhook"):
        AlertRoute.model_validate({"name": "hook", field: value})
    elif field == "headers":
        WebhookTarget.model_validate({"url": "https://hooks.example.com/a", field: value})
    elif field == "training":
        Training.model_validate({**TRAINING_SPEC, **value})
    elif field == "signing":
        Signing.model_validate(value)
    else:
        raise AssertionError(f"a hint names {field!r}, which this test does not know")


@pytest.mark.parametrize(("file", "path", "value", "instead"), SECRET_FIELDS)
def test_every_secret_hint_names_a_reference_the_spec_accepts(
    tmp_path: Path,
    spec_files: SpecFiles,
    write_tree: WriteTree,
    file: str,
    path: tuple[str | int, ...],
    value: str,
    instead: str | None,
) -> None:
    files = _tree_with_secret(spec_files(models=("alpha",)), file, path, value)
    found = [d for d in diagnostics(tmp_path, files, write_tree) if d.code == "KILN1209"]
    assert [d.file for d in found] == [f"specs/{file}"]
    hint = found[0].hint
    forms = _forms(hint)
    if instead is None:
        assert forms, hint
        for form in forms:
            _accepted(form)
    else:
        assert instead in hint and not forms, hint


def test_kiln_run_local_stops_before_any_step_naming_the_unset_variable(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WAREHOUSE_TOKEN", raising=False)
    extra = "    secret_env:\n      WAREHOUSE_TOKEN: {name: warehouse, key: token}\n"
    specs = write_tree(tmp_path / "specs", with_training(spec_files(models=("alpha",)), extra))
    runs = tmp_path / "runs"
    arguments = ["run", "alpha", "--local", "--specs", str(specs), "--runs", str(runs)]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 1
    assert "WAREHOUSE_TOKEN" in result.stderr and "export WAREHOUSE_TOKEN=" in result.stderr
    assert not list(runs.glob("alpha/run-*"))
