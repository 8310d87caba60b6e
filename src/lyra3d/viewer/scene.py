"""What the viewer shows, read from Gaussians, a scene file or an output folder (no viser needed here).

A path may be a generate output folder (``scene.ply``, ``cameras.json``, ``input_view.png``), a video → 4D
output folder (``gaussians/scene_t000.ply ...`` beside the same files), a folder of per-time PLYs, or a
``.ply``/``.splat``/``.usd*`` file (its folder's ``cameras.json`` and ``input_view.png`` are used when
there). ``cameras.json`` gives the trajectories (split by its ``trajectory_names`` and
``frames_per_trajectory``), the input camera and the scene centre's depth in front of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lyra3d.core.cameras import Cameras
from lyra3d.core.files import read_json
from lyra3d.core.gaussians import Gaussians, load_ply
from lyra3d.errors import InputError

_TIME_PLY = re.compile(r"^(?P<stem>.*?)[_-]?t(?P<t>\d+)\.ply$", re.IGNORECASE)


#: The most distinct time steps shown on the slider for Gaussians with continuous ``times``.
MAX_TIME_STEPS = 128


@dataclass
class Scene:
    """Everything the viewer shows: Gaussians per time step, camera trajectories, the input camera and image.

    ``input_camera`` is the view the viewer opens at (``None``: a framing of the Gaussians instead);
    ``center_depth`` the scene centre's depth in front of it (``None``: the median Gaussian's depth).
    """

    frames: list[Gaussians]
    times: list[float]
    trajectories: dict[str, Cameras] = field(default_factory=dict)
    image: np.ndarray | None = None  # (H, W, 3) uint8
    source: str = ""
    name: str = ""
    input_camera: Cameras | None = None
    center_depth: float | None = None

    @property
    def num_gaussians(self) -> int:
        return sum(len(f) for f in self.frames)


@dataclass
class SceneCameras:
    """A ``cameras.json`` read: the trajectories, the input camera, the centre depth (when recorded)."""

    trajectories: dict[str, Cameras]
    input_camera: Cameras | None = None
    center_depth: float | None = None


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


def _named_trajectories(cameras: Cameras, data: dict) -> dict[str, Cameras] | None:
    names, per = data.get("trajectory_names"), data.get("frames_per_trajectory")
    if not (isinstance(names, list) and names and isinstance(per, int) and per * len(names) == len(cameras)):
        return None
    return {str(n): cameras[i * per:(i + 1) * per] for i, n in enumerate(names)}


def read_scene_cameras(path: str | Path) -> SceneCameras:
    """A cameras file: one :meth:`Cameras.to_dict` record (a generate output's, with ``trajectory_names``,
    ``frames_per_trajectory``, ``input_camera`` and ``center_depth`` when it has them; else split by
    :func:`split_trajectories`), or a mapping of names to such records (at the top level or under
    ``"trajectories"``). Without a recorded input camera, the first trajectory's first camera is it."""
    path = Path(path)
    data = read_json(path, "cameras file")
    trajectories = None
    if isinstance(data, dict) and "frames" in data:
        cams = Cameras.from_dict(data)
        trajectories = _named_trajectories(cams, data) or split_trajectories(cams)
    elif isinstance(data, dict):
        named = data.get("trajectories", data)
        if isinstance(named, dict) and named and all(isinstance(v, dict) and "frames" in v for v in named.values()):
            trajectories = {str(k): Cameras.from_dict(v) for k, v in named.items()}
    if trajectories is None:
        raise InputError(f"{path} is not a lyra3d cameras file; expected keys width, height, frames "
                         "(or a mapping of trajectory names to such records)")
    record = data.get("input_camera")
    input_camera = Cameras.from_dict(record)[:1] if isinstance(record, dict) else _first_camera(trajectories)
    depth = data.get("center_depth")
    depth = float(depth) if isinstance(depth, (int, float)) and depth > 0 else None
    return SceneCameras(trajectories, input_camera, depth)


def load_trajectories(path: str | Path) -> dict[str, Cameras]:
    """The camera trajectories of a cameras file, split at every return to the input camera (see
    :func:`read_scene_cameras`, which also uses the recorded trajectory names)."""
    data = read_json(Path(path), "cameras file")
    if isinstance(data, dict) and "frames" in data:
        return split_trajectories(Cameras.from_dict(data))
    return read_scene_cameras(path).trajectories


