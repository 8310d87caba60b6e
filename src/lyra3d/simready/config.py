"""Settings of the sim-ready export: surface extraction (:class:`ExtractionConfig`), the drop test
(:class:`DropTestConfig`) and the export as a whole (:class:`SimReadyConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lyra3d.errors import InputError

#: What to install for the optional dependencies of this module and :mod:`lyra3d.simready.stage`.
SIM_INSTALL = "pip install lyra3d[sim]"


# -- configuration and results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractionConfig:
    """Parameters of :func:`extract_mesh` (scene units are metres when the depth is metric).

    Attributes:
        max_views: cameras fused at most, spread evenly over the camera list (all trajectories).
        render_width: width of the depth renders in pixels (height keeps the aspect); ``0`` renders at the
            cameras' own size. Small cameras are rendered larger: finer depth samples fuse into a better surface.
        min_alpha: accumulated opacity from which a pixel counts as surface.
        edge_tolerance: :func:`~lyra3d.core.cache3d.depth_edges` tolerance; pixels at occlusion edges are dropped.
            ``0`` keeps them.
        max_depth_spread: pixels whose inverse depth spreads more than this (relative standard deviation
            along the pixel's ray, see :func:`render_depths`) are dropped: mixed or see-through pixels.
        max_depth: depths beyond this are not fused; ``None`` takes ``depth_factor`` times the median depth.
        depth_factor: see ``max_depth``.
        voxel_size: TSDF voxel edge; ``None`` picks the larger of the size that fits the fused region into
            ``max_voxels`` and one pixel's footprint at the median depth.
        max_voxels: budget of the (dense) voxel grid when ``voxel_size`` is ``None``.
        truncation_voxels: TSDF truncation distance, in voxels.
        min_incidence: the fused distance is the distance to the observed surface's tangent plane (a z-depth
            difference times ``|cos|`` of the angle between ray and surface normal), with that cosine
            clamped from below here; ``1`` fuses plain projective distances (see :func:`_incidence`).
        min_component_fraction: connected pieces with fewer faces than this fraction of the mesh are dropped.
        target_faces: decimate to at most this many triangles (0: no decimation).
        ground: detect the ground plane (RANSAC) and flatten the floor onto it.
        ground_max_tilt_degrees: the floor's normal is at most this far from the scene's up (``-y``).
        ground_threshold: RANSAC inlier distance; ``None``: 1.5 voxels.
        ransac_iterations: plane hypotheses drawn.
        fill_floor: when a ground plane is found, make the space under it solid within the scene's footprint
            before the final marching cubes (:func:`fill_under_ground`): holes and dips in the floor are
            closed at the plane's height, geometry above it is kept.
        backend: rasterizer backend for the depth renders (see :func:`lyra3d.core.render.rasterize`).
        seed: seeds the RANSAC and the surface samples (the result is deterministic).
    """

    max_views: int = 32
    render_width: int = 320
    min_alpha: float = 0.5
    edge_tolerance: float = 0.05
    max_depth_spread: float = 0.1
    max_depth: float | None = None
    depth_factor: float = 2.5
    voxel_size: float | None = None
    max_voxels: int = 1 << 24
    truncation_voxels: float = 3.0
    min_incidence: float = 0.2
    min_component_fraction: float = 0.002
    target_faces: int = 50_000
    ground: bool = True
    ground_max_tilt_degrees: float = 40.0
    ground_threshold: float | None = None
    ransac_iterations: int = 512
    fill_floor: bool = True
    backend: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        def positive(name: str, value, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"ExtractionConfig.{name} must be a positive number, got {value!r}")

        positive("max_views", self.max_views)
        positive("max_voxels", self.max_voxels)
        positive("truncation_voxels", self.truncation_voxels)
        positive("depth_factor", self.depth_factor)
        positive("max_depth_spread", self.max_depth_spread)
        if not 0.0 < self.min_incidence <= 1.0:
            raise InputError(f"ExtractionConfig.min_incidence must be in (0, 1], got {self.min_incidence!r}")
        positive("ransac_iterations", self.ransac_iterations)
        positive("max_depth", self.max_depth, allow_none=True)
        positive("voxel_size", self.voxel_size, allow_none=True)
        positive("ground_threshold", self.ground_threshold, allow_none=True)
        if not 0.0 < self.min_alpha <= 1.0:
            raise InputError(f"ExtractionConfig.min_alpha must be in (0, 1], got {self.min_alpha!r}")
        if self.render_width < 0 or self.target_faces < 0 or self.edge_tolerance < 0:
            raise InputError("ExtractionConfig.render_width, target_faces and edge_tolerance must be >= 0")
        if self.target_faces and self.target_faces < 16:
            raise InputError(f"ExtractionConfig.target_faces must be 0 (no decimation) or >= 16, "
                             f"got {self.target_faces}")
        if not 0.0 <= self.min_component_fraction < 1.0:
            raise InputError("ExtractionConfig.min_component_fraction must be in [0, 1)")
        if not 0.0 < self.ground_max_tilt_degrees < 90.0:
            raise InputError("ExtractionConfig.ground_max_tilt_degrees must be in (0, 90)")


GRAVITY = 9.81  # m/s²


# -- configuration ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DropTestConfig:
    """The physics check (:func:`drop_test`); lengths in metres, times in seconds.

    Attributes:
        objects: spheres and boxes dropped (alternating).
        size_range: sphere radius / box half-edge range.
        drop_height: height of each object's bottom above the surface below it.
        margin: the mesh must be under the drop point and this far around it (objects are not dropped on
            the mesh's edge, where they could roll off into the void).
        seconds, time_step: simulated time and PyBullet's step.
        friction, restitution: of every body; ``rolling_friction`` (and spinning) of the spheres, so that a
            ball rolling off an object stops, as a real one on a real floor does.
        rest_speed, rest_angular_speed: at most this fast at the end counts as at rest.
        contact_tolerance: the gap (or penetration) to the mesh at rest, at most.
        ground: add the ground plane (``Z = 0``) as in the stage; off by default, so only the mesh can
            hold the objects.
        points: drop one object at each of these ``(x, y)`` instead of at places chosen on the mesh
            (``drop_height`` above the mesh under it, or above the mesh's lowest point where there is none).
        seed: the drop points and sizes.
    """

    objects: int = 6
    size_range: tuple[float, float] = (0.08, 0.16)
    drop_height: float = 0.5
    margin: float = 0.5
    seconds: float = 4.0
    time_step: float = 1.0 / 240.0
    friction: float = 0.8
    restitution: float = 0.0
    rolling_friction: float = 0.02
    rest_speed: float = 0.05
    rest_angular_speed: float = 0.5
    contact_tolerance: float = 0.02
    ground: bool = False
    points: tuple[tuple[float, float], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objects < 1:
            raise InputError(f"DropTestConfig.objects must be >= 1, got {self.objects}")
        lo, hi = self.size_range
        if not 0 < lo <= hi:
            raise InputError(f"DropTestConfig.size_range must be 0 < lo <= hi, got {self.size_range}")
        for name in ("drop_height", "seconds", "time_step", "rest_speed", "rest_angular_speed",
                     "contact_tolerance"):
            if not getattr(self, name) > 0:
                raise InputError(f"DropTestConfig.{name} must be positive, got {getattr(self, name)}")
        if self.points and not all(len(xy) == 2 for xy in self.points):
            raise InputError(f"DropTestConfig.points must be (x, y) pairs, got {self.points!r}")


@dataclass(frozen=True)
class SimReadyConfig:
    """Parameters of :func:`export_simready`.

    Attributes:
        extraction: the surface extraction (:class:`lyra3d.simready.config.ExtractionConfig`).
        scene_scale: metres per scene unit; ``None``: ``meta.json``'s ``meters_per_unit`` if the scene
            folder has one, else 1 (lyra3d's depth is metric).
        ground_size: edge of the square ground plane in metres; ``None``: four times the mesh's larger
            horizontal extent, at least 20 m.
        friction, restitution: of the physics material bound to both colliders.
        points: also write the Gaussians' ``UsdGeom.Points`` fallback (see :func:`lyra3d.io.export.save_usd`).
        check: run :func:`drop_test` on the written mesh and record it in ``simready.json`` (skipped, and
            said so, when PyBullet is not installed).
        drop_test: its configuration.
    """

    extraction: ExtractionConfig = ExtractionConfig()
    scene_scale: float | None = None
    ground_size: float | None = None
    friction: float = 0.8
    restitution: float = 0.0
    points: bool = True
    check: bool = True
    drop_test: DropTestConfig = DropTestConfig()

    def __post_init__(self) -> None:
        if self.scene_scale is not None and not (math.isfinite(self.scene_scale) and self.scene_scale > 0):
            raise InputError(f"scene scale must be a positive number of metres per unit, got {self.scene_scale}")
        if self.ground_size is not None and not self.ground_size > 0:
            raise InputError(f"ground_size must be positive, got {self.ground_size}")
