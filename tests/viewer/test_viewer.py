"""The viewer: scene loading (no browser), and a real render in headless Chromium (skipped without it)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from lyra3d.core.cameras import default_camera
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.errors import InputError
from lyra3d.core.gaussians import Gaussians, save_ply

viser = pytest.importorskip("viser", reason="viser is not installed (pip install lyra3d[viewer])")

CHROMIUM = Path("/usr/bin/chromium")


def colourful_scene(n_side: int = 16, depth: float = 3.0) -> Gaussians:
    """A few thousand opaque, colourful Gaussians filling a box in front of the identity camera."""
    lin = torch.linspace(-1.0, 1.0, n_side)
    x, y, z = torch.meshgrid(lin, lin * 0.6, lin * 0.3, indexing="ij")
    means = torch.stack([x.reshape(-1) * 1.2, y.reshape(-1) * 1.2, depth + z.reshape(-1)], dim=1)
    n = means.shape[0]
    hue = (x.reshape(-1) + 1) / 2
    rgb = torch.stack([hue, 1 - hue, (y.reshape(-1) / 0.6 + 1) / 2], dim=1).clamp(0.05, 0.95)
    return Gaussians.from_activated(means, torch.full((n, 3), 0.06), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                                    torch.full((n,), 0.95), rgb)


def write_output_folder(folder: Path, g: Gaussians) -> None:
    save_ply(g, folder / "scene.ply")
    cam = default_camera(320, 176)
    trajs = lyra_trajectories(cam, 9, center_depth=3.0)
    from lyra3d.core.cameras import Cameras

    Cameras.cat(list(trajs.values())).save_json(folder / "cameras.json")
    import imageio.v3 as iio

    img = np.zeros((176, 320, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 320, dtype=np.uint8)[None]
    img[..., 2] = 128
    iio.imwrite(folder / "input_view.png", img)


def test_load_scene_folder(tmp_path):
    from lyra3d.viewer.server import load_scene

    write_output_folder(tmp_path, colourful_scene(6))
    scene = load_scene(tmp_path)
    assert len(scene.frames) == 1 and len(scene.frames[0]) == 6 ** 3
    assert [len(c) for c in scene.trajectories.values()] == [9] * 6  # split where each returns to the input camera
    assert scene.image is not None and scene.image.shape == (176, 320, 3)


def test_time_slider_for_per_time_plys(tmp_path):
    from lyra3d.viewer.server import view

    for t in range(3):
        g = colourful_scene(4)
        g.means[:, 0] += t
        save_ply(g, tmp_path / f"scene_t{t:03d}.ply")
    with view(tmp_path, port=0) as v:
        assert v.num_frames == 3 and v.time_slider is not None
        assert [h.visible for h in v.splat_handles] == [True, False, False]
        v.time_slider.value = 2  # what moving the slider does
        deadline = time.time() + 5
        while v.time_index != 2 and time.time() < deadline:
            time.sleep(0.05)
        assert [h.visible for h in v.splat_handles] == [False, False, True]
        assert v.frustum_handles == [] and v.scene.image is None


def test_time_steps_from_gaussian_times():
    from lyra3d.viewer.server import load_scene

    g = colourful_scene(4)
    g.times = torch.arange(len(g)) % 4 / 4.0
    scene = load_scene(g)
    assert scene.times == [0.0, 0.25, 0.5, 0.75] and [len(f) for f in scene.frames] == [16] * 4


def test_bad_inputs(tmp_path):
    from lyra3d.viewer.server import view

    with pytest.raises(InputError, match="nothing to view"):
        view(tmp_path / "missing.ply", port=0)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="cannot view"):
        view(tmp_path / "notes.txt", port=0)
    with pytest.raises(InputError, match="no scene.ply"):
        view(tmp_path, port=0)


# -- a real browser ---------------------------------------------------------------------------------------------
def _cdp_screenshot(url: str, out: Path, size=(960, 640), timeout: float = 40.0, min_fraction: float = 0.25):
    """Open ``url`` in headless Chromium and screenshot it until the 3D view is drawn (or ``timeout``).

    Returns the last screenshot as an ``(H, W, 3)`` uint8 array and the non-background fraction of its
    3D-view region.
    """
    from PIL import Image
    from websockets.sync.client import connect

    profile = Path(tempfile.mkdtemp(prefix="lyra3d-chromium-"))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--use-gl=angle", "--use-angle=swiftshader",
           "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
           f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "--remote-debugging-port=0", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 20
        while not (port_file.is_file() and port_file.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        if not port_file.is_file() or proc.poll() is not None:
            pytest.fail(f"headless Chromium did not start (exit code {proc.poll()}): {' '.join(cmd)}")
        port = int(port_file.read_text().split()[0])
        targets = []
        while time.time() < deadline and not targets:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                targets = [t for t in json.load(r) if t.get("type") == "page"]
            time.sleep(0.1)
        if not targets:
            pytest.fail("headless Chromium opened no page to screenshot")
        ws_url = targets[0]["webSocketDebuggerUrl"]
        img, frac, settled = None, 0.0, False
        with connect(ws_url, max_size=None, open_timeout=10) as ws:
            msg_id = 0
            end = time.time() + timeout
            while time.time() < end:
                time.sleep(1.5 if settled else 1.0)
                msg_id += 1
                ws.send(json.dumps({"id": msg_id, "method": "Page.captureScreenshot", "params": {"format": "png"}}))
                reply = json.loads(ws.recv(timeout=20))
                while reply.get("id") != msg_id:  # skip events
                    reply = json.loads(ws.recv(timeout=20))
                if "result" not in reply:
                    continue
                png = base64.b64decode(reply["result"]["data"])
                out.write_bytes(png)
                img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                frac = _drawn_fraction(img)
                if settled:
                    break
                settled = frac >= min_fraction  # drawn: one more shot once the splat sort has settled
        return img, frac
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _view_region(img: np.ndarray) -> np.ndarray:
    """The part of the screenshot that only the 3D canvas covers (left of viser's control panel, below its
    notification, above the axes gizmo)."""
    h, w = img.shape[:2]
    return img[int(0.3 * h):int(0.85 * h), int(0.12 * w):int(0.55 * w)]


def _drawn_fraction(img: np.ndarray) -> float:
    region = _view_region(img).astype(np.int16)
    diff = np.abs(region - 255).max(axis=2)  # viser's light theme: a white background
    return float((diff > 40).mean())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)")
def test_viewer_renders_in_headless_chromium(tmp_path):
    from lyra3d.viewer.server import view

    write_output_folder(tmp_path, colourful_scene(16))
    shot = Path(os.environ.get("LYRA3D_VIEWER_SCREENSHOT", tmp_path / "viewer.png"))
    start = time.time()
    with view(tmp_path, port=0) as v:
        assert len(v.splat_handles) == 1 and len(v.frustum_handles) == 6 * 9
        img, frac = _cdp_screenshot(v.url, shot)
    assert img is not None, "Chromium returned no screenshot"
    # The splats fill much of the view from behind the input camera: far more than the thin frustum lines
    # or a few stray pixels could.
    assert frac > 0.25, f"the 3D view looks empty: {frac:.1%} drawn pixels (screenshot {shot})"
    region = _view_region(img)
    colours = np.unique((region // 32).reshape(-1, 3), axis=0)
    assert len(colours) > 20, "the splats should be colourful"
    assert time.time() - start < 60
