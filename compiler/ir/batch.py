"""The IR of batch scoring jobs: plain values, built from `spec.batch` by compiler/lowering.py."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir.training import ScheduleIR


@dataclass(frozen=True)
class BatchJobIR:
    name: str
    input: str  # as written: the target places a relative one under the data store
    format: str | None  # None: from the file names
    output: str  # a folder, placed like the input
    version: int  # the version that scores: the job's, else the serving version
    schedule: ScheduleIR | None  # None: runs only when submitted
    chunk_rows: int
    cpu: str
    memory: str
