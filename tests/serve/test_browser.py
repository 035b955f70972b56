"""A person's path through the page: Debian's Chromium (driven by Playwright) uploads a WFDB pair on
the page served by a real uvicorn server and finds the diagnoses in the rendered report.

Playwright's own browser download does not work here, so the system Chromium is launched directly;
the test is skipped (with this reason) only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecgkt.serve.app import create_app
from ecgkt.serve.settings import ServeSettings

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install -y chromium chromium-driver)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(bundle_path: Path) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    app = create_app(bundle_path, "torch", ServeSettings(inference_timeout_s=30.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def test_upload_on_the_page_shows_the_report(
    browser, server_url: str, wfdb_record: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(server_url + "/")
    page.wait_for_function("document.getElementById('model-line').textContent.includes('3 diagnoses')")
    assert page.is_disabled("#submit")
    page.set_input_files("#file-input", [str(wfdb_record), str(wfdb_record.with_suffix(".dat"))])
    assert "40689238.dat" in page.inner_text("#file-list")
    page.click("#submit")
    page.wait_for_selector("[data-ecgkt-report] table", timeout=30_000)
    report = page.inner_text("#report")
    for title in ("Atrial fibrillation and flutter", "Essential (primary) hypertension", "I48"):
        assert title in report
    assert "Potassium_high" in report or "Creatinine_high" in report
    assert page.locator("#report svg").count() >= 1
    assert page.is_hidden("#error")
    screenshot = tmp_path_factory.mktemp("screenshots") / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert console_errors == []  # in particular, no Content-Security-Policy violations
    page.close()


def test_bad_upload_on_the_page_shows_the_error(browser, server_url: str, wfdb_record: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(server_url + "/")
    page.set_input_files("#file-input", [str(wfdb_record)])
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    message = page.inner_text("#error")
    assert "wfdb_missing_data" in message and "40689238.dat" in message
    assert page.inner_text("#report") == ""
    page.close()
