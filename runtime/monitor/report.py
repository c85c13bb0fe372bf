"""The monitor's HTML report: one self-contained file that works offline.

The first screen answers "is this model all right?": a status banner, one verdict line per
signal, the alerts raised and where they went, and any failure. Below come the
feature-by-chunk drift grid, the per-chunk tables and the plotly figures (NannyML's own, and
Kiln's univariate drift figure, runtime/monitor/figures.py), with
plotly.js inlined once. The template is rendered in Jinja2's sandbox with autoescaping;
figures are embedded as JSON with '<', '>' and '&' escaped, so no data value can close a
script element.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from runtime.monitor.output import Run
from runtime.monitor.rules import iso

TEMPLATES = Path(__file__).resolve().parent / "templates"
SIGNAL_TITLES = {
    "drift": "Univariate drift",
    "multivariate_drift": "Multivariate drift",
    "estimated_performance": "Estimated performance",
    "realized_performance": "Realised performance",
    "missing_values": "Missing values",
    "unseen_values": "Unseen values",
    "range": "Declared ranges",
}
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Verdict:
    signal: str
    title: str
    state: str  # ok | flagged | failed | skipped
    text: str


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def threshold_text(lower: Any, upper: Any, method: str | None) -> str:
    """How a value is judged, in words: 'lower 0.8', 'upper 0.035', 'chi2 p < 0.05'."""
    parts = []
    if lower is not None and not pd.isna(lower):
        parts.append(f"lower {_fmt(float(lower))}")
    if upper is not None and not pd.isna(upper):
        parts.append(f"upper {_fmt(float(upper))}")
    if parts:
        return ", ".join(parts)
    return "chi2 p < 0.05" if method == "chi2" else "NannyML's test"


def _bounds(row: Any) -> str:
    return threshold_text(row.lower_threshold, row.upper_threshold, row.method)


@dataclass
class AlertGroup:
    """The events of one rule on one feature or metric, across chunks."""

    severity: str
    name: str
    signal: str
    subject: str
    route: str
    chunks: int
    first: str
    last: str
    last_value: float
    threshold: str


def _alert_groups(events: list[Any]) -> list[AlertGroup]:
    groups: dict[tuple[str, str], list[Any]] = {}
    for e in events:
        groups.setdefault((e.name, e.subject), []).append(e)
    out = []
    for (name, subject), mine in groups.items():
        mine.sort(key=lambda e: e.chunk_index)
        last = mine[-1]
        out.append(
            AlertGroup(
                last.severity,
                name,
                last.signal,
                subject,
                last.route,
                len(mine),
                mine[0].chunk_key,
                last.chunk_key,
                last.value,
                threshold_text(last.threshold_lower, last.threshold_upper, last.method),
            )
        )
    return sorted(out, key=lambda g: (SEVERITY_ORDER[g.severity], g.name, g.subject))


def _latest_rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["period"] == "analysis"]
    if rows.empty:
        return rows
    return rows[rows["chunk_index"] == rows["chunk_index"].max()]


def _verdicts(run: Run) -> list[Verdict]:
    verdicts = []
    for outcome in run.outcomes:
        title = SIGNAL_TITLES[outcome.signal]
        if outcome.status == "failed":
            verdicts.append(Verdict(outcome.signal, title, "failed", outcome.message or ""))
            continue
        if outcome.status == "skipped" or outcome.table is None:
            verdicts.append(Verdict(outcome.signal, title, "skipped", outcome.message or ""))
            continue
        latest = _latest_rows(outcome.table)
        flagged = latest[latest["alert"].fillna(False).astype(bool)]
        hit = sorted(set(flagged["subject"]))
        chunk = latest["chunk_key"].iloc[0] if not latest.empty else "–"
        if outcome.signal in ("drift", "missing_values", "unseen_values", "range"):
            text = f"{len(hit)} of {latest['subject'].nunique()} features flagged"
            text += f": {', '.join(hit)}" if hit else ""
        else:
            text = "; ".join(_reading(r) for r in latest.sort_values("subject").itertuples())
        text = f"chunk {chunk}: {text}"
        ever = outcome.table[
            (outcome.table["period"] == "analysis") & outcome.table["alert"].fillna(False)
        ]
        if not ever.empty and not hit:
            text += f"; flagged earlier in {ever['chunk_key'].nunique()} chunk(s)"
        state = "flagged" if hit else "ok"
        verdicts.append(Verdict(outcome.signal, title, state, text))
    return verdicts


def _reading(row: Any) -> str:
    """'roc_auc 0.961, below lower 0.963' for a flagged value, 'f1 0.915' for another."""
    text = f"{row.subject} {_fmt(float(row.value))}"
    if isinstance(row.note, str) and row.note:
        return f"{row.subject}: {row.note}"
    if row.alert is True or row.alert == 1:
        lower, upper = row.lower_threshold, row.upper_threshold
        if not pd.isna(lower) and row.value < lower:
            text += f", below lower {_fmt(float(lower))}"
        elif not pd.isna(upper) and row.value > upper:
            text += f", above upper {_fmt(float(upper))}"
        else:
            text += ", flagged"
    return text


def _grid(run: Run, signal: str) -> dict[str, Any] | None:
    """Subject x analysis chunk: value and alert per cell (any method for drift)."""
    table = run.tables().get(signal)
    if table is None:
        return None
    rows = table[table["period"] == "analysis"]
    chunks = (
        rows[["chunk_index", "chunk_key", "chunk_start", "chunk_end"]]
        .drop_duplicates("chunk_index")
        .sort_values("chunk_index")
        .to_dict("records")
    )
    # One pass over plain records: a pandas group and its rows per line cost a tenth of a
    # second per report at 300,000 rows (docs/performance.md).
    lines_by: dict[tuple[str, str], dict[Any, SimpleNamespace]] = {}
    for record in rows[list(_CELL_COLUMNS)].to_dict("records"):
        line = lines_by.setdefault((record["subject"], record["method"]), {})
        line[record["chunk_index"]] = SimpleNamespace(**record)
    lines = []
    for (subject, method), by_chunk in sorted(lines_by.items()):
        cells = []
        for c in chunks:
            r = by_chunk.get(c["chunk_index"])
            if r is None:
                cells.append({"text": "", "state": "none", "title": ""})
                continue
            state = "alert" if r.alert is True or r.alert == 1 else "ok"
            if isinstance(r.note, str) and r.note:
                state = "none"
            value = _fmt(float(r.value))
            title = f"{subject} {method} {c['chunk_key']}: {value} ({_bounds(r)})"
            cells.append({"text": value, "state": state, "title": title})
        lines.append({"subject": subject, "method": method, "cells": cells})
    return {
        "chunks": [
            {"key": c["chunk_key"], "start": iso(c["chunk_start"])[:16].replace("T", " ")}
            for c in chunks
        ],
        "lines": lines,
    }


_CELL_COLUMNS = (
    "subject",
    "method",
    "chunk_index",
    "value",
    "alert",
    "note",
    "lower_threshold",
    "upper_threshold",
)


def _figure_json(figure: Any) -> Markup:
    import plotly.utils

    # What `figure.to_plotly_json()` returns, without the deep copy it takes first (half
    # the report's time at 300,000 rows); the figure is not used after this.
    plain: dict[str, Any] = {"data": figure._data, "layout": figure._layout}
    frames = [frame._props for frame in figure._frame_objs]
    if frames:
        plain["frames"] = frames
    text = json.dumps(plain, cls=plotly.utils.PlotlyJSONEncoder)
    safe = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(safe)  # noqa: S704 JSON with <, > and & escaped: no tag can close


def _plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    return Markup(get_plotlyjs())  # noqa: S704 the plotly package's own script


def context(run: Run) -> dict[str, Any]:
    config = run.config
    events = sorted(
        run.events, key=lambda e: (SEVERITY_ORDER[e.severity], e.name, e.subject, e.chunk_index)
    )
    figures = [
        {"id": f"figure-{i}", "title": SIGNAL_TITLES[o.signal], "json": _figure_json(o.figure)}
        for i, o in enumerate(run.outcomes)
        if o.figure is not None
    ]
    ts = config.columns.timestamp
    data = []
    for ds in (run.reference, run.analysis):
        if ds is None:
            continue
        times = ds.frame[ts]
        data.append(
            {
                "role": ds.role,
                "uri": ds.uri,
                "rows": ds.rows,
                "rows_read": ds.rows_read,
                "start": iso(times.min()),
                "end": iso(times.max()),
                "notes": ds.notes,
            }
        )
    return {
        "config": config,
        "run": run,
        "status": run.status,
        "started": iso(pd.Timestamp(run.started, unit="s")),
        "duration": f"{run.finished - run.started:.1f}",
        "verdicts": _verdicts(run),
        "events": events,
        "alert_groups": _alert_groups(events),
        "threshold_text": threshold_text,
        "deliveries": run.deliveries,
        "failures": [o for o in run.outcomes if o.status == "failed"],
        "warnings": [(o.name, w) for o in run.outcomes for w in o.warnings],
        "drift_grid": _grid(run, "drift"),
        "grids": [
            {"title": SIGNAL_TITLES[s], "grid": g}
            for s in (
                "estimated_performance",
                "realized_performance",
                "multivariate_drift",
                "missing_values",
                "unseen_values",
                "range",
            )
            if (g := _grid(run, s)) is not None
        ],
        "figures": figures,
        "plotly_js": _plotly_js() if figures else Markup(""),
        "data": data,
        "fmt": _fmt,
    }


def render_report(run: Run) -> str:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("monitor_report.html.j2").render(**context(run))


def write_report(run: Run, out: Path) -> Path:
    path = out / "report.html"
    path.write_text(render_report(run), encoding="utf-8")
    return path
