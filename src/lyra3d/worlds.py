"""Procedural 3D worlds with exact ground truth, rendered by analytic ray casting in torch.

A :class:`World` is a handful of textured primitives (spheres, yaw-rotated boxes, capped vertical
cylinders) resting on a ground plane, optionally surrounded by walls, under a sky gradient and one
directional light. :func:`render` casts one ray per pixel centre (DESIGN §2 cameras, via
:func:`~lyra3d.cameras.pixel_rays`) and returns the shaded colour, the exact z-depth and a hit mask; it is
vectorised over cameras and pixels, so the same code renders training data on a GPU.

The world frame is the OpenCV frame of the default input camera at the origin: x right, y down,
z forward, so "up" is ``-y`` and the ground is the plane ``y = +ground_height``.

Seeds: :func:`make_world` is a pure function of its seed. Seeds below :data:`TRAIN_SEEDS_END` are for
training; seeds from :data:`EVAL_SEED_START` up are only ever evaluated (DESIGN §7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor

from lyra3d.cameras import LYRA_MOVEMENT_RANGES, LYRA_TRAJECTORIES, Cameras, default_camera, pixel_rays, \
    trajectory
from lyra3d.errors import InputError

__all__ = [
    "TRAIN_SEEDS_END", "EVAL_SEED_START", "SKY_DEPTH", "PALETTE", "TEXTURES", "SKIES",
    "Material", "Motion", "Sphere", "Box", "Cylinder", "Plane", "Sky", "Light", "World", "WorldRender",
    "Object3D", "make_world", "render", "center_depth", "train_seeds", "eval_seeds", "is_eval_seed",
]

#: Seeds ``0 .. TRAIN_SEEDS_END - 1`` are training worlds.
TRAIN_SEEDS_END = 1_000_000
#: Seeds from here up are evaluation worlds, never trained on.
EVAL_SEED_START = 1_000_000
#: Depth written for sky pixels (``mask == 0``): far, finite, so careless arithmetic gives no NaN.
SKY_DEPTH = 1000.0
#: Largest time (seconds) for which :func:`make_world` keeps moving objects clear of the camera paths.
DYNAMIC_HORIZON = 4.0

#: Named colours (RGB in [0, 1]); captions use the names.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.13, 0.11),
    "green": (0.18, 0.60, 0.22),
    "blue": (0.14, 0.30, 0.82),
    "yellow": (0.93, 0.82, 0.16),
    "orange": (0.95, 0.50, 0.10),
    "purple": (0.50, 0.22, 0.66),
    "pink": (0.96, 0.56, 0.72),
    "cyan": (0.16, 0.72, 0.80),
    "brown": (0.50, 0.31, 0.16),
    "white": (0.93, 0.93, 0.90),
    "gray": (0.50, 0.50, 0.50),
    "black": (0.09, 0.09, 0.10),
}
#: Surface patterns. ``checker``/``stripes`` alternate ``color`` and ``color2`` every ``scale`` metres;
#: ``noise`` is smooth value noise of feature size ``scale``; ``gradient`` fades ``color`` into ``color2``
#: over ``2 * scale`` along ``axis``.
TEXTURES = ("plain", "checker", "stripes", "noise", "gradient")
#: Sky gradients: (horizon colour, zenith colour).
SKIES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "blue": ((0.78, 0.86, 0.95), (0.25, 0.47, 0.85)),
    "sunset": ((0.98, 0.62, 0.35), (0.36, 0.33, 0.62)),
    "overcast": ((0.80, 0.81, 0.83), (0.58, 0.60, 0.64)),
    "dusk": ((0.62, 0.47, 0.66), (0.13, 0.15, 0.35)),
}
_KINDS = ("sphere", "box", "cylinder")
_PLURAL = {"sphere": "spheres", "box": "boxes", "cylinder": "cylinders"}
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
_EPS = 1e-4  # smallest accepted ray parameter (metres)
_GROUND_EXTENT = 80.0  # radius of the ground disc; beyond it is sky
_CENTER_DEPTH_SIZE = (160, 88)  # resolution at which center_depth and visibility are measured
_SOFTNESS = 0.06  # every pattern edge is at least this soft (fraction of the pattern's size)

Vec = tuple[Tensor, Tensor, Tensor]


# -- scene description -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Material:
    """A procedural surface: a pattern of two palette colours (see :data:`TEXTURES`).

    ``scale`` is the pattern's size in metres, ``axis`` the local axis of stripes and gradients
    (0 = x, 1 = y (vertical), 2 = z), ``noise_seed`` varies the noise pattern.
    """

    color: str = "gray"
    texture: str = "plain"
    color2: str = "white"
    scale: float = 0.5
    axis: int = 1
    noise_seed: int = 0

    def __post_init__(self) -> None:
        for c in (self.color, self.color2):
            if c not in PALETTE:
                raise InputError(f"unknown colour {c!r}; choose from {', '.join(PALETTE)}")
        if self.texture not in TEXTURES:
            raise InputError(f"unknown texture {self.texture!r}; choose from {', '.join(TEXTURES)}")
        if not self.scale > 0:
            raise InputError(f"texture scale must be positive, got {self.scale}")
        if self.axis not in (0, 1, 2):
            raise InputError(f"texture axis must be 0, 1 or 2, got {self.axis}")

    def adjectives(self) -> str:
        """Words before the noun in a caption: ``"red"``, ``"red and white striped"``, ``"mottled red"``."""
        if self.texture == "checker":
            return f"{self.color} and {self.color2} checkered"
        if self.texture == "stripes":
            return f"{self.color} and {self.color2} striped"
        if self.texture == "noise":
            return f"mottled {self.color}"
        return self.color

    def suffix(self) -> str:
        """Words after the noun (gradients): ``" fading to white"``."""
        return f" fading to {self.color2}" if self.texture == "gradient" else ""


@dataclass(frozen=True)
class Motion:
    """How an object moves with time (seconds).

    ``static``; ``linear``: its centre moves by ``velocity`` (m/s); ``circular``: the object turns rigidly
    about the vertical axis through ``pivot = (x, z)`` at ``angular_speed`` rad/s.
    """

    kind: str = "static"
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pivot: tuple[float, float] = (0.0, 0.0)
    angular_speed: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("static", "linear", "circular"):
            raise InputError(f"unknown motion {self.kind!r}; choose static, linear or circular")

    @property
    def moves(self) -> bool:
        return (self.kind == "linear" and any(v != 0 for v in self.velocity)) or \
            (self.kind == "circular" and self.angular_speed != 0)


@dataclass(frozen=True)
class Sphere:
    """A sphere of ``radius`` around ``center`` (world, at time 0)."""

    center: tuple[float, float, float]
    radius: float
    material: Material = Material()
    motion: Motion = Motion()
    yaw: float = 0.0
    kind = "sphere"

    @property
    def footprint(self) -> float:
        return self.radius

    @property
    def bounding_radius(self) -> float:
        return self.radius

    @property
    def height(self) -> float:
        return 2 * self.radius


@dataclass(frozen=True)
class Box:
    """A box of half extents ``half_size`` (local x, y, z) around ``center``, turned by ``yaw`` radians
    about the vertical axis."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    material: Material = Material()
    motion: Motion = Motion()
    yaw: float = 0.0
    kind = "box"

    @property
    def footprint(self) -> float:
        return math.hypot(self.half_size[0], self.half_size[2])

    @property
    def bounding_radius(self) -> float:
        return math.sqrt(sum(h * h for h in self.half_size))

    @property
    def height(self) -> float:
        return 2 * self.half_size[1]


