"""Procedural 3D worlds with exact ground truth, rendered by analytic ray casting in torch.

A :class:`World` is a handful of textured primitives (spheres, yaw-rotated boxes, capped vertical
cylinders) resting on a ground plane, optionally surrounded by walls, under a sky gradient and one
directional light. :func:`render` casts one ray per pixel centre (docs/design.md §2 cameras, via
:func:`~lyra3d.core.cameras.pixel_rays`) and returns the shaded colour, the exact z-depth and a hit mask; it is
vectorised over cameras and pixels, so the same code renders training data on a GPU.

The world frame is the OpenCV frame of the default input camera at the origin: x right, y down,
z forward, so "up" is ``-y`` and the ground is the plane ``y = +ground_height``.

Seeds: :func:`make_world` is a pure function of its seed. Seeds below :data:`TRAIN_SEEDS_END` are for
training; seeds from :data:`EVAL_SEED_START` up are only ever evaluated (docs/design.md §7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

from torch import Tensor

from lyra3d.errors import InputError

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


