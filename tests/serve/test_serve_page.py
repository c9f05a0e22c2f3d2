"""The web page in a real headless Chromium: type a question, press Enter, see file:line hits.

Chromium is driven over the Chrome DevTools Protocol through ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON), so the test needs no driver binary and no Python
package beyond the standard library. Skipped when no Chromium is installed (CI installs
Debian's ``chromium``). Set RAGTUNE_SCREENSHOT=path.png to keep a screenshot of the result.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe", "--window-size=1100,900",
)  # fmt: skip


class DevTools:
    """A Chromium process and its DevTools pipe; ``call`` sends a command, returns its result."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash moves our pipe ends to fds 3 (commands in) and 4 (replies out), then execs Chromium
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, executable, *FLAGS, f"--user-data-dir={profile}"],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            data = os.read(self._from_browser, 1 << 20)
            if not data:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += data

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression!r} stayed false for {timeout} s")

    def click(self, selector: str) -> None:
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)  # fmt: skip

    def type_text(self, text: str) -> None:
        for char in text:
            self.call("Input.dispatchKeyEvent", type="keyDown", text=char, key=char)
            self.call("Input.dispatchKeyEvent", type="keyUp", key=char)

    def press_enter(self) -> None:
        keys = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.call("Input.dispatchKeyEvent", type="keyDown", text="\r", **keys)
        self.call("Input.dispatchKeyEvent", type="keyUp", **keys)

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def browser(tmp_path):
    executable = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium) - browser test skipped")
    devtools = DevTools(executable, tmp_path / "profile")
    try:
        devtools.call("Browser.getVersion")
        target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
        devtools.session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        devtools.call("Emulation.setDeviceMetricsOverride", width=1100, height=860,
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
        yield devtools
    finally:
        devtools.close()


def test_typing_a_question_shows_hits_with_file_and_lines(browser, server_url, tmp_path):
    browser.call("Page.navigate", url=f"{server_url}/")
    info = browser.wait_for(
        "document.readyState === 'complete' && (t => t.includes('chunks') && t)"
        "(document.getElementById('info').textContent)"
    )
    assert info == "model · 32-dim embeddings · 8 chunks from 4 files"  # the model folder: "model"

    browser.click("#hybrid")  # the tiny model is random: hybrid makes the top hit certain
    browser.click("#query")
    browser.type_text("exponential backoff")
    assert browser.evaluate("document.getElementById('query').value") == "exponential backoff"
    browser.press_enter()

    first = browser.wait_for(
        "document.querySelector('li.hit .loc') && document.querySelector('li.hit .loc').textContent"
    )
    assert first == "notes.txt:1-2"
    status = browser.evaluate("document.getElementById('status').textContent")
    assert status.startswith("5 hits in ") and status.endswith("(hybrid)")
    snippet = browser.evaluate("document.querySelector('li.hit pre').textContent")
    assert (
        snippet == "Retries use exponential backoff.\nThe delay doubles after every failed attempt."
    )
    marks = browser.evaluate(
        "[...document.querySelectorAll('li.hit mark')].map(m => m.textContent)"
    )
    assert marks[:2] == ["exponential", "backoff"]
    # the snippet is text and <mark> only: chunk content is never parsed as HTML
    tags = browser.evaluate("[...document.querySelectorAll('li.hit pre *')].map(e => e.tagName)")
    assert set(tags) <= {"MARK"}

    png = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    (tmp_path / "page.png").write_bytes(png)
    keep = os.environ.get("RAGTUNE_SCREENSHOT")
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        Path(keep).write_bytes(png)


@pytest.fixture
def keyed_server_url(sample_index):
    """A server that requires ``Authorization: Bearer page-key`` (the page itself is open)."""
    from ragtune.search.searcher import Searcher
    from ragtune.serve.app import create_app
    from ragtune.serve.server import background_server

    searcher = Searcher.open(sample_index, device="cpu")
    try:
        with background_server(create_app(searcher, api_key="page-key")) as url:
            yield url
    finally:
        searcher.close()


def test_with_an_api_key_the_page_asks_for_it_then_searches(browser, keyed_server_url):
    browser.call("Page.navigate", url=f"{keyed_server_url}/")
    browser.wait_for(
        "document.readyState === 'complete' && "
        "document.getElementById('info').textContent.includes('chunks')"
    )  # /health needs no key
    assert browser.evaluate("getComputedStyle(document.getElementById('keyrow')).display") == "none"
    browser.click("#hybrid")
    browser.click("#query")
    browser.type_text("exponential backoff")
    browser.press_enter()
    status = browser.wait_for(
        "(t => t.startsWith('error') && t)(document.getElementById('status').textContent)"
    )
    assert status == (
        "error: missing API key: send the header 'Authorization: Bearer KEY': "
        "enter the API key and search again"
    )
    assert browser.evaluate("document.activeElement.id") == "key"  # the field is shown, focused
    browser.type_text("page-key")
    browser.press_enter()
    first = browser.wait_for(
        "document.querySelector('li.hit .loc') && document.querySelector('li.hit .loc').textContent"
    )
    assert first == "notes.txt:1-2"
    assert browser.evaluate("sessionStorage.getItem('ragtune-api-key')") == "page-key"
