"""The rendered reports in a real browser: headless Chromium driven over the DevTools protocol.

Each page (the index, a province report, the national report, of the election with hostile names in
tests/hostile.py) is opened from disk (file://, as a reader opens a mailed report), on a desktop and a
phone-sized screen. The test fails on any console error or uncaught exception, any request that is
not the page itself or an inline image (nothing may load from a host), any failed or blocked load,
and any Content-Security-Policy report; a control page that breaks each rule proves the checks see
them. Screenshots go to reports/screenshots/. Without Chromium the tests skip with the reason
(`.ci/run` installs Debian's chromium when apt-get can).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install "
                                "chromium; .ci/run installs it when apt-get is available)")

# The closed network here refuses Chromium's own background connections, noisily: switch them off.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]
SCREENS = {"desktop": {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
           "phone": {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}}


class Chromium:
    """A headless Chromium and one DevTools websocket to it (tornado's client: already a dependency)."""

    def __init__(self, profile: Path):
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Chromium ({CHROMIUM}) did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        from tornado.websocket import websocket_connect

        async def connect():
            return await websocket_connect(f"ws://127.0.0.1:{port}{path}", max_message_size=512 * 2**20)

        self.loop = asyncio.new_event_loop()
        self.ws = self.loop.run_until_complete(connect())
        self.next_id = 0
        self.events: list[dict] = []

    def _read(self, timeout: float) -> dict:
        async def read():
            return await asyncio.wait_for(self.ws.read_message(), timeout)

        raw = self.loop.run_until_complete(read())
        if raw is None:
            raise RuntimeError("Chromium closed the DevTools connection")
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        async def write():
            await self.ws.write_message(json.dumps(message))

        self.loop.run_until_complete(write())
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            self.events.append(self._read(max(0.1, deadline - time.monotonic())))

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds`` (late console messages, late loads)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(self._read(left))
            except (asyncio.TimeoutError, TimeoutError):
                break

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            # Inside the connection's own loop: tornado makes a Future on close, and outside a running
            # loop that needs the thread's current one, which an earlier asyncio.run() on this worker
            # leaves unset ("There is no current event loop", seen at teardown under xdist).
            async def close_ws():
                self.ws.close()

            self.loop.run_until_complete(close_ws())
            self.loop.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def problems(events: list[dict], session: str, page_url: str) -> list[str]:
    """Everything in the events that a clean, self-contained, policy-abiding page never causes."""
    found = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            found.append(f"console {params['type']}: {[a.get('value', a.get('description')) for a in params['args']]}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"uncaught exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            found.append(f"log {params['entry']['source']} {params['entry']['level']}: {params['entry']['text'][:200]}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                found.append(f"request: {url[:120]}")
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {params.get('errorText')} blocked={params.get('blockedReason')}")
        elif method == "Audits.issueAdded":
            issue = params["issue"]
            found.append(f"issue {issue['code']}: {json.dumps(issue.get('details', {}))[:200]}")
    return found


def visit(browser: Chromium, path: Path, screen: str, shot: Path | None) -> dict:
    """Open ``path`` on ``screen``; return the problems seen, a few facts about the page, the screenshot."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network", "Audits"):
        browser.send(f"{domain}.enable", session=session)
    browser.send("Emulation.setDeviceMetricsOverride", SCREENS[screen], session=session)
    url = path.resolve().as_uri()
    browser.send("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired", session)
    # That load event can be the new target's about:blank, late under load (a fresh clone's `make test` once
    # read the national report before its script had run): wait until this page itself has loaded.
    deadline = time.monotonic() + 30
    while browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
            "document.readyState === 'complete' && location.protocol === 'file:'")}, session=session)["result"]["value"] is not True:
        assert time.monotonic() < deadline, f"{url} did not finish loading in 30 s"
        browser.drain(0.1)
    browser.drain(0.5)
    facts = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": """({
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        sortable: document.querySelectorAll('table.sortable').length,
        tables: document.querySelectorAll('table').length,
        images: document.images.length,
        broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
        title: document.title })"""}, session=session)["result"]["value"]
    if shot is not None:
        picture = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                               session=session)
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(base64.b64decode(picture["data"]))
    seen = problems(browser.events, session, url)
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    facts["session"] = session
    browser.send("Target.closeTarget", {"targetId": target})
    return {"problems": seen, "facts": facts}


@pytest.fixture(scope="module")
def browser():
    profile = Path(tempfile.mkdtemp(prefix="forensik-chromium-"))
    chromium = Chromium(profile)
    yield chromium
    chromium.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site():
    from tests.hostile import hostile_site

    return hostile_site()


CONTROL = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}"><title>control</title></head>
<body><p style="color: red">inline style</p><script>console.log("inline script ran")</script>
<img src="http://127.0.0.1:9/tracker.png" alt=""><p>control page</p></body></html>"""


def test_the_checks_see_a_page_that_breaks_the_policy(browser, tmp_path):
    """A control page with an inline script, an inline style and an image from a host, under the reports'
    policy: the browser must refuse all three and the test must see each refusal."""
    from analysis.report.export import content_security_policy

    page = tmp_path / "control.html"
    page.write_text(CONTROL.format(csp=content_security_policy()))
    seen = " | ".join(visit(browser, page, "desktop", None)["problems"])
    assert "script-src" in seen or "inline" in seen.lower(), seen
    assert "style-src" in seen, seen
    assert "127.0.0.1:9/tracker.png" in seen, seen


@pytest.mark.parametrize("which", ["index", "31", "national"])
def test_reports_render_cleanly_in_chromium(browser, site, which):
    batch, index = site
    path = Path(index) if which == "index" else Path(next(r.html_path for r in batch.reports if r.code == which))
    for screen in SCREENS:
        result = visit(browser, path, screen, SCREENSHOTS / f"{which}-{screen}.png")
        facts = result["facts"]
        assert result["problems"] == [], f"{which} on {screen}: {result['problems']}"
        assert facts["overflow"] <= 1, f"{which} on {screen}: the page is {facts['overflow']} px wider than the screen"
        assert facts["broken"] == 0, f"{which}: {facts['broken']} images did not decode"
        # The pinned script ran under the policy: it marked the tables it can sort.
        assert facts["sortable"] >= 1 and facts["tables"] >= facts["sortable"]
        assert "<" not in facts["title"] or which != "index"
        assert (SCREENSHOTS / f"{which}-{screen}.png").stat().st_size > 5000
    if which != "index":
        assert facts["images"] >= 1  # the figures are there


def test_clicking_a_heading_sorts_the_index(browser, site):
    _, index = site
    target = browser.send("Target.createTarget", {"url": Path(index).resolve().as_uri()})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.send("Runtime.enable", session=session)
    deadline = time.monotonic() + 20
    codes = """Array.from(document.querySelectorAll('table.sortable tbody tr')).map(r => r.cells[0].textContent.trim())"""
    while time.monotonic() < deadline:
        before = browser.send("Runtime.evaluate", {"expression": codes, "returnByValue": True},
                              session=session)["result"].get("value")
        if before:
            break
        time.sleep(0.2)
    assert before == sorted(before) and len(before) >= 2
    click = "document.querySelector('table.sortable thead th').click(); document.querySelector('table.sortable thead th').click();"
    after = browser.send("Runtime.evaluate", {"expression": click + codes, "returnByValue": True},
                         session=session)["result"]["value"]
    assert after == sorted(before, reverse=True)  # second click: descending
    browser.send("Target.closeTarget", {"targetId": target})
