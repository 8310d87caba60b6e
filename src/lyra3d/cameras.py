"""Cameras: a batched pinhole camera, rays, Plücker embeddings and camera trajectories.

Conventions (DESIGN §2): OpenCV camera axes (x right, y down, z forward), a ``world_to_camera`` 4×4
matrix per camera, pinhole intrinsics ``fx, fy, cx, cy`` in pixels with pixel centres at ``+0.5``, and one
``width × height`` for the whole batch. The world frame of a generated scene is the input camera's frame,
so the world's "up" is ``-y``.

A *trajectory* is simply a :class:`Cameras` batch with one camera per frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.errors import InputError
from lyra3d.files import read_json

WORLD_UP = (0.0, -1.0, 0.0)  # OpenCV: y points down, so up is -y

#: Lyra's multi-trajectory set (DESIGN §3), in order.
LYRA_TRAJECTORIES = ("left", "right", "up", "zoom_out", "zoom_in", "spiral")
#: Movement ranges of the six, as fractions of the scene's centre depth (DESIGN §3).
LYRA_MOVEMENT_RANGES = {
    "left": (0.2, 0.3),
    "right": (0.2, 0.3),
    "up": (0.1, 0.2),
    "zoom_out": (0.3, 0.4),
    "zoom_in": (0.3, 0.4),
    "spiral": (0.4, 0.6),
}
#: Every named path :func:`trajectory` knows: the six plus extra presets.
TRAJECTORY_NAMES = LYRA_TRAJECTORIES + ("down", "orbit", "dolly", "static")


@dataclass
class Cameras:
    """A batch of ``B`` pinhole cameras sharing one image size.

    Attributes:
        world_to_camera: ``(B, 4, 4)`` rigid transforms, OpenCV axes.
        intrinsics: ``(B, 4)`` as ``fx, fy, cx, cy`` in pixels.
        width, height: image size in pixels.
    """

    world_to_camera: Tensor
    intrinsics: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.world_to_camera.ndim == 2:
            self.world_to_camera = self.world_to_camera[None]
        if self.intrinsics.ndim == 1:
            self.intrinsics = self.intrinsics[None]
        b = self.world_to_camera.shape[0]
        if self.world_to_camera.shape[1:] != (4, 4):
            raise InputError(f"world_to_camera must be (B, 4, 4), got {tuple(self.world_to_camera.shape)}")
        if self.intrinsics.shape[-1] != 4:
            raise InputError(f"intrinsics must be (B, 4) = fx, fy, cx, cy; got {tuple(self.intrinsics.shape)}")
        if self.intrinsics.shape[0] == 1 and b > 1:
            self.intrinsics = self.intrinsics.expand(b, 4)
        if self.intrinsics.shape[0] != b:
            raise InputError(f"{b} poses but {self.intrinsics.shape[0]} intrinsics")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InputError(f"image size must be positive, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)

    # -- views -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.world_to_camera.shape[0]

    def __getitem__(self, index) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Cameras(self.world_to_camera[index], self.intrinsics[index], self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.world_to_camera.device

    def to(self, device=None, dtype=None) -> "Cameras":
        return Cameras(self.world_to_camera.to(device, dtype), self.intrinsics.to(device, dtype),
                       self.width, self.height)

    @property
    def fx(self) -> Tensor:
        return self.intrinsics[:, 0]

    @property
    def fy(self) -> Tensor:
        return self.intrinsics[:, 1]

    @property
    def cx(self) -> Tensor:
        return self.intrinsics[:, 2]

    @property
    def cy(self) -> Tensor:
        return self.intrinsics[:, 3]

    @property
    def K(self) -> Tensor:
        """``(B, 3, 3)`` intrinsic matrices."""
        k = torch.zeros(len(self), 3, 3, dtype=self.intrinsics.dtype, device=self.device)
        k[:, 0, 0], k[:, 1, 1] = self.fx, self.fy
        k[:, 0, 2], k[:, 1, 2] = self.cx, self.cy
        k[:, 2, 2] = 1.0
        return k

    @property
    def camera_to_world(self) -> Tensor:
        """``(B, 4, 4)`` inverse poses (rigid inverse, exact for orthonormal rotations)."""
        return rigid_inverse(self.world_to_camera)

    @property
    def centers(self) -> Tensor:
        """``(B, 3)`` camera centres in world space."""
        return self.camera_to_world[:, :3, 3]

    def resized(self, width: int, height: int) -> "Cameras":
        """The same cameras at another image size (intrinsics scaled)."""
        sx, sy = width / self.width, height / self.height
        scale = torch.tensor([sx, sy, sx, sy], dtype=self.intrinsics.dtype, device=self.device)
        return Cameras(self.world_to_camera, self.intrinsics * scale, width, height)

    @staticmethod
    def cat(cameras: Sequence["Cameras"]) -> "Cameras":
        """Concatenate batches of the same image size."""
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise InputError(f"cannot concatenate cameras of different sizes {sorted(sizes)}")
        w, h = sizes.pop()
        return Cameras(torch.cat([c.world_to_camera for c in cameras]),
                       torch.cat([c.intrinsics for c in cameras]), w, h)

    # -- (de)serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "convention": "opencv",
            "frames": [
                {"fx": float(k[0]), "fy": float(k[1]), "cx": float(k[2]), "cy": float(k[3]),
                 "world_to_camera": [[float(v) for v in row] for row in m]}
                for k, m in zip(self.intrinsics.detach().cpu(), self.world_to_camera.detach().cpu())
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Cameras":
        try:
            frames = data["frames"]
            w2c = torch.tensor([f["world_to_camera"] for f in frames], dtype=torch.float32)
            k = torch.tensor([[f["fx"], f["fy"], f["cx"], f["cy"]] for f in frames], dtype=torch.float32)
            return cls(w2c, k, int(data["width"]), int(data["height"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"not a lyra3d cameras record ({type(e).__name__}: {e}); "
                             "expected keys width, height, frames[fx, fy, cx, cy, world_to_camera]") from None

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load_json(cls, path: str | Path) -> "Cameras":
        return cls.from_dict(read_json(path, "cameras file"))


# -- geometry helpers -------------------------------------------------------------------------------------
def rigid_inverse(m: Tensor) -> Tensor:
    """Inverse of rigid ``(..., 4, 4)`` transforms."""
    r, t = m[..., :3, :3], m[..., :3, 3:]
    out = torch.zeros_like(m)
    rt = r.transpose(-1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3:] = -rt @ t
    out[..., 3, 3] = 1.0
    return out


def focal_from_fov(fov_degrees: float, size: int) -> float:
    """Focal length in pixels for a field of view (degrees) spanning ``size`` pixels."""
    if not 0.0 < fov_degrees < 180.0:
        raise InputError(f"field of view must be in (0, 180) degrees, got {fov_degrees}")
    return 0.5 * size / math.tan(math.radians(fov_degrees) / 2)


def intrinsics_from_fov(fov_y_degrees: float, width: int, height: int) -> Tensor:
    """``(4,)`` intrinsics ``fx, fy, cx, cy`` of a centred pinhole with square pixels and vertical FOV."""
    f = focal_from_fov(fov_y_degrees, height)
    return torch.tensor([f, f, width / 2, height / 2], dtype=torch.float32)


def look_at(eyes: Tensor, targets: Tensor, up: Sequence[float] | Tensor = WORLD_UP) -> Tensor:
    """World-to-camera matrices ``(B, 4, 4)`` of cameras at ``eyes (B, 3)`` facing ``targets (B, 3)``.

    OpenCV axes: the camera's +z points at the target, +x right, +y down; ``up`` is the world's up.
    """
    eyes, targets = torch.atleast_2d(eyes), torch.atleast_2d(targets)
    up = torch.as_tensor(up, dtype=eyes.dtype, device=eyes.device).expand_as(eyes)
    z = torch.nn.functional.normalize(targets - eyes, dim=-1)
    x = torch.linalg.cross(z, up)
    # Looking straight along `up`: any x orthogonal to z will do.
    degenerate = x.norm(dim=-1, keepdim=True) < 1e-6
    alt = torch.linalg.cross(z, torch.tensor([1.0, 0.0, 0.0], dtype=eyes.dtype, device=eyes.device).expand_as(z))
    x = torch.nn.functional.normalize(torch.where(degenerate, alt, x), dim=-1)
    y = torch.linalg.cross(z, x)
    c2w = torch.zeros(eyes.shape[0], 4, 4, dtype=eyes.dtype, device=eyes.device)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x, y, z, eyes
    c2w[:, 3, 3] = 1.0
    return rigid_inverse(c2w)


def pixel_rays(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """World-space rays through every pixel centre.

    Returns:
        origins ``(B, H, W, 3)`` and unit directions ``(B, H, W, 3)``.
    """
    dev, dt = cameras.device, cameras.intrinsics.dtype
    v, u = torch.meshgrid(torch.arange(cameras.height, device=dev, dtype=dt) + 0.5,
                          torch.arange(cameras.width, device=dev, dtype=dt) + 0.5, indexing="ij")
    fx, fy, cx, cy = (cameras.intrinsics[:, i, None, None] for i in range(4))
    d_cam = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u).expand_as((u - cx) / fx)], dim=-1)
    c2w = cameras.camera_to_world
    d_world = torch.einsum("bij,bhwj->bhwi", c2w[:, :3, :3], d_cam)
    d_world = torch.nn.functional.normalize(d_world, dim=-1)
    origins = c2w[:, None, None, :3, 3].expand_as(d_world)
    return origins, d_world


def plucker_rays(cameras: Cameras) -> Tensor:
    """Plücker ray embedding ``(B, 6, H, W)``: unit direction ``d`` and moment ``o × d`` (DESIGN §2)."""
    o, d = pixel_rays(cameras)
    return torch.cat([d, torch.linalg.cross(o, d)], dim=-1).permute(0, 3, 1, 2).contiguous()


# -- trajectories --------------------------------------------------------------------------------------------
def _camera_frame(camera: Cameras) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre and the right, down, forward axes (world space) of the first camera in a batch."""
    c2w = camera.camera_to_world[0]
    return c2w[:3, 3], c2w[:3, 0], c2w[:3, 1], c2w[:3, 2]


