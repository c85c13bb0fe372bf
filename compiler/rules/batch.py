"""Rules of `spec.batch`: names, the version each job scores with, where it writes.

Where a job reads and writes in a cluster (under the data store) is checked with the
other locations, in locations.py; these are the rules of the jobs themselves.
"""

from __future__ import annotations

from compiler.diagnostics import Path_
from compiler.lowering import batch_columns
from compiler.names import CRONWORKFLOW_MAX, batch_job
from compiler.rules.findings import Finding
from compiler.rules.locations import inside, place_under
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import BatchJob, ModelSpec
from runtime.contract.batch import BatchColumns

SPEC = ("spec",)


def check_batch(name: str, spec: ModelSpec, features: FeatureSetSpec) -> list[Finding]:
    """What does not depend on the environment: names, versions, columns."""
    found: list[Finding] = []
    seen: set[str] = set()
    declared = sorted(v.version for v in spec.versions)
    for i, job in enumerate(spec.batch):
        at = (*SPEC, "batch", i)
        if job.name in seen:
            message = f"batch job `{job.name}` is declared twice"
            found.append(Finding((*at, "name"), "KILN1660", message))
        seen.add(job.name)
        derived = batch_job(name, job.name)
        if len(derived) > CRONWORKFLOW_MAX:
            message = (
                f"batch job `{job.name}` gives the workflow name {derived!r}, "
                f"{len(derived)} characters; the limit is {CRONWORKFLOW_MAX}"
            )
            found.append(Finding((*at, "name"), "KILN1664", message))
        found.extend(_version(job, at, spec.serving.version, declared))
        found.extend(_scorable(spec, job, at))
    if spec.batch:
        found.extend(_collisions(spec, features))
    return found


def _version(
    job: BatchJob, at: tuple[str | int, ...], serving: int | None, declared: list[int]
) -> list[Finding]:
    known = ", ".join(map(str, declared)) or "none declared yet"
    if job.version is None and serving is None:
        message = f"batch job `{job.name}` names no version and the model serves none"
        hint = f"set the job's version to a declared version ({known})"
        return [Finding(at, "KILN1661", message, hint, key=True)]
    if job.version is not None and job.version not in declared:
        message = f"batch job `{job.name}` scores with version {job.version}, not declared"
        hint = f"declared versions: {known}"
        return [Finding((*at, "version"), "KILN1661", message, hint)]
    return []


def _scorable(spec: ModelSpec, job: BatchJob, at: tuple[str | int, ...]) -> list[Finding]:
    """Batch scoring runs onnxruntime, so the job's version must be ONNX."""
    chosen = job.version if job.version is not None else spec.serving.version
    version = next((v for v in spec.versions if v.version == chosen), None)
    if version is None or version.format == "onnx":
        return []
    message = f"batch job `{job.name}` scores with version {chosen}, a {version.format} model"
    where = (*at, "version") if job.version is not None else at
    hint = "score an ONNX version: batch scoring runs onnxruntime"
    return [Finding(where, "KILN1665", message, hint, key=job.version is None)]


def _collisions(spec: ModelSpec, features: FeatureSetSpec) -> list[Finding]:
    """A prediction column named like a kept input column would overwrite it."""
    columns = batch_columns(spec, features)
    kept = {columns.timestamp_out, *columns.features}
    if columns.entity:
        kept.add(columns.entity)
    found = []
    for written, at in _written_at(spec, columns):
        if written in kept:
            message = (
                f"batch output column {written!r} is also an input column the jobs keep "
                "(a feature, the entity or the timestamp)"
            )
            found.append(Finding(at, "KILN1663", message))
    return found


def _written_at(spec: ModelSpec, columns: BatchColumns) -> list[tuple[str, Path_]]:
    """Each prediction column and where its name comes from: the monitoring column that
    names it, or the batch block when it is a default name."""
    if spec.monitoring is None:
        return [(c, (*SPEC, "batch")) for c in (columns.prediction, *columns.score_columns)]
    named: Path_ = (*SPEC, "monitoring", "columns")
    found: list[tuple[str, Path_]] = [(columns.prediction, (*named, "prediction"))]
    if isinstance(columns.score, str):
        found.append((columns.score, (*named, "score")))
    elif columns.score:
        found += [(column, (*named, "score", label)) for label, column in columns.score]
    return found


def check_overlap(spec: ModelSpec, data_store: str) -> list[Finding]:
    """A job whose output is its input, or inside or above it, would read its own
    predictions on its next run (or replace its rows)."""
    found = []
    for i, job in enumerate(spec.batch):
        source = place_under(job.input.uri, data_store).rstrip("/")
        target = place_under(job.output, data_store).rstrip("/")
        if inside(source, target) or inside(target, source):
            message = (
                f"batch job `{job.name}` writes to {job.output!r}, which overlaps its input "
                f"{job.input.uri!r}"
            )
            hint = "write predictions to a folder of their own, e.g. predictions/batch/"
            found.append(Finding((*SPEC, "batch", i, "output"), "KILN1662", message, hint))
    return found
