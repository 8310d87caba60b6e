"""Interactive web viewer for generated scenes (viser; ``pip install lyra3d[viewer]``).

``view(path_or_gaussians)`` starts a viser server in the background and returns a :class:`Viewer`;
``serve(...)`` does the same and blocks until Ctrl-C (for the CLI). What is loaded: :mod:`.scene`; how the
Gaussians are sent (faint ones thinned, back to front for the first view): :mod:`.splats`.

The first view is the input camera (position, orientation and field of view from ``cameras.json``; the
whole input frame shows on a narrower window), looking at the scene as the input image shows it; without
cameras it is a framing of the Gaussians (:func:`~lyra3d.viewer.camera.framing_pose`). The side panel
holds the scene's name and Gaussian count, the input image, a button back to that first view, the
trajectories' toggle (off at first), a time slider for 4D scenes, a render size and "save screenshot".
Frustums are drawn thin and small (a fraction of the scene centre's depth); the input camera's stays on.
Gaussians show their degree-0 colour (viser splats no higher SH bands). The world is our OpenCV frame, so
the viewer's up direction is ``-y``.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians
from lyra3d.errors import InputError
from lyra3d.viewer.camera import ViewPose, framing_pose, pose_from_camera
from lyra3d.viewer.scene import Scene, load_scene, load_trajectories, split_trajectories
from lyra3d.viewer.splats import splat_arrays

__all__ = ["Viewer", "load_scene", "load_trajectories", "serve", "splat_arrays", "split_trajectories", "view"]

_VIEWER_INSTALL = "pip install lyra3d[viewer]"

#: Frustum size as a fraction of the scene centre's depth.
FRUSTUM_FRACTION = 0.03

#: Trajectory colours (RGB), in turn; the input camera's frustum is grey.
_PALETTE = ((214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189), (23, 190, 207))
_INPUT_COLOUR = (90, 90, 90)


def _viser():
    try:
        import viser
    except ImportError:
        raise InputError(f"the viewer needs viser, which is not installed: {_VIEWER_INSTALL}") from None
    return viser


def home_pose(scene: Scene) -> tuple[ViewPose, float]:
    """The first view (the input camera, or a framing of the first time step's Gaussians) and the scene's
    depth scale (the centre depth: recorded, else the median depth of the Gaussians in front of the input
    camera, else the framing's distance)."""
    means = scene.frames[0].means.detach().cpu().double() if scene.frames else torch.zeros(0, 3)
    if scene.input_camera is None:
        pose = framing_pose(means.numpy())
        return pose, float(np.linalg.norm(pose.look_at - pose.position))
    depth = scene.center_depth
    if depth is None:
        w2c = scene.input_camera.world_to_camera[0].detach().cpu().double()
        z = means @ w2c[2, :3] + w2c[2, 3]
        depth = float(z[z > 0].median()) if bool((z > 0).any()) else 1.0
    return pose_from_camera(scene.input_camera, 0, depth), depth


def _render_sizes(scene: Scene) -> list[tuple[int, int]]:
    if scene.input_camera is not None:
        w, h = scene.input_camera.width, scene.input_camera.height
        return [(w * k, h * k) for k in (1, 2, 4)]
    return [(640, 360), (1280, 720), (1920, 1080)]


class Viewer:
    """A running viewer: the viser server (``.server``), its ``.url``, the scene handles, ``stop()``.

    ``home`` is the first view; ``trajectories`` the scene node holding the trajectory frustums (toggled by
    ``trajectory_toggle``). Use as a context manager to stop the server on exit.
    """

    def __init__(self, server: Any, scene: Scene, home: ViewPose) -> None:
        self.server = server
        self.scene = scene
        self.home = home
        self.splat_handles: list[Any] = []
        self.frustum_handles: list[Any] = []
        self.input_frustum: Any | None = None
        self.trajectories: Any | None = None
        self.trajectory_toggle: Any | None = None
        self.time_slider: Any | None = None
        self.render_size: Any | None = None
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

    def show_trajectories(self, on: bool) -> None:
        """Show or hide the trajectory frustums (what the checkbox does)."""
        if self.trajectory_toggle is not None and bool(self.trajectory_toggle.value) != bool(on):
            self.trajectory_toggle.value = bool(on)  # its callback shows them
        elif self.trajectories is not None:
            self.trajectories.visible = bool(on)

    def go_home(self, client: Any) -> None:
        """Move ``client``'s camera to the first view (what the button does)."""
        cam = client.camera
        with client.atomic():
            cam.fov = self.home.fov_for(cam.aspect)
            cam.up_direction = tuple(self.home.up)
            cam.position = tuple(self.home.position)
            cam.look_at = tuple(self.home.look_at)

    def screenshot(self, client: Any, size: tuple[int, int] | None = None, timeout: float = 120.0) -> np.ndarray:
        """``client``'s current view rendered by its browser at ``size`` (width, height; default the panel's
        render size), over white: ``(H, W, 3)`` uint8."""
        w, h = size or _parse_size(self.render_size.value if self.render_size is not None else "1280x720")
        rgba = np.asarray(client.get_render(height=int(h), width=int(w), transport_format="png", timeout=timeout))
        if rgba.shape[-1] == 4:
            a = rgba[..., 3:].astype(np.float32) / 255.0
            rgba = (rgba[..., :3] * a + 255.0 * (1.0 - a)).round()
        return rgba[..., :3].astype(np.uint8)

    def save_screenshot(self, client: Any) -> tuple[str, bytes]:
        """What "save screenshot" does: :meth:`screenshot` as a PNG sent to ``client`` to download, named
        after the scene and size; returns the name and the PNG."""
        img = self.screenshot(client)
        name = f"{Path(self.scene.name).stem or 'view'}_{img.shape[1]}x{img.shape[0]}.png"
        data = _png(img)
        client.send_file_download(name, data, save_immediately=True)
        return name, data

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.stop()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _parse_size(text: str) -> tuple[int, int]:
    w, h = str(text).split(" ")[0].lower().replace("×", "x").split("x")
    return int(w), int(h)


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def view(path_or_gaussians: Gaussians | str | Path, port: int = 8080, host: str = "127.0.0.1",
         cameras: Cameras | dict[str, Cameras] | str | Path | None = None,
         image: np.ndarray | str | Path | None = None, max_frustums: int = 9,
         frustum_scale: float | None = None, show_trajectories: bool = False, verbose: bool = False) -> Viewer:
    """Start the viewer in the background and return it (non-blocking); ``viewer.stop()`` ends it.

    Args:
        path_or_gaussians: Gaussians, a scene file, or an output folder (see :mod:`lyra3d.viewer.scene`).
        port: the port to listen on; a busy port moves to the next free one, ``0`` picks any
            (``viewer.port`` tells which).
        host: the interface; ``"0.0.0.0"`` to reach the viewer from other machines.
        cameras: trajectories to draw instead of the ``cameras.json`` found beside the scene (the first
            camera is then the input camera).
        image: the input image instead of the ``input_view.png`` found beside the scene.
        max_frustums: the most frustums drawn per trajectory (evenly subsampled; first and last kept).
        frustum_scale: frustum size in scene units (default: ``FRUSTUM_FRACTION`` of the centre depth).
        show_trajectories: draw the trajectory frustums from the start (a checkbox toggles them).
        verbose: let viser print its banner.
    """
    viser = _viser()
    scene = load_scene(path_or_gaussians, cameras=cameras, image=image)
    if not 0 <= int(port) <= 65535:
        raise InputError(f"port must be in 0..65535, got {port}")
    if int(max_frustums) < 1:
        raise InputError(f"max_frustums must be at least 1, got {max_frustums}")
    if frustum_scale is not None and not frustum_scale > 0:
        raise InputError(f"frustum_scale must be positive, got {frustum_scale}")
    try:
        server = viser.ViserServer(host=host, port=int(port), verbose=verbose)
    except OSError as e:
        raise InputError(f"cannot start the viewer on {host}:{port} ({e}); pick another port") from None
    try:
        return _populate(server, scene, int(max_frustums), frustum_scale, bool(show_trajectories))
    except BaseException:
        server.stop()
        raise


def _populate(server: Any, scene: Scene, max_frustums: int, frustum_scale: float | None,
              show_trajectories: bool) -> Viewer:
    server.scene.set_up_direction("-y")  # OpenCV world: y points down
    server.gui.configure_theme(control_width="small", show_share_button=False)
    home, depth = home_pose(scene)
    v = Viewer(server, scene, home)
    first_view = (home.position, home.rotation[:, 2])  # sent back to front for it (see .splats)
    for i, g in enumerate(scene.frames):
        v.splat_handles.append(server.scene.add_gaussian_splats(
            f"/gaussians/t{i:04d}", **splat_arrays(g, view_from=first_view), visible=(i == 0)))
    _add_frustums(server, scene, v, frustum_scale or FRUSTUM_FRACTION * depth, max_frustums, show_trajectories)

    cam = server.initial_camera
    cam.up = tuple(float(x) for x in home.up)
    cam.position = tuple(float(x) for x in home.position)
    cam.look_at = tuple(float(x) for x in home.look_at)
    cam.fov = float(home.fov_y)
    cam.near = min(0.01, 0.002 * depth)
    cam.far = max(1000.0, 200.0 * depth)

    @server.on_client_connect
    def _(client: Any) -> None:  # show the whole input frame on a window narrower than it
        client.camera.fov = home.fov_for(client.camera.aspect)

    _add_panel(server, scene, v)
    return v


def _add_frustums(server: Any, scene: Scene, v: Viewer, scale: float, max_frustums: int, show: bool) -> None:
    def frustum(name: str, cams: Cameras, i: int, colour: tuple[int, int, int]) -> Any:
        pose = pose_from_camera(cams, i)
        return server.scene.add_camera_frustum(name, fov=pose.fov_y, aspect=pose.aspect, scale=scale, color=colour,
                                               wxyz=pose.wxyz, position=pose.position, thickness=1.0,
                                               thickness_units="screen")

    if scene.input_camera is not None:
        v.input_frustum = frustum("/input_camera", scene.input_camera, 0, _INPUT_COLOUR)
    if not scene.trajectories:
        return
    v.trajectories = server.scene.add_frame("/trajectories", show_axes=False, visible=show)
    w2c_in = scene.input_camera.world_to_camera[0].detach().cpu() if scene.input_camera is not None else None
    for ti, (name, cams) in enumerate(scene.trajectories.items()):
        keep = np.unique(np.linspace(0, len(cams) - 1, min(len(cams), max_frustums)).round().astype(int))
        if w2c_in is not None:  # Lyra's trajectories start at the input camera: its own frustum shows that
            same = (cams.world_to_camera.detach().cpu() - w2c_in).abs().flatten(1).amax(1) < 1e-5
            keep = [i for i in keep if not bool(same[i])]
        safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or f"trajectory{ti}"
        for idx in keep if len(cams) else []:
            v.frustum_handles.append(frustum(f"/trajectories/{safe}/f{int(idx):04d}", cams, int(idx),
                                             _PALETTE[ti % len(_PALETTE)]))


def _add_panel(server: Any, scene: Scene, v: Viewer) -> None:
    gui = server.gui
    times = f" · {len(scene.frames)} time steps" if len(scene.frames) > 1 else ""
    gui.add_markdown(f"**{scene.name}** · {scene.num_gaussians:,} Gaussians{times}")
    if scene.image is not None:
        gui.add_image(scene.image, format="jpeg", jpeg_quality=90)
    if len(scene.frames) > 1:
        v.time_slider = slider = gui.add_slider("time step", min=0, max=len(scene.frames) - 1, step=1,
                                                initial_value=0)

        @slider.on_update
        def _(_event) -> None:
            index = int(slider.value)
            for i, h in enumerate(v.splat_handles):
                h.visible = i == index

    if v.trajectories is not None:
        v.trajectory_toggle = toggle = gui.add_checkbox("trajectories", bool(v.trajectories.visible),
                                                        hint="the generating cameras' frustums")

        @toggle.on_update
        def _(_event) -> None:
            v.trajectories.visible = bool(toggle.value)

    sizes = [f"{w}x{h}" for w, h in _render_sizes(scene)]
    v.render_size = gui.add_dropdown("render size", sizes, initial_value=sizes[1])
    buttons = gui.add_button_group("", ("input view" if scene.input_camera is not None else "first view",
                                        "save screenshot"))

    @buttons.on_click
    def _(event) -> None:
        client = event.client
        if client is None:
            return
        if event.target.value == "save screenshot":
            v.save_screenshot(client)
        else:
            v.go_home(client)


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
