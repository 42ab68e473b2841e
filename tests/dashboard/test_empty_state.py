"""With no dataset, models or database every page renders and says what to do next."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import PAGES, texts


def test_overview_shows_setup_banner(empty_env, open_page) -> None:
    at = open_page("")
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    body = texts(at)
    assert "qc demo-setup" in body  # the one command that fixes it
    assert "no dataset" in body and "no trained models" in body and "no inspection results" in body
    # the empty state never creates the database as a side effect of looking at it
    assert not (empty_env / "none" / "qc.db").exists()


@pytest.mark.parametrize("url_path", [p for p in PAGES if p])
def test_every_page_renders_without_data(empty_env, open_page, url_path: str) -> None:
    at = open_page(url_path)
    assert not at.exception, at.exception
    assert len(at.title) == 1
    assert at.warning or at.info, "an empty page must say why it is empty"
