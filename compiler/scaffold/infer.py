"""The rules `kiln new` infers a FeatureSet from, one function per decision.

docs/your-model.md states the same rules for users; tests/unit/compiler/scaffold holds
one test per rule. Every refusal names the column and says what to do.

* The target, the timestamp and the entity (id) columns are roles, not features; so
  is every column passed with --exclude.
* A boolean column becomes an int64 categorical feature with values [0, 1]: ONNX bool
  inputs are poorly supported by converters and clients, 0/1 integers are not.
* Whole numbers (an integer column, or a float column whose values are all whole)
  with at most `FEW_NUMBERS` distinct values become int64 categorical features with
  their values listed: codes, counts of doors, ratings.
* Every other number becomes a float32 continuous feature whose range is the
  sample's minimum and maximum.
* Strings become string categorical features, their values listed when there are at
  most `FEW_STRINGS`; above that the list is left out (unseen-value checks then have
  nothing to compare with) and a note says so.
* Dates and times other than the timestamp, columns of other types, and columns
  without a single value in the sample are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from compiler.inert_text import TEMPLATE_SYNTAX
from compiler.scaffold.profile import ColumnProfile, TableProfile, quoted
from compiler.spec.types import COLUMN
from runtime.contract.secrets import find_secrets
from runtime.contract.vocabulary import Task

FEW_NUMBERS = 10
FEW_STRINGS = 50
MAX_CLASSES = 50
_ID_NAME = re.compile(r"(?i)(id|identifier|uuid|key|.*_id)")


class InferenceError(Exception):
    """The data cannot become a FeatureSet as asked; the message names the column."""


@dataclass(frozen=True)
class InferredFeature:
    name: str
    dtype: str  # a FeatureSet dtype: the model's input type
    kind: str  # continuous | categorical
    range: tuple[float, float] | None = None
    values: tuple[Any, ...] | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Roles:
    target: str
    timestamp: str
    entity: str
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inferred:
    roles: Roles
    features: tuple[InferredFeature, ...]
    classes: tuple[Any, ...] | None  # classification: the target's labels, sorted
    label_dtype: str  # the served label's tensor dtype
    warnings: tuple[str, ...] = field(default=())


def infer(
    table: TableProfile,
    task: Task,
    target: str,
    timestamp: str | None = None,
    entity: str | None = None,
    exclude: tuple[str, ...] = (),
) -> Inferred:
    """Everything `kiln new` writes that comes from the data."""
    roles = Roles(
        target=_check_name(_present(table, target, "--target")),
        timestamp=_check_name(_timestamp(table, timestamp)),
        entity=_check_name(_entity(table, entity)),
        excluded=tuple(_present(table, name, "--exclude") for name in exclude),
    )
    taken = {roles.target, roles.timestamp, roles.entity, *roles.excluded}
    features = tuple(feature_of(c) for c in table.columns if c.name not in taken)
    if not features:
        raise InferenceError(
            f"{table.path}: no column is left to be a feature once the target, timestamp, "
            "id and excluded columns are set aside"
        )
    target_column = table.column(roles.target)
    assert target_column is not None  # _present checked it
    classes = target_classes(target_column, task)
    warnings = tuple(f"{f.name}: {n}" for f in features for n in f.notes if "not listed" in n)
    return Inferred(roles, features, classes, _label_dtype(target_column, task), warnings)


def feature_of(column: ColumnProfile) -> InferredFeature:
    """One column as a feature, by the rules in the module's docstring."""
    _check_name(column.name)
    if column.distinct_count == 0:
        raise InferenceError(
            f"column {quoted(column.name)} has no value in the sample; "
            f"drop it with --exclude {column.name}"
        )
    notes = _missing_note(column)
    if column.kind == "bool":
        return InferredFeature(
            column.name, "int64", "categorical", values=(0, 1), notes=("bool in the data", *notes)
        )
    if column.kind in ("integer", "float"):
        return _numeric(column, notes)
    if column.kind == "string":
        if column.distinct is not None and not all(map(writable, column.distinct)):
            note = "values not listed: some hold text a spec refuses (template syntax or a secret)"
            return InferredFeature(column.name, "string", "categorical", notes=(note, *notes))
        if column.distinct is not None and len(column.distinct) <= FEW_STRINGS:
            return InferredFeature(column.name, "string", "categorical", values=column.distinct)
        count = "more than 200" if column.distinct is None else str(column.distinct_count)
        note = f"{count} distinct values in the sample, not listed (above {FEW_STRINGS})"
        return InferredFeature(column.name, "string", "categorical", notes=(note, *notes))
    if column.kind == "datetime":
        raise InferenceError(
            f"column {quoted(column.name)} holds dates or times, which a model cannot take "
            f"as they are: derive a number from it (an age in days) in the data, pass it as "
            f"--timestamp {column.name} if it is the event time, or --exclude {column.name}"
        )
    raise InferenceError(
        f"column {quoted(column.name)} is of type {column.arrow_type}; features are "
        f"numbers, strings or booleans: convert it in the data or --exclude {column.name}"
    )


def writable(value: object) -> bool:
    """Whether a value from the data may be written into a spec: Kiln refuses template
    syntax and secrets in every spec string (KILN1212, KILN1209), so a value holding
    either would make the scaffold fail its own validation."""
    text = str(value)
    return not TEMPLATE_SYNTAX.search(text) and not find_secrets(text)


