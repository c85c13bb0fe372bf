"""Alert rules -> events: firing semantics, `for`, and de-duplication keys."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from runtime.examples.monitor_examples import car_loan_config
from runtime.monitor.rules import dedup_key, evaluate, iso
from runtime.monitor.tidy import TIDY_COLUMNS

HOOK = [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/"}}]
DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2024-03-01")


def _table(
    signal: str,
    rows: list[tuple[str, str, int, float, bool | None]],
    upper: float = 0.1,
    period: str = "analysis",
) -> pd.DataFrame:
    """rows: (subject, method, chunk_index, value, alert); chunks are consecutive days."""
    records = []
    for subject, method, index, value, alert in rows:
        records.append(
            {
                "signal": signal,
                "subject": subject,
                "method": method,
                "period": period,
                "chunk_index": index,
                "chunk_key": f"[{index * 100}:{index * 100 + 99}]",
                "chunk_start": START + index * DAY,
                "chunk_end": START + (index + 1) * DAY - pd.Timedelta(seconds=1),
                "chunk_rows": 100,
                "value": value,
                "lower_threshold": np.nan,
                "upper_threshold": upper,
                "alert": alert,
                "sampling_error": np.nan,
                "lower_confidence": np.nan,
                "upper_confidence": np.nan,
                "realized": np.nan,
                "note": None,
            }
        )
    return pd.DataFrame(records, columns=TIDY_COLUMNS)


def _config(*rules: dict[str, Any]) -> Any:
    full = [{"severity": "warning", "route": "hook", **r} for r in rules]
    return car_loan_config(alerts=full, routes=HOOK)


def test_drift_fires_per_feature_and_chunk_when_any_method_flags() -> None:
    table = _table(
        "drift",
        [
            ("car_value", "jensen_shannon", 0, 0.05, False),
            ("car_value", "kolmogorov_smirnov", 0, 0.3, True),
            ("car_value", "jensen_shannon", 1, 0.2, True),
            ("car_value", "kolmogorov_smirnov", 1, 0.3, True),
            ("loan_length", "jensen_shannon", 1, 0.01, False),
        ],
    )
    events = evaluate(_config({"name": "drift", "signal": "drift"}), {"drift": table})
    assert [(e.feature, e.chunk_index, e.method) for e in events] == [
        ("car_value", 0, "kolmogorov_smirnov"),
        ("car_value", 1, "jensen_shannon"),  # one event per chunk, first flagging method
    ]
    assert events[0].threshold_source == "nannyml"
    assert events[0].threshold_upper == 0.1
    assert "drift of feature car_value (kolmogorov_smirnov) is 0.3" in events[0].summary


def test_reference_chunks_and_other_features_never_fire() -> None:
    analysis = _table("drift", [("car_value", "jensen_shannon", 0, 0.5, True)])
    reference = _table("drift", [("car_value", "jensen_shannon", 0, 0.5, True)], period="reference")
    config = _config({"name": "d", "signal": "drift", "feature": "loan_length"})
    assert evaluate(config, {"drift": pd.concat([analysis, reference])}) == []
    config = _config({"name": "d", "signal": "drift"})
    assert len(evaluate(config, {"drift": pd.concat([analysis, reference])})) == 1


def test_below_and_above_replace_nannyml_flags() -> None:
    table = _table(
        "estimated_performance",
        [
            ("roc_auc", "cbpe", 0, 0.85, True),
            ("roc_auc", "cbpe", 1, 0.75, False),
            ("f1", "cbpe", 1, 0.5, True),
        ],
    )
    rule = {"name": "auc", "signal": "estimated_performance", "metric": "roc_auc", "below": 0.8}
    events = evaluate(_config(rule), {"estimated_performance": table})
    assert [(e.metric, e.chunk_index, e.value) for e in events] == [("roc_auc", 1, 0.75)]
    assert (events[0].threshold_lower, events[0].threshold_upper) == (0.8, None)
    assert events[0].threshold_source == "rule"
    assert "below 0.8" in events[0].summary
    # without a metric: every metric, each by NannyML's flag
    events = evaluate(
        _config({"name": "p", "signal": "estimated_performance"}), {"estimated_performance": table}
    )
    assert [(e.metric, e.chunk_index) for e in events] == [("f1", 1), ("roc_auc", 0)]


def test_for_needs_the_condition_to_hold_long_enough() -> None:
    flags = [False, True, True, True, False, True]
    table = _table(
        "drift", [("car_value", "jensen_shannon", i, 0.2, f) for i, f in enumerate(flags)]
    )
    rule = {"name": "d", "signal": "drift", "for": "2d"}
    events = evaluate(_config(rule), {"drift": table})
    # chunks are one day long: the streak 1-3 has lasted 2 days by the end of chunk 2
    assert [e.chunk_index for e in events] == [2, 3]


def test_undefined_realized_values_do_not_fire() -> None:
    table = _table(
        "realized_performance",
        [("roc_auc", "realized", 0, np.nan, None), ("roc_auc", "realized", 1, 0.5, True)],
    )
    table.loc[0, "note"] = "no targets in this chunk yet"
    rule = {"name": "r", "signal": "realized_performance", "below": 0.9}
    events = evaluate(_config(rule), {"realized_performance": table})
    assert [e.chunk_index for e in events] == [1]


def test_signals_not_computed_this_run_are_skipped() -> None:
    assert evaluate(_config({"name": "d", "signal": "drift"}), {}) == []


def test_dedup_key_is_sha256_of_the_identity_and_stable() -> None:
    table = _table("drift", [("car_value", "jensen_shannon", 0, 0.2, True)])
    config = _config({"name": "drift", "signal": "drift"})
    event = evaluate(config, {"drift": table})[0]
    chunk = f"{iso(START)}/{iso(START + DAY - pd.Timedelta(seconds=1))}"
    assert event.chunk == "2024-03-01T00:00:00Z/2024-03-01T23:59:59Z" == chunk
    text = f"car-loan-default/local/drift/car_value/{chunk}"
    assert event.dedup_key == hashlib.sha256(text.encode()).hexdigest()
    assert event.dedup_key == dedup_key("car-loan-default", "local", "drift", "car_value", chunk)
    # the same chunk in a later run, at another position of the window: same key
    moved = table.assign(chunk_index=7, chunk_key="[700:799]")
    assert evaluate(config, {"drift": moved})[0].dedup_key == event.dedup_key
    # any part of the identity changes the key
    keys = {
        dedup_key("car-loan-default", "local", "drift", "car_value", chunk),
        dedup_key("car-loan-default", "staging", "drift", "car_value", chunk),
        dedup_key("car-loan-default", "local", "drift2", "car_value", chunk),
        dedup_key("car-loan-default", "local", "drift", "loan_length", chunk),
        dedup_key("car-loan-default", "local", "drift", "car_value", chunk + "x"),
    }
    assert len(keys) == 5


def test_iso_timestamps_are_utc_with_z() -> None:
    assert iso(pd.Timestamp("2024-03-01 12:00:00.250")) == "2024-03-01T12:00:00.250Z"
    assert iso(pd.Timestamp("2024-03-01 13:00", tz="Europe/Amsterdam")) == "2024-03-01T12:00:00Z"
