"""The teacher over a batch of images at once (issue 25): each stage runs once for the whole batch on the device
(depth network, 3D cache warp, tokenizer encode, video-model sampling), so a GPU sees ``B × V`` videos per call
instead of ``V``. What belongs to one scene stays per scene: its depth cleaning (sky cut), centre depth and so the
size of its trajectories, its 3D cache (warped with the others' in one call, each exactly as alone:
:func:`lyra3d.core.cache3d.multi_trajectory_conditioning_batch`), and its seed (the video model's noise is drawn per
scene, so a scene in a batch gets exactly the noise of its single call: :func:`lyra3d.models.video_model.seeded_noise`).

:func:`teacher_batch` gives what :meth:`lyra3d.pipelines.teacher.Teacher.__call__` gives for each image; the
image pipeline's :meth:`~lyra3d.pipelines.image_to_3d.ImageTo3DPipeline.batch` adds the batched decoder.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.cache3d import multi_trajectory_conditioning_batch, scene_center_depth
from lyra3d.core.cameras import Cameras, plucker_rays
from lyra3d.core.progress import Progress, no_progress
from lyra3d.errors import InputError
from lyra3d.models.video_model import sample, seeded_noise
from lyra3d.pipelines.teacher import Teacher, TeacherSample, cache_videos, precision_autocast

#: Videos per tokenizer call when a batch is encoded (a 64-scene batch of 6 trajectories is 384 videos: their
#: activations at once would not fit a GPU; 24 at a time keep it busy).
ENCODE_CHUNK = 24


_POOL: list[ThreadPoolExecutor] = []


def _background() -> ThreadPoolExecutor:
    """One thread for work that overlaps the device's (the noise draw)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="lyra3d-noise"))
    return _POOL[0]


def _encode(teacher: Teacher, videos: Tensor, chunk: int | None) -> Tensor:
    """The tokenizer's latents of ``videos (N, T, 3, H, W)``, ``chunk`` videos per call (``None``: all at once)."""
    step = chunk or videos.shape[0]
    return torch.cat([teacher.encode(videos[i:i + step], batch=True) for i in range(0, videos.shape[0], step)])


@torch.no_grad()
def teacher_batch(teacher: Teacher, images: Tensor, camera: Cameras, seeds: Sequence[int],
                  depths: Sequence[Tensor | None] | None = None, progress: Progress | None = None,
                  encode_chunk: int | None = ENCODE_CHUNK) -> list[TeacherSample]:
    """The teacher's latents of every trajectory for each of ``images (B, 3, H, W)``, all seen by ``camera``
    (one), scene ``i`` sampled with ``seeds[i]``; ``depths[i] (1, H, W)`` replaces the estimator's for scene ``i``.

    ``progress`` is told ``(stage, 1, 1)`` once per stage for the whole batch (``depth``, ``cache``, ``encode``,
    ``sample``). ``encode_chunk``: at most this many videos per tokenizer call (memory; ``None``: all)."""
    cfg, dev = teacher.config, teacher.device
    say = progress or no_progress
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    b, _, h, w = images.shape
    if len(seeds) != b or (depths is not None and len(depths) != b):
        raise InputError(f"{b} images need {b} seeds (and depths), got {len(seeds)}")
    if len(camera) != 1 or (camera.width, camera.height) != (w, h):
        raise InputError(f"camera must be one camera of the images' size {w}x{h}")
    if getattr(teacher, "takes_prompt", False):  # a Wan VACE teacher batches the trajectories of one scene instead
        out = [teacher(images[i], camera, depth=None if depths is None else depths[i], seed=int(seeds[i]))
               for i in range(b)]
        for stage in ("depth", "cache", "encode", "sample"):
            say(stage, 1, 1)
        return out
    images, camera = images.to(dev), camera.to(dev)
    # the video model's noise (drawn on the CPU, per scene) is drawn on a thread while the GPU works
    tok, v = teacher.tokenizer, len(cfg.trajectories)
    shape = (b * v, tok.latent_frames(cfg.num_frames), tok.latent_channels, h // tok.spatial_factor,
             w // tok.spatial_factor)
    noise = _background().submit(seeded_noise, shape, [int(s) for s in seeds])
    given = list(depths) if depths is not None else [None] * b
    records = [{"kind": "given", "done": "the depth map given with the image, used as it is"}] * b  # as Teacher's
    need = [i for i in range(b) if given[i] is None]
    if need:  # the depth network once for every image without a given depth
        estimated = teacher.depth(images[need], camera.intrinsics.expand(len(need), -1))
        for j, i in enumerate(need):
            given[i], records[i] = estimated.depth[j], estimated.record_of(j)
    say("depth", 1, 1)
    cleaned = [teacher.clean_depth(d) for d in given]
    centers = [scene_center_depth(d) for d in cleaned]
    conds = multi_trajectory_conditioning_batch(images, torch.stack(cleaned), camera, cfg.num_frames,
                                                cfg.movement_factor, center_depths=centers, names=cfg.trajectories)
    say("cache", 1, 1)
    names = tuple(conds[0])
    videos = [cache_videos(cond) for cond in conds]
    rgb, mask = torch.stack([x[0] for x in videos]), torch.stack([x[1] for x in videos])  # (B, V, T, ·, H, W)
    cams = [x[2] for x in videos]
    v, t = rgb.shape[1:3]
    cache_lat = _encode(teacher, rgb.flatten(0, 1), encode_chunk)  # (B·V, T', C, h, w)
    mask_lat = _encode(teacher, mask.flatten(0, 1).expand(-1, -1, 3, -1, -1), encode_chunk)
    first_lat = _encode(teacher, images[:, None], encode_chunk)[:, 0]  # (B, C, h, w)
    rays = torch.cat([plucker_rays(c).reshape(v, t, 6, h, w) for c in cams])
    say("encode", 1, 1)
    with precision_autocast(cfg.sample_precision, dev, "sample precision"):
        latents = sample(teacher.video_model, first_lat.repeat_interleave(v, 0), cache_lat, mask_lat, rays,
                         steps=cfg.steps, guidance=cfg.guidance, noise=noise.result()).float()
    latents = latents.reshape(b, v, *latents.shape[1:])
    say("sample", 1, 1)
    return [TeacherSample(names, latents[i], cams[i], images[i], cleaned[i], centers[i], None, None,
                          {"seed": int(seeds[i]), "steps": cfg.steps, "guidance": cfg.guidance,
                           "movement_factor": cfg.movement_factor, "depth": records[i]}) for i in range(b)]