def _ease(t: Tensor) -> Tensor:
    """Smooth start and stop (cosine ease), 0→1."""
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def trajectory(name: str, camera: Cameras, num_frames: int, center_depth: float,
               movement: float | None = None, movement_factor: float = 1.0) -> Cameras:
    """A named camera path that starts at ``camera`` (its first camera) and keeps facing the scene centre.

    Args:
        name: one of :data:`TRAJECTORY_NAMES`.
        camera: the input camera (batch of at least one; the first is used).
        num_frames: cameras in the path; frame 0 is the input camera.
        center_depth: depth of the scene centre in front of the camera (scene units): the look-at point is
            ``center + center_depth * forward`` and movements scale with it.
        movement: movement as a fraction of ``center_depth`` (a radius for ``spiral``, an angle fraction of
            a half turn for ``orbit``); defaults to the middle of Lyra's range for the six.
        movement_factor: a user factor on the movement (DESIGN §3).

    Returns:
        ``Cameras`` with ``num_frames`` cameras and the input camera's intrinsics.
    """
    if name not in TRAJECTORY_NAMES:
        raise InputError(f"unknown trajectory {name!r}; choose from {', '.join(TRAJECTORY_NAMES)}")
    if num_frames < 1:
        raise InputError(f"num_frames must be >= 1, got {num_frames}")
    if not (center_depth > 0 and math.isfinite(center_depth)):
        raise InputError(f"center_depth must be a positive finite number, got {center_depth}")
    if movement is None:
        lo, hi = LYRA_MOVEMENT_RANGES.get(name, (0.2, 0.3))
        movement = 0.5 * (lo + hi)
    amount = movement * movement_factor * center_depth
    c, right, down, fwd = _camera_frame(camera)
    dt = c.dtype
    t = torch.linspace(0, 1, num_frames, dtype=dt, device=c.device)[:, None] if num_frames > 1 \
        else torch.zeros(1, 1, dtype=dt, device=c.device)
    target = c + center_depth * fwd
    s = _ease(t)
    if name == "left":
        eyes = c - s * amount * right
    elif name == "right":
        eyes = c + s * amount * right
    elif name == "up":
        eyes = c - s * amount * down
    elif name == "down":
        eyes = c + s * amount * down
    elif name == "zoom_in":
        eyes = c + s * amount * fwd
    elif name == "zoom_out":
        eyes = c - s * amount * fwd
    elif name == "dolly":  # forward while drifting right, for fly-through previews
        eyes = c + s * amount * (fwd + 0.3 * right)
        target = eyes + center_depth * fwd
    elif name == "static":
        eyes = c.expand(num_frames, 3)
    elif name == "spiral":
        # Radius grows from 0 to `amount` over two clockwise turns (clockwise as seen in the image, y down).
        theta = 4 * math.pi * t
        eyes = c + amount * t * (torch.cos(theta) * right + torch.sin(theta) * down)
    else:  # orbit: rotate about the target around the up axis, `movement` of a half turn
        angle = math.pi * movement * movement_factor * t
        offset = c - target
        eyes = target + torch.cos(angle) * offset + torch.sin(angle) * torch.linalg.cross(-down, offset)[None]
    eyes = eyes.expand(num_frames, 3)
    targets = target.expand(num_frames, 3) if target.ndim == 1 else target
    up = -down
    w2c = look_at(eyes, targets, up)
    return Cameras(w2c, camera.intrinsics[:1].expand(num_frames, 4).clone(), camera.width, camera.height)


