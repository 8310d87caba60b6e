"""The viewer: scene loading, its first view's camera (pure functions), and a real viser server rendered by a
real headless Chromium, compared with the project's own rasterizer (skipped without Chromium)."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.gaussians import Gaussians, save_ply
from lyra3d.core.render import rasterize
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.errors import InputError
from lyra3d.viewer.browser import CHROMIUM, Chromium
from lyra3d.viewer.camera import ViewPose, framing_pose, pose_from_camera

viser = pytest.importorskip("viser", reason="viser is not installed (pip install lyra3d[viewer])")


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


def write_cameras(folder: Path, cam: Cameras, frames: int, center_depth: float) -> dict[str, Cameras]:
    """``cameras.json`` as ``lyra3d generate`` writes it (Lyra's six trajectories, names, input camera)."""
    trajs = lyra_trajectories(cam, frames, center_depth=center_depth)
    record = {**Cameras.cat(list(trajs.values())).to_dict(), "trajectory_names": list(trajs),
              "frames_per_trajectory": frames, "center_depth": center_depth, "input_camera": cam.to_dict()}
    (folder / "cameras.json").write_text(json.dumps(record))
    return trajs


def write_output_folder(folder: Path, g: Gaussians) -> None:
    save_ply(g, folder / "scene.ply")
    write_cameras(folder, default_camera(320, 176), 9, 3.0)
    import imageio.v3 as iio

    img = np.zeros((176, 320, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 320, dtype=np.uint8)[None]
    img[..., 2] = 128
    iio.imwrite(folder / "input_view.png", img)


# -- the first view's camera ------------------------------------------------------------------------------------
def _random_camera(seed: int) -> Cameras:
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(4, generator=g, dtype=torch.float64), dim=0)
    from lyra3d.core.gaussians import quat_to_rotmat

    r = quat_to_rotmat(q[None])[0]
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3], w2c[:3, 3] = r, torch.randn(3, generator=g, dtype=torch.float64) * 3
    return Cameras(w2c, torch.tensor([240.0, 240.0, 160.0, 88.0], dtype=torch.float64), 320, 176)


