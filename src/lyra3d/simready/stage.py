"""Simulation-ready scenes: the Gaussians for rendering, a collision mesh and a ground plane for physics,
in one USD stage a robot simulator (Isaac Sim, any UsdPhysics reader) loads, plus ``mesh.glb``/``mesh.obj``.

``export_simready(scene_dir, out_dir)`` reads a generated scene folder (``scene.ply`` + ``cameras.json``),
extracts the surface (:func:`lyra3d.simready.mesh.extract_mesh`), levels the scene on its detected floor and writes
``out_dir`` (atomically: a temporary folder renamed at the end)::

    scene.usd       the stage (binary crate): Z up, metres (metersPerUnit 1, kilogramsPerUnit 1)
    mesh.glb        the collision mesh with vertex colours, glTF axes (Y up, metres)
    mesh.obj        the same mesh, Z up and metres like the stage (robotics tools: PyBullet, MuJoCo,
                    URDF), vertex colours as ``v x y z r g b``
    simready.json   scale, the scene-to-stage transform, the floor fit, mesh size, timings, file sizes
                    and the drop test's outcome

Stage layout (``/World`` is the default prim)::

    /World/Gaussians            ParticleField3DGaussianSplat  purpose "render" (lyra3d.io.export.save_usd)
    /World/GaussiansPoints      Points fallback               purpose "proxy"
    /World/Cameras/cam_NNNN     Camera, one per generating camera
    /World/PhysicsScene         PhysicsScene: gravity -Z, 9.81 m/s²
    /World/PhysicsMaterial      Material with PhysicsMaterialAPI (friction, restitution)
    /World/CollisionMesh        Mesh, PhysicsCollisionAPI + PhysicsMeshCollisionAPI (approximation "none":
                                the triangles themselves), purpose "guide", displayColor per vertex
    /World/Ground               Plane (axis Z, at Z = 0), PhysicsCollisionAPI, purpose "guide"

Both colliders are *static*: UsdPhysics makes a collider without a ``PhysicsRigidBodyAPI`` on it or an
ancestor a static body (a disabled or kinematic rigid body is something else), so none is applied. They
have the "guide" purpose so that renderers show the Gaussians, not the grey-ish mesh (a viewer shows
guides on request; physics ignores purposes).

Frames. The scene's world is its input camera's OpenCV frame (x right, y down, z forward). The stage is
``sim = R_zup · s · (L · p)``: ``L`` levels the fitted floor (smallest rotation of its normal onto ``-y``, then
the floor moved to ``y = 0``), ``s`` is the scale in metres per scene unit, ``R_zup`` the export's fixed
``X = x, Y = z, Z = -y`` (:data:`lyra3d.io.export.USD_AXIS_ROTATIONS`). So the floor is ``Z = 0``, the input
camera stands above the origin looking along ``+Y``. The full 4×4 is ``customLayerData.lyra3d.simready
.sceneToStage`` (row-major, acting on column vectors).

Scale: docs/design.md §2 makes scene depth metric, so one scene unit is one metre (``s = 1``) unless the scene
folder's ``meta.json`` gives ``meters_per_unit`` or the caller sets ``scene_scale`` (``--scene-scale``) for a
scene whose depth is not metric.

The collision mesh's floor is closed at the fitted plane where the generated geometry has holes or dips
(``ExtractionConfig.fill_floor``, on by default; see :mod:`lyra3d.simready.mesh`), so that it holds what is dropped on
it without the ground plane's help.

The physics check is :func:`lyra3d.simready.drop_test.drop_test`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lyra3d.core.cameras import Cameras, rigid_inverse
from lyra3d.core.files import check_output, staged_dir
from lyra3d.core.progress import Progress, no_progress
from lyra3d.errors import InputError
from lyra3d.simready.config import SimReadyConfig
from lyra3d.simready.drop_test import GRAVITY, DropTestResult, drop_test
from lyra3d.simready.ground import leveling_transform
from lyra3d.simready.mesh import SIM_INSTALL, MeshResult, extract_mesh

#: What :func:`export_simready` writes into its output folder.
SIMREADY_FILES = ("scene.usd", "mesh.glb", "mesh.obj", "simready.json")


@dataclass
class SimReadyResult:
    """What :func:`export_simready` wrote: ``out_dir``, ``files`` (name → bytes), the mesh (scene frame),
    the 4×4 ``scene_to_stage`` transform, the ``scale`` (m per scene unit) and where it came from,
    ``seconds`` per stage and the drop test (``None`` when not run)."""

    out_dir: Path
    files: dict[str, int]
    mesh: MeshResult
    scene_to_stage: np.ndarray
    scale: float
    scale_source: str
    seconds: dict[str, float]
    drop_test: "DropTestResult | None" = None
    report: dict = field(default_factory=dict)


# -- frames --------------------------------------------------------------------------------------------------------
def scene_to_stage(mesh_or_ground, scale: float = 1.0) -> np.ndarray:
    """The ``(4, 4)`` transform from the scene's OpenCV frame to the stage (Z up, metres, floor at Z = 0):
    ``R_zup · s · L`` (see the module notes). Takes a :class:`MeshResult` or a ground plane (or ``None``:
    no leveling)."""
    from lyra3d.io.export import USD_AXIS_ROTATIONS

    ground = mesh_or_ground.ground if isinstance(mesh_or_ground, MeshResult) else mesh_or_ground
    m = leveling_transform(ground)
    s = np.diag([scale, scale, scale, 1.0])
    r = np.eye(4)
    r[:3, :3] = np.array(USD_AXIS_ROTATIONS["Z"])
    return r @ s @ m


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ m[:3, :3].T + m[:3, 3]


# -- mesh files -----------------------------------------------------------------------------------------------------
def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None) -> None:
    """A Wavefront OBJ: ``v x y z [r g b]`` (colours in [0, 1], the common extension) and 1-based ``f``."""
    v = np.asarray(vertices, np.float64)
    with open(path, "w") as f:
        f.write(f"# lyra3d collision mesh: {len(v)} vertices, {len(faces)} faces\n")
        if colors is not None:
            np.savetxt(f, np.hstack([v, np.clip(colors, 0, 1)]), fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
        else:
            np.savetxt(f, v, fmt="v %.6f %.6f %.6f")
        np.savetxt(f, np.asarray(faces, np.int64) + 1, fmt="f %d %d %d")


def load_mesh_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read a triangle OBJ as written by :func:`write_obj` (``v`` with optional colours, ``f`` with plain or
    ``i/j/k`` indices): ``(vertices (V, 3), faces (F, 3) 0-based, colors (V, 3) or None)``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file not found: {path}")
    verts, faces = [], []
    try:
        for line in path.read_text().splitlines():
            if line.startswith("v "):
                verts.append([float(t) for t in line.split()[1:]])
            elif line.startswith("f "):
                idx = [int(t.split("/")[0]) for t in line.split()[1:]]
                for k in range(1, len(idx) - 1):  # fan-triangulate polygons
                    faces.append([idx[0], idx[k], idx[k + 1]])
    except ValueError as e:
        raise InputError(f"{path} is not a readable OBJ mesh ({e})") from None
    if not verts or not faces:
        raise InputError(f"{path} holds no triangles")
    width = min(len(v) for v in verts)
    v = np.array([row[:width] for row in verts], np.float64)
    f = np.array(faces, np.int64)
    f = np.where(f < 0, f + len(v), f - 1)
    return v[:, :3], f, (v[:, 3:6] if width >= 6 else None)


def write_glb(path: Path, vertices_zup: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> None:
    """A binary glTF of the mesh with vertex colours (``COLOR_0``), converted to glTF's Y-up axes
    (``X, Y, Z`` = ``X, Z, -Y`` of the Z-up stage), via trimesh."""
    try:
        import trimesh
    except ImportError:
        raise InputError(f"writing mesh.glb needs trimesh: {SIM_INSTALL}") from None
    v = np.asarray(vertices_zup, np.float64)
    yup = np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)
    rgba = np.concatenate([np.clip(np.rint(np.asarray(colors) * 255), 0, 255),
                           np.full((len(v), 1), 255)], axis=1).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices=yup, faces=np.asarray(faces, np.int64), vertex_colors=rgba, process=False)
    Path(path).write_bytes(mesh.export(file_type="glb"))


# -- the USD stage -------------------------------------------------------------------------------------------------
def _add_physics(stage, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, ground_size: float,
                 friction: float, restitution: float, report: dict) -> None:
    from pxr import Gf, UsdGeom, UsdPhysics, UsdShade, Vt

    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    scene = UsdPhysics.Scene.Define(stage, "/World/PhysicsScene")
    scene.CreateGravityDirectionAttr(Gf.Vec3f(0.0, 0.0, -1.0))
    scene.CreateGravityMagnitudeAttr(GRAVITY)

    material = UsdShade.Material.Define(stage, "/World/PhysicsMaterial")
    pm = UsdPhysics.MaterialAPI.Apply(material.GetPrim())
    pm.CreateStaticFrictionAttr(float(friction))
    pm.CreateDynamicFrictionAttr(float(friction))
    pm.CreateRestitutionAttr(float(restitution))

    def bind(prim) -> None:
        UsdShade.MaterialBindingAPI.Apply(prim).Bind(material, UsdShade.Tokens.weakerThanDescendants, "physics")

    v32 = np.ascontiguousarray(vertices, np.float32)
    mesh = UsdGeom.Mesh.Define(stage, "/World/CollisionMesh")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(v32))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(faces, np.int32).reshape(-1)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    mesh.CreateDoubleSidedAttr(True)
    mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([v32.min(0), v32.max(0)])))
    mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(
        Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(colors, np.float32)))
    mesh.CreatePurposeAttr(UsdGeom.Tokens.guide)
    UsdPhysics.CollisionAPI.Apply(mesh.GetPrim())
    UsdPhysics.MeshCollisionAPI.Apply(mesh.GetPrim()).CreateApproximationAttr(UsdPhysics.Tokens.none)
    bind(mesh.GetPrim())

    plane = UsdGeom.Plane.Define(stage, "/World/Ground")
    plane.CreateAxisAttr("Z")
    plane.CreateWidthAttr(float(ground_size))
    plane.CreateLengthAttr(float(ground_size))
    half = 0.5 * float(ground_size)
    plane.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(-half, -half, 0.0), Gf.Vec3f(half, half, 0.0)]))
    plane.CreatePurposeAttr(UsdGeom.Tokens.guide)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    bind(plane.GetPrim())

    layer = stage.GetRootLayer()
    data = dict(layer.customLayerData)
    lyra = dict(data.get("lyra3d", {}))
    lyra["simready"] = {k: (Gf.Matrix4d(*np.asarray(v, np.float64).reshape(-1).tolist())
                            if k == "sceneToStage" else v) for k, v in report.items()}
    data["lyra3d"] = lyra
    layer.customLayerData = data
    stage.SetMetadata("comment", "lyra3d sim-ready scene: Gaussians (render), collision mesh and ground (physics)")


def _write_stage(path: Path, gaussians, cameras: Cameras | None, vertices: np.ndarray, faces: np.ndarray,
                 colors: np.ndarray, config: SimReadyConfig, ground_size: float, report: dict) -> None:
    """The Gaussians and cameras through :func:`lyra3d.io.export.save_usd`, then the physics prims, flattened
    into one binary stage at ``path``."""
    from pxr import Usd

    from lyra3d.io.export import save_usd

    splats = path.with_name(".gaussians.usdc")
    save_usd(gaussians, splats, cameras=cameras, up_axis="Z", points=config.points)
    stage = Usd.Stage.Open(str(splats))
    _add_physics(stage, vertices, faces, colors, ground_size, config.friction, config.restitution, report)
    if not stage.GetRootLayer().Export(str(path)):
        raise InputError(f"usd-core could not write {path}")
    del stage
    splats.unlink()


# -- the export ----------------------------------------------------------------------------------------------------
def _center_depth(cameras_json: Path) -> float | None:
    """The scene-centre depth ``lyra3d generate`` records in ``cameras.json``, if there."""
    try:
        value = json.loads(cameras_json.read_text()).get("center_depth")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _scene_files(scene: Path) -> tuple[Path, Path, Path]:
    """``(folder, its Gaussians PLY, its cameras.json)`` of a scene folder or of a PLY inside one."""
    scene = Path(scene)
    if scene.is_file() and scene.suffix.lower() == ".ply":
        scene_dir, ply = scene.parent, scene
    elif scene.is_dir():
        scene_dir, ply = scene, scene / "scene.ply"
    else:
        raise InputError(f"scene not found: {scene} (give a generated scene folder or its scene.ply)")
    cams = scene_dir / "cameras.json"
    if not ply.is_file():
        raise InputError(f"{scene_dir} has no scene.ply (the Gaussians); a simready export needs a generated "
                         "scene folder")
    if not cams.is_file():
        raise InputError(f"{scene_dir} has no cameras.json (the generating cameras); the surface is fused "
                         "from depth rendered at them")
    return scene_dir, ply, cams


def _scale(scene_dir: Path, scene_scale: float | None) -> tuple[float, str]:
    if scene_scale is not None:
        return float(scene_scale), "scene_scale"
    meta = scene_dir / "meta.json"
    if meta.is_file():
        from lyra3d.core.files import read_json

        value = (read_json(meta, "scene meta file") or {}).get("meters_per_unit")
        if value is not None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"{meta}: meters_per_unit must be a positive number, got {value!r}")
            return float(value), "meta.json"
    return 1.0, "metric depth (1 scene unit = 1 m)"


def _transform_cameras(cameras: Cameras, m: np.ndarray, scale: float) -> Cameras:
    """Cameras of the scene moved by the similarity ``m`` (rotation·scale + translation), so the same
    pixels see the same points."""
    c2w = cameras.camera_to_world.double()
    mt = torch.as_tensor(m, dtype=torch.float64)
    out = torch.zeros_like(c2w)
    out[:, :3, :3] = (mt[:3, :3] / scale) @ c2w[:, :3, :3]
    out[:, :3, 3] = c2w[:, :3, 3] @ mt[:3, :3].T + mt[:3, 3]
    out[:, 3, 3] = 1.0
    return Cameras(rigid_inverse(out).float(), cameras.intrinsics.float(), cameras.width, cameras.height)


def export_simready(scene_dir: str | Path, out_dir: str | Path, config: SimReadyConfig = SimReadyConfig(),
                    force: bool = False, progress: Progress | None = None) -> SimReadyResult:
    """Write a sim-ready folder for a generated scene (see the module notes).

    Args:
        scene_dir: a folder with ``scene.ply`` and ``cameras.json`` (or the path of its ``scene.ply``).
        out_dir: the folder to write (must not exist unless ``force``).
        config: :class:`SimReadyConfig`.
        force: replace an existing ``out_dir``.
        progress: a :class:`~lyra3d.core.progress.Progress`, told ``(stage, 0, 1)`` as each stage starts and
            ``(stage, 1, 1)`` as it ends: the mesh extraction's stages (:func:`extract_mesh`), then ``write``
            (the USD stage, glb, obj) and ``drop_test`` (with ``config.check``).

    Returns:
        :class:`SimReadyResult`.

    Raises:
        InputError: a missing ``scene.ply``/``cameras.json``, unreadable inputs, an existing output, a missing
            optional dependency (``pip install lyra3d[sim]``).
    """
    from lyra3d.core.gaussians import load_ply
    from lyra3d.io.export import USD_AXIS_ROTATIONS, _pxr

    say = progress or no_progress
    t0 = time.perf_counter()
    scene_dir, ply, cams_path = _scene_files(Path(scene_dir))
    out_dir = check_output(out_dir, force, "folder")
    _pxr()  # fail early, before the extraction, when usd-core is missing
    for module in ("skimage", "fast_simplification", "trimesh"):
        try:
            __import__(module)
        except ImportError:
            raise InputError(f"the simready export needs {module}: {SIM_INSTALL}") from None
    scale, scale_source = _scale(scene_dir, config.scene_scale)
    gaussians = load_ply(ply).validate()
    cameras = Cameras.load_json(cams_path)
    seconds: dict[str, float] = {"load": time.perf_counter() - t0}

    extraction = config.extraction
    center = _center_depth(cams_path)
    if extraction.max_depth is None and center is not None:
        # a generated scene's sky is Gaussians far away, often half of the pixels: a median-based cut would
        # keep it; the generating scene centre bounds the scene instead
        extraction = dataclasses.replace(extraction, max_depth=extraction.depth_factor * center)
    mesh = extract_mesh(gaussians, cameras, extraction, progress=say)
    seconds["extract"] = mesh.seconds["total"]
    t = time.perf_counter()
    m = scene_to_stage(mesh, scale)
    # save_usd applies the fixed OpenCV-to-Z-up rotation itself: hand it the scene levelled and scaled in
    # the OpenCV frame, i.e. R_zupᵀ · m = s · L.
    r_zup = np.eye(4)
    r_zup[:3, :3] = np.array(USD_AXIS_ROTATIONS["Z"])
    scaled = r_zup.T @ m
    rigid = scaled.copy()
    rigid[:3, :3] /= scale
    verts = _apply(m, mesh.vertices)
    g_stage = gaussians.to(dtype=torch.float64).transform(torch.from_numpy(rigid), scale=scale).to(
        dtype=torch.float32)
    cams_stage = _transform_cameras(cameras, scaled, scale)
    horizontal = float(np.max(verts[:, :2].max(0) - verts[:, :2].min(0)))
    ground_size = config.ground_size or max(20.0, 4.0 * horizontal)
    report = {
        "metersPerUnit": 1.0, "upAxis": "Z", "scale": scale, "scaleSource": scale_source,
        "sceneToStage": m, "faces": int(mesh.num_faces), "vertices": int(len(mesh.vertices)),
        "voxelSize": float(mesh.voxel_size * scale), "groundFound": mesh.ground is not None,
    }
    say("write", 0, 1)
    with staged_dir(out_dir, force) as tmp:
        _write_stage(tmp / "scene.usd", g_stage, cams_stage, verts, mesh.faces, mesh.colors, config,
                     ground_size, report)
        write_obj(tmp / "mesh.obj", verts, mesh.faces, mesh.colors)
        write_glb(tmp / "mesh.glb", verts, mesh.faces, mesh.colors)
        seconds["write"] = time.perf_counter() - t
        say("write", 1, 1)
        check, note = None, "not run"
        if config.check:
            say("drop_test", 0, 1)
            t = time.perf_counter()
            try:
                check = drop_test(verts, mesh.faces, config.drop_test)
            except InputError as e:  # no pybullet, or no place to drop anything: say so, keep the export
                note = f"not run: {e}"
            seconds["drop_test"] = time.perf_counter() - t
            say("drop_test", 1, 1)
        seconds["total"] = time.perf_counter() - t0
        files = {name: (tmp / name).stat().st_size for name in SIMREADY_FILES if (tmp / name).exists()}
        summary = {
            "scene": str(scene_dir), "stage": "scene.usd", "up_axis": "Z", "meters_per_unit": 1.0,
            "scale": scale, "scale_source": scale_source,
            "scene_to_stage": np.round(m, 9).tolist(),
            "ground_plane_scene_frame": mesh.ground.to_dict() if mesh.ground is not None else None,
            "ground_size_m": ground_size,
            "mesh": {"faces": mesh.num_faces, "vertices": int(len(mesh.vertices)),
                     "voxel_size_m": mesh.voxel_size * scale, "max_depth_m": mesh.max_depth * scale,
                     "extraction": mesh.stats},
            "cameras": len(cameras), "gaussians": len(gaussians),
            "seconds": {k: round(v, 3) for k, v in {**mesh.seconds, **seconds}.items()},
            "drop_test": check.to_dict() if check is not None else note,
            "files": dict(files),
        }
        (tmp / "simready.json").write_text(json.dumps(summary, indent=1))
        files["simready.json"] = (tmp / "simready.json").stat().st_size
    return SimReadyResult(out_dir=out_dir, files=files, mesh=mesh, scene_to_stage=m, scale=scale,
                          scale_source=scale_source, seconds=seconds, drop_test=check, report=summary)