def lyra_trajectories(camera: Cameras, num_frames: int, center_depth: float, movement_factor: float = 1.0,
                      generator: torch.Generator | None = None,
                      names: Sequence[str] = LYRA_TRAJECTORIES) -> dict[str, Cameras]:
    """Lyra's six trajectories (DESIGN §3) from one input camera.

    With a ``generator`` each movement is drawn uniformly from its range (as in training); without one the
    middle of each range is used (deterministic inference).
    """
    out = {}
    for name in names:
        lo, hi = LYRA_MOVEMENT_RANGES.get(name, (0.2, 0.3))
        if generator is not None:
            movement = lo + (hi - lo) * float(torch.rand((), generator=generator))
        else:
            movement = 0.5 * (lo + hi)
        out[name] = trajectory(name, camera, num_frames, center_depth, movement, movement_factor)
    return out


def flythrough(camera: Cameras, num_frames: int, center_depth: float, num_waypoints: int = 4,
               spread: float = 0.3, seed: int = 0) -> Cameras:
    """A smooth fly-through: a Catmull-Rom spline through random waypoints near the input camera.

    The camera drifts forward into the scene while wandering sideways and vertically by ``spread`` times the
    centre depth, always looking a little ahead along the path. Deterministic for a ``seed``.
    """
    if num_frames < 2:
        raise InputError(f"a fly-through needs at least 2 frames, got {num_frames}")
    c, right, down, fwd = _camera_frame(camera)
    g = torch.Generator().manual_seed(seed)
    k = max(2, num_waypoints)
    offsets = (torch.rand(k, 3, generator=g) * 2 - 1).to(c)
    along = torch.linspace(0, 0.5, k, dtype=c.dtype, device=c.device)
    pts = c + center_depth * (along[:, None] * fwd + spread * (offsets[:, :1] * right + 0.3 * offsets[:, 1:2] * down))
    pts[0] = c
    # Catmull-Rom through the waypoints (end points duplicated).
    p = torch.cat([pts[:1], pts, pts[-1:]])
    u = torch.linspace(0, k - 1, num_frames, dtype=c.dtype, device=c.device)
    i = u.floor().clamp(max=k - 2).long()
    s = (u - i)[:, None]
    p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
    eyes = 0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * s**3)
    return Cameras(look_at(eyes, eyes + center_depth * fwd, -down), camera.intrinsics[:1].expand(num_frames, 4).clone(),
                   camera.width, camera.height)


def default_camera(width: int = 320, height: int = 176, fov_y_degrees: float = 50.0) -> Cameras:
    """An identity-pose camera (the world frame of a generated scene) with a vertical field of view."""
    return Cameras(torch.eye(4), intrinsics_from_fov(fov_y_degrees, width, height), width, height)
