"""Pareto, p-chart and yield math checked against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from qc_models.analytics import RULE_BEYOND_LIMITS, RULE_RUN_OF_8, p_chart, pareto, yield_metrics


def test_pareto_sorts_and_accumulates() -> None:
    counts = pd.DataFrame({"defect_type": ["scratch", "crack", "dent", "none"], "count": [10, 50, 40, 0]})
    out = pareto(counts, "defect_type")
    assert list(out["defect_type"]) == ["crack", "dent", "scratch"]  # zero count dropped
    assert list(out["percent"]) == pytest.approx([50.0, 40.0, 10.0])
    assert list(out["cumulative_percent"]) == pytest.approx([50.0, 90.0, 100.0])
    assert list(out["cumulative_count"]) == [50, 90, 100]


def test_pareto_ties_are_ordered_by_name_and_duplicates_merged() -> None:
    counts = pd.DataFrame({"k": ["b", "a", "b", "c"], "count": [1, 2, 1, 5]})
    out = pareto(counts, "k")
    assert list(out["k"]) == ["c", "a", "b"]
    assert list(out["count"]) == [5, 2, 2]


def test_pareto_empty_and_bad_columns() -> None:
    empty = pareto(pd.DataFrame({"k": [], "count": []}), "k")
    assert empty.empty and "cumulative_percent" in empty.columns
    with pytest.raises(ValueError, match="pareto needs columns"):
        pareto(pd.DataFrame({"x": [1]}), "k")


def test_p_chart_limits_match_hand_computation() -> None:
    # p-bar = (5 + 10 + 15) / (100 + 200 + 300) = 0.05
    df = p_chart(pd.DataFrame({"n": [100, 200, 300], "x": [5, 10, 15]}))
    assert df["center"].iloc[0] == pytest.approx(0.05)
    for n, ucl, lcl in zip([100, 200, 300], df["ucl"], df["lcl"]):
        sigma = math.sqrt(0.05 * 0.95 / n)
        assert ucl == pytest.approx(0.05 + 3 * sigma)
        assert lcl == pytest.approx(max(0.0, 0.05 - 3 * sigma))
    assert df["lcl"].iloc[0] == 0.0  # 0.05 - 3*0.0218 < 0: clipped
    assert df["lcl"].iloc[2] == pytest.approx(0.05 - 3 * math.sqrt(0.05 * 0.95 / 300))
    assert not df["out_of_control"].any()
    assert (df["rule"] == "").all()


def test_p_chart_flags_point_beyond_limits() -> None:
    # Points alternate around the centre line, so only the limit rule can fire.
    x = [8, 16] * 4 + [8, 40]
    df = p_chart(pd.DataFrame({"n": [400] * 10, "x": x}))
    p_bar = sum(x) / 4000
    ucl = p_bar + 3 * math.sqrt(p_bar * (1 - p_bar) / 400)
    assert df["ucl"].iloc[0] == pytest.approx(ucl)
    assert 40 / 400 > ucl > 16 / 400
    assert list(df["out_of_control"]) == [False] * 9 + [True]
    assert df["rule"].iloc[-1] == RULE_BEYOND_LIMITS


def test_p_chart_flags_eighth_and_later_points_of_a_run() -> None:
    # 9 points slightly above the centre, then 9 slightly below: all within limits.
    x = [11] * 9 + [9] * 9
    df = p_chart(pd.DataFrame({"n": [100] * 18, "x": x}))
    assert df["center"].iloc[0] == pytest.approx(0.10)
    assert not ((df["p"] > df["ucl"]) | (df["p"] < df["lcl"])).any()
    expected = [False] * 7 + [True, True] + [False] * 7 + [True, True]
    assert list(df["out_of_control"]) == expected
    assert set(df.loc[df["out_of_control"], "rule"]) == {RULE_RUN_OF_8}


def test_p_chart_reports_both_rules_on_one_point() -> None:
    # p-bar = 700/9000 = 0.0778, LCL at n=1000 = 0.0524: the eight 5 % points are below the LCL
    # and form a run of 8 below the centre; the last point is far above the UCL.
    df = p_chart(pd.DataFrame({"n": [1000] * 9, "x": [50] * 8 + [300]}))
    assert df["lcl"].iloc[0] == pytest.approx(0.07778 - 3 * math.sqrt(0.077778 * 0.922222 / 1000), abs=1e-4)
    assert list(df["rule"].iloc[:7]) == [RULE_BEYOND_LIMITS] * 7
    assert df["rule"].iloc[7] == f"{RULE_BEYOND_LIMITS}; {RULE_RUN_OF_8}"
    assert df["rule"].iloc[8] == RULE_BEYOND_LIMITS
    assert df["out_of_control"].all()


def test_p_chart_point_on_centre_breaks_run() -> None:
    # centre 0.1 exactly: 7 above, one on the centre line, 7 above, 2 below -> no run of 8
    x = [11] * 7 + [10] + [11] * 7 + [3, 3]
    n = [100] * 17
    p_bar = sum(x) / sum(n)
    assert p_bar == pytest.approx(0.1)
    df = p_chart(pd.DataFrame({"n": n, "x": x}))
    assert df["p"].iloc[7] == df["center"].iloc[7]
    assert not df["rule"].str.contains("8 in a row").any()
    x[7] = 11  # now 15 in a row above ... (centre moves but stays below 0.11)
    rerun = p_chart(pd.DataFrame({"n": n, "x": x}))
    assert list(rerun["rule"].iloc[7:15].str.contains("8 in a row")) == [True] * 8


def test_p_chart_drops_empty_subgroups_and_rejects_bad_counts() -> None:
    df = p_chart(pd.DataFrame({"n": [0, 10], "x": [0, 1]}))
    assert len(df) == 1 and df["p"].iloc[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="0 <= x <= n"):
        p_chart(pd.DataFrame({"n": [10], "x": [11]}))
    assert p_chart(pd.DataFrame({"n": [], "x": []})).empty


def test_yield_dpu_dpmo_by_hand() -> None:
    m = yield_metrics(inspections=1000, defective=25, units=900, first_pass_defective=30, opportunities_per_unit=5)
    assert m["yield"] == pytest.approx(0.975)
    assert m["first_pass_yield"] == pytest.approx(1 - 30 / 900)
    assert m["dpu"] == pytest.approx(0.025)
    assert m["dpmo"] == pytest.approx(25 / (1000 * 5) * 1e6)  # 5000
    one = yield_metrics(1000, 25)
    assert one["dpmo"] == pytest.approx(25_000) and one["first_pass_yield"] == pytest.approx(0.975)


def test_yield_metrics_edge_cases() -> None:
    empty = yield_metrics(0, 0)
    assert math.isnan(empty["yield"]) and math.isnan(empty["dpmo"])
    with pytest.raises(ValueError, match="opportunities_per_unit"):
        yield_metrics(10, 1, opportunities_per_unit=0)
    with pytest.raises(ValueError, match="between 0 and inspections"):
        yield_metrics(10, 11)