def _first_camera(trajectories: dict[str, Cameras]) -> Cameras | None:
    first = next((c for c in trajectories.values() if len(c)), None)
    return first[:1] if first is not None else None


def _read_image(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        img = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many types for unreadable files
        raise InputError(f"cannot read the image {path} ({type(e).__name__}: {e}); pass another image") from None
    return _as_rgb8(img)


def _as_rgb8(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        top = 65535.0 if img.dtype == np.uint16 else (255.0 if np.issubdtype(img.dtype, np.integer) else 1.0)
        img = (np.clip(img.astype(np.float64) / top, 0, 1) * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


def _first_tile(img: np.ndarray, camera: Cameras | None) -> np.ndarray:
    """A 4D output's ``input_view.png`` is a grid of input-camera-sized tiles (input frames over renders):
    its top-left tile, the first input frame."""
    if camera is None:
        return img
    h, w = camera.height, camera.width
    if img.shape[0] % h == 0 and img.shape[1] % w == 0 and img.shape[:2] != (h, w):
        return img[:h, :w]
    return img


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


def _timed_plys(folder: Path) -> list[tuple[int, Path]]:
    return sorted((int(m["t"]), f) for f in folder.glob("*.ply") if (m := _TIME_PLY.match(f.name)))


def _load_folder(p: Path) -> tuple[list[Gaussians], list[float]]:
    if (p / "scene.ply").is_file():
        return _split_times(load_ply(p / "scene.ply"))
    timed = _timed_plys(p) or (_timed_plys(p / "gaussians") if (p / "gaussians").is_dir() else [])
    if timed:
        return [load_ply(f) for _, f in timed], [float(t) for t, _ in timed]
    plys = sorted(p.glob("*.ply"))
    if len(plys) != 1:
        raise InputError(f"{p} holds no scene.ply, no per-time PLYs (scene_t000.ply, ...) and "
                         f"{len(plys)} other PLYs; pass the PLY file to view")
    return _split_times(load_ply(plys[0]))


def load_scene(source: Gaussians | str | Path, cameras: Cameras | dict[str, Cameras] | str | Path | None = None,
               image: np.ndarray | str | Path | None = None) -> Scene:
    """Collect what :func:`~lyra3d.viewer.view` shows from Gaussians, a scene file or an output folder (see
    the module notes). ``cameras`` and ``image`` override what is found beside the scene; given
    :class:`Cameras` (or a mapping of them), the first camera is the input camera."""
    folder: Path | None = None
    if isinstance(source, Gaussians):
        frames, times = _split_times(source)
        name, where = "Gaussians", "Gaussians"
    elif isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            folder = p
            frames, times = _load_folder(p)
        elif p.is_file():
            folder = p.parent
            frames, times = _split_times(_load_gaussians_file(p))
        else:
            raise InputError(f"nothing to view at {p}: no such file or folder")
        name, where = (p.resolve().name or str(p)), str(p)
    else:
        raise InputError(f"view needs Gaussians or a path, got {type(source).__name__}")

    if isinstance(cameras, Cameras):
        found = SceneCameras(split_trajectories(cameras), cameras[:1])
    elif isinstance(cameras, dict):
        found = SceneCameras(dict(cameras), _first_camera(cameras))
    elif isinstance(cameras, (str, Path)):
        found = read_scene_cameras(cameras)
    elif folder is not None and (folder / "cameras.json").is_file():
        found = read_scene_cameras(folder / "cameras.json")
    else:
        found = SceneCameras({})

    if isinstance(image, (str, Path)):
        img = _read_image(Path(image))
    elif image is not None:
        img = _as_rgb8(image)
    elif folder is not None and (folder / "input_view.png").is_file():
        img = _first_tile(_read_image(folder / "input_view.png"), found.input_camera)
    else:
        img = None
    return Scene(frames=frames, times=times, trajectories=found.trajectories, image=img, source=where, name=name,
                 input_camera=found.input_camera, center_depth=found.center_depth)
