"""The capture writer: layout and columns of the contract, a bounded buffer, drops counted."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from runtime.contract import capture as contract
from runtime.serving.capture_writer import (
    BUFFER_BYTES,
    CaptureWriter,
    buffered_bytes,
    decoded,
    resolve_root,
)
from tests.tools import REPO_ROOT

CONFIG = contract.CaptureConfig(
    model="m",
    environment="local",
    data=".kiln/data",
    sample=1.0,
    timestamp="ts",
    inputs=("x", "kind"),
    prediction=contract.OutputColumn("y_pred", "label"),
    scores=(contract.OutputColumn("y_pred_proba", "probabilities", 1),),
    buffer_rows=10,
    flush_rows=1000,
    flush_seconds=600.0,
)


def request(rows: int, start: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x = np.arange(start, start + rows, dtype=np.float32).reshape(rows, 1)
    kind = np.array([[f"k{i}"] for i in range(rows)], dtype=object)
    probabilities = np.stack([1 - x[:, 0] / 100, x[:, 0] / 100], axis=1).astype(np.float32)
    return {"x": x, "kind": kind}, {
        "label": (x[:, 0] > 1).astype(np.int64),
        "probabilities": probabilities,
    }


class Counts:
    def __init__(self) -> None:
        self.dropped = 0
        self.written = 0
        self.failures: list[str] = []

    def writer(
        self,
        root: Path,
        config: contract.CaptureConfig = CONFIG,
        buffer_bytes: int = BUFFER_BYTES,
    ) -> CaptureWriter:
        def drop(n: int) -> None:
            self.dropped += n

        def wrote(n: int) -> None:
            self.written += n

        return CaptureWriter(config, 3, str(root), drop, wrote, self.failures.append, buffer_bytes)


def test_rows_land_in_the_contract_layout_with_the_contract_columns(tmp_path: Path) -> None:
    counts = Counts()
    writer = counts.writer(tmp_path)
    writer.offer(["a"], [1], *request(1))
    writer.offer(["b"], [3], *request(3, 1))
    writer.close()
    files = list((tmp_path / "m" / "captured").rglob("*.parquet"))
    assert len(files) == 1 and counts.written == 4 and counts.dropped == 0
    parts = files[0].parent.relative_to(tmp_path / "m" / "captured").parts
    assert parts[:2] == ("environment=local", "version=3")
    assert parts[2].startswith("date=") and parts[3].startswith("hour=")
    table = pq.read_table(files[0])
    assert table.column_names == [
        "request_id",
        "ts",
        "model_version",
        "environment",
        "x",
        "kind",
        "y_pred",
        "y_pred_proba",
    ]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    frame = table.to_pandas()
    assert list(frame["request_id"]) == ["a", "b#0", "b#1", "b#2"]
    assert list(frame["x"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(frame["kind"]) == ["k0", "k0", "k1", "k2"]
    assert list(frame["y_pred"]) == [0, 0, 1, 1]
    assert np.allclose(frame["y_pred_proba"], [0.0, 0.01, 0.02, 0.03])
    assert (frame["model_version"] == 3).all()


def test_requests_answered_together_keep_their_own_ids(tmp_path: Path) -> None:
    counts = Counts()
    writer = counts.writer(tmp_path)
    writer.offer(["one", "two", "three"], [1, 2, 1], *request(4))
    writer.close()
    (part,) = (tmp_path / "m" / "captured").rglob("*.parquet")
    frame = pq.read_table(part).to_pandas()
    assert list(frame["request_id"]) == ["one", "two#0", "two#1", "three"]
    assert list(frame["x"]) == [0.0, 1.0, 2.0, 3.0]


def test_a_full_buffer_drops_new_rows_and_counts_them(tmp_path: Path) -> None:
    counts = Counts()
    writer = counts.writer(tmp_path)
    for index in range(4):
        writer.offer([str(index)], [3], *request(3))  # 9 rows fit in 10; the fourth request not
    assert counts.dropped == 3
    writer.close()
    assert counts.written == 9


def test_a_store_that_refuses_counts_the_rows_as_dropped(tmp_path: Path) -> None:
    blocked = tmp_path / "store"
    blocked.write_text("a file where a folder should be")
    counts = Counts()
    writer = counts.writer(blocked)
    writer.offer(["a"], [2], *request(2))
    writer.close()
    assert counts.dropped == 2 and counts.written == 0
    assert counts.failures and "store" in counts.failures[0]


def test_offer_never_waits_for_a_slow_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    counts = Counts()
    config = contract.CaptureConfig(**{**CONFIG.__dict__, "flush_rows": 1})
    writer = counts.writer(tmp_path, config)
    monkeypatch.setattr(writer, "_write_part", lambda hour, table: release.wait(10))
    for index in range(30):  # the writer is stuck on the first part; offers return at once
        writer.offer([str(index)], [1], *request(1))
    assert counts.dropped >= 30 - 10 - 1
    release.set()
    writer.close()


def test_the_sample_share_is_kept(tmp_path: Path) -> None:
    config = contract.CaptureConfig(**{**CONFIG.__dict__, "sample": 0.25})
    writer = Counts().writer(tmp_path, config)
    kept = sum(writer.sampled() for _ in range(4000))
    writer.close()
    assert 800 < kept < 1200


def test_a_relative_store_is_the_projects_and_needs_one() -> None:
    assert resolve_root(".kiln/data", "/p") == "/p/.kiln/data"
    assert resolve_root("s3://bucket/data", None) == "s3://bucket/data"
    assert resolve_root(".kiln/data", None) is None


def test_the_config_travels_as_json() -> None:
    assert contract.CaptureConfig.from_json(CONFIG.to_json()) == CONFIG


def test_an_hour_the_store_refuses_drops_only_its_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of two hours flushed together: the refused hour's rows count as dropped, the
    written hour's as written."""
    from runtime.serving import capture_writer

    clock = iter([3_600 * 10**9 * 100, 3_600 * 10**9 * 101])
    monkeypatch.setattr(capture_writer.time, "time_ns", lambda: next(clock, 3_600 * 10**9 * 102))
    counts = Counts()
    writer = counts.writer(tmp_path)
    writer.offer(["a"], [2], *request(2))  # hour 100
    writer.offer(["b"], [3], *request(3))  # hour 101
    original = writer._write_part

    def refuse_hour_101(hour: int, table: object) -> None:
        if hour == 101:
            raise OSError("store down")
        original(hour, table)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_write_part", refuse_hour_101)
    writer.close()
    assert (counts.written, counts.dropped) == (2, 3)


