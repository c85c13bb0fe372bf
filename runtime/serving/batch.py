"""Batch scoring: rows in, predictions out as parquet, with serving's artifact checks.

    python -m runtime.serving.batch --model URI [--sha256 HEX] [--bundle URI --trust JSON]
        --signature SIG --task TASK --columns JSON --input URI [--format parquet|csv]
        --output URI [--run NAME] [--chunk-rows N]

The artifact is fetched and hashed, and its signature bundle verified against the
trusted signers, by the same code as the serving pod's init container (assemble.py,
verify.py): a model the serving pod would refuse is refused here. Before any row is
scored, the input's columns are checked against the signature and the FeatureSet.
The rows are then read, scored with onnxruntime and written a chunk at a time, so
memory is bounded by --chunk-rows, not by the input.

The output appears whole or not at all (runtime/contract/batch.py gives the layout):
every chunk goes to a temporary part; a row the signature refuses stops the run and
the part is deleted; only a complete part is moved into place, and the `_SUCCESS`
marker is written last. The columns written are the ones the monitor reads.

Exit codes: 0 all rows scored and committed; 1 the run stopped (a row, the input, the
artifact); 2 the job cannot work as asked (a signature that does not fit the task, an
S3 store this machine has no credentials for), refused before any row is read.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import onnxruntime as ort
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pyarrow as pa
import pyarrow.parquet as pq

from runtime.contract.arrays import FLOAT_DTYPES, INTEGER_DTYPES, NUMPY_TYPES
from runtime.contract.batch import (
    BATCH,
    PART,
    SUCCESS,
    BatchColumns,
    run_folder,
    temporary_folder,
)
from runtime.contract.data_files import hidden_below
from runtime.contract.outputs import output_roles
from runtime.contract.secrets import redact_uri as shown_uri
from runtime.contract.served import ArtifactSource
from runtime.contract.signature import Signature, SignatureError, Tensor, parse_signature
from runtime.contract.signing import Trust, TrustError
from runtime.serving.assemble import AssembleError, fetch, verify_signature
from runtime.serving.store_access import missing_credentials

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
MODEL_FILE = "model.onnx"  # the fetched artifact's name in the run's temporary folder
CSV_SUFFIXES = (".csv", ".csv.gz")
Progress = Callable[[str], None]


class BatchError(Exception):
    """Why a run stopped; the message is meant for people. Nothing was committed."""

    exit_code = 1


class SetupError(BatchError):
    """The run cannot work as asked (its signature, task or store access): refused before
    any row is read or anything is written."""

    exit_code = 2


@dataclass(frozen=True)
class Job:
    """One run: the verified model file, what it takes and gives, and where rows go."""

    model_file: Path
    signature: Signature
    task: str
    roles: dict[str, Tensor]  # the output tensor of each role (contract/outputs.py)
    columns: BatchColumns
    input: str
    format: str | None
    output: str
    run: str
    chunk_rows: int


@dataclass(frozen=True)
class Outcome:
    rows: int
    seconds: float
    location: str  # the committed file or run folder


# ------------------------------------------------------------------------ the model


def fetch_model(
    uri: str, sha256: str | None, bundle: str | None, trust: Trust, model_file: Path
) -> str | None:
    """The artifact copied to `model_file`, its digest checked and its signature verified
    exactly as the serving pod does; who signed it, or None."""
    if bundle is None and trust.require_signatures:
        raise BatchError(
            f"{shown_uri(uri)} has no signature and this environment requires signatures"
        )
    source = ArtifactSource(0, uri, sha256, bundle)
    try:
        fetch(uri, model_file, sha256)
        return verify_signature(source, model_file, trust)
    except AssembleError as exc:
        raise BatchError(str(exc)) from exc


def session_for(model_file: Path, signature: Signature) -> ort.InferenceSession:
    try:
        session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unexported exception types
        raise BatchError(f"onnxruntime cannot load the model: {exc}") from exc
    takes = {i.name for i in session.get_inputs()}
    gives = {o.name for o in session.get_outputs()}
    missing = [t.name for t in signature.inputs if t.name not in takes]
    missing += [t.name for t in signature.outputs if t.name not in gives]
    if missing:
        raise BatchError(f"the model has no tensor(s) {', '.join(missing)} of the signature")
    return session


# ------------------------------------------------------------------------ the input


def input_files(location: str, fmt: str | None) -> tuple[Any, list[str], str]:
    """(filesystem, files, format): a file, or a folder's files of the format, skipping
    `_` and `.` names as the monitor does (temporary parts of a run in progress)."""
    try:
        fs, path = fsspec.core.url_to_fs(location)
        if fs.isdir(path):
            fmt = fmt or "parquet"
            suffixes = PARQUET_SUFFIXES if fmt == "parquet" else CSV_SUFFIXES
            files = sorted(
                p
                for p in fs.find(path)
                if p.lower().endswith(suffixes) and not hidden_below(p, path)
            )
            if not files:
                raise BatchError(f"input {shown_uri(location)} holds no {fmt} files")
            return fs, files, fmt
        if not fs.exists(path):
            raise BatchError(f"input {shown_uri(location)} does not exist")
    except BatchError:
        raise
    except Exception as exc:  # a store's own errors: permissions, network, unknown scheme
        raise BatchError(f"cannot open input {shown_uri(location)}: {exc}") from exc
    if fmt is None:
        fmt = "csv" if path.lower().endswith(CSV_SUFFIXES) else "parquet"
    return fs, [path], fmt


def _header(fs: Any, path: str, fmt: str) -> dict[str, pa.DataType | None]:
    """Column names (and Arrow types, for parquet) of one input file."""
    with fs.open(path, "rb") as handle:
        if fmt == "parquet":
            schema = pq.ParquetFile(handle).schema_arrow
            return {field.name: field.type for field in schema}
    with fs.open(path, "rb", compression="infer") as handle:
        return dict.fromkeys(pd.read_csv(handle, nrows=0).columns)


def _type_problem(tensor: Tensor, kind: pa.DataType | None) -> str | None:
    if kind is None:  # CSV: values are checked chunk by chunk
        return None
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if pa.types.is_dictionary(kind):
        text = pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)
    if tensor.dtype == "string" and not text:
        return f"{tensor.name} is {kind}, the model takes text"
    if tensor.dtype != "string" and text:
        return f"{tensor.name} is text, the model takes {tensor.dtype}"
    return None


def check_input(fs: Any, files: Sequence[str], fmt: str, job: Job) -> None:
    """Every file has the columns the model and the FeatureSet name, of fitting types."""
    wanted = [t.name for t in job.signature.inputs]
    kept = [job.columns.timestamp, *job.columns.features]
    if job.columns.entity:
        kept.insert(0, job.columns.entity)
    for path in files:
        try:
            header = _header(fs, path, fmt)
        except Exception as exc:
            raise BatchError(f"cannot read {shown_uri(path)} as {fmt}: {exc}") from exc
        missing = [c for c in dict.fromkeys([*kept, *wanted]) if c not in header]
        if missing:
            raise BatchError(
                f"input {shown_uri(path)} lacks the column(s) {', '.join(missing)} that the "
                f"model's signature and its FeatureSet name; it has {len(header)} column(s)"
            )
        problems = [p for t in job.signature.inputs if (p := _type_problem(t, header[t.name]))]
        if problems:
            raise BatchError(f"input {shown_uri(path)}: " + "; ".join(problems))


def chunks(fs: Any, files: Sequence[str], fmt: str, rows: int) -> Iterator[pa.Table]:
    """The rows as Arrow tables of at most `rows` rows: kept columns pass through to the
    output as they are, and only the model's inputs become numpy arrays."""
    for path in files:
        if fmt == "parquet":
            with fs.open(path, "rb") as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows):
                    yield pa.Table.from_batches([batch])
        else:
            with fs.open(path, "rb", compression="infer") as handle:
                for frame in pd.read_csv(handle, chunksize=rows):
                    yield pa.Table.from_pandas(frame, preserve_index=False)


