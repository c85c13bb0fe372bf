"""`kiln new` end to end, short of touching the spec folder: profile the data, infer the
features, build both documents, check them against the spec language, and say what
was inferred. The command writes the two texts (both or neither)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from compiler.scaffold.documents import Request, dump, featureset_document, model_document
from compiler.scaffold.infer import InferenceError, Inferred, infer
from compiler.scaffold.profile import DataFileError, profile_file
from runtime.contract.vocabulary import Task


class ScaffoldError(Exception):
    """Bad input to `kiln new`; the message names the file or column and what to do."""


@dataclass(frozen=True)
class Scaffold:
    featureset: str
    model: str
    inferred: Inferred
    request: Request

    def summary(self, featureset_path: Path, model_path: Path) -> str:
        kinds = Counter(f.kind for f in self.inferred.features)
        roles = self.inferred.roles
        lines = [
            f"wrote {featureset_path}: {len(self.inferred.features)} features "
            f"({kinds['continuous']} continuous, {kinds['categorical']} categorical), "
            f"entity {roles.entity}, timestamp {roles.timestamp}",
            f"wrote {model_path}: {self.request.task}, target {roles.target}"
            + (f", classes {list(self.inferred.classes)}" if self.inferred.classes else ""),
        ]
        lines += [f"note: {warning}" for warning in self.inferred.warnings]
        lines += [
            "",
            "next:",
            f"  review both files (the ranges and value lists come from {self.request.rows} "
            "rows of your data)",
            f"  put the data where the FeatureSet reads it: {self.request.source_uri} under "
            "each environment's data store (storage.data)",
            "  kiln validate",
        ]
        return "\n".join(lines)


def scaffold(
    name: str,
    data: Path,
    task: Task,
    target: str,
    timestamp: str | None = None,
    entity: str | None = None,
    exclude: tuple[str, ...] = (),
    source: str | None = None,
) -> Scaffold:
    try:
        table = profile_file(data)
        inferred = infer(table, task, target, timestamp, entity, exclude)
    except (DataFileError, InferenceError) as error:
        raise ScaffoldError(str(error)) from None
    request = Request(
        name=name,
        task=task,
        source_uri=source or f"{name}/{data.name}",
        source_format=table.format,
        data_label=data.name,
        rows=table.rows,
    )
    return Scaffold(
        featureset=dump(featureset_document(request, inferred)),
        model=dump(model_document(request, inferred)),
        inferred=inferred,
        request=request,
    )
