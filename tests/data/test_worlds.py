"""Procedural worlds: determinism, exact depth, multi-view consistency, captions, dataset writer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lyra3d.core.cameras import Cameras, default_camera, look_at
from lyra3d.core.trajectories import LYRA_MOVEMENT_RANGES, LYRA_TRAJECTORIES, trajectory
from lyra3d.data.datasets import DatasetSettings, load_sample, read_manifest, render_sample, write_dataset
from lyra3d.data.worlds import (
    EVAL_SEED_START,
    SKY_DEPTH,
    TRAIN_SEEDS_END,
    Box,
    Cylinder,
    Material,
    Plane,
    Sphere,
    World,
    center_depth,
    eval_seeds,
    is_eval_seed,
    make_world,
    render,
    train_seeds,
)
from lyra3d.errors import InputError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small renders: one thread is as fast, and immune to a busy machine's OpenMP stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- helpers ------------------------------------------------------------------------------------------------
def reproject(depth_a: torch.Tensor, cams_a: Cameras, cams_b: Cameras):
    """Move every pixel centre of camera A, at its z-depth ``(B, 1, H, W)``, into camera B.

    Returns B's continuous pixel coordinates ``u, v`` (pixel ``i`` spans ``[i, i + 1)``) and the point's
    z-depth in B, each ``(B, H, W)``.
    """
    _, _, h, w = depth_a.shape
    v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    fx, fy, cx, cy = (cams_a.intrinsics[:, i, None, None] for i in range(4))
    z = depth_a[:, 0]
    pts = torch.stack([(u - cx) / fx * z, (v - cy) / fy * z, z, torch.ones_like(z)], dim=-1)
    a_to_b = cams_b.world_to_camera @ cams_a.camera_to_world
    pb = torch.einsum("bij,bhwj->bhwi", a_to_b, pts)
    fx, fy, cx, cy = (cams_b.intrinsics[:, i, None, None] for i in range(4))
    zb = pb[..., 2]
    return fx * pb[..., 0] / zb + cx, fy * pb[..., 1] / zb + cy, zb


def covisible_psnr(world: World, cam_a: Cameras, cam_b: Cameras, rel_tol: float = 0.02,
                   render_b: Cameras | None = None):
    """PSNR of A's colours against B's nearest pixel on the pixels both cameras see, and their share of A's
    surface pixels. Co-visible: lands inside B, both masks 1, B's depth there within ``rel_tol``.
    ``render_b`` renders B from another pose than the one reprojected into (a negative control)."""
    ra, rb = render(world, cam_a), render(world, render_b if render_b is not None else cam_b)
    ub, vb, zb = reproject(ra.depth, cam_a, cam_b)
    h, w = ra.depth.shape[-2:]
    iu, iv = ub.floor().long(), vb.floor().long()
    inside = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h) & (zb > 0)
    iu, iv = iu.clamp(0, w - 1)[0], iv.clamp(0, h - 1)[0]
    db, mb = rb.depth[0, 0][iv, iu], rb.mask[0, 0][iv, iu]
    ok = inside[0] & (mb > 0) & (ra.mask[0, 0] > 0) & ((db - zb[0]).abs() < rel_tol * zb[0])
    mse = ((rb.rgb[0][:, iv, iu] - ra.rgb[0]) ** 2).mean(0)[ok].mean()
    return float(10 * torch.log10(1 / mse)), float(ok.sum() / (ra.mask > 0).sum())


def sideways_camera(cam: Cameras, cd: float, shift: float) -> Cameras:
    eye = torch.tensor([[shift * cd, 0.0, 0.0]])
    return Cameras(look_at(eye, torch.tensor([[0.0, 0.0, cd]])), cam.intrinsics, cam.width, cam.height)


def single(obj=None, floor: float | None = None) -> World:
    planes = (Plane(1, floor, Material("gray", "checker", "white", 0.5)),) if floor is not None else ()
    return World(objects=(obj,) if obj is not None else (), planes=planes)


# -- determinism ----------------------------------------------------------------------------------------------
def test_same_seed_same_world_and_render():
    a, b = make_world(EVAL_SEED_START + 11), make_world(EVAL_SEED_START + 11)
    assert a == b and a.caption == b.caption
    cams = Cameras.cat([default_camera(48, 32), sideways_camera(default_camera(48, 32), center_depth(a), 0.2)])
    ra, rb = render(a, cams), render(b, cams)
    assert torch.equal(ra.rgb, rb.rgb) and torch.equal(ra.depth, rb.depth) and torch.equal(ra.mask, rb.mask)
    assert ra.rgb.shape == (2, 3, 32, 48) and ra.depth.shape == (2, 1, 32, 48) and ra.mask.shape == (2, 1, 32, 48)
    assert ra.rgb.dtype == torch.float32 and 0 <= float(ra.rgb.min()) and float(ra.rgb.max()) <= 1


def test_different_seeds_differ():
    worlds = [make_world(EVAL_SEED_START + i) for i in range(4)]
    assert len({w.caption for w in worlds}) == 4
    r0, r1 = render(worlds[0], default_camera(48, 32)), render(worlds[1], default_camera(48, 32))
    assert (r0.rgb - r1.rgb).abs().mean() > 0.02


def test_seed_helpers():
    ev = eval_seeds(5)
    assert ev == list(range(EVAL_SEED_START, EVAL_SEED_START + 5)) and all(is_eval_seed(s) for s in ev)
    assert eval_seeds(2, offset=10)[0] == EVAL_SEED_START + 10
    tr = train_seeds(4, offset=TRAIN_SEEDS_END - 4)
    assert max(tr) < TRAIN_SEEDS_END and not any(is_eval_seed(s) for s in tr)
    with pytest.raises(InputError):
        train_seeds(5, offset=TRAIN_SEEDS_END - 4)
    with pytest.raises(InputError):
        eval_seeds(-1)
    with pytest.raises(InputError):
        make_world(-3)


# -- exact depth --------------------------------------------------------------------------------------------
def test_depth_exact_at_centre_pixel():
    cam = default_camera(33, 21)  # odd size: the centre pixel's ray is the optical axis
    cases = [
        (Sphere((0.0, 0.0, 5.0), 1.0), 4.0),
        (Box((0.0, 0.0, 6.0), (1.0, 1.0, 1.0)), 5.0),
        (Box((0.0, 0.0, 6.0), (1.0, 1.0, 1.0), yaw=math.pi / 4), 6.0 - math.sqrt(2.0)),
        (Cylinder((0.0, 0.0, 7.0), 0.5, 1.0), 6.5),
    ]
    for obj, want in cases:
        r = render(single(obj), cam)
        assert abs(float(r.depth[0, 0, 10, 16]) - want) < 1e-4, obj
        assert r.mask[0, 0, 10, 16] == 1 and r.mask[0, 0, 0, 0] == 0
        assert float(r.depth[0, 0, 0, 0]) == SKY_DEPTH


def test_depth_is_z_depth_everywhere_on_sphere_and_plane():
    """Every hit pixel against a float64 analytic ray cast, from a turned camera (z-depth, not ray length)."""
    c, rad, ground = torch.tensor([0.4, -0.2, 6.0], dtype=torch.float64), 1.2, 1.5
    world = World(objects=(Sphere(tuple(c.tolist()), rad),), planes=(Plane(1, ground),))
    cam = Cameras(look_at(torch.tensor([[1.0, -0.5, 0.3]]), torch.tensor([[0.0, 0.0, 6.0]])),
                  default_camera(40, 24).intrinsics, 40, 24)
    r = render(world, cam)
    c2w = cam.camera_to_world[0].double()
    h, w = 24, 40
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                          indexing="ij")
    fx, fy, cx, cy = cam.intrinsics[0].double()
    d_cam = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], -1)
    d = torch.nn.functional.normalize(d_cam @ c2w[:3, :3].T, dim=-1)
    o = c2w[:3, 3]
    oc = o - c
    b = d @ oc
    disc = b * b - (oc @ oc - rad * rad)
    t_sphere = torch.where(disc >= 0, -b - disc.clamp_min(0).sqrt(), torch.inf)
    t_plane = torch.where(d[..., 1] > 0, (ground - o[1]) / d[..., 1], torch.inf)
    t = torch.minimum(t_sphere, t_plane)
    z = t * (d @ c2w[:3, 2])
    hit = torch.isfinite(t)
    assert hit.float().mean() > 0.4 and (~hit).any()
    assert torch.equal(r.mask[0, 0] > 0, hit)
    assert torch.allclose(r.depth[0, 0][hit].double(), z[hit], rtol=2e-5, atol=1e-4)
    # z-depth differs from the ray length away from the centre: make sure we did not return the latter.
    assert (t[hit] - z[hit]).abs().max() > 0.05


def test_supersampling_keeps_depth_exact():
    world = make_world(EVAL_SEED_START + 2)
    cam = default_camera(48, 32)
    plain, fine = render(world, cam), render(world, cam, supersample=2)
    assert torch.equal(plain.depth, fine.depth) and torch.equal(plain.mask, fine.mask)
    assert (plain.rgb - fine.rgb).abs().mean() < 0.03


# -- multi-view consistency ------------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [0, 1, 2])
def test_multiview_consistency(offset):
    world = make_world(EVAL_SEED_START + offset)
    cd = center_depth(world)
    cam_a = default_camera(320, 176)
    cam_b = sideways_camera(cam_a, cd, 0.2)
    psnr, frac = covisible_psnr(world, cam_a, cam_b)
    assert psnr >= 30.0, (world.caption, psnr)
    assert frac > 0.5, (world.caption, frac)
    # The check can fail: B rendered from 5% of the centre depth further right than the pose reprojected into.
    psnr_off, _ = covisible_psnr(world, cam_a, cam_b, render_b=sideways_camera(cam_a, cd, 0.25))
    assert psnr_off < 28.0, psnr_off


# -- content -------------------------------------------------------------------------------------------------------
def test_caption_names_objects_from_labels():
    for seed in eval_seeds(6):
        world = make_world(seed)
        labels, caption = world.labels, world.caption
        assert len(labels) == len(world.objects) >= 1
        assert caption.endswith(f"{world.sky.name} sky") and " floor" in caption
        for lab in labels:
            assert lab["kind"] in ("sphere", "box", "cylinder")
            assert lab["color"] in caption
            assert lab["kind"] in caption  # "boxes"/"spheres" contain the kind too
            if lab["texture"] in ("checker", "stripes"):
                assert {"checker": "checkered", "stripes": "striped"}[lab["texture"]] in caption
        json.dumps(world.describe())  # JSON-ready


def test_worlds_fit_the_camera_paths():
    """Objects in view, and Lyra's six trajectories (largest movements) stay above ground and off objects."""
    for seed in eval_seeds(5, offset=20):
        world = make_world(seed)
        cd = center_depth(world)
        assert 1.5 < cd < 12
        r = render(world, default_camera(160, 88))
        first = len(world.planes)
        for i in range(len(world.objects)):
            assert (r.surface == first + i).sum() > 10
        eyes = torch.cat([trajectory(n, default_camera(), 17, cd, movement=LYRA_MOVEMENT_RANGES[n][1]).centers
                          for n in LYRA_TRAJECTORIES])
        assert float(eyes[:, 1].max()) < world.ground_height - 0.2
        for o in world.objects:
            dist = (eyes - torch.tensor(o.center)).norm(dim=-1).min()
            assert dist > o.bounding_radius