# ------------------------------------------------------------------------ scoring


def _cast(column: pd.Series, tensor: Tensor, first_row: int) -> np.ndarray:
    """One column as the input tensor, refusing what the signature cannot take."""
    where = f"input {tensor.name} ({tensor.dtype}), rows {first_row}-{first_row + len(column) - 1}"
    missing = int(column.isna().sum())
    if missing and tensor.dtype not in FLOAT_DTYPES:
        raise BatchError(f"{where}: {missing} missing value(s); the model takes none")
    if tensor.dtype == "string":
        values = column.astype(str).to_numpy(dtype=object)
    elif pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column):
        raise BatchError(f"{where}: the column holds {column.dtype} values, not numbers")
    else:
        numbers = column.to_numpy()
        as_float = numbers.astype(np.float64)
        if tensor.dtype in INTEGER_DTYPES and not np.array_equal(as_float, np.round(as_float)):
            raise BatchError(f"{where}: the column holds values that are not whole numbers")
        values = numbers.astype(NUMPY_TYPES[tensor.dtype])
    return values.reshape(-1, *([1] * (len(tensor.shape) - 1)))


def score(session: ort.InferenceSession, table: pa.Table, job: Job, first_row: int) -> pa.Table:
    """The kept input columns and the prediction columns of one chunk."""
    for tensor in job.signature.inputs:
        if any(d not in (1, -1) for d in tensor.shape[1:]):
            raise BatchError(f"input {tensor.name}: one column per row fills only [-1] or [-1, 1]")
    feeds = {
        t.name: _cast(table.column(t.name).to_pandas(), t, first_row) for t in job.signature.inputs
    }
    names = [t.name for t in job.roles.values()]
    try:
        answers = dict(zip(names, session.run(names, feeds), strict=True))
    except Exception as exc:  # onnxruntime's own error types
        raise BatchError(f"onnxruntime failed on rows {first_row}-: {exc}") from exc
    by_role = {role: answers[tensor.name] for role, tensor in job.roles.items()}
    return _output_table(table, by_role, job)