@dataclass(frozen=True)
class Cylinder:
    """A capped vertical cylinder of ``radius`` and half height ``half_height`` around ``center``."""

    center: tuple[float, float, float]
    radius: float
    half_height: float
    material: Material = Material()
    motion: Motion = Motion()
    yaw: float = 0.0
    kind = "cylinder"

    @property
    def footprint(self) -> float:
        return self.radius

    @property
    def bounding_radius(self) -> float:
        return math.hypot(self.radius, self.half_height)

    @property
    def height(self) -> float:
        return 2 * self.half_height


Object3D = Union[Sphere, Box, Cylinder]


@dataclass(frozen=True)
class Plane:
    """An axis-aligned rectangle (two-sided): ``world[axis] == offset`` within ``bounds``.

    ``bounds`` gives ``(lo, hi)`` for each of the three world axes (the entry of ``axis`` is ignored;
    infinite bounds are allowed); ``radius`` further limits it to a disc around ``origin``. Textures use
    ``world - origin``. ``role`` is ``"floor"`` or ``"wall"``.
    """

    axis: int
    offset: float
    material: Material = Material()
    bounds: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] = (
        (-math.inf, math.inf), (-math.inf, math.inf), (-math.inf, math.inf))
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    role: str = "floor"
    radius: float = math.inf
    kind = "plane"


@dataclass(frozen=True)
class Sky:
    """A vertical gradient from ``horizon`` to ``zenith`` colour; ``name`` is its caption word."""

    name: str = "blue"
    horizon: tuple[float, float, float] = SKIES["blue"][0]
    zenith: tuple[float, float, float] = SKIES["blue"][1]

    @classmethod
    def named(cls, name: str) -> "Sky":
        if name not in SKIES:
            raise InputError(f"unknown sky {name!r}; choose from {', '.join(SKIES)}")
        return cls(name, *SKIES[name])


@dataclass(frozen=True)
class Light:
    """A directional light: unit ``direction`` from surfaces towards the light, plus ambient."""

    direction: tuple[float, float, float] = (0.3, -0.8, -0.5)
    intensity: float = 0.7
    ambient: float = 0.4


