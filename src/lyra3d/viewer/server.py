"""Interactive web viewer for generated scenes (viser; ``pip install lyra3d[viewer]``).

``view(path_or_gaussians)`` starts a viser server in the background and returns a :class:`Viewer`;
``serve(...)`` does the same and blocks until Ctrl-C (for the CLI). What is shown:

- the Gaussians (degree-0 colour; viser renders splats, not higher SH bands);
- the camera trajectories as frustums, from the ``cameras.json`` beside the PLY / in the output folder
  (or a :class:`Cameras` passed in); the first camera, the input camera, carries the input image;
- the input image (``input_view.png``) in the side panel;
- a time slider for 4D outputs: a folder of per-time PLYs (``scene_t000.ply``, ``scene_t001.ply``, ...) or
  Gaussians with ``times``.

A path may be a generate output folder (``scene.ply``, ``cameras.json``, ``input_view.png``), a folder of
per-time PLYs, or a ``.ply``/``.splat``/``.usd*`` file. The world is our OpenCV frame, so the viewer's up
direction is ``-y``; the initial view is the input camera looking at the scene's centre.
"""

from __future__ import annotations

import colorsys
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lyra3d.core.cameras import Cameras
from lyra3d.core.files import read_json
from lyra3d.core.gaussians import Gaussians, load_ply, quat_to_rotmat, rotmat_to_quat
from lyra3d.errors import InputError

_VIEWER_INSTALL = "pip install lyra3d[viewer]"
_TIME_PLY = re.compile(r"^(?P<stem>.*?)[_-]?t(?P<t>\d+)\.ply$", re.IGNORECASE)
#: The most distinct time steps shown on the slider for Gaussians with continuous ``times``.
MAX_TIME_STEPS = 128


def _viser():
    try:
        import viser
    except ImportError:
        raise InputError(f"the viewer needs viser, which is not installed: {_VIEWER_INSTALL}") from None
    return viser


# -- what to show -------------------------------------------------------------------------------------------------
@dataclass
class Scene:
    """Everything the viewer shows: Gaussians per time step, camera trajectories, the input image."""

    frames: list[Gaussians]
    times: list[float]
    trajectories: dict[str, Cameras] = field(default_factory=dict)
    image: np.ndarray | None = None  # (H, W, 3) uint8
    source: str = ""


def _load_gaussians_file(path: Path) -> Gaussians:
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return load_ply(path)
    if suffix == ".splat":
        from lyra3d.io.export import load_splat

        return load_splat(path)
    if suffix in (".usd", ".usda", ".usdc", ".usdz"):
        from lyra3d.io.export import load_usd

        return load_usd(path)
    raise InputError(f"cannot view {path.name}: expected a .ply, .splat or .usd(z) file or a scene folder")


def load_trajectories(path: str | Path) -> dict[str, Cameras]:
    """Camera trajectories from a JSON file: one :meth:`Cameras.to_dict` record (split into trajectories by
    :func:`split_trajectories`), or a mapping of names to such records (at the top level or under
    ``"trajectories"``)."""
    path = Path(path)
    data = read_json(path, "cameras file")
    if isinstance(data, dict) and "frames" in data:
        return split_trajectories(Cameras.from_dict(data))
    if isinstance(data, dict):
        named = data.get("trajectories", data)
        if isinstance(named, dict) and named and all(isinstance(v, dict) and "frames" in v for v in named.values()):
            return {str(k): Cameras.from_dict(v) for k, v in named.items()}
    raise InputError(f"{path} is not a lyra3d cameras file; expected keys width, height, frames "
                     "(or a mapping of trajectory names to such records)")


def split_trajectories(cameras: Cameras, name: str = "trajectory") -> dict[str, Cameras]:
    """Split a concatenation of trajectories that each start at the input camera (as Lyra's six do) at every
    return to the first camera's pose; one trajectory stays whole."""
    w2c = cameras.world_to_camera.detach().cpu()
    if len(w2c) < 2:
        return {name: cameras}
    same = (w2c - w2c[:1]).abs().flatten(1).amax(1) < 1e-5
    starts = [0] + [i for i in range(1, len(w2c)) if bool(same[i]) and not bool(same[i - 1])]
    if len(starts) == 1:
        return {name: cameras}
    bounds = starts + [len(w2c)]
    return {f"{name}_{j}": cameras[bounds[j]:bounds[j + 1]] for j in range(len(starts))}


