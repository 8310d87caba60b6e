"""Surface extraction (lyra3d.simready.mesh): the mesh of a held-out procedural world against its exact geometry, the
RANSAC floor, decimation, colours, the distance functions, and one-line errors on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.gaussians import Gaussians, load_ply
from lyra3d.data import worlds
from lyra3d.errors import InputError
from lyra3d.evaluation.mesh import (
    chamfer_distance,
    evaluate_mesh,
    point_mesh_distance,
    world_surface_distance,
    write_world_scene,
)
from lyra3d.simready import mesh
from lyra3d.simready.ground import leveling_transform, rotation_between

pytest.importorskip("skimage")
pytest.importorskip("fast_simplification")

SEED = 1_000_001  # an evaluation world: never trained on
TARGET_FACES = 8000


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A stand-in for a generated scene (Gaussians on the world's true surface, Lyra's six trajectories of 5
    frames at 160x88) and its extracted mesh."""
    world = worlds.make_world(SEED)
    folder = write_world_scene(world, tmp_path_factory.mktemp("scene"), frames=5, width=160, height=88,
                                    stride=1, shadows=False)
    gaussians, cameras = load_ply(folder / "scene.ply"), Cameras.load_json(folder / "cameras.json")
    result = mesh.extract_mesh(gaussians, cameras, mesh.ExtractionConfig(max_views=16, target_faces=TARGET_FACES))
    return world, gaussians, cameras, result


def test_mesh_of_a_held_out_world_is_within_centimetres_of_the_true_surface(scene):
    world, _, cameras, result = scene
    ev = evaluate_mesh(result, world, cameras, samples=50_000, width=96)
    # measured: Chamfer 0.020 m (accuracy 0.022, completeness 0.017) of a 14.2 m scene, floor 1.8 cm, 0.3°
    assert ev.chamfer < 0.035, ev
    assert ev.chamfer_fraction < 0.0025, ev
    assert ev.accuracy < 0.04 and ev.completeness < 0.04, ev
    assert ev.floor_height_error < 0.04 and ev.floor_tilt_degrees < 1.0, ev
    assert 10 < ev.scene_size < 20


def test_mesh_is_decimated_coloured_and_faces_the_cameras(scene):
    world, _, cameras, result = scene
    v, f, c = result.vertices, result.faces, result.colors
    assert TARGET_FACES * 0.9 <= len(f) <= TARGET_FACES
    assert f.min() >= 0 and f.max() < len(v) and len(np.unique(f)) == len(v)  # no unused vertex
    assert c.shape == v.shape and c.min() >= 0 and c.max() <= 1
    assert set(result.seconds) >= {"render", "fuse", "surface", "ground", "decimate", "total"}
    # The floor's triangles face up (-y) and lie on the fitted plane.
    tri = v[f].astype(np.float64)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    floor = np.abs(result.ground.height(tri.mean(1))) < 1e-4
    assert floor.mean() > 0.01
    n = n[floor][np.linalg.norm(n[floor], axis=1) > 0]
    up = (n @ np.array(mesh.SCENE_UP)) / np.linalg.norm(n, axis=1)
    assert (up > 0.99).mean() > 0.95
    # Vertex colours match what the input camera sees at the same points (where it sees them unoccluded).
    cam = cameras[0]
    truth = worlds.render(world, cam, shadows=False)
    pc = v.astype(np.float64) @ cam.world_to_camera[0, :3, :3].double().numpy().T + \
        cam.world_to_camera[0, :3, 3].double().numpy()
    k = cam.intrinsics[0].double().numpy()
    u = np.floor(k[0] * pc[:, 0] / pc[:, 2] + k[2]).astype(int)
    r = np.floor(k[1] * pc[:, 1] / pc[:, 2] + k[3]).astype(int)
    ok = (pc[:, 2] > 0.5) & (u >= 0) & (u < cam.width) & (r >= 0) & (r < cam.height)
    seen = np.zeros(len(v), bool)
    depth = truth.depth[0, 0].numpy()
    seen[ok] = np.abs(depth[r[ok], u[ok]] - pc[ok, 2]) < 0.02 * pc[ok, 2]
    assert seen.sum() > 500
    rgb = truth.rgb[0].permute(1, 2, 0).numpy()[r[seen], u[seen]]
    assert np.median(np.abs(rgb - c[seen])) < 0.08