@dataclass(frozen=True)
class World:
    """A procedural scene: ``planes`` (floor, walls), ``objects``, sky and light.

    ``center_depth`` caches :func:`center_depth` (set by :func:`make_world`; set it to ``None`` when
    ``dataclasses.replace`` changes the content); ``seed`` records the origin.
    Surfaces are numbered ``planes`` first, then ``objects`` (see :attr:`WorldRender.surface`).
    """

    objects: tuple[Object3D, ...]
    planes: tuple[Plane, ...]
    sky: Sky = Sky()
    light: Light = Light()
    ground_height: float = 1.5
    seed: int | None = None
    center_depth: float | None = None

    @property
    def surfaces(self) -> tuple:
        return tuple(self.planes) + tuple(self.objects)

    @property
    def dynamic(self) -> bool:
        return any(o.motion.moves for o in self.objects)

    @property
    def labels(self) -> list[dict]:
        """One record per object: surface id, kind, colours, texture, position/size at time 0, motion."""
        out = []
        first = len(self.planes)
        for i, o in enumerate(self.objects):
            if o.kind == "sphere":
                size = [o.radius] * 3
            elif o.kind == "box":
                size = list(o.half_size)
            else:
                size = [o.radius, o.half_height, o.radius]
            out.append({
                "id": first + i, "kind": o.kind, "color": o.material.color, "color2": o.material.color2,
                "texture": o.material.texture, "center": [round(v, 4) for v in o.center],
                "half_size": [round(v, 4) for v in size], "yaw": round(o.yaw, 4),
                "motion": o.motion.kind if o.motion.moves else "static", "phrase": _phrase([o]),
            })
        return out

    def describe(self) -> dict:
        """Structured description (JSON-ready): caption, object labels, floor, walls, sky."""
        floor = next((p for p in self.planes if p.role == "floor"), None)
        wall = next((p for p in self.planes if p.role == "wall"), None)
        def mat(p: Plane | None) -> dict | None:
            return None if p is None else {"color": p.material.color, "color2": p.material.color2,
                                           "texture": p.material.texture}

        return {"caption": self.caption, "objects": self.labels, "floor": mat(floor), "walls": mat(wall),
                "sky": self.sky.name, "ground_height": round(self.ground_height, 4),
                "center_depth": None if self.center_depth is None else round(self.center_depth, 4),
                "dynamic": self.dynamic, "seed": self.seed}

    @property
    def caption(self) -> str:
        """An English caption built from the content, objects left to right as seen from the input camera,
        e.g. ``"a red sphere and a blue and white striped box on a gray and white checkered floor, blue sky"``."""
        objs = sorted(self.objects, key=lambda o: o.center[0] / max(o.center[2], 1e-3))
        groups: list[list[Object3D]] = []
        for o in objs:  # merge neighbours with the same description ("two red spheres")
            if groups and _phrase([groups[-1][0]]) == _phrase([o]):
                groups[-1].append(o)
            else:
                groups.append([o])
        phrases = [_phrase(g) for g in groups]
        floor = next((p for p in self.planes if p.role == "floor"), None)
        floor_words = f"{floor.material.adjectives()} floor{floor.material.suffix()}" if floor else ""
        if not phrases:
            text = f"an empty {floor_words}" if floor else "an empty world"
        else:
            text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
            if floor:
                text += f" on a {floor_words}"
        wall = next((p for p in self.planes if p.role == "wall"), None)
        if wall is not None:
            m = wall.material
            text += f", surrounded by {m.adjectives()} walls{m.suffix()}"
        return f"{text}, {self.sky.name} sky"


def _phrase(group: Sequence[Object3D]) -> str:
    o = group[0]
    moving = "moving " if o.motion.moves else ""
    m = o.material
    if len(group) == 1:
        words = f"{moving}{m.adjectives()} {o.kind}{m.suffix()}"
        return ("an " if words[0] in "aeiou" else "a ") + words
    n = _NUMBERS.get(len(group), str(len(group)))
    return f"{n} {moving}{m.adjectives()} {_PLURAL[o.kind]}{m.suffix()}"


@dataclass(frozen=True)
class WorldRender:
    """Output of :func:`render`.

    Attributes:
        rgb: ``(B, 3, H, W)`` float32 in [0, 1].
        depth: ``(B, 1, H, W)`` z-depth (along each camera's optical axis); :data:`SKY_DEPTH` where
            ``mask == 0``.
        mask: ``(B, 1, H, W)`` float32, 1 where a surface was hit, 0 for sky.
        surface: ``(B, 1, H, W)`` int64 index into ``world.surfaces`` (planes, then objects); -1 for sky.
    """

    rgb: Tensor
    depth: Tensor
    mask: Tensor
    surface: Tensor


# -- seeds ----------------------------------------------------------------------------------------------
def train_seeds(n: int, offset: int = 0) -> list[int]:
    """``n`` training seeds starting at ``offset`` (all below :data:`TRAIN_SEEDS_END`)."""
    if n < 0 or offset < 0:
        raise InputError(f"seed count and offset must be >= 0, got n={n}, offset={offset}")
    if offset + n > TRAIN_SEEDS_END:
        raise InputError(f"training seeds end at {TRAIN_SEEDS_END}; ask for fewer than {TRAIN_SEEDS_END - offset}")
    return list(range(offset, offset + n))