def _numeric(column: ColumnProfile, notes: tuple[str, ...]) -> InferredFeature:
    if column.infinite:
        raise InferenceError(
            f"column {quoted(column.name)} holds infinite values; replace them in the data "
            f"(with a missing value or a bound), or --exclude {column.name}"
        )
    few = column.distinct is not None and len(column.distinct) <= FEW_NUMBERS
    if column.integral and few:
        assert column.distinct is not None
        values = tuple(int(v) for v in column.distinct)
        return InferredFeature(column.name, "int64", "categorical", values=values, notes=notes)
    assert column.minimum is not None and column.maximum is not None
    bounds = (column.minimum, column.maximum)
    return InferredFeature(column.name, "float32", "continuous", range=bounds, notes=notes)


def _missing_note(column: ColumnProfile) -> tuple[str, ...]:
    if not column.nulls:
        return ()
    return (f"{column.nulls} missing in the sample",)


def target_classes(column: ColumnProfile, task: Task) -> tuple[Any, ...] | None:
    """The target's classes (classification), after checking the target fits the task."""
    name = quoted(column.name)
    if column.distinct_count == 0:
        raise InferenceError(f"target {name} has no value in the sample")
    if task == "regression":
        if column.kind not in ("integer", "float"):
            raise InferenceError(
                f"target {name} is {column.arrow_type}; regression needs a numeric target "
                "(for labels use --task binary_classification or multiclass_classification)"
            )
        if column.distinct_count <= 2:
            raise InferenceError(
                f"target {name} has {column.distinct_count} distinct value(s); that is a "
                "label, not a quantity: use --task binary_classification"
            )
        return None
    if column.kind not in ("integer", "bool", "string") and not column.integral:
        raise InferenceError(
            f"target {name} holds fractional numbers; classification needs labels "
            "(integers or strings): use --task regression, or map the values to labels"
        )
    return _classes(column, task)


def _classes(column: ColumnProfile, task: Task) -> tuple[Any, ...]:
    name = quoted(column.name)
    count = column.distinct_count
    if count == 1:
        raise InferenceError(
            f"target {name} has one class in the sample; a classifier needs at least two: "
            "use a sample that holds both outcomes"
        )
    if task == "binary_classification" and count > 2:
        raise InferenceError(
            f"target {name} has {_many(column)} classes; use --task multiclass_classification"
        )
    if task == "multiclass_classification" and count == 2:
        raise InferenceError(f"target {name} has two classes; use --task binary_classification")
    if column.distinct is None or count > MAX_CLASSES:
        raise InferenceError(
            f"target {name} has {_many(column)} classes, more than the {MAX_CLASSES} Kiln "
            "monitors per model; group rare classes in the data"
        )
    if column.kind == "bool":
        return (0, 1)
    if column.kind != "string":
        return tuple(int(v) for v in column.distinct)
    if not all(map(writable, column.distinct)):
        raise InferenceError(
            f"target {name} has a class label holding template syntax or a secret, which a "
            "spec cannot list; map the labels to plain names in the data"
        )
    return column.distinct


def _many(column: ColumnProfile) -> str:
    return "more than 200" if column.distinct is None else str(column.distinct_count)


def _label_dtype(column: ColumnProfile, task: Task) -> str:
    if task == "regression":
        return "fp32"
    return "string" if column.kind == "string" else "int64"


def _present(table: TableProfile, name: str, option: str) -> str:
    if table.column(name) is None:
        raise InferenceError(
            f"{option} {quoted(name)}: {table.path} has no such column; "
            f"it has {_listed(c.name for c in table.columns)}"
        )
    return name


def _timestamp(table: TableProfile, given: str | None) -> str:
    if given is not None:
        column = table.column(_present(table, given, "--timestamp"))
        assert column is not None
        if column.kind != "datetime":
            raise InferenceError(
                f"--timestamp {quoted(given)} is {column.arrow_type}, not a date or time; "
                "write it as ISO 8601 (2024-05-01T12:00:00) in the data"
            )
        return given
    found = [c.name for c in table.columns if c.kind == "datetime"]
    if len(found) == 1:
        return found[0]
    if not found:
        raise InferenceError(
            f"{table.path} has no date or time column; a FeatureSet needs an event time "
            "for point-in-time snapshots: add one and pass --timestamp COLUMN"
        )
    raise InferenceError(
        f"{table.path} has several date or time columns ({_listed(found)}); "
        "pass --timestamp COLUMN to say which is the event time"
    )


def _entity(table: TableProfile, given: str | None) -> str:
    if given is not None:
        return _present(table, given, "--id")
    found = [c.name for c in table.columns if c.unique and _ID_NAME.fullmatch(c.name)]
    if len(found) == 1:
        return found[0]
    what = f"several candidates ({_listed(found)})" if found else "no column that looks like one"
    raise InferenceError(
        f"{table.path}: a FeatureSet needs an entity (id) column to join on, and there is "
        f"{what}; pass --id COLUMN"
    )


def _check_name(name: str) -> str:
    if not re.fullmatch(COLUMN, name):
        raise InferenceError(
            f"column {quoted(name)} is not a name Kiln can use (letters, digits and '_', "
            f"not starting with a digit): rename it in the data, or --exclude it"
        )
    return name


def _listed(names: Any, limit: int = 10) -> str:
    names = [n if re.fullmatch(COLUMN, n) else quoted(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
