"""A procedural world from a seed (:func:`make_world`): objects, materials, floor, walls, sky and light drawn
from the seed alone, placed clear of the six trajectories' camera paths; with ``dynamic=True`` some objects
move (and keep clear of the cameras over the whole horizon)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from lyra3d.core.cameras import default_camera
from lyra3d.core.trajectories import LYRA_MOVEMENT_RANGES, LYRA_TRAJECTORIES, trajectory
from lyra3d.data.worlds.raycast import _CENTER_DEPTH_SIZE, _GROUND_EXTENT, _measure_center_depth, _pose, render
from lyra3d.data.worlds.scene import (
    _KINDS,
    DYNAMIC_HORIZON,
    PALETTE,
    SKIES,
    TEXTURES,
    Box,
    Cylinder,
    Light,
    Material,
    Motion,
    Object3D,
    Plane,
    Sky,
    Sphere,
    World,
)
from lyra3d.errors import InputError


# -- world generation ---------------------------------------------------------------------------------
def _pick(rng: np.random.RandomState, items: Sequence, p: Sequence[float] | None = None):
    return items[int(rng.choice(len(items), p=p))]


#: Colour pairs of moderate contrast for large surfaces (floors, walls): big high-contrast patterns make
#: every frame mostly pattern edges.
_SURFACE_PAIRS = (("gray", "white"), ("white", "gray"), ("brown", "orange"), ("green", "yellow"),
                  ("blue", "cyan"), ("gray", "black"), ("orange", "yellow"), ("purple", "pink"),
                  ("green", "cyan"), ("brown", "black"), ("white", "yellow"), ("pink", "white"))


def _material(rng: np.random.RandomState, pairs: Sequence[tuple[str, str]], textures: Sequence[str],
              tex_p: Sequence[float], scale: tuple[float, float], axes: Sequence[int]) -> Material:
    color, color2 = _pick(rng, pairs)
    texture = _pick(rng, textures, tex_p)
    return Material(color=color, texture=texture, color2=color2, scale=float(rng.uniform(*scale)),
                    axis=int(_pick(rng, axes)), noise_seed=int(rng.randint(0, 1 << 20)))


def _sample_object(rng: np.random.RandomState) -> Object3D:
    """An object of random kind, size and material, resting on the plane y = 0 at x = z = 0."""
    kind = _pick(rng, _KINDS, (0.4, 0.35, 0.25))
    colors = [c for c in PALETTE if c != "black"]
    pairs = [(a, b) for a in colors for b in PALETTE if b != a]
    mat = _material(rng, pairs, TEXTURES, (0.4, 0.2, 0.2, 0.1, 0.1), (0.15, 0.35), (0, 1, 1))
    yaw = float(rng.uniform(-math.pi, math.pi))
    if kind == "sphere":
        r = float(rng.uniform(0.35, 0.9))
        return Sphere((0.0, -r, 0.0), r, mat, yaw=yaw)
    if kind == "box":
        hs = tuple(float(v) for v in rng.uniform(0.3, 0.8, size=3))
        return Box((0.0, -hs[1], 0.0), hs, mat, yaw=yaw)
    hh = float(rng.uniform(0.4, 1.1))
    return Cylinder((0.0, -hh, 0.0), float(rng.uniform(0.25, 0.55)), hh, mat, yaw=yaw)


def _sample_motion(rng: np.random.RandomState, obj: Object3D) -> Motion:
    if rng.uniform() < 0.5:
        speed, heading = rng.uniform(0.25, 0.6), rng.uniform(0, 2 * math.pi)
        return Motion("linear", velocity=(float(speed * math.cos(heading)), 0.0, float(speed * math.sin(heading))))
    radius, phase = rng.uniform(0.4, 1.2), rng.uniform(0, 2 * math.pi)
    px, pz = obj.center[0] + radius * math.cos(phase), obj.center[2] + radius * math.sin(phase)
    omega = rng.uniform(0.35, 0.9) * (1 if rng.uniform() < 0.5 else -1)
    return Motion("circular", pivot=(float(px), float(pz)), angular_speed=float(omega))


def _path_centres(cd: float) -> Tensor:
    """``(N, 3)`` camera centres of Lyra's six trajectories at the top of their movement ranges."""
    cam = default_camera(*_CENTER_DEPTH_SIZE)
    out = [trajectory(name, cam, 33, cd, movement=LYRA_MOVEMENT_RANGES[name][1]).centers
           for name in LYRA_TRAJECTORIES]
    return torch.cat(out).double()


def _object_clear(obj: Object3D, eyes: Tensor, margin: float) -> bool:
    """Whether ``obj`` (over ``[0, DYNAMIC_HORIZON]`` if it moves) keeps ``margin`` from every eye."""
    times = torch.linspace(0, DYNAMIC_HORIZON, 17, dtype=torch.float64) if obj.motion.moves \
        else torch.zeros(1, dtype=torch.float64)
    x, y, z, _ = _pose(obj, times)
    c = torch.stack([x, y, z], dim=-1)  # (T, 3)
    return bool(torch.cdist(eyes, c).min() > obj.bounding_radius + margin)


