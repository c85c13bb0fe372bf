"""The provenance of a published model version: an in-toto statement, SLSA provenance v1.

The subject is the artifact (its path in the store and sha256). The predicate names what
went into it: the feature snapshot's sha256, the spec's git revision and digest, the
training image and its digest (resolvedDependencies); the trainer's parameters
(externalParameters); Kiln's version (internalParameters); the evaluation metrics and
the validation verdict (byproducts). No timestamps: republishing the same inputs states
the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from runtime.contract.signing import IN_TOTO_STATEMENT, SLSA_PROVENANCE

BUILD_TYPE = "urn:kiln:build-type:training-pipeline:v1"
BUILDER_ID = "urn:kiln:builder:publish-step"


def kiln_version() -> str:
    """The installed Kiln: the runtime image carries `kiln-runtime`, a checkout `kiln`."""
    for package in ("kiln-runtime", "kiln"):
        try:
            return version(package)
        except PackageNotFoundError:
            continue
    return "unknown"


def _dependencies(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {"name": "feature-snapshot", "digest": {"sha256": record["data_sha256"]}}
    ]
    if record.get("git_revision"):
        spec: dict[str, Any] = {"name": "spec", "digest": {"gitCommit": record["git_revision"]}}
        if record.get("spec_digest"):
            spec["annotations"] = {"spec_file_sha256": record["spec_digest"]}
        found.append(spec)
    if record.get("image"):
        image: dict[str, Any] = {"name": "training-image", "uri": record["image"]}
        if record.get("image_digest"):
            image["digest"] = {"sha256": record["image_digest"].removeprefix("sha256:")}
        found.append(image)
    return found


def statement(record: Mapping[str, Any], trainer: Mapping[str, Any]) -> dict[str, Any]:
    """The statement for a metadata record (see publish.metadata_record) and trainer params."""
    artifact = record["artifact"]
    byproducts: list[dict[str, Any]] = [
        {"name": "evaluation-metrics", "annotations": dict(record["metrics"])}
    ]
    if record.get("validation") is not None:
        byproducts.append({"name": "validation", "annotations": dict(record["validation"])})
    return {
        "_type": IN_TOTO_STATEMENT,
        "subject": [{"name": artifact["uri"], "digest": {"sha256": artifact["sha256"]}}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "model": record["model"],
                    "version": record["version"],
                    "trainer": {**trainer, "seed": record["seed"]},
                },
                "internalParameters": {"kiln_version": kiln_version()},
                "resolvedDependencies": _dependencies(record),
            },
            "runDetails": {"builder": {"id": BUILDER_ID}, "byproducts": byproducts},
        },
    }
