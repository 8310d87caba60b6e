"""Video → 4D data and teacher (lyra3d.data.clips): dynamic clips, reversed clips, moving masks, the per-frame
3D cache, and the video teacher's quality on a held-out dynamic world."""

import pytest
import torch

from lyra3d.core.cache3d import Warped, multi_trajectory_conditioning, per_frame_trajectory_conditioning
from lyra3d.core.metrics import psnr
from lyra3d.data import worlds
from lyra3d.data.clips import CLIP_FRAMES, make_clip, moving_mask, moving_object_mask, reverse_clip, with_reversed
from lyra3d.errors import InputError
from lyra3d.evaluation.video_teacher import pooled_psnr
from lyra3d.pipelines.teacher import Teacher, TeacherConfig, video_teacher

SEED = 1_000_000  # held out; two circling objects, ~11 % of the pixels change over the clip


@pytest.fixture(scope="module")
def clip():
    return make_clip(SEED)


def test_clip_is_a_monocular_video_of_the_moving_world(clip):
    assert clip.frames.shape == (CLIP_FRAMES, 3, 176, 320) and len(clip.cameras) == CLIP_FRAMES
    assert torch.allclose(clip.times, torch.linspace(0, worlds.DYNAMIC_HORIZON, CLIP_FRAMES))
    assert torch.equal(clip.cameras.world_to_camera, clip.cameras.world_to_camera[:1].expand(CLIP_FRAMES, 4, 4))
    for i in (0, CLIP_FRAMES - 1):
        assert torch.equal(clip.frames[i], clip.truth(clip.cameras[i], clip.times[i:i + 1]).rgb[0])
    assert (clip.frames[-1] - clip.frames[0]).abs().amax() > 0.2  # something moved
    slow = make_clip(SEED, num_frames=5, width=64, height=32, camera_motion="left")
    moved = (slow.cameras.centers - slow.cameras.centers[0]).norm(dim=-1)
    assert 0 < float(moved[-1]) <= 0.05 * worlds.center_depth(slow.world) + 1e-5
    assert (moved[1:] >= moved[:-1]).all()
    with pytest.raises(InputError, match="camera motion"):
        make_clip(SEED, camera_motion="orbit")
    with pytest.raises(InputError, match="movement"):
        make_clip(SEED, camera_motion="up", movement=0.5)


def test_reversed_clip(clip):
    rev = reverse_clip(clip)
    assert rev.reversed and not clip.reversed
    assert torch.equal(rev.frames, clip.frames.flip(0)) and torch.equal(rev.times, clip.times.flip(0))
    assert torch.equal(rev.cameras.world_to_camera, clip.cameras.world_to_camera.flip(0))
    back = reverse_clip(rev)
    assert torch.equal(back.frames, clip.frames) and torch.equal(back.times, clip.times) and not back.reversed
    both = with_reversed(clip)
    assert both[0] is clip and torch.equal(both[1].frames, rev.frames)
    # Times stay absolute: the reversed clip's first frame is the world at the end of the span.
    assert float(rev.times[0]) == worlds.DYNAMIC_HORIZON
    assert torch.equal(rev.frames[0], rev.truth(rev.cameras[0], rev.times[:1]).rgb[0])


def test_moving_mask_is_where_the_truth_changes(clip):
    cam = clip.cameras[0]
    end = worlds.DYNAMIC_HORIZON
    m = moving_mask(clip.world, cam, end)
    assert m.shape == (1, 1, 176, 320) and m.dtype == torch.bool
    assert 0.02 < float(m.float().mean()) < 0.5
    assert not moving_mask(clip.world, cam, 0.0).any()
    static = worlds.make_world(SEED)
    assert not static.dynamic
    assert not moving_mask(static, cam, end).any()
    r = worlds.render(clip.world, cam, end)
    assert moving_object_mask(clip.world, r.surface).any()
    assert not moving_object_mask(static, worlds.render(static, cam).surface).any()


def same_as_static(a: Warped, b: Warped) -> None:
    """Equal warps up to float rounding (batched kernels differ by ~1e-5 with the number of targets)."""
    assert float((a.mask != b.mask).float().mean()) <= 1e-4
    both = (a.mask > 0) & (b.mask > 0)
    assert torch.allclose(a.rgb * both, b.rgb * both, atol=1e-4)
    assert torch.allclose(a.depth * both, b.depth * both, rtol=1e-5, atol=1e-5)