def _output_table(table: pa.Table, by_role: dict[str, np.ndarray], job: Job) -> pa.Table:
    cols = job.columns
    out: dict[str, Any] = {}
    if cols.entity:
        out[cols.entity] = table.column(cols.entity)
    out[cols.timestamp_out] = table.column(cols.timestamp)
    for feature in cols.features:
        out[feature] = table.column(feature)
    out.update(_predictions(by_role, job))
    return pa.table(out)


def _predictions(by_role: dict[str, np.ndarray], job: Job) -> dict[str, np.ndarray]:
    cols = job.columns
    if job.task == "regression":
        return {cols.prediction: by_role["values"].reshape(-1).astype(np.float64)}
    out: dict[str, np.ndarray] = {}
    probabilities = by_role.get("probabilities")
    labels = by_role.get("labels")
    if job.task == "multiclass_classification" and probabilities is not None and cols.score:
        # The monitor keys scores by class label: the prediction must be one of them.
        classes = np.array([label for label, _ in cols.score or ()], dtype=object)
        out[cols.prediction] = classes[probabilities.argmax(axis=1)]
    elif labels is not None:
        out[cols.prediction] = labels.reshape(-1)
    else:
        assert probabilities is not None  # output_roles guarantees one of the two
        out[cols.prediction] = probabilities.argmax(axis=1).astype(np.int64)
    if probabilities is not None and isinstance(cols.score, str):
        out[cols.score] = probabilities[:, -1].astype(np.float64)  # binary: P(class 1)
    elif probabilities is not None and cols.score:
        for index, (_, column) in enumerate(cols.score):
            out[column] = probabilities[:, index].astype(np.float64)
    return out


# ------------------------------------------------------------------------ the output


