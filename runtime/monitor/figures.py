"""The report's univariate drift figure, drawn from the tidy table the job already has.

NannyML's own `result.plot(kind="drift")` draws the same lines, but spends most of its time
separating the periods: one `add_vline` per subplot, and plotly copies every shape of the
figure on each call, so the cost grows with the square of the features (0.7 s of the job's
1.2 s univariate step at 300,000 rows, docs/performance.md). Here every trace and shape is
built as data and handed to plotly once.

One subplot per (feature, method): the value per chunk, reference and analysis apart, the
thresholds, the alerting chunks marked, and a dotted line where the analysis starts.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

REFERENCE_COLOUR = "#3b0280"
ANALYSIS_COLOUR = "#00c8e5"
ALERT_COLOUR = "#dd4040"
THRESHOLD_COLOUR = "#dd4040"
ROW_HEIGHT_PX = 220


def _series(part: pd.DataFrame, axis: int, show_legend: bool) -> list[dict[str, Any]]:
    suffix = str(axis) if axis > 1 else ""
    common = {"type": "scatter", "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}

    def trace(name: str, rows: pd.DataFrame, y: str, legend: bool, **style: Any) -> dict[str, Any]:
        x = rows["chunk_start"].tolist()
        shown = {"legendgroup": name, "showlegend": legend}
        return {**common, **shown, "name": name, "x": x, "y": rows[y].tolist(), **style}

    traces = []
    for period, colour in (("reference", REFERENCE_COLOUR), ("analysis", ANALYSIS_COLOUR)):
        rows = part[part["period"] == period]
        hover = "chunk %{customdata}<br>%{y:.4f}<extra>" + period + "</extra>"
        traces.append(
            trace(
                period, rows, "value", show_legend, mode="lines+markers",
                line={"color": colour}, customdata=rows["chunk_key"].tolist(),
                hovertemplate=hover,
            )
        )  # fmt: skip
    dashed = {"mode": "lines", "line": {"color": THRESHOLD_COLOUR, "dash": "dash"}}
    for bound in ("lower_threshold", "upper_threshold"):
        if part[bound].notna().any():
            legend = show_legend and bound == "upper_threshold"
            traces.append(trace("threshold", part, bound, legend, hoverinfo="skip", **dashed))
    alerts = part[part["alert"].fillna(False).astype(bool)]
    marker = {"color": ALERT_COLOUR, "size": 9, "symbol": "diamond"}
    traces.append(
        trace(
            "alert", alerts, "value", show_legend, mode="markers", marker=marker, hoverinfo="skip"
        )
    )
    return traces


def drift_figure(table: pd.DataFrame) -> Any:
    """A plotly Figure of `table` (TIDY_COLUMNS rows of one univariate drift result)."""
    import plotly.graph_objects as go

    subjects = list(table.groupby(["subject", "method"], sort=True).groups)
    rows = len(subjects)
    gap = 0.3 / max(rows, 1)
    height = (1 - gap * (rows - 1)) / max(rows, 1)
    layout: dict[str, Any] = {
        "height": ROW_HEIGHT_PX * rows, "showlegend": True, "hovermode": "closest",
        "margin": {"t": 40, "b": 30}, "annotations": [], "shapes": [],
    }  # fmt: skip
    traces: list[dict[str, Any]] = []
    first_analysis = table.loc[table["period"] == "analysis", "chunk_start"].min()
    for i, (subject, method) in enumerate(subjects, start=1):
        part = table[(table["subject"] == subject) & (table["method"] == method)]
        part = part.sort_values(["period", "chunk_index"], key=_reference_first)
        top = 1 - (i - 1) * (height + gap)
        suffix = str(i) if i > 1 else ""
        layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "matches": "x" if i > 1 else None}
        domain = [max(0.0, round(top - height, 6)), min(1.0, round(top, 6))]
        layout[f"yaxis{suffix}"] = {"domain": domain, "anchor": f"x{suffix}"}
        layout["annotations"].append(
            {"text": f"{subject} ({method})", "xref": "paper", "yref": "paper", "x": 0,
             "y": top, "yanchor": "bottom", "showarrow": False, "xanchor": "left"}
        )  # fmt: skip
        if pd.notna(first_analysis):
            layout["shapes"].append(
                {"type": "line", "xref": f"x{suffix}", "yref": f"y{suffix} domain",
                 "x0": first_analysis, "x1": first_analysis, "y0": 0, "y1": 1,
                 "line": {"color": "#666666", "dash": "dot", "width": 1}}
            )  # fmt: skip
        traces += _series(part, i, show_legend=i == 1)
    return go.Figure({"data": traces, "layout": layout}, skip_invalid=False)


def _reference_first(column: pd.Series) -> pd.Series:
    if column.name == "period":
        return (column != "reference").astype(int)
    return column
