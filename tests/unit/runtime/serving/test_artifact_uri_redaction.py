"""Artifact URIs in assemble's errors and log lines show neither credentials nor a query."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.contract.secrets import redact_uri
from runtime.serving.assemble import ArtifactSource, AssembleError, assemble

SIGNED = "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI@acme-models/m/1/model.onnx?X-Amz-Signature=f00d"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (SIGNED, "s3://[redacted credentials]@acme-models/m/1/model.onnx?[redacted query]"),
        ("https://token@host.example/m.onnx", "https://[redacted credentials]@host.example/m.onnx"),
        ("s3://acme-models/m/1/model.onnx", "s3://acme-models/m/1/model.onnx"),
        ("specs/artifacts/models/m/1/model.onnx", "specs/artifacts/models/m/1/model.onnx"),
    ],
)
def test_a_uri_is_shown_without_credentials_or_query(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


@pytest.mark.parametrize(
    "uri",
    [
        "memory://reader:Sup3rS3cretPw@acme/none/model.onnx",
        "memory://acme/none/model.onnx?sig=Sup3rS3cretPw",
        "nosuchscheme://reader:Sup3rS3cretPw@acme/model.onnx",
    ],
)
def test_assemble_errors_do_not_repeat_credentials(tmp_path: Path, uri: str) -> None:
    config = 'name: "m"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
    with pytest.raises(AssembleError) as failure:
        assemble("m", [ArtifactSource(1, uri)], config, tmp_path / "models")
    assert "Sup3rS3cretPw" not in str(failure.value)
    assert "[redacted" in str(failure.value)
