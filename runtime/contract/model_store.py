"""The model store: where a version's files lie and what its metadata record says.

The publish step writes `<store>/<model>/<version>/model.onnx` and, beside it,
`metadata.json`; `kiln promote` reads the records back to add a version to the
spec. Both sides take the layout and the record's keys from here, so a key renamed
by one is renamed for the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARTIFACT_FILE = "model.onnx"
RECORD_FILE = "metadata.json"


class StoreError(ValueError):
    """A store folder or record that cannot be read as the publish step writes it."""


def artifact_uri(name: str, version: int, file: str = ARTIFACT_FILE) -> str:
    """The artifact's path relative to the store: what a spec's `artifact.uri` holds.
    `file` is model.onnx, or the name a native model's format has (xgboost.json)."""
    return f"{name}/{version}/{file}"


def record_uri(name: str, version: int) -> str:
    return f"{name}/{version}/{RECORD_FILE}"


def gates_outcome(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """What a record keeps of the evaluate step's evaluation.json: the verdict and each gate."""
    return {"passed": bool(evaluation.get("passed")), "results": list(evaluation.get("gates", []))}


@dataclass(frozen=True)
class StoredVersion:
    """One version as its record describes it."""

    name: str
    version: int
    uri: str
    sha256: str
    metrics: dict[str, float]
    # None: the record predates gate outcomes (or was written without evaluate's file).
    gates_passed: bool | None
    signed: bool
    data_sha256: str | None
    as_of: str | None
    format: str = "onnx"
    fil: dict[str, Any] | None = None  # the FIL settings of a native tree model

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> StoredVersion:
        try:
            artifact = record["artifact"]
            gates = record.get("gates")
            return cls(
                name=str(record["model"]),
                version=int(record["version"]),
                uri=str(artifact["uri"]),
                sha256=str(artifact["sha256"]),
                metrics={str(k): float(v) for k, v in record.get("metrics", {}).items()},
                gates_passed=None if gates is None else bool(gates["passed"]),
                signed=record.get("signature") is not None,
                data_sha256=record.get("data_sha256"),
                as_of=record.get("as_of") or None,
                format=str(record.get("format", "onnx")),
                fil=None if record.get("fil") is None else dict(record["fil"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(f"{where} is not a metadata record Kiln wrote: {error!r}") from error


def read_versions(store: Path, name: str) -> list[StoredVersion]:
    """Every version of `name` in a folder store that has a record, oldest first.

    A version folder without a record is an upload in progress or one that failed
    before its record (the artifact is written first): it is not a published version.
    """
    found: list[StoredVersion] = []
    folder = store / name
    if not folder.is_dir():
        return found
    for child in folder.iterdir():
        record = child / RECORD_FILE
        if not (child.name.isdigit() and record.is_file()):
            continue
        try:
            document = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise StoreError(f"cannot read {record}: {error}") from error
        if not isinstance(document, dict):
            raise StoreError(f"{record} is not a JSON object")
        found.append(StoredVersion.from_record(document, str(record)))
    return sorted(found, key=lambda v: v.version)
