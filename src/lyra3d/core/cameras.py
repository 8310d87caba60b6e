"""Cameras: a batched pinhole camera, its rays and Plücker embeddings.

Conventions (docs/design.md §2): OpenCV camera axes (x right, y down, z forward), a ``world_to_camera`` 4×4
matrix per camera, pinhole intrinsics ``fx, fy, cx, cy`` in pixels with pixel centres at ``+0.5``, and one
``width × height`` for the whole batch. The world frame of a generated scene is the input camera's frame,
so the world's "up" is ``-y``. Camera paths live in :mod:`lyra3d.core.trajectories`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.files import read_json
from lyra3d.errors import InputError

WORLD_UP = (0.0, -1.0, 0.0)  # OpenCV: y points down, so up is -y


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
    """Plücker ray embedding ``(B, 6, H, W)``: unit direction ``d`` and moment ``o × d`` (docs/design.md §2)."""
    o, d = pixel_rays(cameras)
    return torch.cat([d, torch.linalg.cross(o, d)], dim=-1).permute(0, 3, 1, 2).contiguous()


def default_camera(width: int = 320, height: int = 176, fov_y_degrees: float = 50.0) -> Cameras:
    """An identity-pose camera (the world frame of a generated scene) with a vertical field of view."""
    return Cameras(torch.eye(4), intrinsics_from_fov(fov_y_degrees, width, height), width, height)