def eval_seeds(n: int, offset: int = 0) -> list[int]:
    """``n`` evaluation seeds: ``EVAL_SEED_START + offset + i``."""
    if n < 0 or offset < 0:
        raise InputError(f"seed count and offset must be >= 0, got n={n}, offset={offset}")
    return list(range(EVAL_SEED_START + offset, EVAL_SEED_START + offset + n))


def is_eval_seed(seed: int) -> bool:
    return seed >= EVAL_SEED_START


# -- ray casting ------------------------------------------------------------------------------------------
def _pose(obj: Object3D, times: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre ``x, y, z`` and ``yaw`` of ``obj`` at ``times`` (each the shape of ``times``)."""
    cx, cy, cz = obj.center
    m = obj.motion
    if m.kind == "linear":
        vx, vy, vz = m.velocity
        return cx + vx * times, cy + vy * times, cz + vz * times, obj.yaw + 0 * times
    if m.kind == "circular":
        a = m.angular_speed * times
        c, s = torch.cos(a), torch.sin(a)
        px, pz = m.pivot
        rx, rz = cx - px, cz - pz
        return px + c * rx + s * rz, cy + 0 * times, pz - s * rx + c * rz, obj.yaw + a
    z = torch.zeros_like(times)
    return cx + z, cy + z, cz + z, obj.yaw + z


def _rotates(obj: Object3D) -> bool:
    return obj.yaw != 0.0 or (obj.motion.kind == "circular" and obj.motion.angular_speed != 0.0)


def _to_local(v: Vec, cos: Tensor | None, sin: Tensor | None) -> Vec:
    """Rotate a world vector into an object's frame (inverse of a yaw about the vertical axis)."""
    if cos is None:
        return v
    x, y, z = v
    return cos * x - sin * z, y, sin * x + cos * z


def _to_world(v: Vec, cos: Tensor | None, sin: Tensor | None) -> Vec:
    if cos is None:
        return v
    x, y, z = v
    return cos * x + sin * z, y, -sin * x + cos * z


def _hit_sphere(o: Vec, d: Vec, c: Vec, r: float) -> Tensor:
    px, py, pz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    b = px * d[0] + py * d[1] + pz * d[2]
    disc = b * b - (px * px + py * py + pz * pz - r * r)
    s = disc.clamp_min(0).sqrt()
    t = torch.where(-b - s > _EPS, -b - s, -b + s)
    return torch.where((disc >= 0) & (t > _EPS), t, math.inf)


def _hit_box(o: Vec, d: Vec, c: Vec, cos, sin, h: tuple[float, float, float]) -> Tensor:
    lo = _to_local((o[0] - c[0], o[1] - c[1], o[2] - c[2]), cos, sin)
    ld = _to_local(d, cos, sin)
    tmin = tmax = None
    for k in range(3):
        inv = 1.0 / ld[k]
        ta, tb = (-h[k] - lo[k]) * inv, (h[k] - lo[k]) * inv
        near, far = torch.minimum(ta, tb), torch.maximum(ta, tb)
        tmin = near if tmin is None else torch.maximum(tmin, near)
        tmax = far if tmax is None else torch.minimum(tmax, far)
    t = torch.where(tmin > _EPS, tmin, tmax)
    return torch.where((tmax >= tmin) & (t > _EPS), t, math.inf)


def _hit_cylinder(o: Vec, d: Vec, c: Vec, r: float, hh: float) -> Tensor:
    px, py, pz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    a = (d[0] * d[0] + d[2] * d[2]).clamp_min(1e-12)
    b = px * d[0] + pz * d[2]
    disc = b * b - a * (px * px + pz * pz - r * r)
    s = disc.clamp_min(0).sqrt()
    best = None
    for sign in (-1.0, 1.0):  # both side crossings (the far one matters only from inside the column)
        t = (-b + sign * s) / a
        ok = (disc >= 0) & (t > _EPS) & ((py + t * d[1]).abs() <= hh)
        t = torch.where(ok, t, math.inf)
        best = t if best is None else torch.minimum(best, t)
    for yc in (-hh, hh):  # caps
        t = (yc - py) / d[1]
        qx, qz = px + t * d[0], pz + t * d[2]
        ok = (t > _EPS) & (qx * qx + qz * qz <= r * r)
        best = torch.minimum(best, torch.where(ok, t, math.inf))
    return best


def _hit_plane(o: Vec, d: Vec, plane: Plane) -> Tensor:
    a = plane.axis
    t = (plane.offset - o[a]) / d[a]
    ok = t > _EPS
    for k in range(3):
        if k == a:
            continue
        lo, hi = plane.bounds[k]
        if math.isfinite(lo) or math.isfinite(hi):
            q = o[k] + t * d[k]
            if math.isfinite(lo):
                ok = ok & (q >= lo)
            if math.isfinite(hi):
                ok = ok & (q <= hi)
    if math.isfinite(plane.radius):
        q = [o[k] + t * d[k] - plane.origin[k] for k in range(3) if k != a]
        ok = ok & (q[0] * q[0] + q[1] * q[1] <= plane.radius ** 2)
    return torch.where(ok, t, math.inf)


def _near_rays(o: Vec, d: Vec, pose, radius: float, spread: float) -> Tensor:
    """Rays that can hit a bounding sphere of ``radius`` around the pose's centre: a cheap, conservative
    test. ``spread`` widens it to a cone (rays within that angle, as a tangent, of ``d``)."""
    qx, qy, qz = pose[0] - o[0], pose[1] - o[1], pose[2] - o[2]
    along = qx * d[0] + qy * d[1] + qz * d[2]
    perp2 = qx * qx + qy * qy + qz * qz - along * along
    reach = radius * 1.001 + 1e-4
    if spread > 0:
        reach = reach + spread * along.clamp_min(0)
    return (along > -radius) & (perp2 < reach * reach)


def _hit(surface, o: Vec, d: Vec, pose) -> Tensor:
    """Ray parameter of the nearest hit (``inf`` for none); all arguments broadcast."""
    if surface.kind == "plane":
        return _hit_plane(o, d, surface)
    c = pose[:3]
    if surface.kind == "sphere":
        return _hit_sphere(o, d, c, surface.radius)
    if surface.kind == "box":
        cs = (torch.cos(pose[3]), torch.sin(pose[3])) if _rotates(surface) else (None, None)
        return _hit_box(o, d, c, *cs, surface.half_size)
    return _hit_cylinder(o, d, c, surface.radius, surface.half_height)


def _geometry(surface, p: Vec, d: Vec, pose) -> tuple[Vec, Vec, tuple]:
    """World normal, texture coordinates and the object's ``(cos, sin)`` of yaw (or ``None``s) at hit
    points ``p``."""
    if surface.kind == "plane":
        a = surface.axis
        s = -torch.sign(d[a])
        s = torch.where(s == 0, 1.0, s)
        zero = torch.zeros_like(p[0])
        n = tuple(s if k == a else zero for k in range(3))
        u = tuple(zero if k == a else p[k] - surface.origin[k] for k in range(3))
        return n, u, (None, None)
    c = pose[:3]
    cs = (torch.cos(pose[3]), torch.sin(pose[3])) if _rotates(surface) else (None, None)
    rel = (p[0] - c[0], p[1] - c[1], p[2] - c[2])
    u = _to_local(rel, *cs)
    if surface.kind == "sphere":
        r = surface.radius
        return (rel[0] / r, rel[1] / r, rel[2] / r), u, cs
    if surface.kind == "box":
        q = [u[k].abs() / surface.half_size[k] for k in range(3)]
        k0 = q[0] >= torch.maximum(q[1], q[2])
        k1 = ~k0 & (q[1] >= q[2])
        k2 = ~k0 & ~k1
        face = (k0, k1, k2)
        nl = tuple(torch.where(face[k], torch.sign(u[k]), 0.0) for k in range(3))
        u = tuple(torch.where(face[k], 0.0, u[k]) for k in range(3))
        return _to_world(nl, *cs), u, cs
    # cylinder
    r, hh = surface.radius, surface.half_height
    radial = torch.sqrt(u[0] * u[0] + u[2] * u[2]) / r
    cap = u[1].abs() / hh > radial
    zero = torch.zeros_like(u[0])
    n = (torch.where(cap, zero, rel[0] / r), torch.where(cap, torch.sign(u[1]), zero),
         torch.where(cap, zero, rel[2] / r))
    u = (u[0], torch.where(cap, zero, u[1]), u[2])
    return n, u, cs


# -- textures -------------------------------------------------------------------------------------------
def _square_filtered(x: Tensor, w: Tensor) -> Tensor:
    """A ±1 square wave (+1 on even unit cells), box-filtered over width ``w`` (same units)."""
    w = w.clamp_min(1e-3)

    def integral(v):  # antiderivative of the square wave: a triangle wave
        return 1.0 - (torch.remainder(v, 2.0) - 1.0).abs()

    return (integral(x + 0.5 * w) - integral(x - 0.5 * w)) / w


def _hash01(ix: Tensor, iy: Tensor, iz: Tensor, seed: int) -> Tensor:
    """Deterministic lattice hash to [0, 1] (int64, 31-bit arithmetic: same on every device)."""
    m = 0x7FFFFFFF
    h = (ix * 73856093 + iy * 19349663 + iz * 83492791 + seed * 2654435) & m
    h = ((h ^ (h >> 13)) * 12741) & m
    h = ((h ^ (h >> 11)) * 40503) & m
    h = h ^ (h >> 15)
    return (h & 0xFFFF).float() / 65535.0


def _value_noise(x: Tensor, y: Tensor, z: Tensor, seed: int) -> Tensor:
    """Smooth 3D value noise in [0, 1] with unit feature size."""
    fx, fy, fz = torch.floor(x), torch.floor(y), torch.floor(z)
    tx, ty, tz = x - fx, y - fy, z - fz
    tx, ty, tz = (t * t * (3 - 2 * t) for t in (tx, ty, tz))
    ix, iy, iz = fx.long(), fy.long(), fz.long()
    out = 0.0
    for dx in (0, 1):
        wx = tx if dx else 1 - tx
        for dy in (0, 1):
            wy = ty if dy else 1 - ty
            for dz in (0, 1):
                wz = tz if dz else 1 - tz
                out = out + wx * wy * wz * _hash01(ix + dx, iy + dy, iz + dz, seed)
    return out


def _albedo(mat: Material, u: Vec, width: Vec) -> Tensor:
    """``(M, 3)`` surface colour at texture coordinates ``u``. ``width`` holds the pixel's footprint along
    each texture axis (metres): patterns are box-filtered over it, so they do not alias and look the same
    from every view."""
    c1 = torch.tensor(PALETTE[mat.color], dtype=u[0].dtype, device=u[0].device)
    if mat.texture == "plain":
        return c1.expand(u[0].shape[0], 3)
    c2 = torch.tensor(PALETTE[mat.color2], dtype=u[0].dtype, device=u[0].device)
    s = mat.scale
    ws = [torch.sqrt((v / s) ** 2 + _SOFTNESS ** 2) for v in width]
    if mat.texture == "checker":
        prod = None
        for k in range(3):
            f = _square_filtered(u[k] / s + 0.5, ws[k])
            prod = f if prod is None else prod * f
        f = 0.5 - 0.5 * prod
    elif mat.texture == "stripes":
        f = 0.5 - 0.5 * _square_filtered(u[mat.axis] / s + 0.5, ws[mat.axis])
    elif mat.texture == "noise":
        x, y, z = (v / s for v in u)
        w = torch.maximum(torch.maximum(ws[0], ws[1]), ws[2])
        n1 = _value_noise(x, y, z, mat.noise_seed) - 0.5
        n2 = _value_noise(2 * x + 17.3, 2 * y + 5.1, 2 * z + 9.7, mat.noise_seed + 1) - 0.5
        f = 0.5 + 1.5 * (n1 * (1 - w).clamp(0, 1) + 0.5 * n2 * (1 - 2 * w).clamp(0, 1))
        f = f.clamp(0, 1)
    else:  # gradient
        f = (0.5 + u[mat.axis] / (2 * s)).clamp(0, 1)
        f = f * f * (3 - 2 * f)
    return c1 + f[:, None] * (c2 - c1)


def _sky(world: World, dy: Tensor) -> Tensor:
    """``(M, 3)`` sky colour for ray directions with vertical component ``dy`` (world up is -y)."""
    h = torch.tensor(world.sky.horizon, dtype=dy.dtype, device=dy.device)
    z = torch.tensor(world.sky.zenith, dtype=dy.dtype, device=dy.device)
    up = (-dy).clamp(0, 1).sqrt()
    return h + up[:, None] * (z - h)


# -- rendering --------------------------------------------------------------------------------------------
def _shadow_directions(light: Tensor, softness: float) -> list[Vec]:
    """Directions of the shadow rays: the light itself, or four spread over a disc of ``softness`` radians
    (a sun of finite size, so shadow edges get a penumbra)."""
    if softness <= 0:
        return [tuple(light[j].expand(1) for j in range(3))]
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=light.dtype, device=light.device)
    if abs(float(light[0])) > 0.9:
        helper = torch.tensor([0.0, 0.0, 1.0], dtype=light.dtype, device=light.device)
    e1 = torch.nn.functional.normalize(torch.linalg.cross(light, helper), dim=0)
    e2 = torch.linalg.cross(light, e1)
    out = []
    for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        v = torch.nn.functional.normalize(light + math.tan(softness) * math.sqrt(0.5) * (a * e1 + b * e2), dim=0)
        out.append(tuple(v[j].expand(1) for j in range(3)))
    return out


