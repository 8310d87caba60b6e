"""The GEN3C teacher's per-trajectory cache (lyra3d.pipelines.gen3c_teacher.trajectory_condition)."""

from __future__ import annotations

import torch

from lyra3d.core.cache3d import multi_trajectory_conditioning
from lyra3d.core.cameras import default_camera
from lyra3d.data import worlds


def test_a_trajectory_warped_in_passes_is_the_conditioning_of_one_call(monkeypatch):
    from lyra3d.core import cache3d
    from lyra3d.pipelines import gen3c_teacher

    cam = default_camera(64, 32)
    shot = worlds.render(worlds.make_world(1_000_003), cam)
    image, depth = shot.rgb[0], (shot.depth * shot.mask)[0]
    want = multi_trajectory_conditioning(image, depth[None], cam, 9, 1.0, center_depth=4.0, names=("zoom_in",))
    one = gen3c_teacher.trajectory_condition(image, depth, cam, "zoom_in", 9, 1.0, 4.0)
    assert torch.equal(one.cameras.world_to_camera, want["zoom_in"].cameras.world_to_camera)
    for key in ("rgb", "mask", "depth"):
        assert torch.equal(getattr(one.warped, key), getattr(want["zoom_in"].warped, key))  # one pass: exact
    monkeypatch.setitem(cache3d.TARGET_BUDGET, "cpu", 4 * 64 * 32)  # 4 frames per pass: 3 passes
    split = gen3c_teacher.trajectory_condition(image, depth, cam, "zoom_in", 9, 1.0, 4.0)
    assert torch.equal(split.warped.mask, one.warped.mask)
    for key in ("rgb", "depth"):
        assert torch.allclose(getattr(split.warped, key), getattr(one.warped, key), atol=1e-4)
    assert 0.1 < float(one.warped.mask.mean()) < 1.0
