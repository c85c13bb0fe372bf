"""The one KEY=VALUE parser of the serving tools (runtime/serving/flags.py)."""

from __future__ import annotations

import pytest

from runtime.serving.flags import FlagError, keyed, versioned


def test_values_are_read_by_key_and_by_version() -> None:
    assert keyed(["m.prep=s3://a/model.py", "m.model=x=y"], "--artifact") == {
        "m.prep": "s3://a/model.py",
        "m.model": "x=y",  # only the first `=` separates
    }
    assert versioned(["1=s3://a", "12=b"], "--sha256") == {1: "s3://a", 12: "b"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["m.prep"], "--step 'm.prep': expected STEP=VALUE"),
        (["=s3://a"], "--step '=s3://a': expected STEP=VALUE"),
        (["m.prep="], "--step 'm.prep=': expected STEP=VALUE"),
        (["a=1", "a=2"], "--step: step a is given twice"),
    ],
)
def test_a_malformed_or_repeated_key_is_refused(values: list[str], message: str) -> None:
    with pytest.raises(FlagError) as caught:
        keyed(values, "--step")
    assert str(caught.value) == message


def test_a_version_must_be_a_number_given_once() -> None:
    with pytest.raises(FlagError, match=r"--artifact v1=\.\.\.: expected VERSION=VALUE"):
        versioned(["v1=s3://a"], "--artifact")
    with pytest.raises(FlagError, match="version 1 is given twice"):
        versioned(["1=a", "1=b"], "--artifact")