def _as_times(time: float | Tensor, b: int, device, dtype) -> Tensor:
    t = torch.as_tensor(time, dtype=dtype, device=device)
    if t.ndim == 0:
        return t.expand(b).clone()
    t = t.reshape(-1)
    if t.numel() != b:
        raise InputError(f"time must be a number or hold one value per camera ({b}), got {t.numel()}")
    return t


def _trace(world: World, cams: Cameras, times: Tensor, shade: bool, shadows: bool, shadow_softness: float,
           texture_filter: float, sky_depth: float) -> dict[str, Tensor]:
    """Ray cast one chunk of cameras; returns flat ``(b, n)`` / ``(b, n, 3)`` buffers."""
    b, n = len(cams), cams.width * cams.height
    _, dirs = pixel_rays(cams)
    dirs = dirs.reshape(b, n, 3).permute(2, 0, 1).contiguous()
    d: Vec = (dirs[0], dirs[1], dirs[2])
    centres = cams.centers
    o: Vec = tuple(centres[:, k:k + 1].contiguous() for k in range(3))
    tcol = times[:, None]
    surfaces = world.surfaces
    poses = [None if s.kind == "plane" else _pose(s, tcol) for s in surfaces]

    best = torch.full((b, n), math.inf, dtype=dirs.dtype, device=dirs.device)
    ident = torch.full((b, n), -1, dtype=torch.long, device=dirs.device)
    for k, (s, pose) in enumerate(zip(surfaces, poses)):
        if s.kind in ("box", "cylinder"):  # costly tests: only on rays that pass its bounding sphere
            cand = _near_rays(o, d, pose, s.bounding_radius, 0.0).reshape(-1)
            sel = torch.nonzero(cand).squeeze(1)
            t = torch.full((b * n,), math.inf, dtype=dirs.dtype, device=dirs.device)
            if sel.numel():
                bsel = sel // n
                t[sel] = _hit(s, tuple(v[bsel, 0] for v in o), tuple(v.reshape(-1)[sel] for v in d),
                              tuple(v[bsel, 0] for v in pose))
            t = t.reshape(b, n)
        else:
            t = _hit(s, o, d, pose)
        closer = t < best
        best = torch.where(closer, t, best)
        ident.masked_fill_(closer, k)

    fwd = cams.camera_to_world[:, :3, 2]
    hit = ident >= 0
    zdepth = best * (d[0] * fwd[:, 0:1] + d[1] * fwd[:, 1:2] + d[2] * fwd[:, 2:3])
    zdepth = torch.where(hit, zdepth, sky_depth)
    out = {"depth": zdepth, "mask": hit, "surface": ident}
    if not shade:
        return out

    flat_id, flat_t = ident.reshape(-1), best.reshape(-1)
    dflat = tuple(v.reshape(-1) for v in d)
    rgb = torch.empty(b * n, 3, dtype=dirs.dtype, device=dirs.device)
    sky_idx = torch.nonzero(flat_id < 0).squeeze(1)
    rgb[sky_idx] = _sky(world, dflat[1][sky_idx])

    light = torch.tensor(world.light.direction, dtype=dirs.dtype, device=dirs.device)
    light = light / light.norm()
    pix = 1.0 / cams.intrinsics[:, :2].min(dim=1).values  # radians per pixel (at the centre)
    c2w = cams.camera_to_world
    right, down = c2w[:, :3, 0], c2w[:, :3, 1]
    obj_ids = [k for k, s in enumerate(surfaces) if s.kind != "plane"]
    shadow_dirs = _shadow_directions(light, shadow_softness)
    light_dir = tuple(light[j].expand(1) for j in range(3))
    spread = math.tan(max(shadow_softness, 0.0)) * 1.05
    for k, (s, pose) in enumerate(zip(surfaces, poses)):
        idx = torch.nonzero(flat_id == k).squeeze(1)
        if idx.numel() == 0:
            continue
        bi = idx // n
        t = flat_t[idx]
        di = tuple(v[idx] for v in dflat)
        p = tuple(o[j][bi, 0] + t * di[j] for j in range(3))
        pose_i = None if pose is None else tuple(v[bi, 0] for v in pose)
        nrm, u, cs = _geometry(s, p, di, pose_i)
        # Ray differentials: the pixel's footprint on the surface along each local axis (the offsets of
        # one-pixel steps right and down, projected along the ray onto the tangent plane).
        dn = nrm[0] * di[0] + nrm[1] * di[1] + nrm[2] * di[2]
        dn = torch.where(dn.abs() < 1e-2, torch.where(dn < 0, -1e-2, 1e-2), dn)
        step = texture_filter * t * pix[bi]
        w2 = [0.0, 0.0, 0.0]
        for axis in (right, down):
            a = tuple(axis[bi, j] for j in range(3))
            ratio = (a[0] * nrm[0] + a[1] * nrm[1] + a[2] * nrm[2]) / dn
            dp = _to_local(tuple(step * (a[j] - ratio * di[j]) for j in range(3)), *cs)
            w2 = [w2[j] + dp[j] * dp[j] for j in range(3)]
        albedo = _albedo(s.material, u, tuple(v.sqrt() for v in w2))
        lambert = (nrm[0] * light[0] + nrm[1] * light[1] + nrm[2] * light[2]).clamp_min(0)
        if shadows and len(obj_ids) > (1 if k in obj_ids else 0):
            lit = torch.nonzero(lambert > 0).squeeze(1)
            if lit.numel():
                eps = 2e-3 * (1 + t[lit] * 0.01)
                so = tuple(p[j][lit] + nrm[j][lit] * eps for j in range(3))
                blocked = torch.zeros(len(shadow_dirs), lit.numel(), dtype=torch.bool, device=dirs.device)
                for j in obj_ids:
                    if j == k:
                        continue  # convex objects cannot shadow their own lit side
                    pj = tuple(v[bi[lit], 0] for v in poses[j])
                    near = torch.nonzero(_near_rays(so, light_dir, pj, surfaces[j].bounding_radius,
                                                    spread)).squeeze(1)
                    if near.numel() == 0:
                        continue
                    so_n, pj_n = tuple(v[near] for v in so), tuple(v[near] for v in pj)
                    for i, sd in enumerate(shadow_dirs):
                        blocked[i, near] |= torch.isfinite(_hit(surfaces[j], so_n, sd, pj_n))
                visible = 1.0 - blocked.to(dirs.dtype).mean(0)
                lambert[lit] = lambert[lit] * visible
        shade_k = world.light.ambient + world.light.intensity * lambert
        rgb[idx] = albedo * shade_k[:, None]
    out["rgb"] = rgb.clamp_(0, 1).reshape(b, n, 3)
    return out


