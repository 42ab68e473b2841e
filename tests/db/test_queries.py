"""Analytics queries on a hand-made database (both backends), checked against counts done by hand.

Hand data (decisions: cae, unet, patchcore, ensemble; '-' = model absent):
run 1 bottle/L1/A, 2024-01-01 08:xx: r1 crack T F T T | r2 crack F F F F | r3 good T F F F |
    r4 good F F F F | r5 good ERROR | r6 (unlabelled) T T T T
run 2 tile/L2/B, 2024-01-02: s1 oil 14:30 - T T T | s2 oil 15:30 - F T T | s3 good 15:40 - F F F |
    s4 crack 15:50 - F F F, a re-inspection of r1's content
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from db import queries as q
from db import run_queries as rq
from db.filters import Filters
from db.results import find_reinspections
from db.schema import GRID_SIZE, ImageResult, InspectionRun
from db.session import get_engine, session_scope

T, F, N = True, False, None
RESULTS = {  # name: (run, known type, cae, unet, patchcore, ensemble, score, time)
    "r1": (1, "crack", T, F, T, T, 0.9, datetime(2024, 1, 1, 8, 10)),
    "r2": (1, "crack", F, F, F, F, 0.3, datetime(2024, 1, 1, 8, 11)),
    "r3": (1, "good", T, F, F, F, 0.2, datetime(2024, 1, 1, 8, 12)),
    "r4": (1, "good", F, F, F, F, 0.1, datetime(2024, 1, 1, 8, 13)),
    "r5": (1, "good", N, N, N, N, N, datetime(2024, 1, 1, 8, 14)),
    "r6": (1, None, T, T, T, T, 0.8, datetime(2024, 1, 1, 8, 15)),
    "s1": (2, "oil", N, T, T, T, 0.7, datetime(2024, 1, 2, 14, 30)),
    "s2": (2, "oil", N, F, T, T, 0.6, datetime(2024, 1, 2, 15, 30)),
    "s3": (2, "good", N, F, F, F, 0.2, datetime(2024, 1, 2, 15, 40)),
    "s4": (2, "crack", N, F, F, F, 0.3, datetime(2024, 1, 2, 15, 50)),
}
FULL = bytes([255]) * (GRID_SIZE * GRID_SIZE)
ZERO = bytes(GRID_SIZE * GRID_SIZE)


@pytest.fixture
def hand_db(db_url: str) -> str:
    runs = {
        1: dict(category="bottle", line="L1", shift="A", lot="LOT1", started_at=datetime(2024, 1, 1, 8, 0),
                n_images=6, n_scored=5, n_errors=1, n_defective=2),
        2: dict(category="tile", line="L2", shift="B", lot="LOT2", started_at=datetime(2024, 1, 2, 14, 0),
                n_images=4, n_scored=4, n_errors=0, n_defective=2),
    }
    with session_scope(db_url, write=True) as session:
        for run_id, fields in runs.items():
            session.add(InspectionRun(id=run_id, source_folder=f"/run{run_id}", status="completed", **fields))
        session.flush()
        for name, (run_id, kind, cae, unet, pc, ens, score, at) in RESULTS.items():
            run = runs[run_id]
            error = name == "r5"
            session.add(ImageResult(
                run_id=run_id, rel_path=f"{kind}/{name}.png", path=f"/run{run_id}/{name}.png",
                content_hash="hash-r1" if name in ("r1", "s4") else f"hash-{name}",
                is_reinspection=True if name == "s4" else None,
                known_defect_type=kind, status="error" if error else "ok", error_text="truncated" if error else None,
                cae_defective=cae, unet_defective=unet, patchcore_defective=pc, is_defective=ens, ensemble_score=score,
                anomaly_grid={"r1": FULL, "r6": ZERO, "s2": b"short"}.get(name), inspected_at=at,
                category=run["category"], line=run["line"], shift=run["shift"], lot=run["lot"],
            ))
    return db_url


def test_defect_frequency_by_category_and_model(hand_db: str) -> None:
    engine = get_engine(hand_db)
    df = q.defect_frequency(engine, Filters(), by=("category",))
    assert df[["category", "n_inspected", "n_defective"]].values.tolist() == [["bottle", 5, 2], ["tile", 4, 2]]
    assert df["defect_rate"].tolist() == pytest.approx([0.4, 0.5])
    cae = q.defect_frequency(engine, Filters(model="cae"), by=("category",))
    assert cae[["category", "n_inspected", "n_defective"]].values.tolist() == [["bottle", 5, 3]]  # tile had no CAE


def test_time_buckets_and_date_filters(hand_db: str) -> None:
    engine = get_engine(hand_db)
    hours = q.defect_frequency(engine, Filters(), by=(), bucket="hour")
    assert hours["bucket"].tolist() == [pd.Timestamp("2024-01-01 08:00"), pd.Timestamp("2024-01-02 14:00"),
                                        pd.Timestamp("2024-01-02 15:00")]
    assert hours["n_inspected"].tolist() == [5, 1, 3] and hours["n_defective"].tolist() == [2, 1, 1]
    weeks = q.defect_frequency(engine, Filters(), by=(), bucket="week")
    assert weeks["bucket"].tolist() == [pd.Timestamp("2024-01-01")]  # Monday
    only_first_day = Filters(start=date(2024, 1, 1), end=date(2024, 1, 1))  # a date end includes that day
    assert q.yield_counts(engine, only_first_day)["inspections"] == 5
    by_line = q.defect_frequency(engine, Filters(lines="L2", shifts=("B",)), by=("line", "shift", "lot"))
    assert by_line[["line", "shift", "lot", "n_inspected"]].values.tolist() == [["L2", "B", "LOT2", 4]]


def test_unaligned_time_bounds_use_raw_rows(hand_db: str) -> None:
    engine = get_engine(hand_db)
    late = Filters(start=datetime(2024, 1, 2, 15, 35))
    assert q.yield_counts(engine, late)["inspections"] == 2  # s3, s4 only (the 15:00 hour also holds s2)
    assert q.yield_counts(engine, Filters(start=datetime(2024, 1, 2, 15)))["inspections"] == 3


def test_pareto_and_defect_type_counts(hand_db: str) -> None:
    engine = get_engine(hand_db)
    counts = q.defect_type_counts(engine, Filters())
    assert counts.values.tolist() == [["oil", 2], ["crack", 1], ["unlabelled", 1]]
    pareto = q.pareto_table(engine, Filters())
    assert pareto["cumulative_percent"].tolist() == pytest.approx([50.0, 75.0, 100.0])
    by_line = q.defect_type_counts(engine, Filters(model="cae"), by="line")
    assert by_line.values.tolist() == [["L1", 3]]


def test_p_chart_counts_by_run_and_day(hand_db: str) -> None:
    engine = get_engine(hand_db)
    runs = q.p_chart_counts(engine, Filters(), "run")
    assert runs[["subgroup", "n", "x"]].values.tolist() == [[1, 5, 2], [2, 4, 2]]
    assert runs["time"].tolist() == [pd.Timestamp("2024-01-01 08:00"), pd.Timestamp("2024-01-02 14:00")]
    days = q.p_chart_table(engine, Filters(), "day")
    assert days["n"].tolist() == [5, 4] and days["center"].iloc[0] == pytest.approx(4 / 9)


def test_yield_counts_and_kpis(hand_db: str) -> None:
    engine = get_engine(hand_db)
    counts = q.yield_counts(engine, Filters())
    assert counts == {"inspections": 9, "defective": 4, "errors": 1, "units": 8, "first_pass_defective": 4, "runs": 2}
    kpi = q.kpi_summary(engine, Filters())
    assert kpi["yield"] == pytest.approx(5 / 9) and kpi["first_pass_yield"] == pytest.approx(0.5)
    assert kpi["dpmo"] == pytest.approx(4 / 9 * 1e6) and kpi["errors"] == 1 and kpi["runs"] == 2
    assert q.kpi_summary(engine, Filters(), opportunities_per_unit=4)["dpmo"] == pytest.approx(4 / 9 / 4 * 1e6)
    # bottle: 1 known defect type (crack) over 5 images; tile: 2 (oil, crack) over 4 -> (5*1 + 4*2) / 9
    assert q.defect_opportunities(engine, Filters()) == pytest.approx(13 / 9)
    by_types = q.kpi_summary(engine, Filters(), opportunities_per_unit="defect_types")
    assert by_types["dpmo"] == pytest.approx(4 / 9 / (13 / 9) * 1e6)
    with pytest.raises(ValueError, match="defect_types"):
        q.kpi_summary(engine, Filters(), opportunities_per_unit="many")


def test_detection_rates_per_known_type(hand_db: str) -> None:
    df = q.detection_rates(get_engine(hand_db), Filters()).set_index("defect_type")
    assert list(df.index) == ["crack", "oil", "good"]
    assert df.loc["crack", ["n_images", "n_detected"]].tolist() == [3, 1]
    assert df.loc["oil", "detection_rate"] == pytest.approx(1.0)
    assert df.loc["good", "detection_rate"] == pytest.approx(0.0)  # the false-reject rate
    assert df.loc["crack", "rate_cae"] == pytest.approx(0.5) and np.isnan(df.loc["oil", "rate_cae"])
    assert df.loc["good", "rate_cae"] == pytest.approx(0.5)


def test_model_agreement_pairs_and_all(hand_db: str) -> None:
    df = q.model_agreement(get_engine(hand_db), Filters())
    got = {(a, b): (n, k) for a, b, n, k in df[["model_a", "model_b", "n", "n_agree"]].itertuples(index=False)}
    assert got == {
        ("cae", "unet"): (5, 3), ("cae", "patchcore"): (5, 4), ("cae", "ensemble"): (5, 4),
        ("unet", "patchcore"): (9, 7), ("unet", "ensemble"): (9, 7), ("patchcore", "ensemble"): (9, 9),
        ("all", "all"): (9, 6),
    }


def test_rollup_and_raw_sources_agree(hand_db: str) -> None:
    engine = get_engine(hand_db)
    for filters in (Filters(), Filters(categories="bottle", model="cae"), Filters(start=date(2024, 1, 2))):
        for fn, kwargs in ((q.defect_frequency, {"by": ("defect_type", "line"), "bucket": "day"}),
                           (q.p_chart_counts, {"subgroup": "hour"}), (q.detection_rates, {}),
                           (q.model_agreement, {}), (q.defect_type_counts, {})):
            pd.testing.assert_frame_equal(fn(engine, filters, source="rollup", **kwargs),
                                          fn(engine, filters, source="raw", **kwargs))
        assert q.yield_counts(engine, filters, source="rollup") == q.yield_counts(engine, filters, source="raw")


def test_bounds_inside_hours_are_exact(hand_db: str) -> None:
    """Bounds off the hour: rollup for whole hours plus raw edge rows gives the raw answer."""
    engine = get_engine(hand_db)
    partial = Filters(start=datetime(2024, 1, 1, 8, 12), end=datetime(2024, 1, 2, 15, 45))
    assert q.yield_counts(engine, partial)["inspections"] == 6  # r3 r4 r6 s1 s2 s3 (r5 is an error)
    assert q.yield_counts(engine, partial)["defective"] == 3  # r6 s1 s2
    assert q.yield_counts(engine, partial, source="rollup")["inspections"] == 4  # whole hours only: s1..s4
    for filters in (partial, partial.with_(start=None, model="unet"), partial.with_(end=None, categories="tile"),
                    Filters(start=datetime(2024, 1, 2, 14, 20), end=datetime(2024, 1, 2, 15, 35))):
        for fn, kwargs in ((q.defect_frequency, {"by": ("defect_type", "line"), "bucket": "hour"}),
                           (q.p_chart_counts, {"subgroup": "run"}), (q.detection_rates, {}),
                           (q.model_agreement, {}), (q.defect_type_counts, {})):
            pd.testing.assert_frame_equal(fn(engine, filters, **kwargs), fn(engine, filters, source="raw", **kwargs))
        assert q.yield_counts(engine, filters) == q.yield_counts(engine, filters, source="raw")


def test_run_level_queries(hand_db: str) -> None:
    engine = get_engine(hand_db)
    runs = rq.latest_runs(engine)
    assert runs["id"].tolist() == [2, 1] and runs["defect_rate"].tolist() == pytest.approx([0.5, 0.4])
    assert rq.count_runs(engine) == 2 and q.count_runs(engine, Filters(categories="tile")) == 1
    assert rq.run_summary(engine, 1)["lot"] == "LOT1"
    with pytest.raises(rq.RunNotFoundError, match="no inspection run with id 99"):
        rq.run_summary(engine, 99)
    worst = rq.worst_results(engine, Filters(), n=3)
    assert [p.rsplit("/", 1)[1] for p in worst["path"]] == ["r1.png", "r6.png", "s1.png"]
    assert "anomaly_grid" not in worst.columns
    ng = rq.run_results(engine, Filters(run_ids=(1,)), defective=True, order="worst")
    assert ng["rel_path"].tolist() == ["crack/r1.png", "None/r6.png"]
    errors = rq.run_errors(engine, Filters(run_ids=(1,)))
    assert errors["error_text"].tolist() == ["truncated"]
    assert rq.run_results(engine, Filters(), defect_type="oil")["rel_path"].tolist() == ["oil/s1.png", "oil/s2.png"]
    with pytest.raises(ValueError, match="unknown order"):
        rq.run_results(engine, Filters(), order="random")


def test_anomaly_heatmap_averages_valid_grids(hand_db: str) -> None:
    heat, used = rq.anomaly_heatmap(get_engine(hand_db), Filters())
    assert used == 2  # r1 (all 255) and r6 (all 0); s2's blob has the wrong size
    assert heat.shape == (GRID_SIZE, GRID_SIZE) and np.allclose(heat, 0.5)
    _, none_used = rq.anomaly_heatmap(get_engine(hand_db), Filters(categories="tile"))
    assert none_used == 0


def test_filter_options_and_time_span(hand_db: str) -> None:
    engine = get_engine(hand_db)
    options = rq.filter_options(engine)
    assert options["categories"] == ["bottle", "tile"] and options["lots"] == ["LOT1", "LOT2"]
    assert options["n_runs"] == 2
    assert rq.result_time_span(engine) == (datetime(2024, 1, 1, 8, 10), datetime(2024, 1, 2, 15, 50))


def test_find_reinspections(hand_db: str) -> None:
    with session_scope(hand_db) as session:
        assert find_reinspections(session, 3, ["hash-r1", "hash-s3", "unknown", None]) == {"hash-r1", "hash-s3"}
        assert find_reinspections(session, 2, ["hash-r1", "hash-s3"]) == {"hash-r1"}
        assert find_reinspections(session, 1, ["hash-r1"]) == set()


def test_filters_validate_input() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        Filters(model="resnet")
    with pytest.raises(ValueError, match="empty date range"):
        Filters(start=date(2024, 2, 1), end=date(2024, 1, 1))
    with pytest.raises(ValueError, match="not an ISO date"):
        Filters(start="yesterday")
    f = Filters(start="2024-01-01", end="2024-01-31", categories="bottle", run_ids=[3, "4"])
    assert f.end == datetime(2024, 2, 1) and f.categories == ("bottle",) and f.run_ids == (3, 4)
    assert Filters(**{k: getattr(f, k) for k in f.__dataclass_fields__}) == f  # round-trips (dashboard cache)
    assert f.describe()["from"] == "2024-01-01" and f.describe()["to"] == "2024-01-31"
    assert Filters(end=datetime(2024, 1, 31, 12)).describe()["to"] == "before 2024-01-31 12:00"
    with pytest.raises(ValueError, match="cannot group by"):
        q.defect_frequency(None, Filters(), by=("colour",))  # type: ignore[arg-type]
