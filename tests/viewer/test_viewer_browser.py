"""The call viewer in a real headless browser, on the journal of a demo call.

The demo (OpenAI emulator, one dropped connection) writes a journal; ``antiphon journal serve``
serves it on 127.0.0.1; Debian's chromium, driven through its own chromedriver by selenium,
loads the page. The page must show the demo's turns, tool calls and reconnects, show a
record's JSON on a click, seek the audio from the timeline, play both sides without an error
in the console, and the test saves a screenshot (``viewer.png`` in its tmp dir).

``scripts/ensure-chromium`` (run by ``make test``) installs chromium and chromedriver; when
they are missing this test runs it too, and skips, saying why, only if that fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _viewer_helpers import DEADLINE_S, serving

from antiphon.cli.demo import DemoReport, run_demo

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENSURE_CHROMIUM = ROOT / "scripts" / "ensure-chromium"


def _browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing them with the project's script when
    missing."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if None in found:
        result = subprocess.run(
            [str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=1800, check=False
        )
        found = shutil.which("chromium"), shutil.which("chromedriver")
        if None in found:
            pytest.skip(
                "chromium and chromedriver are not installed and scripts/ensure-chromium could"
                f" not install them: {result.stderr.strip() or result.returncode}"
            )
    browser, driver = found
    assert browser is not None
    assert driver is not None
    return browser, driver


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoReport, Path]:
    directory = tmp_path_factory.mktemp("demo-journal")
    report = anyio.run(
        lambda: run_demo(provider="openai", speed=0, journal_dir=directory, progress=None)
    )
    return report, directory


@pytest.fixture
def server(demo: tuple[DemoReport, Path]) -> Iterator[str]:
    with serving(demo[1]) as url:
        assert url.startswith("http://127.0.0.1:"), url  # bound to this machine by default
        yield url


@pytest.fixture
def driver() -> Iterator[Any]:
    browser, chromedriver = _browser()
    options = Options()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root
        "--disable-dev-shm-usage",
        "--window-size=1500,900",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given: selenium uses them and never looks for (or fetches) a driver itself.
    chrome = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def _until(chrome: Any, condition: Callable[[Any], Any], what: str) -> Any:
    return WebDriverWait(chrome, DEADLINE_S, poll_frequency=0.05).until(condition, message=what)


def _js(chrome: Any, script: str, *args: Any) -> Any:
    return chrome.execute_script(script, *args)


def _click(chrome: Any, element: Any) -> None:
    """Click an SVG shape (some are a few pixels wide) through its own click handler."""
    _js(chrome, "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", element)


def test_the_viewer_shows_a_demo_call(
    demo: tuple[DemoReport, Path], server: str, driver: Any, tmp_path: Path
) -> None:
    report, _ = demo
    assert report.reconnects >= 1  # the demo drops the connection once
    with urllib.request.urlopen(f"{server}api/sessions/{report.session_id}", timeout=30) as r:
        view = json.load(r)

    driver.get(server)
    _until(driver, lambda d: _js(d, "return document.body.dataset.ready") == "1", "page ready")
    assert _js(driver, "return document.body.dataset.session") == report.session_id

    # The numbers shown, and what is drawn, are the demo's own.
    def shown(element_id: str) -> int:
        return int(driver.find_element(By.ID, element_id).text)

    assert shown("count-turns") == report.turns
    assert shown("count-tools") == report.tool_calls
    assert shown("count-reconnects") == report.reconnects
    css = driver.find_elements
    assert len(css(By.CSS_SELECTOR, "#transcript-list .entry.user")) == report.turns
    assert len(css(By.CSS_SELECTOR, "#lanes rect.tool")) == report.tool_calls
    assert len(css(By.CSS_SELECTOR, "#lanes .reconnect")) == report.reconnects
    assert len(css(By.CSS_SELECTOR, "#lanes .epoch")) == report.reconnects + 1
    assert len(css(By.CSS_SELECTOR, "#session-list a")) == 1

    # Clicking a generation shows its records' JSON, and seeks the assistant's audio to it.
    spoken = [g for g in view["generations"] if g["audio_ms"] > 0]
    last = spoken[-1]
    run = next(r for r in view["audio"][1]["runs"] if r["t1_ms"] >= last["start_ms"])
    gen = driver.find_element(
        By.CSS_SELECTOR, f'#lanes .gen[data-generation="{last["generation_id"]}"]'
    )
    _click(driver, gen)
    _until(driver, lambda d: '"generation.started"' in d.find_element(By.ID, "json").text, "JSON")
    record = json.loads(driver.find_element(By.ID, "json").text.split("\n\n")[0])
    assert record["event"]["generation_id"] == last["generation_id"]
    at = _js(driver, "return document.getElementById('audio-assistant').currentTime")
    assert run["a0_ms"] - 1 <= at * 1000 <= run["a1_ms"] + 1

    # Both sides play.
    for stream in ("user", "assistant"):
        _js(driver, f"document.getElementById('audio-{stream}').currentTime = 0")
        driver.find_element(By.ID, f"play-{stream}").click()
        _until(
            driver,
            lambda d, s=stream: (
                _js(d, f"return document.getElementById('audio-{s}').currentTime") > 0.2
            ),
            f"{stream} audio playing",
        )
        driver.find_element(By.ID, f"play-{stream}").click()  # pause
        _until(
            driver,
            lambda d, s=stream: _js(d, f"return document.getElementById('audio-{s}').paused"),
            f"{stream} audio paused",
        )

    screenshot = tmp_path / "viewer.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {screenshot}")

    assert _js(driver, "return window.viewerErrors") == []
    console = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert console == []