def render(world: World, cameras: Cameras, time: float | Tensor = 0.0, *, shadows: bool = True,
           shadow_softness: float = 0.06, supersample: int = 1, texture_filter: float = 2.0,
           sky_depth: float = SKY_DEPTH, max_rays: int | None = None) -> WorldRender:
    """Ray cast ``world`` from every camera.

    Args:
        world: the scene.
        cameras: ``B`` cameras (``H × W`` pixels, on the device to render on).
        time: seconds; a number, or ``(B,)`` one time per camera (moving objects are placed there).
        shadows: objects cast shadows (shadow rays towards the light from every lit point).
        shadow_softness: angular radius (radians) of the light: four shadow rays spread over it give soft
            shadow edges; 0 casts one ray (hard shadows).
        supersample: ``s × s`` rays per pixel averaged for ``rgb`` (anti-aliasing); ``depth``, ``mask`` and
            ``surface`` always come from the single ray through each pixel centre, so they stay exact.
        texture_filter: width in pixels of the box filter over which patterns are integrated (from ray
            differentials, so distant checkers fade to their mean instead of aliasing). The default 2 is a
            little softer than a box pixel, which keeps pattern edges consistent between nearby views.
        sky_depth: depth written where no surface is hit.
        max_rays: rays traced at once, whole cameras per chunk (default 2**19 on CPU, about 200 MB;
            2**23 on a GPU, where small chunks leave it idle).

    Returns:
        :class:`WorldRender` with ``rgb (B, 3, H, W)``, ``depth (B, 1, H, W)`` z-depth, ``mask (B, 1, H, W)``
        and ``surface (B, 1, H, W)``.
    """
    if not isinstance(cameras, Cameras):
        raise InputError(f"cameras must be a lyra3d Cameras batch, got {type(cameras).__name__}")
    if int(supersample) != supersample or supersample < 1:
        raise InputError(f"supersample must be a positive integer, got {supersample}")
    supersample = int(supersample)
    cameras = cameras if cameras.intrinsics.dtype.is_floating_point else cameras.to(dtype=torch.float32)
    b, h, w = len(cameras), cameras.height, cameras.width
    dtype = cameras.intrinsics.dtype
    times = _as_times(time, b, cameras.device, dtype)
    if max_rays is None:
        max_rays = 1 << 23 if cameras.device.type == "cuda" else 1 << 19

    def run(cams: Cameras, shade: bool, filt: float):
        per = max(1, max_rays // (cams.width * cams.height))
        parts = [_trace(world, cams[i:i + per], times[i:i + per], shade, shadows, shadow_softness, filt,
                        sky_depth)
                 for i in range(0, b, per)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    if supersample == 1:
        geo = run(cameras, True, texture_filter)
        rgb = geo["rgb"].reshape(b, h, w, 3).permute(0, 3, 1, 2)
    else:
        fine = run(cameras.resized(w * supersample, h * supersample), True, texture_filter)
        rgb = fine["rgb"].reshape(b, h * supersample, w * supersample, 3).permute(0, 3, 1, 2)
        rgb = torch.nn.functional.avg_pool2d(rgb, supersample)
        geo = run(cameras, False, texture_filter)
    shape = (b, 1, h, w)
    return WorldRender(rgb=rgb.contiguous(), depth=geo["depth"].reshape(shape),
                       mask=geo["mask"].reshape(shape).to(dtype), surface=geo["surface"].reshape(shape))


def center_depth(world: World, *, objects_only: bool = True) -> float:
    """The scene's centre depth: the median z-depth seen by the default input camera.

    By default the median is taken over the objects' pixels (the trajectories then turn towards the
    objects), falling back to all hit pixels when no object is visible. Uses the value cached by
    :func:`make_world` when present (and ``objects_only``).
    """
    if objects_only and world.center_depth is not None:
        return float(world.center_depth)
    return _measure_center_depth(world, objects_only)


def _measure_center_depth(world: World, objects_only: bool = True, r: WorldRender | None = None) -> float:
    if r is None:
        r = render(world, default_camera(*_CENTER_DEPTH_SIZE), shadows=False)
    sel = r.surface >= len(world.planes) if objects_only else r.mask > 0
    if not bool(sel.any()):
        sel = r.mask > 0
    if not bool(sel.any()):
        return 5.0  # an empty view: any sane scale
    return float(r.depth[sel].median())


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
