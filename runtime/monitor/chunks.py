"""The monitor's chunks: how the data is cut, described, and checked before any calculator."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

# NannyML sends usage telemetry unless this is set before it is imported.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml as nml
import numpy as np
import pandas as pd
from nannyml.chunk import Chunker

from runtime.contract.monitor_config import MonitorConfig
from runtime.monitor.data import MonitorError

# --- chunks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkInfo:
    index: int
    key: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    first: int  # offset of its first row in the order NannyML chunks rows (`RowOrder`)


def make_chunker(config: MonitorConfig) -> Chunker:
    ts, chunking = config.columns.timestamp, config.chunking
    if chunking.size is not None:
        return nml.SizeBasedChunker(chunk_size=chunking.size, timestamp_column_name=ts)
    if chunking.count is not None:
        return nml.CountBasedChunker(chunk_number=chunking.count, timestamp_column_name=ts)
    return nml.PeriodBasedChunker(offset=chunking.period, timestamp_column_name=ts)


def describe_chunking(config: MonitorConfig) -> str:
    c = config.chunking
    return f"size {c.size}" if c.size else f"count {c.count}" if c.count else f"period {c.period}"


POSITION = "__kiln_position"


def split_chunks(
    config: MonitorConfig, frame: pd.DataFrame, role: str
) -> tuple[list[ChunkInfo], np.ndarray]:
    """The chunks NannyML will make of `frame` (it chunks on the timestamp only), and the
    frame's row positions in the order NannyML puts them: it sorts by time again, and
    rows with equal times may trade places, so a row's chunk is known only through it."""
    ts = config.columns.timestamp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            positions = frame[[ts]].assign(**{POSITION: np.arange(len(frame))})
            chunks = make_chunker(config).split(positions)
        except nml.ChunkerException as exc:
            raise MonitorError(
                "chunking",
                f"{role} data ({len(frame)} rows) cannot be chunked by "
                f"{describe_chunking(config)}: {exc}",
            ) from exc
    infos, first = [], 0
    for c in chunks:
        infos.append(
            ChunkInfo(
                c.chunk_index,
                str(c.key),
                as_timestamp(c.start_datetime),
                as_timestamp(c.end_datetime),
                len(c),
                first,
            )
        )
        first += len(c)
    for info in infos:
        if info.rows == 0:
            raise MonitorError(
                "chunking", f"{role} chunk {info.key} is empty ({describe_chunking(config)})"
            )
    order = [c.data[POSITION].to_numpy() for c in chunks]
    return infos, np.concatenate(order) if order else np.arange(0)


def as_timestamp(value: Any) -> pd.Timestamp:
    return pd.Timestamp(value)


def check_reference_chunks(config: MonitorConfig, chunks: list[ChunkInfo]) -> None:
    if len(chunks) < 2:
        raise MonitorError(
            "chunking",
            f"the reference data makes {len(chunks)} chunk with chunking by "
            f"{describe_chunking(config)}; alert thresholds come from the spread of the "
            "reference chunks and need at least 2 (NannyML would set a threshold of 0 and "
            "alert on every chunk): use smaller chunks or more reference data",
        )
