"""Sim-ready export (lyra3d.simready): the USD stage opens with usd-core with the physics schemas applied and
Z-up metres set, the mesh files agree with it, spheres and boxes dropped on the mesh come to rest on it in
PyBullet, outputs are written atomically, and bad inputs give one-line errors (API and CLI)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import load_ply
from lyra3d.data import worlds
from lyra3d.errors import InputError
from lyra3d.evaluation.mesh import point_mesh_distance, world_surface_samples, write_world_scene
from lyra3d.simready import mesh
from lyra3d.simready import stage as simready
from lyra3d.simready.config import DropTestConfig

pytest.importorskip("pxr")
pytest.importorskip("pybullet")
pytest.importorskip("trimesh")
pytest.importorskip("skimage")
pytest.importorskip("fast_simplification")

SEED = 1_000_002  # an evaluation world
CONFIG = simready.SimReadyConfig(extraction=mesh.ExtractionConfig(max_views=12, target_faces=6000))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("simready")
    world = worlds.make_world(SEED)
    scene = write_world_scene(world, root / "scene", frames=5, width=160, height=88, stride=1, shadows=False)
    result = simready.export_simready(scene, root / "out", CONFIG)
    return world, scene, result


def test_writes_exactly_the_promised_files_atomically(exported):
    _, scene, result = exported
    out = result.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(simready.SIMREADY_FILES)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "scene"]  # no temporary folder left
    assert result.files == {p.name: p.stat().st_size for p in out.iterdir()}
    report = json.loads((out / "simready.json").read_text())
    assert report["up_axis"] == "Z" and report["meters_per_unit"] == 1.0 and report["scale"] == 1.0
    assert report["mesh"]["faces"] == result.mesh.num_faces <= 6000
    assert report["drop_test"]["passed"] is True
    assert report["files"]["scene.usd"] == result.files["scene.usd"]


def test_usd_stage_has_physics_schemas_z_up_metres_gaussians_and_cameras(exported):
    from pxr import Usd, UsdGeom, UsdPhysics, UsdVol

    _, scene, result = exported
    stage = Usd.Stage.Open(str(result.out_dir / "scene.usd"))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert UsdPhysics.GetStageKilogramsPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == "/World"

    physics = UsdPhysics.Scene(stage.GetPrimAtPath("/World/PhysicsScene"))
    assert physics and tuple(physics.GetGravityDirectionAttr().Get()) == (0.0, 0.0, -1.0)
    assert physics.GetGravityMagnitudeAttr().Get() == pytest.approx(9.81)

    col = stage.GetPrimAtPath("/World/CollisionMesh")
    assert col.IsA(UsdGeom.Mesh)
    assert col.HasAPI(UsdPhysics.CollisionAPI) and col.HasAPI(UsdPhysics.MeshCollisionAPI)
    assert UsdPhysics.MeshCollisionAPI(col).GetApproximationAttr().Get() == "none"
    prim = col
    while prim:  # static: no rigid body on the collider or any ancestor
        assert not prim.HasAPI(UsdPhysics.RigidBodyAPI)
        prim = prim.GetParent()
    m = UsdGeom.Mesh(col)
    pts = np.array(m.GetPointsAttr().Get())
    counts = np.array(m.GetFaceVertexCountsAttr().Get())
    assert len(counts) == result.mesh.num_faces and (counts == 3).all()
    assert len(np.array(m.GetDisplayColorPrimvar().Get())) == len(pts)
    assert m.GetPurposeAttr().Get() == UsdGeom.Tokens.guide
    binding = col.GetRelationship("material:binding:physics").GetTargets()
    assert [str(t) for t in binding] == ["/World/PhysicsMaterial"]
    material = stage.GetPrimAtPath("/World/PhysicsMaterial")
    assert material.HasAPI(UsdPhysics.MaterialAPI)

    ground = stage.GetPrimAtPath("/World/Ground")
    assert ground.IsA(UsdGeom.Plane) and ground.HasAPI(UsdPhysics.CollisionAPI)
    assert UsdGeom.Plane(ground).GetAxisAttr().Get() == "Z"
    # The floor is flat at Z = 0: a large share of the mesh lies exactly there, nothing far below.
    assert (np.abs(pts[:, 2]) < 1e-4).mean() > 0.1
    assert np.percentile(pts[:, 2], 1) > -0.05

    splats = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/Gaussians"))
    positions = np.array(splats.GetPositionsAttr().Get())
    assert len(positions) == len(load_ply(scene / "scene.ply"))
    cams = [p for p in stage.Traverse() if p.IsA(UsdGeom.Camera)]
    assert len(cams) == len(Cameras.load_json(scene / "cameras.json"))
    data = stage.GetRootLayer().customLayerData["lyra3d"]["simready"]
    np.testing.assert_allclose(np.array(data["sceneToStage"]), result.scene_to_stage, atol=1e-9)

    # What OpenUSD's own physics parser (the one simulators build on) finds: one scene, a material, and two
    # static colliders (no rigid body), the mesh used as its triangles.
    load = getattr(UsdPhysics, "UsdPhysicsLoadStageFromPrimRange", None) or UsdPhysics.LoadUsdPhysicsFromRange
    parsed = {str(kind).split(".")[-1]: (paths, descs) for kind, (paths, descs) in load(stage, ["/World"]).items()}
    assert set(parsed) == {"Scene", "RigidBodyMaterial", "PlaneShape", "MeshShape"}
    (mesh_path,), (mesh_desc,) = parsed["MeshShape"]
    assert str(mesh_path) == "/World/CollisionMesh" and str(mesh_desc.approximation) == "none"
    for _, (desc,) in (parsed["MeshShape"], parsed["PlaneShape"]):
        assert desc.collisionEnabled and str(desc.rigidBody) == ""  # static
        assert [str(m) for m in desc.materials] == ["/World/PhysicsMaterial"]


def test_stage_geometry_is_the_true_world_in_z_up_metres(exported):
    world, scene, result = exported
    from pxr import Usd, UsdGeom, UsdVol

    m = result.scene_to_stage
    stage = Usd.Stage.Open(str(result.out_dir / "scene.usd"))
    col = UsdGeom.Mesh(stage.GetPrimAtPath("/World/CollisionMesh"))
    pts = np.array(col.GetPointsAttr().Get(), np.float64)
    faces = np.array(col.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    cams = Cameras.load_json(scene / "cameras.json")
    truth = world_surface_samples(world, cams.resized(96, 53), result.mesh.max_depth, 20_000)
    truth_stage = truth @ m[:3, :3].T + m[:3, 3]
    assert np.mean(point_mesh_distance(truth_stage, pts, faces, samples=100_000)) < 0.04
    # the true floor (y = ground_height in the scene) is at Z = 0, the true up is +Z
    floor = truth[np.abs(truth[:, 1] - world.ground_height) < 1e-6]
    assert np.abs(floor @ m[2, :3] + m[2, 3]).mean() < 0.03
    assert (m[:3, :3] @ np.array(mesh.SCENE_UP))[2] > 0.999
    # Gaussians and cameras moved with the mesh: the input camera stands above the origin, at its height.
    splats = np.array(UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/Gaussians"))
                      .GetPositionsAttr().Get(), np.float64)
    means = load_ply(scene / "scene.ply").means.double().numpy()
    np.testing.assert_allclose(splats, means @ m[:3, :3].T + m[:3, 3], atol=1e-4)
    cam0 = UsdGeom.Camera(stage.GetPrimAtPath("/World/Cameras/cam_0000"))
    eye = np.array(cam0.ComputeLocalToWorldTransform(Usd.TimeCode.Default()).ExtractTranslation())
    np.testing.assert_allclose(eye, m[:3, 3], atol=1e-5)
    assert abs(eye[2] - world.ground_height) < 0.03


def test_obj_and_glb_hold_the_same_coloured_mesh(exported):
    import trimesh

    _, _, result = exported
    v, f, c = simready.load_mesh_obj(result.out_dir / "mesh.obj")
    assert len(f) == result.mesh.num_faces and c is not None and c.min() >= 0 and c.max() <= 1
    glb = trimesh.load(result.out_dir / "mesh.glb", force="mesh", process=False)
    assert len(glb.faces) == len(f)
    np.testing.assert_allclose(glb.vertices, np.stack([v[:, 0], v[:, 2], -v[:, 1]], 1), atol=1e-5)  # Y up
    colors = np.asarray(glb.visual.vertex_colors)[:, :3] / 255.0
    np.testing.assert_allclose(colors, c, atol=1 / 255 + 1e-4)


def test_dropped_spheres_and_boxes_come_to_rest_on_the_exported_mesh(exported):
    _, _, result = exported
    v, f, _ = simready.load_mesh_obj(result.out_dir / "mesh.obj")
    check = simready.drop_test(v, f, DropTestConfig(objects=6, seed=3))
    assert check.passed, check.to_dict()
    assert len(check.objects) == 6 and {o.shape for o in check.objects} == {"sphere", "box"}
    for o in check.objects:
        assert o.speed < 0.05 and abs(o.gap) < 0.02 and not o.fell_through and not o.exploded
        assert o.end[2] < o.start[2] - 0.3  # they did fall
    assert any(o.start[2] - o.size > 0.3 for o in check.objects)  # some were dropped onto an object


def test_drop_test_rests_objects_at_their_exact_height_on_a_flat_floor():
    v = np.array([[-3, -3, 0], [3, -3, 0], [3, 3, 0], [-3, 3, 0]], np.float64)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    check = simready.drop_test(v, f, DropTestConfig(objects=4, seed=0))
    assert check.passed and len(check.objects) == 4
    for o in check.objects:
        assert o.end[2] == pytest.approx(o.size, abs=0.01)  # sphere centre at r, box centre at half edge


def _floor_with_a_hole_a_dip_and_a_table():
    """Flat Gaussians (a stand-in for a decoder's) of a 6 m x 6 m floor 1.5 m under the input camera, with a
    1 m square hole (nothing seen through it), a patch 0.15 m lower (a dip) and a table top 0.5 m above the
    floor, seen by Lyra's six trajectories of 2 frames; the three places' centres in the stage's (X, Y)."""
    from lyra3d.core.cameras import default_camera
    from lyra3d.core.gaussians import Gaussians
    from lyra3d.core.trajectories import lyra_trajectories

    step = 0.06
    x, z = (a.reshape(-1) for a in np.meshgrid(np.arange(-3, 3, step), np.arange(3.0, 9.0, step), indexing="ij"))
    hole, dip, table = ((np.abs(x - cx) < 0.5) & (np.abs(z - 5.8) < 0.7) for cx in (0.0, -1.8, 1.8))
    y = 1.5 + 0.15 * dip
    means = np.concatenate([np.stack([x, y, z], 1)[~hole], np.stack([x, y - 0.5, z], 1)[table]])
    n = len(means)
    checker = (np.floor(means[:, 0] / 0.5) + np.floor(means[:, 2] / 0.5)) % 2
    gaussians = Gaussians.from_activated(
        torch.tensor(means, dtype=torch.float32), torch.tensor([0.8 * step, 0.04 * step, 0.8 * step]).expand(n, 3),
        torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4), torch.full((n,), 0.95),
        torch.tensor(0.3 + 0.4 * checker, dtype=torch.float32)[:, None].expand(n, 3))
    cameras = Cameras.cat(list(lyra_trajectories(default_camera(96, 64), 2, 5.5).values()))
    return gaussians, cameras, {"hole": (-0.25, 5.7), "dip": (-2.1, 5.9), "table": (1.8, 5.4), "near": (0.5, 1.2)}


