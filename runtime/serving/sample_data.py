"""Sample rows for smoke tests and benchmarks, cast to a model's input signature.

The source is pluggable: a parquet or CSV file (a path or any fsspec URL pandas
can read, which is what a cluster job passes: the FeatureSet's data), or, by
default, the reference period of the NannyML data set that has every input
column (the example models are trained on NannyML's car-loan and car-price data).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from runtime.contract.arrays import NUMPY_TYPES
from runtime.contract.signature import Tensor

# Data sets NannyML ships, tried in this order for a model's columns.
NANNYML_LOADERS = (
    "load_synthetic_car_loan_dataset",
    "load_synthetic_car_price_dataset",
    "load_synthetic_binary_classification_dataset",
    "load_synthetic_multiclass_classification_dataset",
)


class SampleDataError(Exception):
    """The sample data cannot feed the model; the message names the column."""


def read_table(location: str) -> pd.DataFrame:
    """A parquet or CSV file (path or fsspec URL), chosen by its suffix."""
    lowered = location.lower()
    try:
        if lowered.endswith((".csv", ".csv.gz")):
            return pd.read_csv(location)
        if lowered.endswith((".parquet", ".pq")) or lowered.endswith("/"):
            return pd.read_parquet(location)
    except (OSError, ValueError, ImportError) as exc:
        raise SampleDataError(f"cannot read sample data {location}: {exc}") from exc
    raise SampleDataError(f"sample data {location}: expected a .parquet or .csv file")


def nannyml_reference(columns: Sequence[str]) -> tuple[str, pd.DataFrame]:
    """The reference period of the first NannyML data set that has all `columns`."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no telemetry
    import nannyml  # type: ignore[import-untyped, unused-ignore]

    for name in NANNYML_LOADERS:
        loader: Callable[[], tuple[pd.DataFrame, ...]] | None = getattr(nannyml, name, None)
        if loader is None:
            continue
        reference = loader()[0]
        if all(c in reference.columns for c in columns):
            return f"nannyml.{name}() reference", reference
    raise SampleDataError(
        f"no NannyML data set has the columns {', '.join(columns)}; pass a data file (--data)"
    )


def load_sample(columns: Sequence[str], source: str | None = None) -> tuple[str, pd.DataFrame]:
    """(description, frame) from `source` or from NannyML's bundled reference data."""
    if source is None:
        return nannyml_reference(columns)
    frame = read_table(source)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SampleDataError(f"sample data {source} lacks the column(s) {', '.join(missing)}")
    return source, frame


def _column(frame: pd.DataFrame, tensor: Tensor, rows: int) -> np.ndarray:
    values = frame[tensor.name].to_numpy()[:rows]
    rest = [d for d in tensor.shape[1:]]
    if any(d not in (1, -1) for d in rest):
        raise SampleDataError(
            f"input `{tensor.name}` has shape {list(tensor.shape)}; one column fills only "
            "[-1] or [-1, 1]"
        )
    try:
        if tensor.dtype == "string":
            cast = np.array(
                [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values],
                dtype=object,
            )
        else:
            cast = np.asarray(values).astype(NUMPY_TYPES[tensor.dtype])
    except (KeyError, TypeError, ValueError) as exc:
        raise SampleDataError(
            f"column `{tensor.name}` ({values.dtype}) cannot be cast to {tensor.dtype}: {exc}"
        ) from exc
    return cast.reshape((len(cast), *(1 for _ in rest)))


def to_inputs(
    frame: pd.DataFrame, inputs: Sequence[Tensor], rows: int | None = None
) -> dict[str, np.ndarray]:
    """Arrays as Triton takes them: numbers in the signature's dtype (bool -> 0/1 when the
    signature says int), strings as object arrays of UTF-8 bytes, rows on dimension 0."""
    missing = [t.name for t in inputs if t.name not in frame.columns]
    if missing:
        raise SampleDataError(f"the sample data has no column for input(s) {', '.join(missing)}")
    names = [t.name for t in inputs]
    clean = frame.dropna(subset=names)
    count = len(clean) if rows is None else min(rows, len(clean))
    if count == 0:
        raise SampleDataError("the sample data has no complete row for the model's inputs")
    return {t.name: _column(clean, t, count) for t in inputs}


def for_onnxruntime(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same arrays with bytes decoded to str, which onnxruntime's string tensors take."""
    feed = {}
    for name, array in arrays.items():
        if array.dtype == object:
            flat = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.ravel()]
            array = np.array(flat, dtype=object).reshape(array.shape)
        feed[name] = array
    return feed


def take(arrays: Mapping[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {name: array[start:stop] for name, array in arrays.items()}