def test_levelling_puts_the_fitted_floor_at_zero(scene):
    _, _, _, result = scene
    g = result.ground
    assert g is not None and 0.05 < g.inlier_fraction < 1 and g.rmse < 0.02
    m = leveling_transform(g)
    np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(m[:3, :3] @ g.normal, mesh.SCENE_UP, atol=1e-9)
    on_floor = result.vertices[np.abs(g.height(result.vertices)) < 1e-5]
    assert len(on_floor) > 20
    levelled = on_floor @ m[:3, :3].T + m[:3, 3]
    np.testing.assert_allclose(levelled[:, 1], 0.0, atol=1e-4)  # exactly flat at y = 0


def test_ransac_finds_a_tilted_floor_under_clutter_and_outliers():
    rng = np.random.default_rng(0)
    tilt = math.radians(8.0)
    normal = np.array([0.0, -math.cos(tilt), math.sin(tilt)])  # up is -y, leaning towards +z
    offset = 1.3
    a = np.cross(normal, [1.0, 0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    s = rng.uniform(-5, 5, size=(6000, 2))
    floor = s[:, :1] * a + s[:, 1:] * b - offset * normal + rng.normal(0, 0.004, (6000, 1)) * normal
    box = rng.uniform([-1, -1.5, 2], [1, -0.2, 3], size=(3000, 3))  # a block standing on it
    wall = np.stack([np.full(3000, 4.0), rng.uniform(-3, 1, 3000), rng.uniform(-5, 5, 3000)], 1)
    noise = rng.uniform(-6, 6, size=(2000, 3))
    pts = np.concatenate([floor, box, wall, noise])
    g = mesh.fit_ground_plane(pts, threshold=0.02, seed=1)
    assert g is not None
    assert math.degrees(math.acos(min(1.0, g.normal @ normal))) < 0.2
    assert abs(g.offset - offset) < 0.005
    assert 0.3 < g.inlier_fraction < 0.5
    # A vertical wall alone is no floor: nothing within the tilt limit.
    assert mesh.fit_ground_plane(wall, threshold=0.02) is None


def test_ransac_finds_a_rough_floor_that_is_a_small_part_of_a_room():
    """Issue 11's world 1,000,003: a room seen mostly as walls, its generated floor 7 % of the surface and
    rough. Few random triples fall on the floor, and those that do tilt; the level planes that compete with
    them find it (without them the fit finds none here, and took a plane 24° off on that world)."""
    rng = np.random.default_rng(0)
    n_floor, n_wall = 1200, 15000
    floor = np.stack([rng.uniform(-5, 5, n_floor), 2.5 + rng.normal(0, 0.04, n_floor), rng.uniform(3, 12, n_floor)], 1)
    side = rng.integers(0, 3, n_wall)  # left, right and back walls, from the floor up to 4 m above it
    u, y = rng.uniform(-5, 5, n_wall), rng.uniform(-1.5, 2.5, n_wall)
    walls = np.where((side == 0)[:, None], np.stack([np.full(n_wall, -5.0), y, 7.5 + 0.9 * u], 1),
                     np.where((side == 1)[:, None], np.stack([np.full(n_wall, 5.0), y, 7.5 + 0.9 * u], 1),
                              np.stack([u, y, np.full(n_wall, 12.0)], 1)))
    walls += rng.normal(0, 0.03, walls.shape)
    pts = np.concatenate([floor, walls])
    g = mesh.fit_ground_plane(pts, threshold=0.09, seed=0)
    assert g is not None and g.normal @ np.array(mesh.SCENE_UP) > math.cos(math.radians(1.0))
    assert abs(g.height(np.array([0.0, 2.5, 7.0]))) < 0.03
    old = mesh.fit_ground_plane(pts, threshold=0.09, seed=0, level_candidates=0)
    assert old is None or old.normal @ np.array(mesh.SCENE_UP) < math.cos(math.radians(1.0)) \
        or abs(old.height(np.array([0.0, 2.5, 7.0]))) > 0.03


def test_ransac_takes_the_bottom_plane_not_a_larger_slanted_surface_above_it():
    """A generated scene's largest near-level plane can be a slanted surface (a wall or ramp the decoder bent)
    with the floor and objects under it: the floor is the plane with no more of the scene under it than on it."""
    rng = np.random.default_rng(0)
    floor = np.stack([rng.uniform(-4, 4, 3000), np.full(3000, 1.5), rng.uniform(3, 9, 3000)], 1)
    objects = rng.uniform([-3, 1.0, 5], [3, 1.45, 8], size=(2000, 3))  # standing on the floor, under the ramp
    tilt = math.radians(20.0)
    s = rng.uniform([-4, 0], [4, 8], size=(4000, 2))  # rising from the floor's near edge, larger than the floor
    ramp = np.stack([s[:, 0], 1.5 - math.sin(tilt) * s[:, 1], 3 + math.cos(tilt) * s[:, 1]], 1)
    g = mesh.fit_ground_plane(np.concatenate([floor, objects, ramp]), threshold=0.02, seed=0)
    assert g is not None and g.normal @ np.array(mesh.SCENE_UP) > math.cos(math.radians(0.5))
    assert abs(g.height(np.array([0.0, 1.5, 5.0]))) < 0.01


def test_point_mesh_and_chamfer_distances_are_exact():
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float64)  # unit square in z = 0
    f = np.array([[0, 1, 2], [0, 2, 3]])
    q = np.array([[0.5, 0.5, 0.3], [2.0, 0.5, 0.0], [-1.0, -1.0, 1.0], [0.25, 0.75, -2.0]])
    expect = [0.3, 1.0, math.sqrt(3.0), 2.0]
    np.testing.assert_allclose(point_mesh_distance(q, v, f, samples=2000), expect, atol=1e-9)
    a = np.random.default_rng(0).uniform(size=(500, 3))
    assert chamfer_distance(a, a) == (0.0, 0.0, 0.0)
    cd, ab, ba = chamfer_distance(a, a + [0.0, 0.0, 5.0])
    assert cd > 4.0 and ab > 4.0 and ba > 4.0
    with pytest.raises(InputError):
        chamfer_distance(a, np.zeros((0, 3)))


def test_world_surface_distance_is_analytic():
    world = worlds.make_world(SEED)
    floor_y = world.ground_height
    sphere = next((o for o in world.objects if o.kind == "sphere"), None)
    pts = [[0.0, floor_y - 0.25, 1.0], [0.0, floor_y + 0.1, 1.0]]  # 25 cm above, 10 cm below the floor
    d = world_surface_distance(world, np.array(pts))
    np.testing.assert_allclose(d, [0.25, 0.1], atol=1e-9)
    box = next(o for o in world.objects if o.kind == "box")
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    local_top = np.array([0.0, -box.half_size[1] - 0.05, 0.0])  # 5 cm above the top face's centre
    world_pt = np.array([c * local_top[0] + s * local_top[2], local_top[1],
                         -s * local_top[0] + c * local_top[2]]) + box.center
    assert world_surface_distance(world, world_pt[None])[0] == pytest.approx(0.05, abs=1e-9)
    if sphere is not None:
        on = np.array(sphere.center) + sphere.radius * np.array([[0.0, -1.0, 0.0]])
        assert world_surface_distance(world, on)[0] == pytest.approx(0.0, abs=1e-9)


def test_decimation_reaches_the_target_and_keeps_the_shape():
    from skimage.measure import marching_cubes

    x, y, z = np.mgrid[-1:1:60j, -1:1:60j, -1:1:60j]
    v, f, _, _ = marching_cubes(np.sqrt(x * x + y * y + z * z) - 0.7, 0.0, spacing=(2 / 59,) * 3)
    v = v - 1.0
    v2, f2 = mesh.decimate(v, f, 500)
    assert len(f2) <= 500 and len(f2) > 400
    assert np.abs(np.linalg.norm(v2, axis=1) - 0.7).max() < 0.02
    same = mesh.decimate(v, f, 0)
    assert same[0] is v and same[1] is f


def test_rotation_between_handles_opposite_vectors():
    for a, b in ([[0, 0, 1], [0, -1, 0]], [[0, 1, 0], [0, -1, 0]], [[1, 2, 3], [1, 2, 3]]):
        r = rotation_between(np.array(a, float), np.array(b, float))
        np.testing.assert_allclose(r @ np.array(a) / np.linalg.norm(a), np.array(b) / np.linalg.norm(b), atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_bad_inputs_raise_one_line_errors():
    for bad in (dict(voxel_size=-1.0), dict(min_alpha=0.0), dict(max_views=0), dict(target_faces=5),
                dict(ground_max_tilt_degrees=95.0), dict(min_incidence=0.0), dict(max_depth=float("nan"))):
        with pytest.raises(InputError) as e:
            mesh.ExtractionConfig(**bad)
        assert "\n" not in str(e.value)
    g = Gaussians.from_activated(torch.tensor([[0.0, 0.0, -3.0]]), torch.full((1, 3), 0.1),
                                 torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([0.9]), torch.tensor([[0.5, 0.5, 0.5]]))
    with pytest.raises(InputError, match="cover no pixel"):  # behind the camera
        mesh.extract_mesh(g, default_camera(64, 36))
    with pytest.raises(InputError, match="no Gaussians"):
        mesh.extract_mesh(g[torch.zeros(1, dtype=torch.bool)], default_camera(64, 36))
    with pytest.raises(InputError, match="Cameras"):
        mesh.extract_mesh(g, "cameras.json")