def test_the_floor_fill_closes_a_hole_dropped_objects_fall_through_and_keeps_the_table():
    """Issue 11's failure on a generated scene, made small: without the floor fill a ball dropped over a hole in
    the fused floor falls through it, one dropped into a dip ends below the floor and one dropped between the
    cameras and the first floor they see (where a ball rolling towards them went off the edge) finds nothing;
    with it (the default) all rest at the floor's height, and the surface above the floor (the table) is left
    as it was."""
    from scipy.spatial import cKDTree

    gaussians, cameras, places = _floor_with_a_hole_a_dip_and_a_table()
    config = mesh.ExtractionConfig(max_views=6, render_width=96, target_faces=0)  # no decimation: compare
    drops = DropTestConfig(points=tuple(places.values()), size_range=(0.1, 0.1))  # the surfaces as made
    ends, above = {}, {}
    for fill in (False, True):
        result = mesh.extract_mesh(gaussians, cameras, dataclasses.replace(config, fill_floor=fill))
        assert result.ground is not None and result.stats["floor_filled"] == int(fill)
        m = simready.scene_to_stage(result)
        v = result.vertices @ m[:3, :3].T + m[:3, 3]
        ends[fill] = dict(zip(places, simready.drop_test(v, result.faces, drops).objects))
        above[fill] = v, 4 * result.voxel_size  # the fill changes nothing higher (truncation + a voxel)
    hole, dip, table, near = (ends[False][k] for k in places)
    assert hole.fell_through and not hole.passed and near.fell_through
    assert dip.end[2] < 0.1 - 0.08  # below the floor (in the dip, or through its gaps)
    assert table.passed and table.end[2] > 0.5
    for name, o in ends[True].items():
        assert o.passed, (name, o)
        assert o.end[2] == pytest.approx(table.end[2] if name == "table" else 0.1, abs=0.02), (name, o)
    (v_fill, high), (v_none, _) = above[True], above[False]
    assert (v_fill[:, 2] > high).sum() == (v_none[:, 2] > high).sum()  # nothing added up there ...
    assert cKDTree(v_fill).query(v_none[v_none[:, 2] > high])[0].max() < 1e-4  # ... nor moved or removed


