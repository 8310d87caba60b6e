import pytest
import torch

from lyra3d.core.cache3d import depth_edges, unproject, warp
from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.errors import InputError

W, H = 96, 64


def square_scene():
    """A red square (|x|, |y| <= 0.5 at z = 2) in front of a green wall at z = 6, seen from the origin."""
    cam = default_camera(W, H, fov_y_degrees=60)
    fx, cx, cy = float(cam.fx[0]), float(cam.cx[0]), float(cam.cy[0])
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    x2, y2 = (u - cx) / fx * 2, (v - cy) / fx * 2  # where each ray meets z = 2
    near = (x2.abs() <= 0.5) & (y2.abs() <= 0.5)
    depth = torch.where(near, 2.0, 6.0)[None, None]
    image = torch.stack([near.float(), (~near).float(), torch.zeros_like(x2)])[None]
    return cam, image, depth


def shifted(cam: Cameras, dx: float) -> Cameras:
    w2c = cam.world_to_camera.clone()
    w2c[:, 0, 3] = -dx  # camera centre moved to x = dx, same orientation
    return Cameras(w2c, cam.intrinsics, cam.width, cam.height)


def test_identity_warp_reproduces_the_input():
    cam, image, depth = square_scene()
    out = warp(unproject(image, depth, cam), cam)
    # Valid everywhere but on the far side of the square's outline (pixels that may mix two surfaces).
    edges = depth_edges(depth[0])[None] > 0
    assert 0 < edges.sum() < 0.1 * edges.numel()
    assert torch.equal(out.mask > 0, ~edges)
    valid = out.mask.expand_as(image) > 0
    assert (out.rgb - image)[valid].abs().max() < 1e-4
    assert torch.allclose(out.depth[~edges], depth[~edges])


def test_near_square_occludes_the_far_wall_and_disocclusion_is_masked():
    cam, image, depth = square_scene()
    target = shifted(cam, -0.3)
    out = warp(unproject(image, depth, cam), target)
    fx, cx, cy = float(cam.fx[0]), float(cam.cx[0]), float(cam.cy[0])
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    # Where the square projects in the target (1-pixel margin from its edges): red only, never green.
    xs, ys = (u - cx) / fx * 2 - 0.3, (v - cy) / fx * 2
    inner = (xs.abs() <= 0.5 - 2 * 2 / fx) & (ys.abs() <= 0.5 - 2 * 2 / fx)
    assert inner.sum() > 100
    assert (out.rgb[0, 0][inner] > 0.99).all() and (out.rgb[0, 1][inner] < 0.01).all()
    assert torch.allclose(out.depth[0, 0][inner], torch.tensor(2.0))
    # The wall behind the square's old place, now uncovered, was never seen: mask 0 there.
    xw, yw = (u - cx) / fx * 6 - 0.3, (v - cy) / fx * 6  # rays meeting the wall at z = 6
    behind = (xw.abs() <= 0.5 * 6 / 2 - 0.2) & (yw.abs() <= 0.5 * 6 / 2 - 0.2) & ~(xs.abs() <= 0.5 + 4 / fx)
    assert behind.sum() > 20
    assert out.mask[0, 0][behind].max() == 0


def test_warp_is_batched_over_trajectories():
    cam, image, depth = square_scene()
    trajs = lyra_trajectories(cam, 5, center_depth=4.0)
    cache = unproject(image, depth, cam)
    both = warp(cache, Cameras.cat(list(trajs.values())))
    one = warp(cache, trajs["zoom_in"])
    assert both.rgb.shape == (30, 3, H, W) and both.mask.shape == (30, 1, H, W)
    assert torch.allclose(both.rgb[20:25], one.rgb) and torch.equal(both.mask[20:25], one.mask)


@pytest.mark.parametrize("bad, message", [
    (torch.ones(1, 1, 10, 10), "does not match image"),
    (torch.zeros(1, 1, H, W), "zero everywhere"),
    (-torch.ones(1, 1, H, W), "negative"),
    (torch.full((1, 1, H, W), float("nan")), "NaN"),
    (torch.ones(1, H, W, 1), "must be"),
])
def test_bad_depth_is_named(bad, message):
    cam, image, _ = square_scene()
    with pytest.raises(InputError, match=message):
        unproject(image, bad, cam)


def visible_from(source: Cameras, src_depth: torch.Tensor, target: Cameras, tgt_depth: torch.Tensor,
                 tgt_mask: torch.Tensor, tol: float = 0.02) -> torch.Tensor:
    """Target pixels whose surface point (from the target's true depth) the source camera sees."""
    from lyra3d.core.cameras import pixel_rays

    o, d = pixel_rays(target)
    cos = torch.einsum("bhwc,bc->bhw", d, target.camera_to_world[:, :3, 2])
    pts = o + d * (tgt_depth[:, 0] / cos)[..., None]
    w2c = source.world_to_camera[0]
    p = pts @ w2c[:3, :3].T + w2c[:3, 3]
    u = source.fx[0] * p[..., 0] / p[..., 2] + source.cx[0]
    v = source.fy[0] * p[..., 1] / p[..., 2] + source.cy[0]
    inside = (p[..., 2] > 0) & (u >= 0) & (v >= 0) & (u < source.width) & (v < source.height)
    # Visible where the projected depth lies within the source depths of the 2x2 pixel centres around it.
    u0, v0 = (u - 0.5).floor().long(), (v - 0.5).floor().long()
    near = [src_depth[0, 0][(v0 + dv).clamp(0, source.height - 1), (u0 + du).clamp(0, source.width - 1)]
            for du in (0, 1) for dv in (0, 1)]
    lo, hi = torch.stack(near).amin(0), torch.stack(near).amax(0)
    seen = (p[..., 2] >= lo * (1 - tol)) & (p[..., 2] <= hi * (1 + tol))
    return (inside & seen & (tgt_mask[:, 0] > 0))[:, None]


