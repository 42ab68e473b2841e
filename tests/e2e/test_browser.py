"""Real browser end to end: `streamlit run` on tiny fixtures, driven by Debian's Chromium through Playwright.

Visits every page by URL, uploads an image on Inspect image, runs a small batch,
downloads the CSV report and checks its content, and asserts that no page shows a
Streamlit exception. Screenshots go to ``$QC_E2E_SCREENSHOTS`` (default /tmp/qc_e2e).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
PROJECT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("QC_E2E_SCREENSHOTS", "/tmp/qc_e2e"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: URL path -> the page title (h1) it must show. A deep link comes first: the first request
#: of a fresh server must already go through the router (see dashboard/app.py).
PAGES = {
    "analytics": "Defect analytics",
    "": "Overview",
    "eda": "Dataset EDA",
    "models": "Models",
    "inspect": "Inspect image",
    "batch": "Batch inspection",
    "reports": "Reports",
}
#: Elements Streamlit shows while a script run is in progress.
RUNNING = ('[data-testid^="stStatusWidgetRunning"], [data-testid="stStatusWidgetNewYearsIcon"], '
           '[data-testid="stSkeleton"]')
#: Slow, shared CI machines: the first render of a page may load torch and the models.
PAGE_TIMEOUT_MS = 90_000

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) to run the browser test",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def e2e_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of its own (the batch run writes to it) with a week of demo results for the analytics pages."""
    from db.demo import populate_demo_results
    from db.session import dispose_engines, get_engine, upgrade

    url = f"sqlite:///{(tmp_path_factory.mktemp('e2e_db') / 'qc.db').as_posix()}"
    upgrade(url)
    populate_demo_results(get_engine(url), days=7, images_per_run=10, seed=3)
    dispose_engines()
    return url


@pytest.fixture(scope="module")
def app_url(tiny_models_dir, e2e_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    models_dir, data_dir, _category = tiny_models_dir
    port = _free_port()
    log = tmp_path_factory.mktemp("e2e_log") / "streamlit.log"
    env = dict(os.environ, QC_DATA_DIR=str(data_dir), QC_MODELS_DIR=str(models_dir), QC_DB_URL=e2e_db,
               QC_TORCH_THREADS=os.environ.get("QC_TORCH_THREADS", "1"))
    cmd = [sys.executable, "-m", "streamlit", "run", str(PROJECT / "dashboard" / "app.py"), "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log.exists():
            print(log.read_text(errors="replace")[-4000:])


@pytest.fixture(scope="module")
def page(app_url: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(PAGE_TIMEOUT_MS)
        yield pg
        context.close()
        browser.close()


def _settle(pg) -> None:
    """Wait until the script run has finished (Streamlit shows a running indicator meanwhile)."""
    pg.wait_for_selector('[data-testid="stApp"]', state="attached")
    for _ in range(2):  # the running icon shows with a delay: require two quiet checks in a row
        pg.wait_for_function(f"() => !document.querySelector('{RUNNING}')")
        pg.wait_for_timeout(400)


def _open(pg, app_url: str, path: str) -> None:
    pg.goto(f"{app_url}/{path}")
    pg.get_by_role("heading", name=PAGES[path], exact=True).first.wait_for()
    _settle(pg)


def _assert_no_exception(pg, name: str) -> None:
    pg.screenshot(path=str(SHOTS / f"{name or 'overview'}.png"), full_page=True)
    nav = pg.locator('[data-testid="stSidebarNav"]')
    assert "Monitor" in nav.inner_text() and "Batch inspection" in nav.inner_text(), "page rendered outside the router"
    errors = pg.locator('[data-testid="stException"]')
    assert errors.count() == 0, f"page '{name}' shows an exception: {errors.first.inner_text()[:2000]}"


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders(page, app_url: str, path: str) -> None:
    _open(page, app_url, path)
    _assert_no_exception(page, path)
    if path == "":
        assert page.get_by_text("Images inspected").count() >= 1
    if path == "analytics":
        assert page.locator('[data-testid="stVegaLiteChart"], .vega-embed').count() >= 2


def test_upload_and_inspect_image(page, app_url: str, tiny_models_dir) -> None:
    _models_dir, data_dir, category = tiny_models_dir
    sample = sorted((data_dir / category / "test").glob("*/*.png"))[-1]
    _open(page, app_url, "inspect")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(sample))
    page.get_by_role("heading", name="Decisions").wait_for()
    _settle(page)
    page.get_by_text(sample.name).first.wait_for()
    assert page.get_by_text("NG").count() + page.get_by_text("OK").count() >= 1
    assert page.locator('[data-testid="stImage"]').count() >= 4  # original + ensemble + member overlays
    _assert_no_exception(page, "inspect_uploaded")


def test_small_batch_run(page, app_url: str, tiny_models_dir) -> None:
    _models_dir, data_dir, category = tiny_models_dir
    folder = data_dir / category / "test" / "good"
    _open(page, app_url, "batch")
    box = page.get_by_label("Folder on the server")
    box.fill(str(folder))
    box.press("Enter")
    _settle(page)
    page.get_by_label("Lot").fill("E2E-LOT")
    page.get_by_label("Lot").press("Enter")
    _settle(page)
    page.get_by_role("button", name="Start inspection").click()
    page.locator('[data-testid="stAlert"]', has_text="finished in").first.wait_for(timeout=180_000)
    _settle(page)
    page.screenshot(path=str(SHOTS / "batch_done.png"), full_page=True)
    n_images = len([p for p in folder.iterdir() if p.suffix == ".png"])
    scored = page.locator('[data-testid="stMetric"]', has_text="Scored").first.inner_text()
    assert scored.split()[-1] == str(n_images), scored
    assert page.locator('[data-testid="stMetric"]', has_text="Errors").first.inner_text().split()[-1] == "0"
    assert page.get_by_role("heading", name="Worst images").count() == 1
    shown = page.get_by_role("combobox", name="Run").input_value()
    assert f"lot E2E-LOT · completed · {n_images}/{n_images} scored" in shown, shown  # the new run is selected
    _assert_no_exception(page, "batch_done")


def test_download_csv_report(page, app_url: str, e2e_db: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from db.filters import Filters
    from db.run_queries import result_time_span
    from db.session import get_engine
    from qc_models.reports import build_report, to_csv_bytes

    _open(page, app_url, "reports")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    target = tmp_path / "report.csv"
    info.value.save_as(target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows[0][:4] == ["category", "line", "shift", "day"] and "defect_rate" in rows[0], rows[0]
    assert any(r[rows[0].index("n_inspected")] != "0" for r in rows[1:])
    # the same selection as the page's default filters (30 days up to the newest result), built by the library
    first, last = result_time_span(get_engine(e2e_db))
    start = max(first.date(), last.date() - timedelta(days=29))
    expected = to_csv_bytes(build_report(get_engine(e2e_db), Filters(start=start, end=last.date())))
    assert target.read_bytes() == expected
    _assert_no_exception(page, "reports")
    shutil.copy(target, SHOTS / "report.csv")
