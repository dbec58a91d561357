"""The app in a real browser: the server started as people start it, driven with Playwright through Chromium.

Skipped when /usr/bin/chromium or playwright is missing, except under CI (CI set), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The fixture is used by name: pytest finds it in this module.
from app_fixtures import app_checkpoints  # noqa: F401

from app.bench import (
    CHART_SVG,
    CHROMIUM,
    EXCEPTION,
    browser,
    first_chart,
    full_page_screenshot,
    serve,
    step_slider,
    wait_for_chart_change,
    wait_for_charts,
    wait_for_page,
)

pytestmark = pytest.mark.timeout(90)


def require_browser() -> None:
    if CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None:
        return
    reason = f"{CHROMIUM} (apt-get install chromium) or playwright (pip) is missing: browser tests skipped"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, but CI must run them")
    print(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    require_browser()  # before the checkpoints are trained: a skip should cost nothing
    checkpoints = request.getfixturevalue("app_checkpoints")
    with serve(checkpoints, timeout=60) as base:
        yield base


@pytest.fixture(scope="module")
def page(url: str):
    with browser(width=1400, height=900) as p:
        p.set_default_timeout(60_000)  # the first page loads a model and records a trace on a busy machine
        yield p


def open_url(page, url: str) -> None:
    """Open a page that draws charts; they mount lazily, so wait for the first one as well as the script run."""
    page.goto(url)
    wait_for_page(page, timeout=60)
    page.wait_for_selector(CHART_SVG)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()


def test_the_pass_slider_redraws_the_state_in_the_browser(page, url: str, tmp_path: Path):
    open_url(page, f"{url}/explorer?ckpt=tiny-n2")
    after_two = first_chart(page)
    assert "pass 2" in after_two, "the heatmap opens on the last pass"

    assert step_slider(page, "Sleep pass", "ArrowLeft") == "1"
    wait_for_chart_change(page, after_two)
    wait_for_page(page)
    after_one = first_chart(page)
    assert "pass 1" in after_one and "pass 2" not in after_one
    assert "pass=1" in page.url, "the URL follows the slider"
    assert page.locator(EXCEPTION).count() == 0

    assert step_slider(page, "Sleep pass", "ArrowRight") == "2"
    wait_for_chart_change(page, after_one)
    wait_for_page(page)
    assert "pass 2" in first_chart(page)
    assert page.locator(EXCEPTION).count() == 0

    shot = tmp_path / "explorer.png"
    full_page_screenshot(page, shot)
    assert shot.stat().st_size > 10_000, "a screenshot of a drawn page, not a blank one"


def test_a_url_restores_the_view_in_the_browser(page, url: str):
    open_url(page, f"{url}/explorer?ckpt=tiny-n2&pass=1&seed=3")
    assert page.locator('[data-testid="stSlider"] input[type=range]').get_attribute("value") == "1"
    assert page.locator('[data-testid="stNumberInput"] input').input_value() == "3"
    assert "pass 1" in first_chart(page)


def test_the_view_follows_a_click_to_another_page_in_the_browser(page, url: str):
    """The sidebar's page links carry the view, so a page change is one history entry and Back goes back."""
    open_url(page, f"{url}/explorer?ckpt=tiny-depo-n2&seed=3&pass=1")
    explorer, entries = page.url, page.evaluate("history.length")
    page.get_by_role("link", name="Export").click()
    page.wait_for_url("**/export?*")
    wait_for_page(page)
    assert "ckpt=tiny-depo-n2" in page.url and "seed=3" in page.url and "pass=1" in page.url, page.url
    assert page.locator('[data-testid="stNumberInput"] input').input_value() == "3"
    page.wait_for_timeout(500)  # a second entry, if the app wrote the URL again, would come now
    assert page.evaluate("history.length") == entries + 1, "a page change is one history entry"
    page.go_back()
    page.wait_for_function("u => location.href === u", arg=explorer)
    wait_for_page(page)
    assert "/explorer?" in page.url
    assert page.locator(EXCEPTION).count() == 0


def test_an_unknown_checkpoint_warns_in_the_browser(page, url: str):
    open_url(page, f"{url}/compare?ckpt=tiny-n1&cmp=nope")
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert any("Unknown checkpoint 'nope'" in a and "'tiny-n2'" in a for a in alerts), alerts
    wait_for_charts(page, 2)  # both states: the comparison falls back to the deeper sleeper


def test_the_sweep_page_draws_the_test_time_passes_in_the_browser(page, url: str):
    open_url(page, f"{url}/sweep?ckpt=tiny-n2&P=1,3&examples=25")
    chart = first_chart(page)
    assert "trained N = 2" in chart and "test-time passes" in chart
    assert "P=1%2C3" in page.url or "P=1,3" in page.url, "the URL keeps the sweep"
    assert page.locator(EXCEPTION).count() == 0


def test_back_and_forward_step_through_the_views_in_the_browser(page, url: str):
    """One history entry per change of view (the app writes the URL once per run), and Back/Forward restore the
    view: the URL the browser goes back to outvotes the widgets, which still hold the view being left."""

    def shown() -> tuple[str, str]:
        wait_for_page(page)
        slider = page.locator('[data-testid="stSlider"]', has_text="Sleep pass").locator("input[type=range]")
        return page.url.split("?", 1)[1], slider.get_attribute("value") or ""

    open_url(page, f"{url}/explorer?ckpt=tiny-n2&depth=1&seed=3&window=0&pass=2&layer=1&head=0")
    entries = page.evaluate("history.length")
    start = shown()
    assert start == ("ckpt=tiny-n2&depth=1&seed=3&window=0&pass=2&layer=1&head=0", "2"), "a full URL is kept as it is"

    before = first_chart(page)
    assert step_slider(page, "Sleep pass", "ArrowLeft") == "1"
    wait_for_chart_change(page, before)
    one = shown()
    assert "pass=1" in one[0] and page.evaluate("history.length") == entries + 1

    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.get_by_role("combobox")
    picker.click()
    page.get_by_role("option", name="tiny-depo-n2", exact=True).click()
    page.wait_for_url("**ckpt=tiny-depo-n2**")
    other = shown()
    assert page.evaluate("history.length") == entries + 2, "choosing a checkpoint is one entry, not one per parameter"
    assert other[1] == "2" and "pass=2" in other[0], "the new checkpoint opens on its last pass, in the browser too"

    for expected in (one, start):
        page.go_back()
        page.wait_for_function("u => location.href === u", arg=f"{url}/explorer?{expected[0]}")
        page.wait_for_timeout(500)  # the rerun the browser's Back starts
        assert shown() == expected
        assert picker.input_value() == "tiny-n2"
    for expected in (one, other):
        page.go_forward()
        page.wait_for_function("u => location.href === u", arg=f"{url}/explorer?{expected[0]}")
        page.wait_for_timeout(500)
        assert shown() == expected
    assert picker.input_value() == "tiny-depo-n2"
    assert page.locator(EXCEPTION).count() == 0
