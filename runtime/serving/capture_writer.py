"""The capture step's writer: served rows to parquet, off the request path.

A request hands its inputs and outputs to `CaptureWriter.offer`, which only appends
references to an in-memory buffer, bounded in rows and in bytes, and returns; a
background thread turns the buffer into parquet parts under the layout of
`runtime.contract.capture`. When the buffer is full (the store is slow or down) new
rows are dropped and counted, never waited for; a part the store refuses is dropped
and counted too. `close` (the model's finalize, which Triton runs on a clean stop)
writes what is still buffered.

It needs only numpy and pyarrow, because it runs inside Triton's python stub: beside the
local adapter (runtime/local/triton_backend) and in the cluster's capture step
(runtime/serving/capture_step), copied there together with the contract module.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

try:  # in Kiln's own Python
    from runtime.contract import capture as contract
except ImportError:  # in Triton's python stub, copied beside this file
    import capture as contract  # type: ignore[import-not-found,no-redef]

Counter = Callable[[int], None]
# The buffer's second bound, beside the spec's buffer_rows: rows of large string inputs
# behind a slow store would otherwise grow it without limit. 256 MiB is a sixteenth of
# the 4Gi a serving pod of the example platform has, and 2.6 KB for each of the default
# 100,000 rows, so numeric rows meet the row bound first.
BUFFER_BYTES = 256 * 1024 * 1024


@dataclass
class _Batch:
    """Requests answered together: their ids and row counts, and their rows in order."""

    request_ids: list[str]
    sizes: list[int]
    micros: int  # when they were answered, microseconds since the epoch (UTC)
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    rows: int


def resolve_root(data: str, project_root: str | None) -> str | None:
    """The data store as the writer opens it: a relative path is the project's (None
    when there is no project to place it in)."""
    if "://" in data or os.path.isabs(data):
        return data
    return os.path.join(project_root, data) if project_root else None


def decoded(array: np.ndarray) -> np.ndarray:
    """Triton's BYTES elements as str. Bytes that are not UTF-8 get U+FFFD in their place:
    requests are captured together, so one client's malformed string must not fail the
    capture of every request answered with it."""
    flat = [
        v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
        for v in array.ravel()
    ]
    return np.array(flat, dtype=object).reshape(array.shape)


def buffered_bytes(array: np.ndarray) -> int:
    """An estimate of the memory an array holds: its elements, and for strings (object
    arrays) their lengths too, which a pointer apiece leaves out."""
    if array.dtype != object:
        return int(array.nbytes)
    return int(array.nbytes) + sum(len(v) for v in array.ravel() if isinstance(v, (str, bytes)))


def _joined(values: list[np.ndarray]) -> np.ndarray:
    """Per-request arrays of shape [rows, ...] as one array, rows on dimension 0."""
    return np.concatenate(values) if len(values) > 1 else values[0]


def _column(joined: np.ndarray) -> pa.Array:
    """One captured column: a value per row, or a list per row for a vector input."""
    if joined.ndim > 1 and int(np.prod(joined.shape[1:])) == 1:
        joined = joined.reshape(len(joined))
    if joined.ndim > 1:
        return pa.array(list(joined.reshape(len(joined), -1)))
    if joined.dtype == object:
        # The adapter hands strings decoded; bytes (a model's string output) are decoded here.
        return pa.array(list(decoded(joined)))
    return pa.array(joined)


class CaptureWriter:
    """Buffers served rows and writes them as parquet parts in a background thread."""

    def __init__(
        self,
        config: contract.CaptureConfig,
        version: int,
        root: str,
        dropped: Counter = lambda n: None,
        written: Counter = lambda n: None,
        failed: Callable[[str], None] = lambda message: None,
        buffer_bytes: int = BUFFER_BYTES,
    ) -> None:
        self.config = config
        self.buffer_bytes = buffer_bytes
        self.version = version
        self._dropped, self._written, self._failed = dropped, written, failed
        if "://" in root:
            self._fs, self._base = pafs.FileSystem.from_uri(root)
        else:
            self._fs, self._base = pafs.LocalFileSystem(), os.path.abspath(root)
        self._base = f"{self._base.rstrip('/')}/{config.model}/{contract.CAPTURED}"
        self._output_names = sorted({c.output for c in (config.prediction, *config.scores)})
        self._pending: list[_Batch] = []
        self._rows = 0
        self._bytes = 0
        self._closing = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="kiln-capture", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        sample = self.config.sample
        return sample >= 1.0 or (sample > 0.0 and random.random() < sample)  # noqa: S311

    def offer(
        self,
        request_ids: list[str],
        sizes: list[int],
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
    ) -> None:
        """Queue requests answered together (`sizes`: rows of each, their rows concatenated
        in `inputs` and `outputs`); never blocks on the store."""
        rows = sum(sizes)
        size = sum(buffered_bytes(a) for a in (*inputs.values(), *outputs.values()))
        batch = _Batch(request_ids, sizes, time.time_ns() // 1000, inputs, outputs, rows)
        with self._wake:
            full = (
                self._closing
                or self._rows + rows > self.config.buffer_rows
                or self._bytes + size > self.buffer_bytes
            )
            if not full:
                self._pending.append(batch)
                self._rows += rows
                self._bytes += size
                if self._rows >= self.config.flush_rows:
                    self._wake.notify()
        if full:
            self._dropped(rows)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything buffered, then stop the thread (Triton's finalize)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)

    def _take(self) -> list[_Batch]:
        with self._wake:
            if not self._closing and self._rows < self.config.flush_rows:
                self._wake.wait(self.config.flush_seconds)
            taken, self._pending, self._rows, self._bytes = self._pending, [], 0, 0
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken:
                self._write(taken)
            with self._wake:
                if self._closing and not self._pending:
                    return

    def _write(self, requests: list[_Batch]) -> None:
        """One part per hour; each hour's rows count as written or dropped on their own."""
        for hour, part in self._by_hour(requests).items():
            rows = sum(r.rows for r in part)
            try:
                self._write_part(hour, self._table(part))
            except Exception as exc:  # a slow or broken store must not stop the thread
                self._dropped(rows)
                self._failed(f"{type(exc).__name__}: {exc}")
                continue
            self._written(rows)

    @staticmethod
    def _by_hour(requests: list[_Batch]) -> dict[int, list[_Batch]]:
        hours: dict[int, list[_Batch]] = {}
        for request in requests:
            hours.setdefault(request.micros // 3_600_000_000, []).append(request)
        return hours

    def _table(self, requests: list[_Batch]) -> pa.Table:
        # Whole columns at once: this thread shares the stub's interpreter (and its GIL)
        # with the requests, so its per-row Python work is kept small (benchmarks/serve.py).
        config = self.config
        rows = np.fromiter((r.rows for r in requests), dtype=np.int64, count=len(requests))
        ids = [
            contract.row_request_id(request_id, row, size)
            for r in requests
            for request_id, size in zip(r.request_ids, r.sizes, strict=True)
            for row in range(size)
        ]
        micros = np.repeat(np.fromiter((r.micros for r in requests), dtype=np.int64), rows)
        columns: dict[str, Any] = {
            contract.REQUEST_ID: pa.array(ids, pa.string()),
            config.timestamp: pa.array(micros, pa.timestamp("us", tz="UTC")),
            contract.MODEL_VERSION: pa.array(np.full(len(ids), self.version, dtype=np.int64)),
            contract.ENVIRONMENT: pa.array([config.environment] * len(ids), pa.string()),
        }
        for name in config.inputs:
            columns[name] = _column(_joined([r.inputs[name] for r in requests]))
        outputs = {o: _joined([r.outputs[o] for r in requests]) for o in self._output_names}
        for spec in (config.prediction, *config.scores):
            joined = outputs[spec.output]
            if spec.index is not None:
                joined = joined.reshape(len(joined), -1)[:, spec.index]
            columns[spec.column] = _column(joined)
        return pa.table(columns)

    def _write_part(self, hour: int, table: pa.Table) -> None:
        when = datetime.fromtimestamp(hour * 3600, UTC)
        folder = f"{self._base}/{contract.partition(self.config.environment, self.version, when)}"
        self._fs.create_dir(folder, recursive=True)
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        # Written under a hidden name and moved: a reader never sees half a part.
        hidden = f"{folder}/.{name}"
        pq.write_table(table, hidden, filesystem=self._fs)
        self._fs.move(hidden, f"{folder}/{name}")


class RequestIds:
    """A request's id as captured: the x-request-id header Triton forwards as a request
    parameter, else Triton's request id, else a new one (a random prefix per model
    instance and a counter: unique without a uuid per request)."""

    def __init__(self) -> None:
        self._prefix, self._count = uuid.uuid4().hex[:16], 0

    def of(self, request: Any) -> str:
        try:
            parameters = json.loads(request.parameters() or "{}")
        except (TypeError, ValueError):
            parameters = {}
        header = parameters.get(contract.REQUEST_ID_HEADER)
        if isinstance(header, str) and header:
            return header
        given = request.request_id()
        if given:
            return str(given)
        self._count += 1
        return f"{self._prefix}-{self._count}"


def triton_writer(
    pb_utils: Any, settings: contract.CaptureConfig, version: int, who: str
) -> tuple[CaptureWriter, Any] | None:
    """The writer as a python-backend model runs it: its drop and write counters are
    Triton custom metrics labelled with the served model's name and version, and its
    complaints go to Triton's log. `pb_utils` is Triton's module, handed in because it
    exists only inside the stub. Returns the writer and the metric families, which the
    caller keeps (Triton forgets a family nobody holds), or None when the store cannot
    be placed (a relative path and no project root: not Triton's working folder)."""
    logger = pb_utils.Logger
    root = resolve_root(settings.data, os.environ.get(contract.PROJECT_ROOT_ENV))
    if root is None:
        logger.log_warn(f"{who}: capture off: no {contract.PROJECT_ROOT_ENV}")
        return None
    labels = {"model": settings.model, "version": str(version)}
    families = [
        pb_utils.MetricFamily(name=name, description=text, kind=pb_utils.MetricFamily.COUNTER)
        for name, text in (
            (contract.DROPPED_METRIC, "Served rows not captured (buffer full, store down)"),
            (contract.WRITTEN_METRIC, "Served rows captured into the data store"),
        )
    ]
    dropped, written = (family.Metric(labels=labels) for family in families)
    writer = CaptureWriter(
        settings,
        version,
        root,
        dropped=dropped.increment,
        written=written.increment,
        failed=lambda message: logger.log_warn(f"{who}: capture: {message}"),
    )
    return writer, (families, dropped, written)