def _opengl_pixels(pose: ViewPose, points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Project world points as three.js does: lookAt(position → look_at, up), perspective(fov_y, aspect),
    NDC to pixels (y flipped)."""
    back = pose.position - pose.look_at
    zc = back / np.linalg.norm(back)
    xc = np.cross(pose.up, zc)
    xc /= np.linalg.norm(xc)
    yc = np.cross(zc, xc)
    p = (points - pose.position) @ np.stack([xc, yc, zc], axis=1)  # camera coordinates, looking down -z
    f = 1.0 / math.tan(0.5 * pose.fov_y)
    ndc_x, ndc_y = f / (width / height) * p[:, 0] / -p[:, 2], f * p[:, 1] / -p[:, 2]
    return np.stack([(ndc_x + 1) * 0.5 * width, (1 - ndc_y) * 0.5 * height], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_opencv_camera_becomes_the_same_view_in_viser_terms(seed):
    cams = _random_camera(seed)
    pose = pose_from_camera(cams, 0, look_distance=4.0)
    # Points in front of the camera, projected by OpenCV (K [R | t]) and by an OpenGL camera from the pose.
    g = torch.Generator().manual_seed(seed + 10)
    cam_pts = torch.rand(200, 3, generator=g, dtype=torch.float64) * torch.tensor([4.0, 2.0, 5.0]) + torch.tensor(
        [-2.0, -1.0, 1.0])
    c2w = cams.camera_to_world[0]
    world = (cam_pts @ c2w[:3, :3].T + c2w[:3, 3]).numpy()
    k = cams.intrinsics[0].numpy()
    opencv = np.stack([k[0] * cam_pts[:, 0] / cam_pts[:, 2] + k[2], k[1] * cam_pts[:, 1] / cam_pts[:, 2] + k[3]], 1)
    assert np.abs(_opengl_pixels(pose, world, 320, 176) - opencv).max() < 1e-6
    # viser's per-client wxyz is OpenCV's camera-to-world rotation; the pose round-trips to the camera.
    from lyra3d.core.gaussians import quat_to_rotmat

    r = quat_to_rotmat(torch.from_numpy(pose.wxyz)[None])[0].numpy()
    assert np.abs(r - c2w[:3, :3].numpy()).max() < 1e-6
    assert np.abs(pose.world_to_camera() - cams.world_to_camera[0].numpy()).max() < 1e-6
    assert pose.fov_y == pytest.approx(2 * math.atan(88 / 240)) and pose.aspect == pytest.approx(320 / 176)
    assert np.linalg.norm(pose.look_at - pose.position) == pytest.approx(4.0)


def test_the_whole_input_frame_shows_on_a_narrower_window():
    pose = pose_from_camera(default_camera(320, 176))
    assert pose.fov_y == pytest.approx(math.radians(50))
    assert pose.fov_for(2.5) == pose.fov_y == pose.fov_for(320 / 176)  # as wide or wider: the same fov
    for aspect in (16 / 9, 1.0):  # narrower (a 1280 x 720 window, a square one): the horizontal fov is kept
        assert math.tan(pose.fov_for(aspect) / 2) * aspect == pytest.approx(math.tan(pose.fov_y / 2) * 320 / 176)


def _pixel_aligned_cloud(flip: bool) -> np.ndarray:
    """Points as a pixel-aligned decoder leaves them: one per pixel of a camera at the origin looking along
    +z (or -z), at depths 2-30: crowded near the camera, sparse far away."""
    rng = np.random.default_rng(0)
    u, v = rng.uniform(-0.45, 0.45, 20000), rng.uniform(-0.25, 0.25, 20000)
    d = rng.uniform(2.0, 30.0, 20000)
    pts = np.stack([u * d, v * d, d], axis=1)
    return pts * np.array([1, 1, -1]) if flip else pts


@pytest.mark.parametrize("flip", [False, True])
def test_bare_gaussians_are_viewed_from_their_densest_side(flip):
    from lyra3d.viewer.camera import FRAMING_PITCH

    pts = _pixel_aligned_cloud(flip)
    pose = framing_pose(pts)
    forward = pose.rotation[:, 2]
    # looking the way the capturing camera did, a little down, at the median point, -y up
    s, c = math.sin(FRAMING_PITCH), math.cos(FRAMING_PITCH)
    assert forward == pytest.approx([0, s, -c if flip else c])
    assert np.allclose(pose.up, [0, -1, 0]) and np.allclose(pose.look_at, np.median(pts, axis=0))
    depth = (pts - pose.position) @ forward
    assert (depth > 0).mean() > 0.9  # in front of the camera
    # a box of uniform points is framed whole (its interquartile range is its half-size), and not tiny
    box = np.random.default_rng(1).uniform([-1, -0.5, 4], [1, 0.5, 6], (5000, 3))
    framed = framing_pose(box)
    w2c = framed.world_to_camera()
    cam_pts = box @ w2c[:3, :3].T + w2c[:3, 3]
    k = framed.cameras(320, 180).intrinsics[0].numpy()
    uv = np.stack([k[0] * cam_pts[:, 0] / cam_pts[:, 2] + k[2], k[1] * cam_pts[:, 1] / cam_pts[:, 2] + k[3]], 1)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < 320) & (uv[:, 1] >= 0) & (uv[:, 1] < 180)
    assert inside.mean() > 0.95 and np.ptp(uv[:, 0]) > 0.5 * 320, (inside.mean(), np.ptp(uv[:, 0]))


def test_faint_gaussians_are_thinned_without_changing_the_render():
    from lyra3d.viewer.splats import splat_arrays, thin_faint

    g = faint_layers(colourful_scene(12), layers=10, opacity=0.03)
    thin, alpha = thin_faint(g)
    assert len(thin) < 0.5 * len(g) and float(alpha.min()) >= 0.1 - 1e-6
    cam = default_camera(160, 88)
    full = rasterize(g, cam, background=torch.ones(3)).rgb[0]
    shown = Gaussians.from_activated(thin.means, torch.exp(thin.scales), thin.quats, alpha, thin.rgb)
    part = rasterize(shown, cam, background=torch.ones(3)).rgb[0]
    assert float(-10 * torch.log10(((full - part) ** 2).mean())) > 30
    # sent back to front for the view: camera z decreasing
    arrays = splat_arrays(g, view_from=(np.zeros(3), np.array([0.0, 0.0, 1.0])))
    assert len(arrays["centers"]) == len(thin) and np.all(np.diff(arrays["centers"][:, 2]) <= 0)


def faint_layers(g: Gaussians, layers: int, opacity: float, spread: float = 0.02) -> Gaussians:
    """Each Gaussian also as ``layers`` faint copies (``opacity``) spread ±``spread`` along its ray from the
    origin: the many faint layers a decoder's scene is made of."""
    parts = [g]
    for s in np.linspace(-spread, spread, layers):
        h = g[torch.arange(len(g))]
        parts.append(Gaussians.from_activated(h.means * (1 + float(s)), torch.exp(h.scales), h.quats,
                                              torch.full((len(h),), opacity), h.rgb))
    return Gaussians(torch.cat([p.means for p in parts]), torch.cat([p.scales for p in parts]),
                     torch.cat([p.quats for p in parts]), torch.cat([p.opacities for p in parts]),
                     torch.cat([p.sh for p in parts]))


# -- loading ------------------------------------------------------------------------------------------------------
def test_load_scene_folder(tmp_path):
    from lyra3d.viewer.server import load_scene

    write_output_folder(tmp_path, colourful_scene(6))
    scene = load_scene(tmp_path)
    assert len(scene.frames) == 1 and len(scene.frames[0]) == 6 ** 3
    assert list(scene.trajectories) == ["left", "right", "up", "zoom_out", "zoom_in", "spiral"]
    assert [len(c) for c in scene.trajectories.values()] == [9] * 6
    assert scene.image is not None and scene.image.shape == (176, 320, 3)
    assert scene.center_depth == 3.0 and scene.name == tmp_path.name
    assert torch.allclose(scene.input_camera.world_to_camera[0], torch.eye(4))


def test_4d_output_folder(tmp_path):
    """The layout ``lyra3d generate --video`` writes: gaussians/scene_t000.ply ..., an input_view.png strip of
    input-camera tiles (its first tile is the first input frame)."""
    import imageio.v3 as iio

    from lyra3d.viewer.server import load_scene, view

    (tmp_path / "gaussians").mkdir()
    for t in range(3):
        g = colourful_scene(4)
        g.means[:, 0] += t
        save_ply(g, tmp_path / "gaussians" / f"scene_t{t:03d}.ply")
    write_cameras(tmp_path, default_camera(320, 176), 5, 3.0)
    strip = np.zeros((2 * 176, 3 * 320, 3), np.uint8)
    strip[:176, :320] = 200
    iio.imwrite(tmp_path / "input_view.png", strip)
    scene = load_scene(tmp_path)
    assert len(scene.frames) == 3 and scene.image.shape == (176, 320, 3) and int(scene.image.min()) == 200
    with view(tmp_path, port=0) as v:
        assert v.num_frames == 3 and v.time_slider is not None
        assert [h.visible for h in v.splat_handles] == [True, False, False]
        v.time_slider.value = 2  # what moving the slider does
        deadline = time.time() + 5
        while v.time_index != 2 and time.time() < deadline:
            time.sleep(0.05)
        assert [h.visible for h in v.splat_handles] == [False, False, True]
        # trajectories off by default, the input camera's frustum on; the toggle shows them. Five frames per
        # trajectory, less the first: the input camera, whose own frustum shows it.
        assert len(v.frustum_handles) == 6 * 4 and not v.trajectories.visible and v.input_frustum.visible
        v.show_trajectories(True)
        deadline = time.time() + 5
        while not v.trajectories.visible and time.time() < deadline:
            time.sleep(0.05)
        assert v.trajectories.visible and v.trajectory_toggle.value


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
    with pytest.raises(InputError, match="max_frustums"):
        view(colourful_scene(2), port=0, max_frustums=0)


# -- a real browser ---------------------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="/usr/bin/chromium is missing (apt-get install chromium)")

SEED = 1_000_007  # the held-out world of the README's example: a cylinder, a box and a sphere on a floor
WINDOW = (640, 352)  # twice the input camera (320 x 176): the same aspect, so the same frame
FAINT_SCENE = (0.5, 30, 0.015)  # surfel opacity, faint layers per surfel, their opacity


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    with Chromium() as c:
        yield c


@pytest.fixture(scope="module")
def world_scene(tmp_path_factory) -> tuple[Path, Gaussians]:
    """A stand-in for ``lyra3d generate --image world_1000007.png``: round Gaussians on the world's true
    surface seen from the input camera, each at opacity 0.5 with 30 faint copies (0.015) around it, as a
    decoder's scene is built of many faint layers (half a generated scene's Gaussians are under 0.013); the
    folder as generate writes it."""
    import imageio.v3 as iio

    from lyra3d.data import worlds
    from lyra3d.evaluation.mesh import gaussians_from_world

    folder = tmp_path_factory.mktemp("world_scene")
    world = worlds.make_world(SEED)
    surfels = gaussians_from_world(world, default_camera(160, 88), stride=2, opacity=FAINT_SCENE[0], scale=0.8,
                                   thickness=1.0)
    g = faint_layers(surfels, layers=FAINT_SCENE[1], opacity=FAINT_SCENE[2])
    save_ply(g, folder / "scene.ply")
    cam = default_camera(320, 176)
    write_cameras(folder, cam, 5, float(worlds.center_depth(world)))
    rgb = worlds.render(world, cam).rgb[0].clamp(0, 1)
    iio.imwrite(folder / "input_view.png", (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    return folder, g


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _changed(a: np.ndarray, b: np.ndarray, level: int = 24) -> float:
    """The fraction of pixels that differ by more than ``level`` grey levels in some channel."""
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > level).mean())


def _reference(g: Gaussians, cams: Cameras) -> np.ndarray:
    rgb = rasterize(g, cams, background=torch.ones(3)).rgb[0].clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _shot(browser: Chromium, since: np.ndarray | None = None) -> np.ndarray:
    """A screenshot once the page has stopped changing (and, given ``since``, differs from it: a change made
    on the server has reached the page)."""
    time.sleep(0.5)
    ready = (lambda img: True) if since is None else (lambda img: _changed(img, since) > 0)
    return browser.settled(ready, timeout=90.0, interval=1.0)


def _wait_for_client(v, timeout: float = 30.0):
    deadline = time.time() + timeout
    while not v.server.get_clients() and time.time() < deadline:
        time.sleep(0.1)
    clients = list(v.server.get_clients().values())
    assert clients, "the browser did not connect to the viewer"
    return clients[0]


@needs_chromium
def test_first_view_is_the_input_camera(chromium, world_scene, tmp_path):
    """The first frame in Chromium against ``rasterize`` of the same Gaussians at the input camera.

    The page is opened in a viewport of twice the input camera's size (640 × 352), so the canvas has the
    input camera's aspect and field of view exactly and the two frames are compared pixel for pixel, whole;
    the panel, notifications and buttons over the canvas are hidden for the comparison (``canvas_only``).
    viser's splatting differs from ours in detail (its 8-bit opacity, an alpha test, float16 covariances, a
    clamped footprint), not in what is on screen: PSNR ≥ 20 dB (and ≥ 36 dB here, which the faint Gaussians
    sent as they are would miss). Frustum lines are counted as the pixels that
    change when every frustum is hidden: under 5 % with the input camera's alone (the default) and with
    every trajectory shown. A camera moved away scores far lower (the comparison can fail); the "input view"
    button brings it back; the "save screenshot" render matches too.
    """
    from lyra3d.viewer.server import view

    folder, g = world_scene
    start = time.time()
    with view(folder, port=0) as v:
        reference = _reference(g, v.home.cameras(*WINDOW))
        assert (reference.min(axis=2) < 230).mean() > 0.4  # the scene fills much of the frame
        chromium.open(v.url + "?fixedDpr=1", *WINDOW)
        first = _shot(chromium)
        assert chromium.canvas_only() == WINDOW
        default = _shot(chromium, since=first)  # the panel hidden
        client = _wait_for_client(v)
        v.input_frustum.visible = False
        bare = _shot(chromium, since=default)
        v.input_frustum.visible = True
        v.show_trajectories(True)
        every = _shot(chromium, since=bare)
        psnr = _psnr(bare, reference)
        input_share, all_share = _changed(default, bare), _changed(every, bare)

        v.show_trajectories(False)
        client.camera.look_at = tuple(v.home.look_at + np.array([3.0, 0.0, 0.0]))
        moved = _shot(chromium, since=every)
        v.go_home(client)
        home = _psnr(_shot(chromium, since=moved), default)
        away = _psnr(moved, reference)
        v.render_size.value = "320x176"  # what the panel's "render size" does; then "save screenshot"
        name, png = v.save_screenshot(client)
        saved = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        saved_psnr = _psnr(saved, _reference(g, v.home.cameras(320, 176)))
    seconds = time.time() - start
    Image.fromarray(np.concatenate([np.concatenate([first, every], 1), np.concatenate([bare, reference], 1)], 0)).save(
        tmp_path / "first_view.png")
    print(f"first view vs rasterize: {psnr:.2f} dB; frustum pixels: input camera {input_share:.2%}, every "
          f"frustum {all_share:.2%}; moved away {away:.2f} dB, back home vs first {home:.2f} dB; screenshot action "
          f"{saved_psnr:.2f} dB; {seconds:.1f} s")
    assert psnr >= 20.0, f"first view vs rasterize: {psnr:.2f} dB (screenshots {tmp_path / 'first_view.png'})"
    # measured 40.8 dB; 33.1 with the faint Gaussians sent as they are (lyra3d.viewer.splats)
    assert psnr >= 36.0, f"faint Gaussians lost: {psnr:.2f} dB (screenshots {tmp_path / 'first_view.png'})"
    assert input_share < 0.05 and all_share < 0.05, (input_share, all_share)
    assert away < psnr - 10.0 and home >= 30.0, (away, home)
    assert name == f"{folder.name}_320x176.png" and saved.shape == (176, 320, 3) and saved_psnr >= 20.0, saved_psnr


@needs_chromium
def test_a_bare_ply_opens_framing_its_gaussians(chromium, world_scene, tmp_path):
    """A PLY with no cameras.json beside it: the first view (16:9, 640 × 360) frames the Gaussians, which
    cover ≥ 30 % of the canvas (pixels ≥ 24 grey levels from viser's white background)."""
    from lyra3d.viewer.server import view

    save_ply(world_scene[1], tmp_path / "alone.ply")
    with view(tmp_path / "alone.ply", port=0) as v:
        assert v.scene.input_camera is None and v.input_frustum is None and v.trajectories is None
        chromium.open(v.url + "?fixedDpr=1", 640, 360)
        first = _shot(chromium)
        chromium.canvas_only()
        img = _shot(chromium, since=first)
    coverage = float((np.abs(img.astype(np.int16) - 255).max(axis=2) > 24).mean())
    Image.fromarray(img).save(tmp_path / "bare_ply.png")
    print(f"bare PLY first view: Gaussians cover {coverage:.1%} of the canvas")
    assert coverage >= 0.30, f"{coverage:.1%} covered (screenshot {tmp_path / 'bare_ply.png'})"