def _read_image(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        img = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many types for unreadable files
        raise InputError(f"cannot read the image {path} ({type(e).__name__}: {e})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        img = np.clip(img.astype(np.float64) / (65535.0 if img.dtype == np.uint16 else 1.0) * 255.0, 0, 255)
        img = img.astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


def _split_times(g: Gaussians) -> tuple[list[Gaussians], list[float]]:
    if g.times is None:
        return [g], [0.0]
    t = g.times.detach().cpu().double()
    values = torch.unique(t)
    if len(values) > MAX_TIME_STEPS:  # continuous times: bin them
        lo, hi = float(values[0]), float(values[-1])
        edges = torch.linspace(lo, hi, MAX_TIME_STEPS + 1, dtype=torch.float64)
        idx = torch.bucketize(t, edges[1:-1], right=True)
        centres = 0.5 * (edges[:-1] + edges[1:])
        keep = [i for i in range(MAX_TIME_STEPS) if bool((idx == i).any())]
        return [g[idx == i] for i in keep], [float(centres[i]) for i in keep]
    return [g[t == v] for v in values], [float(v) for v in values]


def load_scene(source: Gaussians | str | Path, cameras: Cameras | dict[str, Cameras] | str | Path | None = None,
               image: np.ndarray | str | Path | None = None) -> Scene:
    """Collect what :func:`view` shows from Gaussians, a scene file or an output folder (see the module notes).

    ``cameras`` and ``image`` override what is found beside the scene.
    """
    folder: Path | None = None
    if isinstance(source, Gaussians):
        frames, times = _split_times(source)
        name = "Gaussians"
    elif isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            folder = p
            timed = sorted((int(m["t"]), f) for f in p.glob("*.ply") if (m := _TIME_PLY.match(f.name)))
            if (p / "scene.ply").is_file():
                frames, times = _split_times(load_ply(p / "scene.ply"))
            elif timed:
                frames = [load_ply(f) for _, f in timed]
                times = [float(t) for t, _ in timed]
            else:
                plys = sorted(p.glob("*.ply"))
                if len(plys) != 1:
                    raise InputError(f"{p} holds no scene.ply, no per-time PLYs (scene_t000.ply, ...) and "
                                     f"{len(plys)} other PLYs; pass the PLY file to view")
                frames, times = _split_times(load_ply(plys[0]))
        elif p.is_file():
            folder = p.parent
            frames, times = _split_times(_load_gaussians_file(p))
        else:
            raise InputError(f"nothing to view at {p}: no such file or folder")
        name = str(p)
    else:
        raise InputError(f"view needs Gaussians or a path, got {type(source).__name__}")

    if isinstance(cameras, Cameras):
        trajectories = split_trajectories(cameras)
    elif isinstance(cameras, dict):
        trajectories = dict(cameras)
    elif isinstance(cameras, (str, Path)):
        trajectories = load_trajectories(cameras)
    elif folder is not None and (folder / "cameras.json").is_file():
        trajectories = load_trajectories(folder / "cameras.json")
    else:
        trajectories = {}

    if isinstance(image, (str, Path)):
        img = _read_image(Path(image))
    elif image is not None:
        img = np.asarray(image)
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    elif folder is not None and (folder / "input_view.png").is_file():
        img = _read_image(folder / "input_view.png")
    else:
        img = None
    return Scene(frames=frames, times=times, trajectories=trajectories, image=img, source=name)


# -- conversions for viser --------------------------------------------------------------------------------------
def splat_arrays(g: Gaussians) -> dict[str, np.ndarray]:
    """``centers, covariances (Σ = R S² Rᵀ), rgbs, opacities`` as viser's ``add_gaussian_splats`` takes them."""
    g = g.detach().to("cpu", torch.float32)
    r = quat_to_rotmat(g.quats)
    s2 = torch.exp(2.0 * g.scales)
    cov = (r * s2[:, None, :]) @ r.transpose(1, 2)
    return {"centers": g.means.numpy(), "covariances": cov.numpy(),
            "rgbs": g.rgb.clamp(0, 1).numpy(), "opacities": g.alpha[:, None].numpy()}


def _pose(c2w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    q = rotmat_to_quat(c2w[:3, :3].double())
    return q.numpy(), c2w[:3, 3].double().numpy()


def _scene_centre_and_size(frames: Sequence[Gaussians]) -> tuple[np.ndarray, float]:
    pts = torch.cat([f.means.detach().cpu().float() for f in frames if len(f)]) if any(len(f) for f in frames) \
        else torch.zeros(1, 3)
    centre = pts.median(dim=0).values.double().numpy()
    spread = float((pts - torch.from_numpy(centre).float()).norm(dim=1).median()) if len(pts) > 1 else 1.0
    return centre, max(spread, 1e-3)


# -- the viewer -----------------------------------------------------------------------------------------------------
class Viewer:
    """A running viewer: the viser server (``.server``), its ``.url``, the time slider, ``stop()``.

    Use as a context manager to stop the server on exit.
    """

    def __init__(self, server: Any, scene: Scene, splat_handles: list[Any], frustum_handles: list[Any],
                 time_slider: Any | None) -> None:
        self.server = server
        self.scene = scene
        self.splat_handles = splat_handles
        self.frustum_handles = frustum_handles
        self.time_slider = time_slider
        self.host = server.get_host()
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}/"

    @property
    def num_frames(self) -> int:
        return len(self.scene.frames)

    def set_time(self, index: int) -> None:
        """Show time step ``index`` (what the slider does)."""
        if not 0 <= index < self.num_frames:
            raise InputError(f"time index must be in [0, {self.num_frames - 1}], got {index}")
        if self.time_slider is not None and int(self.time_slider.value) != index:
            self.time_slider.value = index  # its callback shows the frame
            return
        for i, h in enumerate(self.splat_handles):
            h.visible = i == index

    @property
    def time_index(self) -> int:
        return next((i for i, h in enumerate(self.splat_handles) if h.visible), 0)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.stop()

    def __enter__(self) -> "Viewer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def view(path_or_gaussians: Gaussians | str | Path, port: int = 8080, host: str = "127.0.0.1",
         cameras: Cameras | dict[str, Cameras] | str | Path | None = None,
         image: np.ndarray | str | Path | None = None, max_frustums: int = 60,
         frustum_scale: float | None = None, verbose: bool = False) -> Viewer:
    """Start the viewer in the background and return it (non-blocking); ``viewer.stop()`` ends it.

    Args:
        path_or_gaussians: Gaussians, a scene file, or an output folder (see the module notes).
        port: the port to listen on; a busy port moves to the next free one, ``0`` picks any
            (``viewer.port`` tells which).
        host: the interface; ``"0.0.0.0"`` to reach the viewer from other machines.
        cameras: trajectories to draw instead of the ``cameras.json`` found beside the scene.
        image: the input image instead of the ``input_view.png`` found beside the scene.
        max_frustums: the most frustums drawn per trajectory (evenly subsampled; first and last kept).
        frustum_scale: frustum size in scene units (default: a twentieth of the scene's radius).
        verbose: let viser print its banner.
    """
    viser = _viser()
    scene = load_scene(path_or_gaussians, cameras=cameras, image=image)
    if not 0 <= int(port) <= 65535:
        raise InputError(f"port must be in 0..65535, got {port}")
    try:
        server = viser.ViserServer(host=host, port=int(port), verbose=verbose)
    except OSError as e:
        raise InputError(f"cannot start the viewer on {host}:{port} ({e})") from None
    try:
        viewer = _populate(server, scene, max_frustums, frustum_scale)
    except BaseException:
        server.stop()
        raise
    return viewer


def _populate(server: Any, scene: Scene, max_frustums: int, frustum_scale: float | None) -> Viewer:
    server.scene.set_up_direction("-y")  # OpenCV world: y points down
    centre, radius = _scene_centre_and_size(scene.frames)

    splats = []
    for i, g in enumerate(scene.frames):
        handle = server.scene.add_gaussian_splats(f"/gaussians/t{i:04d}", **splat_arrays(g), visible=(i == 0))
        splats.append(handle)

    frustums = []
    scale = frustum_scale if frustum_scale is not None else 0.05 * radius
    names = list(scene.trajectories)
    for ti, name in enumerate(names):
        cams = scene.trajectories[name]
        n = len(cams)
        keep = np.unique(np.linspace(0, n - 1, min(n, max(1, max_frustums))).round().astype(int)) if n else []
        c2w = cams.camera_to_world.detach().cpu().double()
        k = cams.intrinsics.detach().cpu().double()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or f"trajectory{ti}"
        for j, idx in enumerate(keep):
            hue = (ti + 0.8 * j / max(1, len(keep))) / max(1, len(names))
            rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue % 1.0, 0.8, 0.9))
            wxyz, pos = _pose(c2w[idx])
            fov = 2.0 * math.atan(0.5 * cams.height / float(k[idx, 1]))
            first = ti == 0 and idx == 0
            frustums.append(server.scene.add_camera_frustum(
                f"/cameras/{safe}/f{int(idx):04d}", fov=fov, aspect=cams.width / cams.height, scale=scale,
                color=rgb, wxyz=wxyz, position=pos, thickness=1.5, thickness_units="screen",
                image=scene.image if (first and scene.image is not None) else None))

    gui = server.gui
    gui.add_markdown(f"**lyra3d** · {sum(len(f) for f in scene.frames):,} Gaussians"
                     + (f" · {len(scene.frames)} time steps" if len(scene.frames) > 1 else ""))
    if scene.image is not None:
        gui.add_image(scene.image, label="input view")
    slider = None
    if len(scene.frames) > 1:
        slider = gui.add_slider("time step", min=0, max=len(scene.frames) - 1, step=1, initial_value=0)

        @slider.on_update
        def _(_event) -> None:
            index = int(slider.value)
            for i, h in enumerate(splats):
                h.visible = i == index

    if frustums:
        show = gui.add_checkbox("camera paths", True)

        @show.on_update
        def _(_event) -> None:
            for h in frustums:
                h.visible = bool(show.value)

    # Start a little behind and above the input camera (so its frustum is in view), looking at the scene
    # centre, with the world's up (-y) up.
    if scene.trajectories:
        first = scene.trajectories[names[0]]
        c2w0 = first.camera_to_world[0].detach().cpu().double().numpy()
        eye, down = c2w0[:3, 3], c2w0[:3, 1]
        fov_y = 2.0 * math.atan(0.5 * first.height / float(first.intrinsics[0, 1]))
    else:
        eye, down, fov_y = np.zeros(3), np.array([0.0, 1.0, 0.0]), math.radians(60.0)
    to_centre = centre - eye
    dist = float(np.linalg.norm(to_centre))
    if dist < 1e-6:
        to_centre, dist = np.array([0.0, 0.0, 1.0]), 2.0 * radius
    eye = eye - 0.35 * dist * to_centre / dist - 0.15 * dist * down
    cam = server.initial_camera
    cam.up = (0.0, -1.0, 0.0)
    cam.position = tuple(float(v) for v in eye)
    cam.look_at = tuple(float(v) for v in centre)
    cam.fov = float(fov_y)
    cam.near = max(1e-3, 1e-3 * radius)
    cam.far = max(1e3, 1e3 * radius)
    return Viewer(server, scene, splats, frustums, slider)


def serve(path_or_gaussians: Gaussians | str | Path, port: int = 8080, host: str = "127.0.0.1",
          **kwargs: Any) -> None:
    """Run the viewer until interrupted (Ctrl-C): :func:`view` plus a wait. Prints the URL."""
    viewer = view(path_or_gaussians, port=port, host=host, **kwargs)
    print(f"lyra3d viewer: {viewer.url}  (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
