"""What a secret looks like (runtime/contract/secrets.py): each kind found, shown
redacted with its kind, ordinary text left alone, and long text searched in linear time."""

from __future__ import annotations

import time

import pytest

from runtime.contract.secrets import find_secrets, redact

KINDS = [
    ("AKIAIOSFODNN7EXAMPLE", "AWS access key id"),
    ("aws_secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS secret access key"),
    ('{"type": "service_account"}', "GCP service-account key"),
    ("ghs_0123456789abcdefghijklmnopqrstuvwxyz", "GitHub token"),
    ("glpat-abcdefghij0123456789", "GitLab token"),
    ("xoxp-1234567890-abcdefghij", "Slack token"),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", "Slack webhook"),
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQE\n-----END EC PRIVATE KEY-----", "private key block"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "JSON web token"),
    ("https://deploy:Tr0ub4dor@git.example/x.git", "credentials in a URL"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "authorization header"),
    ("client_secret: 9f8e7d6c5b4a39281706", "value of client_secret"),
]


@pytest.mark.parametrize(("text", "kind"), KINDS, ids=[k for _, k in KINDS])
def test_each_kind_is_found_and_shown_redacted(text: str, kind: str) -> None:
    assert [f.kind for f in find_secrets(text)] == [kind]
    assert f"[redacted {kind}]" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "python -m train --epochs 10 --learning-rate 0.01",
        "sha256 905bf2965a39c334beb2be804dd0a7dd58c6accbf6f1086e8ac7dffa43d450ca",
        "token: ${TOKEN}",
        "password_file=/var/run/secrets/db/password",
        "https://github.com/acme/ml-platform.git",
        "Bearer tokens are read from the mounted Secret",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("unit", ["a", "A", "aB1/", "x=", "s3://", "bearer ", "-----BEGIN "])
def test_a_megabyte_of_repetition_is_searched_in_linear_time(unit: str) -> None:
    text = unit * (1_000_000 // len(unit))
    started = time.perf_counter()
    find_secrets(text)
    # Linear is about a second on a slow machine; quadratic would be hours.
    assert time.perf_counter() - started < 30
