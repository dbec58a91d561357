"""How fast the app feels, measured on the server side: `python -m app.bench [--checkpoints DIR] [--ckpt NAME]`.

Three numbers: the first page (server start until the first chart is drawn in a real browser), a cold trace
(recording a new example in-process, what the app does when a seed changes) and a pass step (moving the explorer's
pass slider in AppTest: one script rerun on cached data; target < 200 ms).

The server and browser helpers here are shared with tests/test_browser.py and docs/screenshots.py.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

MAIN = Path(__file__).resolve().parent / "main.py"
REPO = MAIN.parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHART = 'div[data-testid="stPlotlyChart"]'
CHART_SVG = f"{CHART} .main-svg"
EXCEPTION = '[data-testid="stException"]'
# Page name → URL path; the default page (overview) lives at the root: /overview is "page not found".
PAGES = {
    "overview": "",
    "explorer": "explorer",
    "probes": "probes",
    "compare": "compare",
    "sweep": "sweep",
    "export": "export",
}
PASS_STEP_TARGET_S = 0.2

# Done when Streamlit has finished the script run and every chart on the page has drawn its SVG.
_PAGE_DONE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  return [...document.querySelectorAll('div[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'));
}"""
_CHART_CHANGED = """(before) => {
  const chart = document.querySelector('div[data-testid="stPlotlyChart"]');
  return chart !== null && chart.querySelector('.main-svg') !== null && chart.innerHTML !== before;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(log: IO[bytes], chars: int = 3000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


def _wait_until_up(url: str, proc: subprocess.Popen, log: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app server exited with code {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the app server did not answer within {timeout:.0f} s:\n{_tail(log)}")


@contextmanager
def serve(checkpoints: Path, port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Serve the app on 127.0.0.1 with the checkpoints under `checkpoints`; yields its URL, stops it on exit."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", str(MAIN), "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = dict(os.environ, SLEEPCORE_CHECKPOINTS=str(checkpoints))
    # A file, not a pipe: a chatty server must never block on a full pipe nobody reads.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(url, proc, log, timeout)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def browser(width: int = 1400, height: int = 900) -> Iterator[Page]:
    """A page in headless Chromium (the system one: Playwright's own browsers are never installed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium.new_page(viewport={"width": width, "height": height})
        finally:
            chromium.close()


def wait_for_page(page: Page, timeout: float = 60.0) -> None:
    """Wait until the script run is over and every chart mounted so far is drawn (charts mount lazily)."""
    page.wait_for_function(_PAGE_DONE, timeout=timeout * 1000)


def wait_for_charts(page: Page, count: int, timeout: float = 30.0) -> None:
    """Wait until exactly `count` charts are drawn: chart elements mount lazily, after the script run is over."""
    drawn = "[...document.querySelectorAll('div[data-testid=\"stPlotlyChart\"]')].filter(c => c.querySelector('svg'))"
    page.wait_for_function(f"() => {drawn}.length === {count}", timeout=timeout * 1000)


def first_chart(page: Page) -> str:
    """The first chart's drawing: its SVG layers, data and titles."""
    return page.locator(CHART).first.inner_html()


def step_slider(page: Page, label: str, key: str) -> str:
    """Press `key` (ArrowLeft, ArrowRight, Home, End) on the slider labelled `label`; returns its new value.

    Streamlit's slider is a visually hidden input[type=range] inside a react-aria group; focusing it and pressing
    a key is what a keyboard user does, and it fires the same change as dragging the thumb.
    """
    slider = page.locator('[data-testid="stSlider"]', has_text=label).locator("input[type=range]")
    slider.focus()
    page.keyboard.press(key)
    return slider.get_attribute("value") or ""


def wait_for_chart_change(page: Page, before: str, timeout: float = 30.0) -> None:
    page.wait_for_function(_CHART_CHANGED, arg=before, timeout=timeout * 1000)


def full_page_screenshot(page: Page, path: Path) -> None:
    """Streamlit scrolls inside its main section, not the document, so grow the viewport to the content first."""
    size = dict(page.viewport_size)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(int(height), size["height"])})
    wait_for_page(page)
    page.wait_for_timeout(500)  # plotly redraws charts after a resize on a debounce
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def time_first_page(checkpoints: Path, ckpt: str, steps: int = 5) -> dict[str, list[float]]:
    """Server start → health answer → explorer's charts drawn; then pass steps as the browser sees them."""
    with browser() as page:
        start = time.perf_counter()
        with serve(checkpoints) as url:
            up = time.perf_counter() - start
            page.goto(f"{url}/explorer?ckpt={ckpt}", timeout=120_000)
            wait_for_page(page, timeout=120)
            page.wait_for_selector(CHART_SVG, timeout=120_000)
            ready = time.perf_counter() - start
            repaint = []
            for i in range(steps):
                before = first_chart(page)
                t = time.perf_counter()
                step_slider(page, "Sleep pass", "ArrowLeft" if i % 2 == 0 else "ArrowRight")
                wait_for_chart_change(page, before)
                repaint.append(time.perf_counter() - t)
    return {"server answers": [up], "first page ready": [ready], "pass step, browser": repaint}


