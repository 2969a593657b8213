"""Looking at published pages in a real browser: headless Chromium over the DevTools protocol.

:class:`Chromium` starts the system's ``chromium`` with ``--remote-debugging-port=0`` (the port it
picks is read from ``DevToolsActivePort``) and talks to one page over a WebSocket
(``websocket-client``). :meth:`Chromium.inspect` loads a page and measures what a reader would trip
over (horizontal overflow, images that did not load, the visible text); :func:`page_problems`
names them; :meth:`Chromium.screenshot` writes the full page as PNG. Every process it starts is
stopped by PID.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from capkit.errors import ConfigError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1280, 900

INSPECT_JS = """(() => {
  const imgs = [...document.images];
  return JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 80)),
    text: document.body ? document.body.innerText : ''});
})()"""

# raw Python reprs a reader must never see: inf, nan, 1e-18-style floats, tracebacks
RAW = [("Traceback", re.compile(r"Traceback \(most recent call last\)")),
       ("inf", re.compile(r"(?<![\w.])-?inf(?![\w])", re.IGNORECASE)),
       ("nan", re.compile(r"(?<![\w.])nan(?![\w])", re.IGNORECASE)),
       ("float repr", re.compile(r"(?<![\w.])\d+(?:\.\d+)?e[-+]?\d+(?![\w])", re.IGNORECASE)),
       ("None", re.compile(r"(?<![\w.])None(?![\w])")),
       ("Python object", re.compile(r"<\w+(?:\.\w+)* object at 0x|PosixPath\(|DataFrame\b"))]


def find_chromium() -> str | None:
    """The path of a Chromium-type browser on PATH (``CAPKIT_CHROMIUM`` first), or None."""
    for name in (os.environ.get("CAPKIT_CHROMIUM"), *BROWSERS):
        if name and (path := shutil.which(name)):
            return path
    return None


def page_problems(found: dict, *, must_contain: tuple[str, ...] = ()) -> list[str]:
    """What a reader would trip over on a page :meth:`Chromium.inspect` measured (empty: none)."""
    problems = []
    if found["scrollWidth"] > found["innerWidth"]:
        problems.append(f"the page is {found['scrollWidth']} px wide in a {found['innerWidth']} px window")
    problems += [f"image did not load: {src}" for src in found["broken"]]
    text = found["text"]
    for name, pattern in RAW:
        m = pattern.search(text)
        if m:
            start = max(m.start() - 40, 0)
            problems.append(f"{name} in the visible text: …{text[start:m.end() + 40]!r}…")
    problems += [f"missing text: {needle!r}" for needle in must_contain if needle not in text]
    return problems


class Chromium:
    """A headless Chromium with one page, driven over the DevTools protocol; a context manager."""

    def __init__(self, executable: str | None = None, *, width: int = WIDTH, height: int = HEIGHT,
                 timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise ConfigError("no Chromium found (looked for " + ", ".join(BROWSERS) + "); install it with "
                              "ops/install-system-deps.sh or set CAPKIT_CHROMIUM to its path")
        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.mkdtemp(prefix="capkit-chromium-")
        self.proc = None
        self.ws = None
        self._id = 0
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        import urllib.request

        import websocket

        args = [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"{self.executable} did not start its DevTools endpoint "
                                  f"(exit code {self.proc.poll()}); try `{self.executable} --headless --version`")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout,
                                              suppress_origin=True)
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params) -> dict:
        """One DevTools command; its result (events arriving meanwhile are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, path_or_url) -> None:
        """Load a file or URL and wait for its load event (images included) and a settled layout."""
        url = path_or_url if "://" in str(path_or_url) else Path(path_or_url).resolve().as_uri()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            state = self.evaluate("document.readyState")
            if state == "complete":
                return
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not finish loading within {self.timeout:g} s")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def inspect(self, path_or_url) -> dict:
        """Open a page and measure it: ``scrollWidth``, ``innerWidth``, ``images``, ``broken`` (image
        sources that did not load) and ``text`` (``document.body.innerText``)."""
        self.open(path_or_url)
        return json.loads(self.evaluate(INSPECT_JS))

    def screenshot(self, path_or_url, out: Path, *, max_height: int = 12000) -> Path:
        """The whole page (up to ``max_height`` px) as PNG at ``out``."""
        self.open(path_or_url)
        height = min(int(self.evaluate("document.documentElement.scrollHeight") or self.height), max_height)
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                  mobile=False)
        try:
            data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        finally:
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 (closing a socket of a browser that is going away)
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            # its own session: the browser's helper processes (zygote, renderers) go with it
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def screenshot_pages(pages: list[Path], folder: Path) -> list[Path]:
    """Screenshots of ``pages`` into ``folder`` (``<page>.png`` each), with one browser."""
    with Chromium() as browser:
        return [browser.screenshot(p, Path(folder) / f"{p.stem}.png") for p in pages]
