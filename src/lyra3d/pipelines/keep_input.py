"""Keep the input in the generated scene (issue 21): the 3D photo of the input joined with the decoder's
Gaussians (:mod:`lyra3d.core.photo_gaussians`), the ``keep_input`` setting of
:class:`~lyra3d.pipelines.config.GenerateConfig`.

The shipped tokenizer and decoder saw only procedural worlds: on a photograph the decoder's Gaussians alone
render the input view as a blur (about 17.5 dB). The teacher's 3D cache holds every input pixel at its
estimated depth, so the input's own Gaussians show what the photo shows, and the decoder's supply what the
input does not see (disocclusions, the parts the trajectories add).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.photo_gaussians import PhotoSettings, fuse, photo_gaussians_batch, sky_depth
from lyra3d.errors import InputError
from lyra3d.pipelines.config import KEEP_INPUT_MODES

#: Settings of the input's Gaussians in generated scenes (chosen on training worlds and the ``tune`` photos).
PHOTO_SETTINGS = PhotoSettings()

#: A decoder Gaussian within this relative depth behind the surface the input sees is dropped with those in
#: front of it (:func:`lyra3d.core.photo_gaussians.fuse`).
FUSE_TOLERANCE = 0.25


def keep_input(decoded: Gaussians, image: Tensor, depth: Tensor, camera: Cameras, mode: str = "on",
               far_ratio: float = 20.0, settings: PhotoSettings = PHOTO_SETTINGS,
               tolerance: float = FUSE_TOLERANCE) -> tuple[Gaussians, dict | None]:
    """The scene's Gaussians for ``mode`` (:data:`KEEP_INPUT_MODES`) and what was done (``None`` for off).
    (One scene of :func:`keep_input_batch`.)

    Args:
        decoded: the decoder's Gaussians (pruned).
        image: the input ``(3, H, W)``; ``depth``: its ``(1, H, W)`` z-depth as the teacher cleaned it (0 = sky
            or unknown); ``camera``: the input camera.
        far_ratio: the teacher's sky cut (:attr:`lyra3d.pipelines.teacher.TeacherConfig.far_ratio`): the
            unknown pixels become a backdrop at that many times the near depth (:func:`sky_depth`).
    """
    return keep_input_batch([decoded], image[None], depth[None], camera, mode, far_ratio, settings, tolerance)[0]


def keep_input_batch(decoded: list[Gaussians], images: Tensor, depths: Tensor, camera: Cameras, mode: str = "on",
                     far_ratio: float = 20.0, settings: PhotoSettings = PHOTO_SETTINGS,
                     tolerance: float = FUSE_TOLERANCE) -> list[tuple[Gaussians, dict | None]]:
    """:func:`keep_input` of ``B`` scenes seen by one input ``camera``: ``decoded[i]`` with ``images[i] (3, H, W)``
    and ``depths[i] (1, H, W)``. The input's Gaussians of all scenes are made in one pass
    (:func:`lyra3d.core.photo_gaussians.photo_gaussians_batch`); each record's ``seconds`` is its share."""
    if mode not in KEEP_INPUT_MODES:
        raise InputError(f"keep_input must be {' or '.join(KEEP_INPUT_MODES)}, got {mode!r}")
    if mode == "off":
        return [(g, None) for g in decoded]  # "off": the decoder's Gaussians alone (the scene as before issue 21)
    if not decoded:
        return []
    t0 = time.perf_counter()
    dev = decoded[0].device
    images, depths, camera = images.to(dev), depths.to(dev), camera.to(dev)
    skies = [sky_depth(d, far_ratio) for d in depths]
    photos = photo_gaussians_batch(images, depths, camera, settings, sky_depths=skies)
    out = []
    for g, photo, depth, sky in zip(decoded, photos, depths, skies):
        surface = torch.where(depth > 0, depth, torch.full_like(depth, sky))
        fused, dropped = fuse(photo, g, surface, camera, tolerance)
        out.append((fused, {"mode": mode, "input_gaussians": len(photo), "decoder_gaussians": len(g),
                            "decoder_gaussians_dropped": dropped, "sky_depth": round(sky, 6), "tolerance": tolerance}))
    share = round((time.perf_counter() - t0) / len(decoded), 4)
    for _, record in out:
        record["seconds"] = share
    return out