def frame(w: Warped, i: int) -> Warped:
    return Warped(w.rgb[i:i + 1], w.mask[i:i + 1], w.depth[i:i + 1])


def test_per_frame_cache_at_time_zero_is_the_static_cache(clip):
    truth = clip.truth(clip.cameras, clip.times)
    depth = truth.depth * truth.mask
    names = ("left", "spiral")
    static = multi_trajectory_conditioning(clip.frames[:1], depth[:1], clip.cameras[0], 9, names=names)
    # A video frozen at time 0 (frame 0 nine times): every frame of every trajectory is the static cache.
    frozen = per_frame_trajectory_conditioning(clip.frames[:1].expand(9, -1, -1, -1), depth[:1].expand(9, -1, -1, -1),
                                               clip.cameras[[0] * 9], names=names)
    for n in names:
        assert torch.equal(frozen[n].cameras.world_to_camera, static[n].cameras.world_to_camera)
        same_as_static(frozen[n].warped, static[n].warped)
    # The moving video: frame 0 is still the static cache; later frames show the objects where they are then.
    dyn = per_frame_trajectory_conditioning(clip.frames[::2], depth[::2], clip.cameras[::2], names=names)
    for n in names:
        w = dyn[n].warped
        assert w.rgb.shape == (9, 3, 176, 320) and w.mask.shape == (9, 1, 176, 320)
        same_as_static(frame(w, 0), frame(static[n].warped, 0))
        cams = dyn[n].cameras
        gt_end = clip.truth(cams[8], clip.times[16:]).rgb
        seen = w.mask[8:] > 0
        assert float(psnr(w.rgb[8:], gt_end, seen)) > float(psnr(static[n].warped.rgb[8:], gt_end, seen)) + 3


@pytest.fixture(scope="module")
def teacher():
    return Teacher.from_pretrained(config=TeacherConfig(steps=2, trajectories=("left",)))


def test_video_teacher_moves_what_the_static_teacher_cannot(teacher, clip):
    gen = video_teacher(teacher, clip.frames, clip.cameras[0], seed=SEED, times=clip.times, keep_cache=True)
    assert gen.names == ("left",) and gen.latents.shape == (1, 5, 16, 22, 40) and len(gen.cameras) == CLIP_FRAMES
    assert gen.cache_rgb.shape == (1, CLIP_FRAMES, 3, 176, 320) and gen.video_depth.shape == (CLIP_FRAMES, 1, 176, 320)
    assert torch.equal(gen.times, clip.times) and gen.meta["per_frame_cache"]
    frames = teacher.decode(gen.latents)[0]
    assert float(psnr(frames[0], clip.frames[0])) >= 28.0  # the first frame is the input's
    truth = clip.truth(gen.cameras, clip.times)
    moving = moving_mask(clip.world, gen.cameras, clip.times, truth=truth)
    assert moving[-1].float().mean() > 0.05
    video_all, video_moving = float(psnr(frames, truth.rgb).mean()), pooled_psnr(frames, truth.rgb, moving)
    # The static teacher on frame 0 along the same trajectory: the objects stay where they were at time 0.
    teacher.config.num_frames = CLIP_FRAMES
    still = teacher.decode(teacher(clip.frames[0], clip.cameras[0], seed=SEED).latents)[0]
    still_moving = pooled_psnr(still, truth.rgb, moving)
    # Measured (2 steps, "left", seed 1,000,000): all pixels 25.9 dB; moving pixels 22.9 dB vs 14.5 dB static.
    assert video_all >= 23.5
    assert video_moving >= 20.0
    assert video_moving >= still_moving + 5.0


def test_video_teacher_rejects_bad_videos(teacher, clip):
    with pytest.raises(InputError, match="1 \\+ 4"):
        video_teacher(teacher, clip.frames[:16], clip.cameras[0])
    with pytest.raises(InputError, match="one camera"):
        video_teacher(teacher, clip.frames, clip.cameras[:3])
    with pytest.raises(InputError, match="video"):
        video_teacher(teacher, clip.frames[0], clip.cameras[0])