def test_scale_cameras_and_failures_leave_nothing_half_written(exported, tmp_path, monkeypatch):
    _, scene, result = exported
    monkeypatch.setattr(simready, "extract_mesh", lambda *a, **k: result.mesh)  # reuse the extraction
    big = simready.export_simready(scene, tmp_path / "x2", simready.SimReadyConfig(scene_scale=2.0, check=False))
    np.testing.assert_allclose(big.scene_to_stage[:3, :3], 2 * result.scene_to_stage[:3, :3], atol=1e-12)
    v1, _, _ = simready.load_mesh_obj(result.out_dir / "mesh.obj")
    v2, _, _ = simready.load_mesh_obj(tmp_path / "x2" / "mesh.obj")
    np.testing.assert_allclose(v2, 2 * v1, atol=2e-5)
    assert json.loads((tmp_path / "x2" / "simready.json").read_text())["drop_test"] == "not run"
    # A scale from meta.json, when the scene folder says so.
    (scene / "meta.json").write_text(json.dumps({"meters_per_unit": 0.5}))
    try:
        half = simready.export_simready(scene, tmp_path / "half", simready.SimReadyConfig(check=False))
        assert half.scale == 0.5 and half.scale_source == "meta.json"
    finally:
        (scene / "meta.json").unlink()
    # Cameras keep seeing the same points after the similarity transform.
    cams = Cameras.load_json(scene / "cameras.json")[:3]
    m = big.scene_to_stage
    moved = simready._transform_cameras(cams, m, 2.0)
    p = torch.tensor([[0.3, 0.8, 4.0], [-1.0, 1.2, 6.0]], dtype=torch.float64)
    q = torch.from_numpy(p.numpy() @ m[:3, :3].T + m[:3, 3])

    def project(c: Cameras, x: torch.Tensor) -> torch.Tensor:
        w2c = c.world_to_camera.double()
        pc = torch.einsum("bij,nj->bni", w2c[:, :3, :3], x) + w2c[:, None, :3, 3]
        return pc[..., :2] / pc[..., 2:]

    torch.testing.assert_close(project(moved, q), project(cams, p), atol=1e-5, rtol=0)
    # A failure while writing leaves neither the output nor a temporary folder.
    monkeypatch.setattr(simready, "write_glb", lambda *a, **k: (_ for _ in ()).throw(InputError("disk full")))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match="disk full"):
        simready.export_simready(scene, tmp_path / "broken", simready.SimReadyConfig(check=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # An existing output is kept unless forced.
    with pytest.raises(InputError, match="--force"):
        simready.export_simready(scene, tmp_path / "x2", simready.SimReadyConfig(check=False))


def test_missing_inputs_are_one_line_errors(tmp_path, exported):
    _, scene, _ = exported
    (tmp_path / "no_cams").mkdir()
    (tmp_path / "no_cams" / "scene.ply").write_bytes((scene / "scene.ply").read_bytes())
    (tmp_path / "no_ply").mkdir()
    (tmp_path / "no_ply" / "cameras.json").write_text((scene / "cameras.json").read_text())
    for folder, words in (("no_cams", "cameras.json"), ("no_ply", "scene.ply"), ("nowhere", "not found")):
        with pytest.raises(InputError, match=words) as e:
            simready.export_simready(tmp_path / folder, tmp_path / "out")
        assert "\n" not in str(e.value)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(InputError, match="scale"):
            simready.SimReadyConfig(scene_scale=bad)
    with pytest.raises(InputError):
        DropTestConfig(size_range=(0.2, 0.1))
    with pytest.raises(InputError, match="pairs"):
        DropTestConfig(points=((1.0, 2.0, 3.0),))


def lyra3d(*args):
    return subprocess.run([sys.executable, "-m", "lyra3d", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_cli_export_simready(tmp_path):
    # a smaller scene than the fixture's (Lyra's six trajectories of 2 frames): the CLI runs the defaults
    scene = write_world_scene(SEED, tmp_path / "scene", frames=2, width=96, height=53, stride=1,
                                   shadows=False)
    out = tmp_path / "sim"
    r = lyra3d("export", scene, "--format", "simready", "--out", out, "--target-faces", 3000)
    assert r.returncode == 0, r.stderr
    assert "drop test: " in r.stderr and "passed" in r.stderr and "pybullet build time" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(simready.SIMREADY_FILES)
    assert json.loads((out / "simready.json").read_text())["mesh"]["faces"] <= 3000
    one_line_error(lyra3d("export", scene, "--format", "simready", "--out", out), "exists", "--force")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "scene.ply").write_bytes((scene / "scene.ply").read_bytes())
    one_line_error(lyra3d("export", tmp_path / "bare", "--format", "simready"), "cameras.json")
    one_line_error(lyra3d("export", tmp_path / "none", "--format", "simready"), "not found")
    one_line_error(lyra3d("export", scene, "--format", "simready", "--scene-scale", 0), "scale")
    one_line_error(lyra3d("export", scene, "--format", "ply", "--scene-scale", 2), "--scene-scale")
    one_line_error(lyra3d("export", scene, "--format", "simready", "--up-axis", "Y"), "Z-up")


def test_a_generated_scene_exports_with_a_level_floor_that_holds_dropped_objects(tmp_path):
    """Issue 11 on a *generated* scene (shipped models, a held-out world's image, 3 short trajectories):
    the generated sky (far Gaussians) stays out of the mesh, the floor is found and levelled, and dropped
    spheres and boxes come to rest on it."""
    from lyra3d.core.cameras import default_camera
    from lyra3d.pipelines import ImageTo3DPipeline, save_scene

    pipe = ImageTo3DPipeline.from_pretrained()
    image = worlds.render(worlds.make_world(1_000_007), default_camera()).rgb[0]
    scene = pipe(image, seed=0, trajectories=("left", "right", "up"), num_frames=9)
    save_scene(scene, tmp_path / "scene", flythrough_frames=2)
    config = simready.SimReadyConfig(extraction=mesh.ExtractionConfig(max_views=12, target_faces=6000))
    result = simready.export_simready(tmp_path / "scene", tmp_path / "out", config)
    record = json.loads((result.out_dir / "simready.json").read_text())
    assert record["mesh"]["max_depth_m"] < 4 * scene.center_depth  # the sky is not fused
    assert record["ground_plane_scene_frame"]["inlier_fraction"] > 0.3
    v, f, _ = simready.load_mesh_obj(result.out_dir / "mesh.obj")
    check = simready.drop_test(v, f, DropTestConfig(objects=6, seed=1))
    assert check.passed, check.to_dict()