def test_true_depth_warp_reproduces_world_views():
    from lyra3d.core import metrics
    from lyra3d.data import worlds

    # The default size (320x176), anti-aliased renders, the middle and last frames of the six trajectories.
    world = worlds.make_world(worlds.eval_seeds(1)[0])
    src = default_camera(320, 176)
    cd = worlds.center_depth(world)
    targets = Cameras.cat([t[[2, 4]] for t in lyra_trajectories(src, 5, cd).values()])
    s, t = worlds.render(world, src, supersample=2), worlds.render(world, targets, supersample=2)
    cache = unproject(s.rgb, s.depth * s.mask, src)  # sky (mask 0) is not in the cache
    out = warp(cache, targets)
    truth = visible_from(src, s.depth, targets, t.depth, t.mask)
    valid = out.mask > 0
    iou = (valid & truth).sum() / (valid | truth).sum()
    p = metrics.psnr(out.rgb, t.rgb, valid.float())
    print(f"warp PSNR on valid pixels per view {[round(x, 1) for x in p.tolist()]}, IoU {float(iou):.3f}")
    assert iou >= 0.9
    assert p.mean() >= 30 and p.min() >= 25


def test_multi_trajectory_conditioning_scales_with_depth_and_factor():
    from lyra3d.core.cache3d import multi_trajectory_conditioning
    from lyra3d.core.trajectories import LYRA_TRAJECTORIES

    cam, image, depth = square_scene()
    cond = multi_trajectory_conditioning(image, depth, cam, num_frames=4)
    assert tuple(cond) == LYRA_TRAJECTORIES
    for c in cond.values():
        assert len(c.cameras) == 4 and c.warped.rgb.shape == (4, 3, H, W) and c.warped.mask.shape == (4, 1, H, W)
        assert torch.allclose(c.cameras.world_to_camera[0], cam.world_to_camera[0], atol=1e-5)
        assert c.warped.mask[0].mean() > 0.9  # frame 0 is the input view
    left = float(cond["left"].cameras.centers[-1, 0])
    # The centre depth is the median depth of the scene (6, the wall) and the left move is 0.25 of it.
    assert left == pytest.approx(-0.25 * 6.0, rel=1e-4)
    double = multi_trajectory_conditioning(image, 2 * depth, cam, num_frames=4, movement_factor=0.5,
                                           names=("left",))
    assert float(double["left"].cameras.centers[-1, 0]) == pytest.approx(left, rel=1e-4)


def test_a_batch_of_scenes_warps_exactly_as_each_scene_alone(monkeypatch):
    """issue 25: :func:`multi_trajectory_conditioning_batch` (every scene's cache into all its trajectories' cameras
    in one warp) gives each scene bit for bit what its own call gives; :func:`warp_each` of several sources is
    :func:`warp` with ``source=s`` of each (at the same number of targets per pass)."""
    from lyra3d.core.cache3d import multi_trajectory_conditioning, multi_trajectory_conditioning_batch, warp_each
    from lyra3d.data import worlds

    cam = default_camera(64, 32)
    shots = [worlds.render(worlds.make_world(s), cam) for s in (1_000_001, 1_000_002)]
    images = torch.cat([s.rgb for s in shots])
    depths = torch.cat([s.depth * s.mask for s in shots])
    names = ("left", "zoom_in", "spiral")
    batch = multi_trajectory_conditioning_batch(images, depths, cam, 5, center_depths=[3.0, 5.0], names=names)
    for i, scene in enumerate(batch):
        alone = multi_trajectory_conditioning(images[i], depths[i:i + 1], cam, 5, center_depth=[3.0, 5.0][i],
                                              names=names)
        assert tuple(scene) == names
        for name in names:
            assert torch.equal(scene[name].cameras.world_to_camera, alone[name].cameras.world_to_camera)
            for key in ("rgb", "mask", "depth"):
                assert torch.equal(getattr(scene[name].warped, key), getattr(alone[name].warped, key))
            assert 0.1 < float(alone[name].warped.mask.mean()) < 1.0  # a real warp: some of it, not all
    assert not torch.equal(batch[0]["left"].warped.rgb, batch[1]["left"].warped.rgb)

    cache = unproject(images, depths, Cameras.cat([cam, cam]))
    targets = Cameras.cat([batch[0]["left"].cameras, batch[1]["spiral"].cameras])
    for chunk in (2, None):
        each = warp_each(cache, targets, chunk=chunk)
        for s in range(2):
            one = warp(cache, targets[5 * s:5 * s + 5], source=s, chunk=chunk)
            assert torch.equal(each.rgb[5 * s:5 * s + 5], one.rgb) and torch.equal(each.mask[5 * s:5 * s + 5], one.mask)
            assert torch.equal(each.depth[5 * s:5 * s + 5], one.depth)
    from lyra3d.core import cache3d

    monkeypatch.setitem(cache3d.TARGET_BUDGET, "cpu", 1)  # one source per pass: the same warp
    again = warp_each(cache, targets)
    assert all(torch.equal(getattr(again, k), getattr(each, k)) for k in ("rgb", "mask", "depth"))
    with pytest.raises(InputError, match="equal number"):
        warp_each(cache, targets[:9])
