"""Kiln's univariate drift figure (runtime/monitor/figures.py) shows NannyML's numbers.

Drawn from the tidy table of a real univariate drift result on NannyML's car-loan data;
every plotted value, threshold and alert is checked against that table.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

from runtime.monitor.figures import drift_figure
from runtime.monitor.tidy import tidy

CONTINUOUS = ["car_value", "debt_to_income_ratio", "driver_tenure"]
CATEGORICAL = ["salary_range", "size_of_downpayment"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml as nml

    reference, analysis, _ = nml.load_synthetic_car_loan_dataset()
    calc = nml.UnivariateDriftCalculator(
        column_names=CONTINUOUS + CATEGORICAL,
        treat_as_numerical=CONTINUOUS,
        treat_as_categorical=CATEGORICAL,
        timestamp_column_name="timestamp",
        continuous_methods=["jensen_shannon", "wasserstein"],
        categorical_methods=["chi2"],
        chunk_size=5000,
    )
    return tidy(calc.fit(reference).calculate(analysis).data, "drift")


def test_one_subplot_per_feature_and_method_with_the_tables_values(table: pd.DataFrame) -> None:
    figure = drift_figure(table)
    pairs = sorted(table.groupby(["subject", "method"]).groups)
    assert len(pairs) == 3 * 2 + 2
    titles = [a.text for a in figure.layout.annotations]
    assert titles == [f"{s} ({m})" for s, m in pairs]
    for i, (subject, method) in enumerate(pairs, start=1):
        axis = f"y{i}" if i > 1 else "y"
        traces = {t.name: t for t in figure.data if t.yaxis == axis and t.name != "threshold"}
        part = table[(table.subject == subject) & (table.method == method)]
        for period in ("reference", "analysis"):
            rows = part[part.period == period].sort_values("chunk_index")
            assert list(traces[period].y) == rows["value"].tolist(), (subject, method)
            assert list(traces[period].customdata) == rows["chunk_key"].tolist()
        alerting = part[part["alert"].astype(bool)]
        assert sorted(traces["alert"].y) == sorted(alerting["value"].tolist())


def test_thresholds_where_nannyml_has_them_and_the_analysis_start_marked(
    table: pd.DataFrame,
) -> None:
    figure = drift_figure(table)
    thresholds = [t for t in figure.data if t.name == "threshold"]
    with_bounds = table.groupby(["subject", "method"])["upper_threshold"].apply(
        lambda s: s.notna().any()
    )
    assert len([t for t in thresholds if t.y and t.y[0] is not None]) >= with_bounds.sum()
    # chi2 alerts on its p-value: it has no threshold on the statistic plotted.
    assert not with_bounds[("salary_range", "chi2")]
    start = table.loc[table.period == "analysis", "chunk_start"].min()
    assert len(figure.layout.shapes) == len(with_bounds)
    assert {pd.Timestamp(s.x0) for s in figure.layout.shapes} == {pd.Timestamp(start)}


def test_the_reports_figure_json_is_plotlys_own(table: pd.DataFrame) -> None:
    """The report serialises a figure without plotly's deep copy; the text must be what
    `to_plotly_json()` gives, frames included, and escaped for a script element."""
    import json

    import plotly.graph_objects as go
    import plotly.utils

    from runtime.monitor.report import _figure_json

    animated = go.Figure(
        data=[go.Scatter(x=[1, 2], y=[3, 4], name="<b>&")],
        frames=[go.Frame(data=[go.Scatter(x=[1], y=[2])], name="f0")],
    )
    for figure in (drift_figure(table), animated):
        expected = json.dumps(figure.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)
        found = str(_figure_json(figure))
        assert "<" not in found and ">" not in found and "&" not in found
        assert json.loads(found) == json.loads(expected)