def make_world(seed: int, *, dynamic: bool = False, num_objects: int | None = None,
               room: bool | None = None) -> World:
    """A random world, a pure function of its arguments (same seed → same world on every machine).

    Objects rest on the ground in front of the input camera (z about 2.5–7), do not overlap, are visible in
    the default view and stay clear of Lyra's six trajectories at their largest movements (with
    ``movement_factor`` 1): objects in the way are dropped, and the ground is lowered where the spiral
    would dip below it.

    Args:
        seed: any integer in ``[0, 2**32)``; < :data:`TRAIN_SEEDS_END` for training worlds.
        dynamic: give some objects (at least one) a linear or circular motion; the layout is the same as
            the static world of the same seed.
        num_objects: objects to try to place (default: 3–7, drawn from the seed).
        room: surround the scene with walls (default: drawn from the seed, about one world in three).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) < 2**32:
        raise InputError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if num_objects is not None and not 0 <= num_objects <= 16:
        raise InputError(f"num_objects must be in 0..16, got {num_objects}")
    seed = int(seed)
    rng = np.random.RandomState(seed)
    ground = float(rng.uniform(1.2, 2.0))
    sky = Sky.named(_pick(rng, list(SKIES), (0.5, 0.2, 0.15, 0.15)))
    elev, azim = math.radians(rng.uniform(35, 70)), math.radians(rng.uniform(-70, 70))
    light = Light((math.cos(elev) * math.sin(azim), -math.sin(elev), -math.cos(elev) * math.cos(azim)),
                  intensity=float(rng.uniform(0.6, 0.8)), ambient=float(rng.uniform(0.3, 0.45)))
    floor_mat = _material(rng, _SURFACE_PAIRS, ("checker", "stripes", "noise", "plain"), (0.5, 0.2, 0.2, 0.1),
                          (0.7, 1.5), (0, 2))
    with_room = bool(rng.uniform() < 0.35) if room is None else bool(room)
    wall_mat = _material(rng, _SURFACE_PAIRS, ("plain", "stripes", "gradient", "noise"), (0.3, 0.3, 0.2, 0.2),
                         (0.5, 1.2), (1,))
    wall_height, wall_x, wall_z = rng.uniform(2.5, 4.0), rng.uniform(4.5, 7.0), rng.uniform(9.0, 14.0)
    count = int(rng.randint(3, 8)) if num_objects is None else int(num_objects)

    # Layout on the plane y = 0; `assemble` puts it on the ground.
    layout: list[Object3D] = []
    for _ in range(count):
        proto = _sample_object(rng)
        fp = proto.footprint
        for _attempt in range(60):
            z = float(rng.uniform(2.5, 7.0))
            reach = 0.75 * z - fp
            x = float(rng.uniform(-1, 1)) * reach
            if reach <= 0:
                continue
            if abs(x) < fp + 0.8 and z - fp < 4.2:
                continue  # keep the zoom-in path clear
            if ground + 0.5 - proto.height > 0.42 * z:
                continue  # its top would sit below the bottom of the view
            if with_room and (abs(x) + fp > wall_x - 0.3 or z + fp > wall_z - 0.3):
                continue
            if all(math.hypot(x - o.center[0], z - o.center[2]) > fp + o.footprint + 0.15 for o in layout):
                layout.append(replace(proto, center=(x, proto.center[1], z)))
                break
    if dynamic and layout:
        mrng = np.random.RandomState((seed * 7919 + 104729) % 2**32)
        moving = [i for i in range(len(layout)) if mrng.uniform() < 0.5] or [int(mrng.randint(len(layout)))]
        for i in moving:
            layout[i] = replace(layout[i], motion=_sample_motion(mrng, layout[i]))

    def assemble(objs: Sequence[Object3D], g: float, xw: float, zb: float) -> World:
        e = _GROUND_EXTENT
        ps = [Plane(1, g, floor_mat, origin=(0.0, g, 0.0), role="floor", radius=e)]
        if with_room:
            ys = (g - wall_height, g)
            for side in (-1.0, 1.0):
                ps.append(Plane(0, side * xw, wall_mat, ((-e, e), ys, (-e, zb)), (side * xw, g, 0.0), "wall"))
            ps.append(Plane(2, zb, wall_mat, ((-xw, xw), ys, (-e, e)), (0.0, g, zb), "wall"))
        placed = tuple(replace(o, center=(o.center[0], o.center[1] + g, o.center[2])) for o in objs)
        return World(placed, tuple(ps), sky, light, g, seed)

    world, cd = None, 5.0
    for _ in range(12):  # ground only goes down and objects only go away: this settles in a few rounds
        world = assemble(layout, ground, wall_x, wall_z)
        r = render(world, default_camera(*_CENTER_DEPTH_SIZE), shadows=False)
        cd = _measure_center_depth(world, True, r)
        eyes = _path_centres(cd)
        first = len(world.planes)
        counts = torch.bincount(r.surface.flatten() + 1, minlength=len(world.surfaces) + 1)[1:]
        keep = [i for i, o in enumerate(world.objects)
                if counts[first + i] >= 0.002 * r.surface.numel() and _object_clear(o, eyes, 0.3)]
        need = float(eyes[:, 1].max()) + 0.3  # the ground stays this far below every camera
        xw = max(wall_x, float(eyes[:, 0].abs().max()) + 0.5)
        zb = max(wall_z, float(eyes[:, 2].max()) + 0.5)
        if len(keep) == len(layout) and ground >= need and (not with_room or (xw, zb) == (wall_x, wall_z)):
            break
        layout = [layout[i] for i in keep]
        ground, wall_x, wall_z = max(ground, need), xw, zb
    return replace(world, center_depth=cd)
