"""The physics check: load the collision mesh as a static concave triangle mesh into PyBullet (a registry
package, no Isaac Sim), drop spheres and boxes onto it and report whether they come to rest on the
surface. PyBullet rather than MuJoCo: MuJoCo collides with the convex hull of a mesh, so a room would become
a solid block; Bullet's BVH triangle mesh is the same kind of static collider as PhysX's
``approximation = "none"``."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from lyra3d.errors import InputError
from lyra3d.simready.config import GRAVITY, DropTestConfig
from lyra3d.simready.mesh import SIM_INSTALL


# -- the physics check -------------------------------------------------------------------------------------------
@dataclass
class DroppedObject:
    """One dropped body: its ``shape`` (``sphere``/``box``), ``size`` (radius or half edge), start and end
    positions, final linear/angular speed, the largest speed seen, ``gap`` to the mesh at the end
    (negative: penetration; ``inf``: nothing within reach) and the verdicts."""

    shape: str
    size: float
    start: list[float]
    end: list[float]
    speed: float
    angular_speed: float
    max_speed: float
    gap: float
    at_rest: bool
    on_surface: bool
    fell_through: bool
    exploded: bool

    @property
    def passed(self) -> bool:
        return self.at_rest and self.on_surface and not self.fell_through and not self.exploded


@dataclass
class DropTestResult:
    """The outcome of :func:`drop_test`: ``objects`` and the simulated ``seconds``."""

    objects: list[DroppedObject]
    sim_seconds: float
    wall_seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.objects) and all(o.passed for o in self.objects)

    def summary(self) -> str:
        ok = sum(o.passed for o in self.objects)
        return (f"drop test: {ok}/{len(self.objects)} objects at rest on the surface "
                f"({'passed' if self.passed else 'FAILED'})")

    def to_dict(self) -> dict:
        def record(o: DroppedObject) -> dict:
            d = {**asdict(o), "passed": o.passed}
            d["gap"] = o.gap if math.isfinite(o.gap) else None  # JSON has no infinity
            return d

        return {"passed": self.passed, "summary": self.summary(), "sim_seconds": self.sim_seconds,
                "wall_seconds": round(self.wall_seconds, 3), "objects": [record(o) for o in self.objects]}


def _pybullet():
    """Import PyBullet quietly (at import it prints its build time on the process's stderr, from C)."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            import pybullet
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return pybullet
    except ImportError:
        raise InputError(f"the physics check needs pybullet: {SIM_INSTALL}") from None


def _choose_drop_points(v: np.ndarray, f: np.ndarray, config: DropTestConfig, surface_z) -> np.ndarray:
    """``(K, 3)`` drop points on the mesh (see :func:`drop_test`); ``surface_z(xy)`` casts rays down onto it."""
    from lyra3d.simready.mesh import sample_surface

    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    up_faces = np.abs(normal[:, 2]) > math.cos(math.radians(45))
    if not up_faces.any():
        raise InputError("the mesh has no upward-facing surface to drop objects on")
    cand, _ = sample_surface(v, f[up_faces], 600, seed=config.seed)
    # alternate between raised surfaces (object tops) and the lowest ones (the floor), when both exist
    raised = cand[:, 2] > np.percentile(cand[:, 2], 5) + 0.1
    order = [cand[raised], cand[~raised]]
    offsets = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float64) * config.margin
    picks: list[np.ndarray] = []
    cursor = [0, 0]
    while len(picks) < config.objects and any(cursor[k] < len(order[k]) for k in (0, 1)):
        k = len(picks) % 2 if cursor[len(picks) % 2] < len(order[len(picks) % 2]) else 1 - len(picks) % 2
        c = order[k][cursor[k]]
        cursor[k] += 1
        zs = surface_z(c[None, :2] + offsets)
        if np.isnan(zs).any() or zs[0] < c[2] - 0.05:  # no mesh around it, or it lies under something
            continue
        if any(np.linalg.norm(c[:2] - q[:2]) < 4 * config.size_range[1] for q in picks):
            continue
        picks.append(np.array([c[0], c[1], zs[0]]))
    if not picks:
        raise InputError("no place on the mesh has surface all around it to drop an object on")
    return np.stack(picks)