def test_one_requests_malformed_string_keeps_the_rows_answered_with_it(tmp_path: Path) -> None:
    """Triton hands strings as bytes; one client's bytes that are not UTF-8 become U+FFFD
    in its own row, and every request of the batch is captured."""
    sent = np.array([[b"k0"], [b"\xff\xfek1"], [b"k\xc3\xa9"]], dtype=object)
    kind = decoded(sent)
    assert kind.shape == (3, 1) and list(kind[:, 0]) == ["k0", "\ufffd\ufffdk1", "k\u00e9"]
    inputs, outputs = request(3)
    counts = Counts()
    writer = counts.writer(tmp_path)
    writer.offer(["good", "bad", "other"], [1, 1, 1], {**inputs, "kind": kind}, outputs)
    writer.close()
    (part,) = (tmp_path / "m" / "captured").rglob("*.parquet")
    frame = pq.read_table(part).to_pandas()
    assert (counts.written, counts.dropped) == (3, 0)
    assert list(frame["request_id"]) == ["good", "bad", "other"]
    assert list(frame["kind"]) == ["k0", "\ufffd\ufffdk1", "k\u00e9"]


def test_a_string_output_that_is_not_utf8_is_written(tmp_path: Path) -> None:
    config = contract.CaptureConfig(
        **{**CONFIG.__dict__, "prediction": contract.OutputColumn("y_pred", "name")}
    )
    inputs, outputs = request(2)
    named = {**outputs, "name": np.array([b"yes", b"n\xffo"], dtype=object)}
    counts = Counts()
    writer = counts.writer(tmp_path, config)
    writer.offer(["a"], [2], inputs, named)
    writer.close()
    (part,) = (tmp_path / "m" / "captured").rglob("*.parquet")
    assert list(pq.read_table(part).to_pandas()["y_pred"]) == ["yes", "n\ufffdo"]
    assert counts.failures == []


def test_strings_count_by_their_length() -> None:
    strings = np.array([["a" * 1000], ["b" * 24]], dtype=object)
    assert buffered_bytes(strings) == strings.nbytes + 1024
    numbers = np.zeros((4, 3), dtype=np.float32)
    assert buffered_bytes(numbers) == 48


def test_large_strings_fill_the_buffer_by_bytes_before_rows(tmp_path: Path) -> None:
    """Three rows of 1 MB strings behind a 2.5 MB bound: the rows bound (10) is far off,
    the third request is dropped and counted."""
    counts = Counts()
    writer = counts.writer(tmp_path, buffer_bytes=2_500_000)
    inputs, outputs = request(1)
    large = {**inputs, "kind": np.array([["x" * 1_000_000]], dtype=object)}
    for index in range(3):
        writer.offer([str(index)], [1], large, outputs)
    assert counts.dropped == 1
    writer.close()
    assert counts.written == 2


def test_the_default_byte_bound_is_documented() -> None:
    text = (REPO_ROOT / "docs" / "capture.md").read_text()
    assert f"{BUFFER_BYTES // 2**20} MiB" in text
