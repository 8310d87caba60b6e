"""Fly-through videos: render a scene (3D Gaussians or a procedural world) along a named camera path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.progress import Progress
from lyra3d.core.trajectories import TRAJECTORY_NAMES, flythrough, trajectory
from lyra3d.errors import InputError

#: Camera paths a fly-through video can follow.
PATHS = TRAJECTORY_NAMES + ("flythrough",)


@dataclass
class FlythroughConfig:
    """How to film a scene."""

    path: str = "orbit"  # one of PATHS
    num_frames: int = 48
    width: int = 320
    height: int = 176
    fov_y_degrees: float = 50.0
    movement_factor: float = 1.0
    fps: float = 24.0
    backend: str = "auto"  # Gaussians only: see lyra3d.core.render.rasterize
    seed: int = 0  # for the random waypoints of "flythrough"


def camera_path(start: Cameras, center_depth: float, config: FlythroughConfig) -> Cameras:
    """The cameras of the configured path, starting at ``start`` (its first camera)."""
    if config.path not in PATHS:
        raise InputError(f"unknown camera path {config.path!r}; choose from {', '.join(PATHS)}")
    if config.path == "flythrough":
        return flythrough(start, config.num_frames, center_depth, seed=config.seed)
    return trajectory(config.path, start, config.num_frames, center_depth, movement_factor=config.movement_factor)


def gaussians_center_depth(gaussians: Gaussians, camera: Cameras) -> float:
    """Median z-depth of the Gaussians in front of ``camera`` weighted towards opaque ones (scene centre)."""
    w2c = camera.world_to_camera[0].to(gaussians.means)
    z = gaussians.means @ w2c[2, :3] + w2c[2, 3]
    front = (z > 1e-3) & (gaussians.alpha > 0.1)
    if int(front.sum()) == 0:
        raise InputError("no opaque Gaussians lie in front of the camera; pass cameras that look at the scene")
    return float(z[front].median())


def render_frames(scene, cameras: Cameras, backend: str = "auto", chunk: int = 4,
                  progress: Progress | None = None, stage: str = "render",
                  renderer: Callable[[object, Cameras], Tensor] | None = None) -> Tensor:
    """Render ``scene`` at every camera: ``(T, 3, H, W)``. ``scene`` is :class:`Gaussians` (rasterized with
    ``backend``), or anything that ``renderer(scene, cameras) → (B, 3, H, W)`` renders (e.g. a procedural
    world: ``renderer=lambda w, c: lyra3d.data.worlds.render(w, c).rgb``). ``progress(stage, frames done,
    len(cameras))`` after every ``chunk`` frames."""
    from lyra3d.core.render import rasterize

    if not isinstance(scene, Gaussians) and renderer is None:
        raise InputError(f"render_frames renders Gaussians; for a {type(scene).__name__} pass renderer=")

    out = []
    for i in range(0, len(cameras), chunk):
        cams = cameras[i: i + chunk]
        with torch.no_grad():
            if isinstance(scene, Gaussians):
                rgb = rasterize(scene, cams.to(scene.device), backend=backend).rgb
            else:
                rgb = renderer(scene, cams)
        out.append(rgb.cpu())
        if progress is not None:
            progress(stage, i + len(cams), len(cameras))
    return torch.cat(out)


def default_start_camera(config: FlythroughConfig, cameras_json: Path | None = None) -> Cameras:
    """The input camera of a scene: the first camera of ``cameras_json`` if given, else the identity camera."""
    if cameras_json is not None:
        cams = Cameras.load_json(cameras_json)
        return cams[0].resized(config.width, config.height)
    return default_camera(config.width, config.height, config.fov_y_degrees)
