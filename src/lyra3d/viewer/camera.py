"""Where the viewer's camera starts: an OpenCV camera in viser's terms, or a default view of bare Gaussians.

viser places its camera by ``position``, ``look_at``, ``up`` and a vertical ``fov``; its browser side is
three.js, whose camera looks down its own −z with +y up (OpenGL). An OpenCV camera (lyra3d's: x right,
y down, z forward) with camera-to-world rotation ``R = [x y z]`` and centre ``c`` is the same view as
``position = c``, ``look_at = c + d·z`` (any ``d > 0``), ``up = −y``, ``fov = 2·atan(H / 2fy)``, and
``wxyz`` (viser's per-client ``camera.wxyz``, which is OpenCV's ``R``) = the quaternion of ``R``. A
principal point off the image centre is not representable there; lyra3d's cameras have it centred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import rotmat_to_quat

#: The vertical field of view of lyra3d's default camera (320×176, fy 188.7): 50°.
DEFAULT_FOV_Y = math.radians(50.0)

#: The canvas aspect assumed when framing bare Gaussians (a browser window's is unknown beforehand).
DEFAULT_ASPECT = 16.0 / 9.0


@dataclass(frozen=True)
class ViewPose:
    """A viewer camera: ``position``, ``look_at``, ``up`` (world, float64 ``(3,)``), vertical ``fov_y``
    (radians) and the ``aspect`` (width / height) whose whole frame it should show."""

    position: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    fov_y: float
    aspect: float

    @property
    def rotation(self) -> np.ndarray:
        """``(3, 3)`` camera-to-world rotation, OpenCV axes (columns: right, down, forward)."""
        forward = _unit(self.look_at - self.position)
        right = _unit(np.cross(forward, self.up))
        return np.stack([right, np.cross(forward, right), forward], axis=1)

    @property
    def wxyz(self) -> np.ndarray:
        """The rotation as a ``wxyz`` quaternion (viser's ``CameraHandle.wxyz``)."""
        return rotmat_to_quat(torch.from_numpy(self.rotation)).numpy()

    def world_to_camera(self) -> np.ndarray:
        """``(4, 4)`` OpenCV world-to-camera transform (what :class:`Cameras` holds)."""
        r = self.rotation
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ self.position
        return m

    def fov_for(self, canvas_aspect: float) -> float:
        """The vertical field of view that shows this pose's whole frame on a canvas of ``canvas_aspect``: the
        same as ``fov_y`` on a canvas at least as wide, wider on a narrower one (the horizontal extent kept)."""
        if not canvas_aspect > 0 or canvas_aspect >= self.aspect:
            return self.fov_y
        return 2.0 * math.atan(math.tan(0.5 * self.fov_y) * self.aspect / canvas_aspect)

    def cameras(self, width: int, height: int) -> Cameras:
        """This view as a lyra3d camera of ``width`` × ``height`` pixels (vertical field of view
        :meth:`fov_for` that aspect, centred principal point): what the viewer shows on a canvas of that size,
        for :func:`~lyra3d.core.render.rasterize`."""
        f = 0.5 * height / math.tan(0.5 * self.fov_for(width / height))
        w2c = torch.from_numpy(self.world_to_camera()).float()
        return Cameras(w2c, torch.tensor([f, f, 0.5 * width, 0.5 * height]), width, height)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not n > 1e-12:
        raise ValueError(f"cannot normalise a zero vector {v}")
    return v / n


def pose_from_camera(cameras: Cameras, index: int = 0, look_distance: float = 1.0) -> ViewPose:
    """Camera ``index`` of ``cameras`` (OpenCV) as a :class:`ViewPose`, looking at the point
    ``look_distance`` in front of it (the orbit centre: the scene centre's depth is a good choice)."""
    c2w = cameras.camera_to_world[index].detach().cpu().double().numpy()
    fy = float(cameras.intrinsics[index, 1])
    centre, forward = c2w[:3, 3], c2w[:3, 2]
    return ViewPose(position=centre.copy(), look_at=centre + max(look_distance, 1e-6) * forward,
                    up=-c2w[:3, 1].copy(), fov_y=2.0 * math.atan(0.5 * cameras.height / fy),
                    aspect=cameras.width / cameras.height)


#: The sides a bare scene may be viewed from, in order of preference on a tie: (axis, sign of the view
#: direction). The first is OpenCV's own: from −z looking along +z. Views from above or below are left out:
#: the viewer keeps −y up.
_SIDES = ((2, 1.0), (2, -1.0), (0, 1.0), (0, -1.0))


#: How far the first view of bare Gaussians looks down at them (the ground of a scene shows).
FRAMING_PITCH = math.radians(20.0)


def framing_pose(means: np.ndarray, fov_y: float = DEFAULT_FOV_Y, aspect: float = DEFAULT_ASPECT,
                 pitch: float = FRAMING_PITCH) -> ViewPose:
    """A first view of Gaussians without cameras: from their densest side, a little above, framing their bulk.

    The densest side is the one of the bounding box (2nd–98th percentiles) of ``means`` with the most
    Gaussians within a quarter of its depth: 3DGS scenes are densest where their cameras were (a pixel-aligned
    decoder's Gaussians crowd near its camera; a fitted scene's near its views), so that side faces the
    surfaces the way they were seen. Views from above or below are left out (the viewer keeps −y up). The
    camera looks at the median Gaussian, ``pitch`` down from the horizontal, from far enough to frame the
    interquartile range around it (a box's half-size for uniformly spread Gaussians) with a 10 % margin.
    """
    pts = np.asarray(means, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        pts = np.zeros((1, 3))
    lo, hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)
    u = (pts - lo) / np.maximum(hi - lo, 1e-12)
    counts = [int(((u[:, axis] < 0.25) if sign > 0 else (u[:, axis] > 0.75)).sum()) for axis, sign in _SIDES]
    axis, sign = _SIDES[int(np.argmax(counts))]  # argmax takes the first of equal counts
    across = 2 - axis  # the horizontal axis across the view (x for a view along z, z for one along x)
    centre = np.median(pts, axis=0)
    half = np.percentile(pts, 75, axis=0) - np.percentile(pts, 25, axis=0)
    t = math.tan(0.5 * fov_y)
    tall = half[1] * math.cos(pitch) + half[axis] * math.sin(pitch)  # the bulk's height on screen
    distance = 1.1 * max(tall / t, half[across] / (t * aspect))
    distance = max(distance, 1e-3 * max(1.0, float(np.abs(centre).max())))
    forward = np.zeros(3)
    forward[axis] = sign * math.cos(pitch)
    forward[1] = math.sin(pitch)  # down: OpenCV's y points down
    return ViewPose(position=centre - distance * forward, look_at=centre, up=np.array([0.0, -1.0, 0.0]),
                    fov_y=fov_y, aspect=aspect)
