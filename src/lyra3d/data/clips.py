"""Dynamic clips: monocular input videos of procedural worlds with moving objects, for video → 4D.

:func:`make_clip` renders one (:func:`lyra3d.data.worlds.make_world` with ``dynamic=True``): 17 frames at
320×176 by default, a static or slowly moving camera, frame times spread over
:data:`lyra3d.data.worlds.DYNAMIC_HORIZON`. The clip keeps its world so that the ground truth at any (time,
camera) can be ray cast, for evaluation only (:meth:`DynamicClip.truth`, :func:`moving_mask`).
:func:`reverse_clip` / :func:`with_reversed` give the time-reversed copy that doubles the time coverage of
4D training data."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.trajectories import LYRA_MOVEMENT_RANGES, LYRA_TRAJECTORIES, trajectory
from lyra3d.data import worlds
from lyra3d.data.worlds import DYNAMIC_HORIZON, World, WorldRender
from lyra3d.errors import InputError

#: Frames of a clip by default (``1 + 4·4``: what the tokenizer compresses to 5 latent frames).
CLIP_FRAMES = 17
#: Camera paths of a clip: a still camera, or a slow move along one of Lyra's six (whose paths the
#: moving objects of :func:`~lyra3d.data.worlds.make_world` keep clear of).
CAMERA_MOTIONS = ("static",) + LYRA_TRAJECTORIES
#: Movement of a "slowly moving" camera over the whole clip, as a fraction of the scene's centre depth.
SLOW_MOVEMENT = 0.05


# -- dynamic clips --------------------------------------------------------------------------------------------
@dataclass
class DynamicClip:
    """A monocular video of a dynamic procedural world.

    Attributes:
        frames: ``(T, 3, H, W)`` the input video in [0, 1].
        cameras: the ``T`` cameras that filmed it.
        times: ``(T,)`` seconds of each frame (increasing, or decreasing for a reversed clip).
        world: the scene. Its truth is for evaluation only: nothing that trains or runs a model reads it.
        seed: the world's seed.
        camera_motion: the camera path's name (:data:`CAMERA_MOTIONS`).
        reversed: whether this is the time-reversed copy of a clip.
    """

    frames: Tensor
    cameras: Cameras
    times: Tensor
    world: World
    seed: int
    camera_motion: str = "static"
    reversed: bool = False

    def __len__(self) -> int:
        return self.frames.shape[0]

    def truth(self, cameras: Cameras, times: float | Tensor) -> WorldRender:
        """Ray-cast ground truth of the world at ``cameras`` and ``times`` (a number, or one per camera).
        Evaluation only."""
        with torch.no_grad():
            return worlds.render(self.world, cameras, times)


def clip_times(num_frames: int = CLIP_FRAMES, duration: float = DYNAMIC_HORIZON, start: float = 0.0) -> Tensor:
    """``(T,)`` frame times spread evenly over ``[start, start + duration]`` seconds (within the horizon for
    which :func:`~lyra3d.data.worlds.make_world` keeps moving objects clear of the camera paths)."""
    if num_frames < 2:
        raise InputError(f"a clip needs at least 2 frames, got {num_frames}")
    if not (duration > 0 and start >= 0 and start + duration <= DYNAMIC_HORIZON + 1e-9):
        raise InputError(f"clip times must lie in [0, {DYNAMIC_HORIZON}] s; got start {start}, duration {duration}")
    return torch.linspace(start, start + duration, num_frames)


def make_clip(seed: int, num_frames: int = CLIP_FRAMES, width: int = 320, height: int = 176,
              camera_motion: str = "static", movement: float = SLOW_MOVEMENT, duration: float = DYNAMIC_HORIZON,
              dynamic: bool = True, device: str | torch.device = "cpu") -> DynamicClip:
    """The input video of world ``seed`` (dynamic by default) filmed from the default camera.

    Args:
        camera_motion: ``"static"``, or one of Lyra's six trajectory names for a slow camera move along it.
        movement: how far the camera moves over the clip (fraction of the centre depth); at most the top of
            that trajectory's range (the paths moving objects keep clear of).
        duration: seconds the clip spans (frame times from 0, evenly spaced).
        dynamic: ``False`` films the static world of the same seed (same layout, nothing moves).
        device: where to ray-cast the frames (the clip is returned on the CPU).
    """
    if camera_motion not in CAMERA_MOTIONS:
        raise InputError(f"unknown camera motion {camera_motion!r}; choose from {', '.join(CAMERA_MOTIONS)}")
    if camera_motion != "static" and not 0 <= movement <= LYRA_MOVEMENT_RANGES[camera_motion][1]:
        raise InputError(f"movement must be in [0, {LYRA_MOVEMENT_RANGES[camera_motion][1]}] for a "
                         f"{camera_motion} camera, got {movement}")
    world = worlds.make_world(seed, dynamic=dynamic)
    times = clip_times(num_frames, duration)
    cams = trajectory(camera_motion, default_camera(width, height), num_frames, worlds.center_depth(world),
                      movement=movement)
    with torch.no_grad():
        frames = worlds.render(world, cams.to(device), times.to(device)).rgb.cpu()
    return DynamicClip(frames, cams, times, world, int(seed), camera_motion)


def reverse_clip(clip: DynamicClip) -> DynamicClip:
    """The clip played backwards: frame ``i`` is frame ``T − 1 − i``, with its camera and its time (times
    stay absolute, so a reversed clip's times decrease). Reversing twice gives the clip back."""
    idx = torch.arange(len(clip) - 1, -1, -1)
    return replace(clip, frames=clip.frames[idx], cameras=clip.cameras[idx], times=clip.times[idx],
                   reversed=not clip.reversed)


def with_reversed(clip: DynamicClip) -> list[DynamicClip]:
    """``[clip, reversed copy]``: each starts at one end of the time span, where the video teacher is best
    (its first frame is the input's), so together they cover both ends (docs/design.md §4 "Dynamic")."""
    return [clip, reverse_clip(clip)]


def moving_object_mask(world: World, surface: Tensor) -> Tensor:
    """``bool`` mask of the pixels of a render's ``surface (B, 1, H, W)`` ids that show a moving object."""
    first = len(world.planes)
    ids = [first + i for i, o in enumerate(world.objects) if o.motion.moves]
    if not ids:
        return torch.zeros_like(surface, dtype=torch.bool)
    return torch.isin(surface, torch.tensor(ids, device=surface.device))


def moving_mask(world: World, cameras: Cameras, times: float | Tensor, reference_time: float = 0.0,
                tolerance: float = 2 / 255, truth: WorldRender | None = None,
                reference: WorldRender | None = None) -> Tensor:
    """``(B, 1, H, W) bool``: the pixels whose truth at ``times`` differs from the truth at ``reference_time``
    seen by the same camera: another surface (an object came or went) or a colour change above
    ``tolerance`` (a textured object turned or slid, a shadow moved). Empty for a static world.

    ``truth`` / ``reference``: renders already made at (cameras, times) / (cameras, reference_time).
    """
    with torch.no_grad():
        now = truth if truth is not None else worlds.render(world, cameras, times)
        ref = reference if reference is not None else worlds.render(world, cameras, reference_time)
    changed = (now.rgb - ref.rgb).abs().amax(1, keepdim=True) > tolerance
    return changed | (now.surface != ref.surface)


def dynamic_eval_seeds(n: int, offset: int = 0, min_fraction: float = 0.01, width: int = 160,
                       height: int = 88) -> list[int]:
    """The first ``n`` held-out seeds (from :data:`~lyra3d.data.worlds.EVAL_SEED_START` + ``offset``) whose dynamic
    world visibly moves in the default view over the horizon (at least ``min_fraction`` of the pixels change
    between time 0 and the end)."""
    out, seed = [], worlds.EVAL_SEED_START + offset
    cam = default_camera(width, height)
    while len(out) < n:
        world = worlds.make_world(seed, dynamic=True)
        if world.dynamic and float(moving_mask(world, cam, DYNAMIC_HORIZON).float().mean()) >= min_fraction:
            out.append(seed)
        seed += 1
    return out