def time_cold_traces(ckpt: str, seeds: range = range(1, 6)) -> list[float]:
    """Recording a never-seen example: what a new seed costs before the page can draw."""
    from analysis import session

    loaded = session.load(ckpt)
    depth = loaded.task.depths[len(loaded.task.depths) // 2]
    times = []
    for seed in seeds:
        t = time.perf_counter()
        session.trace_example(loaded, session.seeded_example(loaded.task, depth, seed))
        times.append(time.perf_counter() - t)
    return times


def time_pass_steps(ckpt: str, steps: int = 10) -> list[float]:
    """One explorer rerun per pass-slider move, on a cached trace (AppTest: the script without the browser)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(MAIN), default_timeout=300)
    at.switch_page("views/explorer.py")
    at.query_params["ckpt"] = ckpt
    at.run()
    slider = at.slider(key="pass")
    low, high = int(slider.min), int(slider.max)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        at.slider(key="pass").set_value(low if i % 2 == 0 else high).run()
        times.append(time.perf_counter() - t)
        if at.exception:
            raise RuntimeError(f"the explorer raised: {at.exception[0].value}")
    return times


def most_passes(names: list[str]) -> str:
    from analysis import session

    return max(names, key=lambda n: session.checkpoint_info(n)["sleep"]["passes"])


def table(rows: dict[str, list[float]]) -> str:
    lines = [f"{'measure':<22} {'n':>3} {'median s':>9} {'min s':>8} {'max s':>8}"]
    for name, times in rows.items():
        lines.append(
            f"{name:<22} {len(times):>3} {statistics.median(times):>9.3f} {min(times):>8.3f} {max(times):>8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=Path(os.environ.get("SLEEPCORE_CHECKPOINTS") or REPO / "checkpoints"),
        help="checkpoint folder to serve (default: $SLEEPCORE_CHECKPOINTS where set, else the repository's)",
    )
    p.add_argument("--ckpt", help="checkpoint to open (default: the one with the most sleep passes)")
    p.add_argument("--steps", type=int, default=10, help="pass steps to time")
    p.add_argument("--no-browser", action="store_true", help="skip the real-browser measurements")
    args = p.parse_args(argv)
    os.environ["SLEEPCORE_CHECKPOINTS"] = str(args.checkpoints.resolve())  # the in-process measurements read it

    from analysis import session

    names = session.checkpoint_names()
    if not names:
        print(f"no checkpoints under {args.checkpoints}", file=sys.stderr)
        return 1
    ckpt = args.ckpt or most_passes(names)
    if ckpt not in names:
        print(f"unknown checkpoint {ckpt!r}; known: {', '.join(names)}", file=sys.stderr)
        return 1
    import torch

    torch.set_num_threads(1)  # as app/main.py does, so the in-process timings are the served app's
    rows: dict[str, list[float]] = {}
    if not args.no_browser:
        if not CHROMIUM.exists():
            print(f"{CHROMIUM} is missing: skipping the browser measurements", file=sys.stderr)
        else:
            rows.update(time_first_page(args.checkpoints.resolve(), ckpt))
    rows["cold trace"] = time_cold_traces(ckpt)
    rows["pass step, AppTest"] = time_pass_steps(ckpt, args.steps)
    print(f"checkpoint {ckpt} from {args.checkpoints}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(table(rows))
    step = statistics.median(rows["pass step, AppTest"])
    verdict = "meets" if step < PASS_STEP_TARGET_S else "misses"
    print(f"pass step (AppTest median) {step * 1000:.0f} ms {verdict} the {PASS_STEP_TARGET_S * 1000:.0f} ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
