"""The `KEY=VALUE` command-line values of the serving tools (assemble, an ensemble's
assemble, smoke): one parser, so each tool refuses a malformed or repeated key alike.
Each tool turns FlagError into its own error, which names the tool."""

from __future__ import annotations

from collections.abc import Sequence


class FlagError(ValueError):
    """A value that is not KEY=VALUE, or a key given twice; the message says which."""


def keyed(values: Sequence[str], flag: str, key: str = "STEP") -> dict[str, str]:
    """`flag`'s values by key, e.g. {"m.prep": "s3://..."} from ["m.prep=s3://..."]."""
    pairs: dict[str, str] = {}
    for value in values:
        name, separator, rest = value.partition("=")
        if not separator or not name or not rest:
            raise FlagError(f"{flag} {value!r}: expected {key}=VALUE")
        if name in pairs:
            raise FlagError(f"{flag}: {key.lower()} {name} is given twice")
        pairs[name] = rest
    return pairs


def versioned(values: Sequence[str], flag: str) -> dict[int, str]:
    """`flag`'s values by version number, e.g. {1: "s3://..."} from ["1=s3://..."]."""
    pairs = keyed(values, flag, key="VERSION")
    for name in pairs:
        if not name.isdigit():
            raise FlagError(f"{flag} {name}=...: expected VERSION=VALUE, e.g. 1=...")
    return {int(name): value for name, value in pairs.items()}
