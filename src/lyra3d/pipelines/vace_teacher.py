"""The teacher with a diffusers Wan VACE model as its video model (issue 23, :mod:`lyra3d.models.diffusers_vace`):
depth → 3D cache → per trajectory the warped cache as VACE's control video, its holes as the mask, the input image as
frame 0 → latents in the VACE VAE's space. Its tokenizer is that VAE (lyra3d's Wan normalisation), so the 3DGS
decoder, per-scene optimisation and SDG read its latents as any tokenizer's.

``Teacher.from_pretrained(video_model=DIR)`` returns a :class:`VACETeacher` when ``DIR`` is a diffusers pipeline
folder; ``generate`` keeps the :class:`~lyra3d.pipelines.teacher.Teacher` contract (latents ``(V, T', C, h, w)``).
The sampler's steps and guidance are the teacher's config (``TeacherConfig.steps``, ``guidance``: the generate and
SDG options); the prompt is :attr:`VACETeacher.prompt` (text → 3D sets it for its call)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lyra3d.core.cache3d import TrajectoryCondition
from lyra3d.core.cameras import Cameras
from lyra3d.core.progress import Progress, no_progress
from lyra3d.errors import InputError
from lyra3d.models.depth import DepthEstimator
from lyra3d.models.diffusers_vace import VACEConfig, VACEVideoModel
from lyra3d.models.hf_depth import load_depth
from lyra3d.pipelines.teacher import Teacher, TeacherConfig


class VACETeacher(Teacher):
    """Depth estimator + a Wan VACE video model (its VAE is the tokenizer). ``prompt``: the text every call is
    guided by (``""``: none)."""

    takes_prompt = True

    def __init__(self, depth: DepthEstimator, video_model: VACEVideoModel, config: TeacherConfig | None = None,
                 prompt: str = ""):
        self.depth, self.video_model, self.tokenizer = depth, video_model, video_model.tokenizer
        self.config = config or TeacherConfig()
        self.prompt = prompt

    @classmethod
    def from_pretrained(cls, tokenizer: str | Path | None = None, video_model: str | Path | None = None,
                        depth: str | Path | None = None, device: str | torch.device = "cpu",
                        config: TeacherConfig | None = None, vace: VACEConfig | None = None) -> "VACETeacher":
        """The depth part (``depth``: a folder, default the shipped one) and the VACE folder ``video_model``.
        ``tokenizer`` must be left out: the VACE's own VAE is the tokenizer."""
        if video_model is None:
            raise InputError("a VACE teacher needs its video model folder (--video-model DIR)")
        if tokenizer is not None:
            raise InputError(f"the tokenizer of a Wan VACE teacher is its own VAE ({Path(video_model) / 'vae'}); "
                             "leave out the tokenizer part (--tokenizer, WEIGHTS/tokenizer)")
        estimator = load_depth(depth, device)
        return cls(estimator, VACEVideoModel.from_pretrained(video_model, device, vace), config)

    @property
    def device(self) -> torch.device:
        return self.video_model.device

    @torch.no_grad()
    def __call__(self, image: Tensor, camera: Cameras, depth: Tensor | None = None, seed: int = 0,
                 keep_cache: bool = False, progress: Progress | None = None, prompt: str | None = None):
        """:meth:`Teacher.__call__`, with ``prompt`` (default :attr:`prompt`) guiding the video model."""
        kept = self.prompt
        self.prompt = kept if prompt is None else prompt
        try:
            sample = super().__call__(image, camera, depth=depth, seed=seed, keep_cache=keep_cache, progress=progress)
        finally:
            self.prompt = kept
        if prompt:
            sample.meta["prompt"] = prompt
        return sample

    @torch.no_grad()
    def generate(self, cond: dict[str, TrajectoryCondition], first: Tensor, seed: int = 0,
                 progress: Progress | None = None) -> tuple[tuple[str, ...], Tensor, Cameras, Tensor, Tensor]:
        """:meth:`Teacher.generate` with VACE: the warped cache and its holes → control video and mask (frame 0 the
        input image) → VACE's conditioning latents (``encode``) → the denoised latents of every trajectory
        (``sample``), as many trajectories per transformer call as memory allows."""
        from lyra3d.models.diffusers_vace import vace_control

        cfg = self.config
        say = progress or no_progress
        names = tuple(cond)
        rgb = torch.stack([c.warped.rgb * c.warped.mask for c in cond.values()])  # (V, T, 3, H, W)
        mask = torch.stack([c.warped.mask for c in cond.values()])
        h, w = first.shape[-2:]
        if h % 16 or w % 16:
            raise InputError(f"Wan VACE takes frames whose sides are multiples of 16, got {w}x{h}")
        self.tokenizer.latent_frames(rgb.shape[1])  # 1 + 4·m frames, else one line
        video, vmask = vace_control(rgb, mask, first)
        conditioning = self.video_model.condition(video, vmask)
        say("encode", 1, 1)
        latents = self.video_model.sample(conditioning, cfg.steps, cfg.guidance, seed, self.prompt)
        say("sample", 1, 1)
        cams = Cameras.cat([c.cameras for c in cond.values()])
        return names, latents, cams, rgb, mask
