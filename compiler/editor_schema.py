"""JSON Schema of every kind, for editors (`# yaml-language-server: $schema=...`)."""

from __future__ import annotations

import json
from typing import Any

from compiler.spec.documents import KINDS


def kind_schema(kind: str) -> dict[str, Any]:
    schema = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Kiln {kind}"
    return schema


def combined_schema() -> dict[str, Any]:
    """One schema for any spec file: chooses the kind's schema by `kind`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Kiln spec",
        "oneOf": [{"$ref": f"{kind.lower()}.schema.json"} for kind in KINDS],
    }


def schema_files() -> dict[str, str]:
    files = {f"{kind.lower()}.schema.json": kind_schema(kind) for kind in KINDS}
    files["kiln.schema.json"] = combined_schema()
    return {
        name: json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, schema in files.items()
    }
