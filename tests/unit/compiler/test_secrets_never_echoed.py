"""A secret written into a spec is refused at its line and never printed in full:
not in text, JSON or GitHub annotations, not in the pull request plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.api import build
from compiler.cli import cli
from compiler.diagnostics import Diagnostic, render
from compiler.plan import render_failure
from tests.conftest import SpecFiles, WriteTree

# (what is written into the spec, the part of it no output may show)
SECRETS = [
    ("AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "XUtnFEMI/K7MDENG/bPxRfiCY"),
    ("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "0123456789abcdefghij"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "11ABCDEFG0123456789"),
    ("glpat-abcdefghij0123456789", "abcdefghij0123456789"),
    ("xoxb-1234567890-abcdefghijkl", "1234567890-abcdefghijkl"),
    ("https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/abcdefABCDEF0123", "B2C3D/B0A1B"),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0",
    ),
    ('{"type": "service_account", "private_key_id": "0a1b2c3d4e5f60718293"}', "0a1b2c3d4e5f6"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxMjM0"),
    ("s3://reader:Sup3rS3cretPw@acme-data/x.parquet", "Sup3rS3cretPw"),
    ("--api-token=Zx9kLm2Qp7wRt4Yv", "Zx9kLm2Qp7wRt4Yv"),
    ("Authorization: Bearer 4f9a8b7c6d5e4f3a2b1c", "4f9a8b7c6d5e4f3a2b1c"),
]

TRAINING = """\
  training:
    image: ghcr.io/example/train:1.0
    command: [python, -m, train]
    args: [{args}]
    data: {{uri: signals/train.parquet}}
"""


def _tree(tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, secret: str) -> Path:
    files = spec_files(models=("alpha",))
    quoted = json.dumps(secret)
    files["models/alpha.yaml"] += TRAINING.format(args=f"--password, {quoted}")
    files["models/alpha.yaml"] = files["models/alpha.yaml"].replace(
        "{version: 1, ", f"{{version: 1, description: {quoted}, "
    )
    return write_tree(tmp_path, files)


def _assert_hidden(text: str, part: str) -> None:
    assert part not in text
    assert part not in text.replace("\\", "")  # nor behind a format's escapes


@pytest.mark.parametrize(("secret", "part"), SECRETS, ids=[s[1][:12] for s in SECRETS])
def test_a_secret_is_refused_and_redacted_in_every_format(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, secret: str, part: str
) -> None:
    specs_dir = _tree(tmp_path, spec_files, write_tree, secret)
    outputs = []
    for fmt in ("text", "json", "github"):
        result = CliRunner().invoke(cli, ["validate", "--specs", str(specs_dir), "--format", fmt])
        assert result.exit_code == 1, result.output
        assert "KILN1209" in result.output
        outputs.append(result.output)
    diagnostics = build(specs_dir).diagnostics
    outputs += [render_failure(diagnostics, "markdown"), render_failure(diagnostics, "text")]
    for output in outputs:
        _assert_hidden(output, part)
        assert "[redacted" in output


def test_a_diagnostic_quoting_a_secret_shows_it_redacted_in_every_format() -> None:
    token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
    quoting = Diagnostic("specs/a.yaml", 3, 5, "KILN1103", f"found {token!r}", hint=token)
    for fmt in ("text", "json", "github"):
        shown = render([quoting], fmt)
        _assert_hidden(shown, token[4:])
        assert "ghp_...[redacted GitHub token]" in shown


@pytest.mark.parametrize(
    "harmless",
    [
        "git revision 0123456789abcdef0123456789abcdef01234567",  # a sha1 is not a key
        "the basic configuration of the token validation",
        "--password-file=/var/run/secrets/db/password",
        "s3://acme-models/car-loan/1/model.onnx",
        "--api-key=${API_KEY}",
    ],
)
def test_ordinary_text_is_not_taken_for_a_secret(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, harmless: str
) -> None:
    files = spec_files(models=("alpha",))
    files["models/alpha.yaml"] += TRAINING.format(args=json.dumps(harmless))
    specs_dir = write_tree(tmp_path, files)
    assert [d.code for d in build(specs_dir).diagnostics if d.is_error] == []


WEBHOOK_ROUTE = """\
  alert_routes:
    - name: hook
      webhook: {webhook}
"""
ALERTING_MODEL = """\
  monitoring:
    schedule: {cron: "0 * * * *"}
    reference: {uri: signals/reference.parquet}
    analysis: {uri: signals/predictions/}
    columns: {timestamp: ts, prediction: label}
    drift: {univariate: {}}
  alerts:
    - {name: drift, when: {signal: drift}, severity: warning, route: hook}
"""


def _webhook_tree(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree, webhook: str
) -> Path:
    files = spec_files(models=("alpha",))
    files["project.yaml"] += WEBHOOK_ROUTE.format(webhook=webhook)
    files["models/alpha.yaml"] += ALERTING_MODEL
    return write_tree(tmp_path, files)


def test_a_webhook_url_with_a_token_points_to_a_reference_the_field_accepts(
    tmp_path: Path, spec_files: SpecFiles, write_tree: WriteTree
) -> None:
    url = "https://hooks.example/x?token=Zx9kLm2Qp7wRt4Yv"
    refused = build(_webhook_tree(tmp_path / "a", spec_files, write_tree, f"{{url: {url!r}}}"))
    (problem,) = [d for d in refused.diagnostics if d.is_error]
    assert problem.code == "KILN1209" and "url_secret: {name: SECRET, key: KEY}" in problem.hint
    reference = "{url_secret: {name: hook-secret, key: url}}"
    built = build(_webhook_tree(tmp_path / "b", spec_files, write_tree, reference))
    assert [d for d in built.diagnostics if d.is_error] == []
    texts = {a.path: a.data.decode() for a in built.artifacts}
    config = next(t for p, t in texts.items() if "monitor-config" in p)
    assert "url_secret" in config and "hook-secret" in config
    workflow = next(t for p, t in texts.items() if p.endswith("-monitor.yaml") and "Cron" in t)
    assert "secretName: hook-secret" in workflow
