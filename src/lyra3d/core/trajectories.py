"""Camera trajectories: a :class:`~lyra3d.core.cameras.Cameras` batch with one camera per frame.

Lyra's six (docs/design.md §3: left, right, up, zoom_out, zoom_in, spiral), extra presets (down, orbit,
dolly, static) and a smooth seeded fly-through; each starts at the input camera and turns to face a centre
point at the scene's centre depth, moving by a fraction of that depth times ``movement_factor``."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, look_at
from lyra3d.errors import InputError

#: Lyra's multi-trajectory set (docs/design.md §3), in order.
LYRA_TRAJECTORIES = ("left", "right", "up", "zoom_out", "zoom_in", "spiral")
#: Movement ranges of the six, as fractions of the scene's centre depth (docs/design.md §3).
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
        movement_factor: a user factor on the movement (docs/design.md §3).

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
    """Lyra's six trajectories (docs/design.md §3) from one input camera.

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
