"""Screenshots of the viewer in a real headless Chromium, driven over the DevTools protocol (CDP).

For the viewer's tests and the README's picture (``examples/viewer_first_view.py``); needs a Chromium
(Debian: ``apt-get install chromium``) and ``websockets`` (installed with viser). ``Chromium()`` starts one
browser with software WebGL; ``open(url, width, height)`` loads a page in a viewport of exactly that many CSS
pixels (device scale 1); ``screenshot()`` returns an ``(H, W, 3)`` uint8 array; ``settled(...)`` screenshots
until the picture stops changing; ``hide(selector)`` and ``canvas_only()`` take page elements out of the
picture. One browser can open several pages in turn, which saves its start-up (seconds on a shared CPU).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")


class BrowserError(RuntimeError):
    pass


_CANVAS_ONLY = """(() => {
  const canvases = [...document.querySelectorAll('canvas')];
  if (!canvases.length) return null;
  const c = canvases.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
  const keep = new Set();
  for (let e = c; e; e = e.parentElement) keep.add(e);
  for (const e of document.body.querySelectorAll('*')) {
    if (!keep.has(e)) e.style.setProperty('visibility', 'hidden', 'important');
  }
  c.style.setProperty('visibility', 'visible', 'important');
  return [c.width, c.height];
})()"""


class Chromium:
    """Headless Chromium with software WebGL (SwiftShader), one page, driven over CDP."""

    def __init__(self, executable: Path = CHROMIUM, start_timeout: float = 30.0) -> None:
        from websockets.sync.client import connect

        self.profile = Path(tempfile.mkdtemp(prefix="lyra3d-chromium-"))
        cmd = [str(executable), "--headless", "--no-sandbox", "--disable-gpu", "--use-gl=angle",
               "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--mute-audio", "--hide-scrollbars", f"--user-data-dir={self.profile}",
               "--remote-debugging-port=0", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._id = 0
        self.events: list[dict] = []  # CDP events received while waiting for replies (console messages, ...)
        try:
            port_file = self.profile / "DevToolsActivePort"
            deadline = time.time() + start_timeout
            while not (port_file.is_file() and port_file.read_text().strip()) and time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
            if not port_file.is_file() or self.proc.poll() is not None:
                raise BrowserError(f"headless Chromium did not start (exit code {self.proc.poll()}): {' '.join(cmd)}; "
                                   "check that it runs (apt-get install chromium)")
            port = int(port_file.read_text().split()[0])
            targets: list = []
            while time.time() < deadline and not targets:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                time.sleep(0.1)
            if not targets:
                raise BrowserError("headless Chromium opened no page")
            self.ws = connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        """One CDP command; returns its result (events in between are skipped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        end = time.time() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, end - time.time())))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def open(self, url: str, width: int, height: int) -> None:
        """Load ``url`` in a ``width`` × ``height`` CSS-pixel viewport."""
        self.call("Emulation.setDeviceMetricsOverride", width=int(width), height=int(height),
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)

    def canvas_only(self) -> tuple[int, int]:
        """Hide every element of the page except the largest canvas (a WebGL view) and its ancestors: panels,
        notifications and buttons drawn over it. Returns that canvas's size in pixels."""
        size = self.call("Runtime.evaluate", returnByValue=True, expression=_CANVAS_ONLY)["result"].get("value")
        if not size:
            raise BrowserError("the page has no canvas")
        return int(size[0]), int(size[1])

    def hide(self, selector: str) -> int:
        """Hide the page elements matching the CSS ``selector``; returns how many there were."""
        expression = (f"(() => {{ const e = [...document.querySelectorAll({json.dumps(selector)})]; "
                      "e.forEach(x => x.style.setProperty('visibility', 'hidden', 'important')); return e.length; })()")
        return int(self.call("Runtime.evaluate", returnByValue=True, expression=expression)["result"].get("value", 0))

    def screenshot(self, timeout: float = 90.0) -> np.ndarray:
        from PIL import Image

        data = self.call("Page.captureScreenshot", timeout=timeout, format="png")["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def settled(self, ready: Callable[[np.ndarray], bool], timeout: float = 90.0, interval: float = 1.0,
                tolerance: float = 0.5) -> np.ndarray:
        """Screenshot every ``interval`` s until ``ready(img)`` holds and the picture has stopped changing
        (mean absolute change under ``tolerance`` grey levels); returns the last screenshot, or raises
        after ``timeout`` s."""
        end = time.time() + timeout
        prev = None
        while True:
            time.sleep(interval)
            img = self.screenshot(timeout=max(60.0, end - time.time()))
            if prev is not None and ready(img) and np.abs(img.astype(np.int16) - prev).mean() < tolerance:
                return img
            prev = img.astype(np.int16)
            if time.time() > end:
                raise BrowserError(f"the page did not settle within {timeout:.0f} s")

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