class Committer:
    """Writes chunks to a temporary part; `commit` moves the complete part into place."""

    def __init__(self, output: str, run: str) -> None:
        self.fs, path = fsspec.core.url_to_fs(output)
        self.single = path.lower().endswith(PARQUET_SUFFIXES)
        if self.single:
            folder, _, name = path.rpartition("/")
            self.final = path
            self.temporary = f"{folder or '.'}/.{name}.{run}.tmp"
        else:
            self.final = f"{run_folder(path, run)}/{PART.format(index=0)}"
            self.temporary = f"{temporary_folder(path, run)}/{PART.format(index=0)}"
        self.marker = None if self.single else f"{run_folder(path, run)}/{SUCCESS}"
        self._handle: Any = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        table = table.replace_schema_metadata(None)
        if self._writer is None:
            self.fs.makedirs(self.temporary.rpartition("/")[0], exist_ok=True)
            self._handle = self.fs.open(self.temporary, "wb")
            self._writer = pq.ParquetWriter(self._handle, table.schema, compression="snappy")
        try:
            table = table.cast(self._writer.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            # A later chunk or file whose columns hold other types than the first's.
            raise BatchError(f"rows of another type than the first chunk's: {exc}") from exc
        self._writer.write_table(table)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            self._writer = None

    def abort(self) -> None:
        """Delete whatever the run wrote; the output is as it was before the run."""
        try:
            self._close()
        finally:
            if self.fs.exists(self.temporary):
                self.fs.rm(self.temporary)
            self._remove_empty_temporary()

    def _remove_empty_temporary(self) -> None:
        if self.single:
            return
        folder = self.temporary.rpartition("/")[0]
        for level in (folder, folder.rpartition("/")[0]):
            if self.fs.isdir(level) and not self.fs.ls(level):
                self.fs.rmdir(level)

    def commit(self, rows: int, manifest: dict[str, Any]) -> str:
        if self._writer is None:
            raise BatchError("the input has no rows; nothing was written")
        self._close()
        self.fs.makedirs(self.final.rpartition("/")[0], exist_ok=True)
        # One object moved: a local rename, or one copy on an object store; either way a
        # reader sees no part or the whole part.
        self.fs.mv(self.temporary, self.final)
        self._remove_empty_temporary()
        if self.marker is None:
            return self.final
        document = {**manifest, "rows": rows, "parts": [self.final.rpartition("/")[2]]}
        self.fs.pipe(self.marker, (json.dumps(document, sort_keys=True) + "\n").encode())
        return self.final.rpartition("/")[0]


def new_run_name() -> str:
    """A run name that sorts by time and does not collide: 20261207T051500Z-1a2b3c4d."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_job(job: Job, progress: Progress) -> Outcome:
    """Score every row of the input; commit the output only when all of them scored."""
    session = session_for(job.model_file, job.signature)
    fs, files, fmt = input_files(job.input, job.format)
    check_input(fs, files, fmt, job)
    committer = Committer(job.output, job.run)
    started, rows = time.perf_counter(), 0
    try:
        for table in chunks(fs, files, fmt, job.chunk_rows):
            committer.write(score(session, table, job, rows))
            rows += table.num_rows
            rate = rows / max(time.perf_counter() - started, 1e-9)
            progress(f"{rows:,} rows scored ({rate:,.0f} rows/s)")
        location = committer.commit(rows, {"run": job.run, "columns": list(job.columns.written)})
    except BaseException:
        committer.abort()
        raise
    return Outcome(rows, time.perf_counter() - started, location)


# ------------------------------------------------------------------------ command line


def _job(args: Any, model_file: Path) -> Job:
    try:
        signature = parse_signature(_text(args.signature))
        columns = BatchColumns.from_json(args.columns)
    except (SignatureError, ValueError) as exc:
        raise BatchError(str(exc)) from exc
    try:
        roles = output_roles(signature, args.task)
    except SignatureError as exc:
        raise SetupError(f"the signature does not fit --task {args.task}: {exc}") from exc
    doubled = sorted({c for c in columns.written if columns.written.count(c) > 1})
    if doubled:
        raise BatchError(f"output column(s) {', '.join(doubled)} would be written twice")
    if args.chunk_rows < 1:
        raise BatchError("--chunk-rows must be at least 1")
    return Job(
        model_file,
        signature,
        args.task,
        roles,
        columns,
        args.input,
        args.format,
        args.output,
        args.run or new_run_name(),
        args.chunk_rows,
    )


def _text(value: str) -> str:
    """An inline JSON object, or the path of a file holding one."""
    if value.lstrip().startswith("{"):
        return value
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchError(f"cannot read {value}: {exc.strerror}") from exc


def _trust(value: str | None) -> Trust:
    try:
        return Trust() if value is None else Trust.from_json(_text(value))
    except TrustError as exc:
        raise BatchError(f"--trust is not a trust document: {exc}") from exc


def _check_store_access(args: Any) -> None:
    """Refuse up front, naming the store and the credentials, what the first read or write
    would fail on with the store library's own traceback."""
    stores = {"the model artifact": args.model, "the input": args.input, "the output": args.output}
    if args.bundle is not None:
        stores["the signature bundle"] = args.bundle
    problem = missing_credentials(stores)
    if problem is not None:
        raise SetupError(problem)


def _print_progress(message: str) -> None:
    # On a terminal one line is rewritten; in a pod's log (a pipe) each chunk is a line.
    if sys.stdout.isatty():
        print(f"\r[batch] {message}", end="", flush=True)
    else:
        print(f"[batch] {message}", flush=True)


def main(argv: Sequence[str] | None = None, progress: Progress = _print_progress) -> int:
    args = BATCH.parser().parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="kiln-batch-") as folder:
            # The arguments first: a job that cannot work fetches and writes nothing.
            job = _job(args, Path(folder) / MODEL_FILE)
            _check_store_access(args)
            trust = _trust(args.trust)
            signer = fetch_model(args.model, args.sha256, args.bundle, trust, job.model_file)
            outcome = run_job(job, progress)
    except BatchError as exc:
        if sys.stdout.isatty():
            print()
        print(f"batch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if sys.stdout.isatty():
        print()
    checked = "signed by " + signer if signer else "digest checked" if args.sha256 else "unchecked"
    rate = outcome.rows / max(outcome.seconds, 1e-9)
    print(
        f"batch: {outcome.rows:,} rows scored in {outcome.seconds:.2f} s ({rate:,.0f} rows/s), "
        f"model {checked}; wrote {shown_uri(outcome.location)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
