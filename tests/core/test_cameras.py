import math

import pytest
import torch

from lyra3d.core.cameras import Cameras, default_camera, intrinsics_from_fov, look_at, pixel_rays, plucker_rays
from lyra3d.core.trajectories import (
    LYRA_MOVEMENT_RANGES,
    LYRA_TRAJECTORIES,
    TRAJECTORY_NAMES,
    flythrough,
    lyra_trajectories,
    trajectory,
)
from lyra3d.errors import InputError


def project(cams: Cameras, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (B, 2) and z-depth (B,) of one world point per camera."""
    p = torch.einsum("bij,bj->bi", cams.world_to_camera[:, :3, :3], points) + cams.world_to_camera[:, :3, 3]
    uv = torch.stack([cams.fx * p[:, 0] / p[:, 2] + cams.cx, cams.fy * p[:, 1] / p[:, 2] + cams.cy], -1)
    return uv, p[:, 2]


def test_intrinsics_from_fov():
    k = intrinsics_from_fov(90.0, 320, 176)
    assert k.tolist() == pytest.approx([88.0, 88.0, 160.0, 88.0])
    with pytest.raises(InputError, match="field of view"):
        intrinsics_from_fov(180.0, 10, 10)


def test_look_at_faces_target_with_orthonormal_rotation():
    eyes = torch.tensor([[1.0, -0.5, -2.0], [3.0, 0.2, 1.0]])
    targets = torch.tensor([[0.0, 0.0, 4.0], [-1.0, 1.0, 5.0]])
    w2c = look_at(eyes, targets)
    r = w2c[:, :3, :3]
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(r), torch.ones(2), atol=1e-6)
    cams = Cameras(w2c, intrinsics_from_fov(60, 64, 48), 64, 48)
    uv, z = project(cams, targets)
    assert torch.allclose(uv, torch.tensor([[32.0, 24.0]] * 2), atol=1e-4)
    assert torch.allclose(z, (targets - eyes).norm(dim=-1), atol=1e-5)
    # The world's up (-y) maps to the image's up: a point above the target projects above the centre.
    uv_up, _ = project(cams, targets + torch.tensor([0.0, -0.3, 0.0]))
    assert (uv_up[:, 1] < 24.0).all()
    assert torch.allclose(cams.centers, eyes, atol=1e-6)


def test_plucker_rays_unit_and_orthogonal_to_moment():
    cams = trajectory("spiral", default_camera(40, 24), 5, center_depth=3.0)
    p = plucker_rays(cams)
    assert p.shape == (5, 6, 24, 40)
    d, m = p[:, :3], p[:, 3:]
    assert torch.allclose(d.norm(dim=1), torch.ones(5, 24, 40), atol=1e-5)
    assert (d * m).sum(1).abs().max() < 1e-5
    # The moment is o x d for the camera centre o.
    o = cams.centers[:, :, None, None].expand_as(d)
    assert torch.allclose(m, torch.linalg.cross(o, d, dim=1), atol=1e-5)


def test_pixel_ray_passes_through_projected_point():
    cams = trajectory("left", default_camera(64, 48), 3, center_depth=4.0)
    point = torch.tensor([0.3, -0.2, 4.5])
    uv, z = project(cams, point.expand(3, 3))
    o, d = pixel_rays(cams)
    for b in range(3):
        u, v = int(uv[b, 0]), int(uv[b, 1])
        # Distance of the point from the ray through that pixel's centre: under one pixel's footprint.
        ray_o, ray_d = o[b, v, u], d[b, v, u]
        dist = torch.linalg.cross(point - ray_o, ray_d).norm()
        assert dist < 1.5 * z[b] / cams.fx[b]


@pytest.mark.parametrize("name", TRAJECTORY_NAMES)
def test_trajectories_start_at_input_and_face_the_centre(name):
    cam = default_camera(64, 48)
    depth = 5.0
    traj = trajectory(name, cam, 9, center_depth=depth)
    assert len(traj) == 9 and traj.width == 64
    assert torch.allclose(traj.world_to_camera[0], cam.world_to_camera[0], atol=1e-5)
    if name != "dolly":
        uv, _ = project(traj, torch.tensor([0.0, 0.0, depth]).expand(9, 3))
        assert torch.allclose(uv, torch.tensor([32.0, 24.0]).expand(9, 2), atol=1e-3)


def test_six_trajectories_move_by_their_fraction_of_centre_depth():
    cam, depth = default_camera(), 4.0
    trajs = lyra_trajectories(cam, 17, depth)
    assert tuple(trajs) == LYRA_TRAJECTORIES
    end = {k: v.centers[-1] for k, v in trajs.items()}
    mid = {k: 0.5 * sum(r) * depth for k, r in LYRA_MOVEMENT_RANGES.items()}
    assert end["left"][0] == pytest.approx(-mid["left"], abs=1e-5)
    assert end["right"][0] == pytest.approx(mid["right"], abs=1e-5)
    assert end["up"][1] == pytest.approx(-mid["up"], abs=1e-5)  # up is -y
    assert end["zoom_in"][2] == pytest.approx(mid["zoom_in"], abs=1e-5)
    assert end["zoom_out"][2] == pytest.approx(-mid["zoom_out"], abs=1e-5)
    radius = trajs["spiral"].centers.norm(dim=-1)
    assert radius.max() == pytest.approx(mid["spiral"], rel=1e-3)
    # Twice the movement factor, twice the motion.
    double = lyra_trajectories(cam, 17, depth, movement_factor=2.0)
    assert double["left"].centers[-1][0] == pytest.approx(-2 * mid["left"], abs=1e-5)
    # Drawn movements stay inside Lyra's ranges and follow the generator.
    g = torch.Generator().manual_seed(3)
    drawn = lyra_trajectories(cam, 5, depth, generator=g)
    dist = drawn["zoom_out"].centers[-1].norm() / depth
    assert 0.3 <= dist <= 0.4


def test_spiral_turns_clockwise_in_the_image():
    traj = trajectory("spiral", default_camera(), 33, center_depth=3.0)
    c = traj.centers[1:8]  # the first (less than half) turn
    angle = torch.atan2(c[:, 1], c[:, 0])  # image axes: x right, y down
    assert (angle.diff() > 0).all()  # increasing angle with y down = clockwise on screen


def test_flythrough_is_smooth_and_starts_at_input():
    cam = default_camera()
    path = flythrough(cam, 60, center_depth=4.0, seed=1)
    c = path.centers
    assert torch.allclose(c[0], torch.zeros(3), atol=1e-5)
    step = c.diff(dim=0).norm(dim=-1)
    accel = c.diff(n=2, dim=0).norm(dim=-1)
    assert accel.max() < 0.5 * step.max()
    assert torch.equal(path.world_to_camera, flythrough(cam, 60, 4.0, seed=1).world_to_camera)


def test_cameras_serialise_and_resize():
    traj = trajectory("orbit", default_camera(), 4, center_depth=2.0)
    back = Cameras.from_dict(traj.to_dict())
    assert torch.allclose(back.world_to_camera, traj.world_to_camera)
    assert torch.equal(back.intrinsics, traj.intrinsics)
    half = traj.resized(160, 88)
    assert torch.allclose(half.intrinsics[0], traj.intrinsics[0] / 2)
    both = Cameras.cat([traj, traj[1]])
    assert len(both) == 5 and torch.equal(both.world_to_camera[4], traj.world_to_camera[1])


def test_bad_camera_inputs():
    with pytest.raises(InputError, match="world_to_camera"):
        Cameras(torch.eye(3), torch.ones(4), 10, 10)
    with pytest.raises(InputError, match="unknown trajectory"):
        trajectory("sideways", default_camera(), 5, 1.0)
    with pytest.raises(InputError, match="center_depth"):
        trajectory("left", default_camera(), 5, math.nan)
    with pytest.raises(InputError, match="not a lyra3d cameras record"):
        Cameras.from_dict({"frames": [{}]})
