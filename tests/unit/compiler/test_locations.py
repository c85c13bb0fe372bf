"""Locations in a cluster environment stay under the Project's stores."""

from __future__ import annotations

import pytest

from compiler.rules.locations import inside, place_under


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://acme-data/car-loan/ref.parquet", True),
        ("s3://acme-data", True),
        ("s3://acme-data-other/x", False),  # a prefix of the name is not the store
        ("s3://acme-data/../other/x", False),
        ("s3://acme-data/a/%2e%2e/%2E%2E/other", False),  # encoded steps count too
        ("s3://acme-data/./x", False),
        ("gs://acme-data/x", False),
        ("file:///var/run/secrets/slack-webhook/url", False),
    ],
)
def test_inside_the_data_store(location: str, expected: bool) -> None:
    assert inside(location, "s3://acme-data/") is expected


def test_relative_uris_are_placed_under_the_store() -> None:
    assert (
        place_under("car-loan/ref.parquet", "s3://acme-data/")
        == "s3://acme-data/car-loan/ref.parquet"
    )
    assert place_under("http://169.254.169.254/", "s3://acme-data") == "http://169.254.169.254/"