def drop_test(vertices: np.ndarray, faces: np.ndarray, config: DropTestConfig = DropTestConfig()) -> DropTestResult:
    """Drop spheres and boxes onto a static triangle mesh (Z up, metres, gravity -Z) in PyBullet and check
    that each comes to rest on the surface: at the end slower than ``rest_speed``/``rest_angular_speed``,
    within ``contact_tolerance`` of the mesh, not below the surface it was dropped on (fell through), and
    never faster than a free fall from its start down to the mesh's lowest point allows (exploded: an object
    that rolls off a raised surface and lands on the floor below may fall farther than its drop height).

    Drop points are area-uniform points of level-enough triangles (normal within 45° of ±Z) that are the top
    surface where they lie, with mesh ``margin`` around them, at least four largest object sizes apart,
    alternately on raised surfaces (object tops) and the lowest ones (the floor) while both are left, unless
    ``config.points`` places them.
    """
    from lyra3d.simready.mesh import compact

    p = _pybullet()
    v, f = compact(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    if len(f) == 0:
        raise InputError("the mesh has no faces to drop objects on")
    rng = np.random.default_rng(config.seed)
    t_wall = time.perf_counter()
    cid = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -GRAVITY, physicsClientId=cid)
        p.setTimeStep(config.time_step, physicsClientId=cid)
        shape = p.createCollisionShape(p.GEOM_MESH, vertices=v.tolist(), indices=f.reshape(-1).tolist(),
                                       physicsClientId=cid)
        if shape < 0:
            raise InputError("PyBullet could not build a collision shape from the mesh")
        mesh_body = p.createMultiBody(0, shape, physicsClientId=cid)
        p.changeDynamics(mesh_body, -1, lateralFriction=config.friction, restitution=config.restitution,
                         physicsClientId=cid)
        if config.ground:
            plane = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=cid)
            ground = p.createMultiBody(0, plane, physicsClientId=cid)
            p.changeDynamics(ground, -1, lateralFriction=config.friction, restitution=config.restitution,
                             physicsClientId=cid)
        top = float(v[:, 2].max()) + 2.0
        bottom = float(v[:, 2].min()) - 2.0

        def surface_z(xy: np.ndarray) -> np.ndarray:
            """Height of the first mesh hit straight down from above at each ``(x, y)`` (NaN for none)."""
            hits = p.rayTestBatch([[x, y, top] for x, y in xy], [[x, y, bottom] for x, y in xy],
                                  physicsClientId=cid)
            return np.array([h[3][2] if h[0] == mesh_body else np.nan for h in hits])

        if config.points:  # given places; where no mesh is under one, from above the mesh's lowest point
            xy = np.asarray(config.points, np.float64)
            z = surface_z(xy)
            points = np.column_stack([xy, np.where(np.isnan(z), float(v[:, 2].min()), z)])
        else:
            points = _choose_drop_points(v, f, config, surface_z)
        lo, hi = config.size_range
        picks = [(point, float(rng.uniform(lo, hi))) for point in points]

        bodies = []
        for i, (point, size) in enumerate(picks):
            kind = "sphere" if i % 2 == 0 else "box"
            if kind == "sphere":
                col = p.createCollisionShape(p.GEOM_SPHERE, radius=size, physicsClientId=cid)
            else:
                col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[size] * 3, physicsClientId=cid)
            reach = size * (math.sqrt(3) if kind == "box" else 1.0)
            start = point + np.array([0.0, 0.0, config.drop_height + reach])
            yaw = float(rng.uniform(-math.pi, math.pi))
            body = p.createMultiBody(1.0, col, basePosition=start.tolist(),
                                     baseOrientation=p.getQuaternionFromEuler([0.0, 0.0, yaw]), physicsClientId=cid)
            p.changeDynamics(body, -1, lateralFriction=config.friction, restitution=config.restitution,
                             rollingFriction=config.rolling_friction if kind == "sphere" else 0.0,
                             spinningFriction=config.rolling_friction,
                             physicsClientId=cid)
            bodies.append((body, kind, size, start, point[2]))

        steps = int(round(config.seconds / config.time_step))
        max_speed = np.zeros(len(bodies))
        for _ in range(steps):
            p.stepSimulation(physicsClientId=cid)
            for j, (body, *_rest) in enumerate(bodies):
                lin, _ = p.getBaseVelocity(body, physicsClientId=cid)
                max_speed[j] = max(max_speed[j], float(np.linalg.norm(lin)))

        objects = []
        for j, (body, kind, size, start, surface) in enumerate(bodies):
            pos, _ = p.getBasePositionAndOrientation(body, physicsClientId=cid)
            lin, ang = p.getBaseVelocity(body, physicsClientId=cid)
            close = p.getClosestPoints(body, mesh_body, 0.5, physicsClientId=cid)
            gap = min((c[8] for c in close), default=math.inf)
            pos = np.array(pos)
            below = surface_z(pos[None, :2])[0]
            # below the mesh surface under it by more than its size: it went through the mesh
            fell = bool(np.isnan(below) and pos[2] < float(v[:, 2].min()) - size) or \
                bool(not np.isnan(below) and pos[2] < below - size - config.contact_tolerance
                     and abs(gap) > config.contact_tolerance)
            free_fall = math.sqrt(2 * GRAVITY * max(config.drop_height + 2 * size, start[2] - float(v[:, 2].min())))
            speed, spin = float(np.linalg.norm(lin)), float(np.linalg.norm(ang))
            objects.append(DroppedObject(
                shape=kind, size=size, start=[float(x) for x in start], end=[float(x) for x in pos],
                speed=speed, angular_speed=spin, max_speed=float(max_speed[j]), gap=float(gap),
                at_rest=speed <= config.rest_speed and spin <= config.rest_angular_speed,
                on_surface=abs(gap) <= config.contact_tolerance, fell_through=fell,
                exploded=float(max_speed[j]) > 1.5 * free_fall + 1.0))
    finally:
        p.disconnect(physicsClientId=cid)
    return DropTestResult(objects=objects, sim_seconds=steps * config.time_step,
                          wall_seconds=time.perf_counter() - t_wall)
