"""Every page on the tiny demo fixtures: renders without an exception and shows its key elements
(the Models page's own tests are in test_models_page.py).

The numbers on the pages are checked against the library functions they come from,
so a page that shows the wrong thing fails, not only one that crashes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.dashboard.conftest import count_charts, point_env, texts, wait_for_jobs
from tests.fixtures_data import TINY_DATASET_ARGS


def test_overview_kpis_match_the_database(demo_env, open_page) -> None:
    from db.filters import Filters
    from db.queries import kpi_summary
    from db.session import get_engine

    *_, db_url = demo_env
    at = open_page("")
    assert not at.exception, at.exception
    at.segmented_control(key="overview_window").set_value("All").run()
    metrics = {m.label: m.value for m in at.metric}
    expected = kpi_summary(get_engine(db_url), Filters())
    assert metrics["Images inspected"] == f"{int(expected['inspections']):,}"
    assert metrics["Defect rate"] == f"{100 * expected['defect_rate']:.2f} %"
    assert int(metrics["SPC signals"]) == int(expected["out_of_control"])
    assert count_charts(at) >= 1 and len(at.dataframe) >= 2  # trend chart, top defects, latest runs
    assert "untrained (random-init) backbone" in texts(at)  # tiny models use weights="none"
    assert "simulated demo data" in texts(at)  # populated_db holds db.demo runs
    assert "from one day" not in texts(at)  # 14 days of runs make a real trend


def test_eda_page_counts_andcount_charts(demo_env, open_page) -> None:
    _, data_dir, category, _ = demo_env
    at = open_page("eda")
    assert not at.exception, at.exception
    at.selectbox(key="eda_category").set_value(category).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    n_types = len([p for p in (data_dir / category / "test").iterdir() if p.is_dir() and p.name != "good"])
    assert metrics["Train images (good)"] == str(TINY_DATASET_ARGS["n_train"])
    assert metrics["Test good"] == str(TINY_DATASET_ARGS["n_test_good"])
    assert metrics["Test defective"] == str(TINY_DATASET_ARGS["n_per_defect"] * n_types)
    assert metrics["Defect types"] == str(n_types)
    assert count_charts(at) >= 4  # imbalance, RGB good vs defective, per-image RGB, area, locations
    assert len(at.image) >= 4 and len(at.dataframe) >= 3
    assert not at.error


def test_eda_page_rejects_a_folder_that_is_not_a_dataset(demo_env, open_page, tmp_path) -> None:
    at = open_page("eda")
    at.text_input(key="eda_root").set_value(str(tmp_path)).run()
    assert not at.exception
    assert "no dataset in the mvtec ad layout" in texts(at) and str(tmp_path).lower() in texts(at)
    assert not at.metric  # nothing is analysed


def _png_bytes(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).save(buf, format="PNG")
    return buf.getvalue()


def test_inspect_page_scores_an_upload_like_the_library(demo_env, open_page) -> None:
    from qc_models.data import load_rgb
    from qc_models.registry import load_model_set

    models_dir, data_dir, category, _ = demo_env
    sample = sorted((data_dir / category / "test").glob("*/*.png"))[-1]
    at = open_page("inspect")
    assert not at.exception, at.exception
    at.selectbox(key="inspect_category").set_value(category)
    at.file_uploader(key="inspect_uploads").set_value((sample.name, _png_bytes(sample), "image/png"))
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["image"].tolist() == [sample.name]
    expected = load_model_set(models_dir, category).score([load_rgb(sample)])[0]
    for model in ("cae", "unet", "patchcore", "ensemble"):
        assert table[f"{model} decision"].iloc[0] == ("NG" if expected.is_defective[model] else "OK")
        assert table[f"{model} score"].iloc[0] == pytest.approx(expected.normalised[model], abs=1e-3)
    assert len(at.image) == 1 + 4  # original + ensemble and three member overlays (no mask for uploads)
    assert any(sample.name in m.value and ("NG" in m.value or "OK" in m.value) for m in at.markdown)


def test_inspect_page_reports_a_broken_upload(demo_env, open_page) -> None:
    at = open_page("inspect")
    at.file_uploader(key="inspect_uploads").set_value(("broken.png", b"not an image at all", "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert any("broken.png" in e.value and "not a recognised image" in e.value for e in at.error)


def test_inspect_page_shows_ground_truth_for_dataset_images(demo_env, open_page) -> None:
    *_, category, _ = demo_env
    at = open_page("inspect")
    at.selectbox(key="inspect_category").set_value(category)
    at.segmented_control(key="inspect_source").set_value("Dataset").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="inspect_type").value != "good"  # a defect type is preselected
    captions = [c for img in at.image for c in img.captions]
    assert "ground truth" in captions and "original" in captions


def test_batch_page_runs_a_folder_in_the_background(monkeypatch, tiny_models_dir, sqlite_url, open_page) -> None:
    from db.filters import Filters
    from db.run_queries import run_results
    from db.session import get_engine

    models_dir, data_dir, category = tiny_models_dir
    point_env(monkeypatch, data_dir, models_dir, sqlite_url)
    folder = data_dir / category / "test"
    n_images = len(list(folder.glob("*/*.png")))
    at = open_page("batch")
    assert not at.exception, at.exception
    at.text_input(key="batch_folder").set_value(str(folder))
    at.text_input(key="batch_lot").set_value("LOT-T1")
    at.run()
    next(b for b in at.button if b.label == "Start inspection").click().run()
    assert not at.exception, at.exception
    wait_for_jobs()
    at.run()
    assert not at.exception, at.exception
    assert any("finished" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == str(n_images) and metrics["Errors"] == "0"
    stored = run_results(get_engine(sqlite_url), Filters(lots=("LOT-T1",)))
    assert len(stored) == n_images and set(stored["category"]) == {category}
    assert metrics["Defective (NG)"] == str(int(stored["is_defective"].sum()))
    shown = at.dataframe[0].value
    assert len(shown) == n_images and shown["ensemble_score"].is_monotonic_decreasing  # worst first
    assert at.selectbox(key="batch_run").value == int(stored["run_id"].iloc[0])  # the new run is shown
    assert len(at.image) == 8  # worst-N gallery, default N = 8
    at.segmented_control(key="batch_decision").set_value("NG").run()
    ng = at.dataframe[0].value if at.dataframe else []
    assert len(ng) == int(stored["is_defective"].sum())
    overview = open_page("")  # one day of results: the trend says why it is a single point
    assert not overview.exception, overview.exception
    assert "from one day" in texts(overview) and "qc db demo" in texts(overview)


def test_batch_page_resumes_an_interrupted_run(monkeypatch, tiny_models_dir, sqlite_url, open_page) -> None:
    from db.run_queries import run_summary
    from db.session import get_engine
    from qc_models.inspection import create_run

    models_dir, data_dir, category = tiny_models_dir
    point_env(monkeypatch, data_dir, models_dir, sqlite_url)
    folder = data_dir / category / "test" / "good"
    run_id = create_run(folder, models_dir, sqlite_url, category=category, lot="LOT-R")  # created, never continued
    at = open_page("batch")
    assert at.selectbox(key="batch_run").value == run_id
    assert any("running" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Resume this run").click().run()
    assert not at.exception, at.exception
    wait_for_jobs()
    at.run()
    summary = run_summary(get_engine(sqlite_url), run_id)
    assert summary["status"] == "completed" and summary["n_scored"] == len(list(folder.glob("*.png")))
    assert any(f"run {run_id} finished" in s.value for s in at.success)


def test_analytics_page(demo_env, open_page) -> None:
    from db.filters import Filters
    from db.queries import pareto_table
    from db.session import get_engine

    *_, db_url = demo_env
    at = open_page("analytics")
    assert not at.exception, at.exception
    assert count_charts(at) >= 5  # Pareto, p-chart, frequency over time, by line, by shift
    assert {m.label for m in at.metric} >= {"Images inspected", "Defect rate", "DPMO", "Out-of-control signals"}
    dates = at.date_input(key="flt_dates").value
    expected = pareto_table(get_engine(db_url), Filters(start=dates[0], end=dates[-1]))
    assert len(expected) > 0
    at.multiselect(key="flt_lines").set_value(["L1"]).run()
    assert not at.exception, at.exception
    assert count_charts(at) >= 6  # + location heatmap


def test_analytics_filters_survive_a_page_change(demo_env, open_page) -> None:
    at = open_page("analytics")
    at.multiselect(key="flt_lines").set_value(["L2"]).run()
    at.switch_page("views/overview.py").run()
    at.switch_page("views/analytics.py").run()
    assert at.multiselect(key="flt_lines").value == ["L2"]


def test_reports_page_preview_matches_build_report(demo_env, open_page) -> None:
    from db.filters import Filters
    from db.session import get_engine
    from qc_models.reports import build_report

    *_, db_url = demo_env
    at = open_page("reports")
    assert not at.exception, at.exception
    labels = [b.label for b in at.download_button]
    assert labels == ["Download CSV", "Download XLSX", "Download PDF"]
    dates = at.date_input(key="flt_dates").value
    expected = build_report(get_engine(db_url), Filters(start=dates[0], end=dates[-1])).kpi_table()
    shown = at.dataframe[0].value
    assert shown["metric"].tolist() == expected["metric"].tolist()
    assert shown["value"].tolist() == expected["value"].tolist()
    assert count_charts(at) >= 3  # Pareto, p-chart, trend


def test_pages_with_an_empty_database(monkeypatch, tiny_models_dir, sqlite_url, open_page) -> None:
    models_dir, data_dir, _ = tiny_models_dir
    point_env(monkeypatch, data_dir, models_dir, sqlite_url)
    for path in ("", "analytics", "reports"):
        at = open_page(path)
        assert not at.exception, at.exception
        assert "no inspection results yet" in texts(at) and "qc demo-setup" in texts(at)
        assert not at.metric


