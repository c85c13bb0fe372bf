"""The local alert sink: where a `kind: local` environment's alert events go by default.

On a laptop the Project's routes (Slack, Alertmanager, a webhook) are the team's real
channels, usually unreachable and never what a person trying a model wants to page. The
sink writes every event as one JSON line to `alerts.jsonl` beside the job's results and
reports it as a delivery that succeeded, so a local run exits 0 when the analysis does.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from runtime.monitor.alerts import DeliveryRecord
from runtime.monitor.rules import AlertEvent

FILE = "alerts.jsonl"
SHOWN = 10  # events printed on the terminal; the file holds them all


def record(events: list[AlertEvent], out: Path) -> DeliveryRecord:
    """Write `events` to out/alerts.jsonl (replacing an earlier run's) and say so."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    lines = [json.dumps(asdict(e), sort_keys=True, allow_nan=False) + "\n" for e in events]
    staged = path.with_name(f".{FILE}.tmp")
    staged.write_text("".join(lines), encoding="utf-8")
    staged.replace(path)
    return DeliveryRecord(
        route="local",
        kind="local sink",
        target=path.as_posix(),
        events=len(events),
        attempts=1,
        ok=True,
    )


def summary(events: list[AlertEvent]) -> list[str]:
    """One line per event, at most SHOWN of them, then how many more are in the file."""
    lines = [f"alert {e.name} ({e.severity}): {e.summary}" for e in events[:SHOWN]]
    if len(events) > SHOWN:
        lines.append(f"... and {len(events) - SHOWN} more in {FILE}")
    return lines