def test_dynamic_worlds_move():
    seed = EVAL_SEED_START + 4
    static, dyn = make_world(seed), make_world(seed, dynamic=True)
    assert not static.dynamic and dyn.dynamic and "moving" in dyn.caption
    assert [o.center for o in static.objects] == [o.center for o in dyn.objects]
    cam = default_camera(64, 40)
    r0, r1 = render(dyn, cam, time=0.0), render(dyn, cam, time=1.5)
    assert (r0.depth - r1.depth).abs().max() > 0.05
    assert torch.equal(render(static, cam, time=0.0).depth, render(static, cam, time=1.5).depth)
    # One time per camera equals rendering each camera alone.
    both = render(dyn, Cameras.cat([cam, cam]), time=torch.tensor([0.0, 1.5]))
    assert torch.allclose(both.rgb[1], r1.rgb[0]) and torch.allclose(both.depth[0], r0.depth[0])


# -- dataset writer ---------------------------------------------------------------------------------------------
def test_dataset_write_resume_and_reload(tmp_path: Path):
    out = tmp_path / "ds"
    seeds = [7, EVAL_SEED_START + 3]
    kw = dict(trajectories=("left", "spiral"), num_frames=3, width=48, height=32)
    assert write_dataset(out, seeds, workers=2, **kw) == 2
    entries = read_manifest(out)
    assert sorted(e["seed"] for e in entries) == sorted(seeds)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folder left
    sample = load_sample(out / entries[0]["name"])
    seed = sample.meta["seed"]
    assert sample.rgb.shape == (2, 3, 3, 32, 48) and sample.depth.shape == (2, 3, 1, 32, 48)
    assert list(sample.cameras) == ["left", "spiral"] and len(sample.cameras["spiral"]) == 3
    assert sample.caption == make_world(seed).caption and sample.meta["labels"] == make_world(seed).labels
    fresh = render_sample(seed, DatasetSettings(("left", "spiral"), 3, 48, 32))
    assert np.array_equal((sample.rgb * 255).round().to(torch.uint8).numpy(), fresh["rgb"])
    assert np.array_equal(sample.mask.numpy() > 0, fresh["mask"])
    assert torch.allclose(sample.depth, torch.from_numpy(fresh["depth"].astype(np.float32)))
    depth = render(make_world(seed), sample.cameras["left"]).depth
    assert torch.allclose(sample.depth[0], depth, rtol=1e-3)  # float16 on disk
    # A second run finds everything done: nothing rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("world_*/frames.npz")}
    assert write_dataset(out, seeds, workers=2, **kw) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("world_*/frames.npz")} == stamps
    assert len(read_manifest(out)) == 2
    # Extending the set writes only the new world (in this process).
    reports = []
    assert write_dataset(out, seeds + [8], workers=1, progress=lambda *r: reports.append(r), **kw) == 1
    assert reports == [("worlds", 0, 1), ("worlds", 1, 1)]  # only the world still to write counts
    assert len(read_manifest(out)) == 3
    with pytest.raises(InputError, match="other settings"):
        write_dataset(out, seeds, workers=1, **{**kw, "num_frames": 4})


def test_dataset_bad_input(tmp_path: Path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        write_dataset(a_file, 1)
    with pytest.raises(InputError, match=">= 0"):
        write_dataset(tmp_path / "d", -2)
    with pytest.raises(InputError, match="unknown trajectory"):
        write_dataset(tmp_path / "d", [1], trajectories=("sideways",))
    with pytest.raises(InputError, match="not found"):
        load_sample(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="missing"):
        load_sample(tmp_path / "empty")
