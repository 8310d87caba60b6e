"""GEN3C-Cosmos as the teacher of the image → 3D pipeline (issue 24): the same teacher interface as
:class:`~lyra3d.pipelines.teacher.Teacher` (depth → 3D cache → video model → latents per trajectory), with NVIDIA's
GEN3C network (:mod:`lyra3d.models.gen3c`) as the video model and the Cosmos 8×8×8 tokenizer (a diffusers
``AutoencoderKLCosmos`` folder) as the tokenizer.

Per trajectory, one after another (so only one trajectory's warped cache is in memory at a time): the input's
cache warped into the trajectory's cameras (:func:`~lyra3d.pipelines.teacher.cache_videos`, one warped buffer),
GEN3C's conditioning as the official code builds it (:func:`~lyra3d.models.gen3c_sampling.build_condition`: the
condition latent of the input image, the rgb and mask latents of the buffer, the T5 embeddings), the official EDM
Euler sampler (:func:`~lyra3d.models.gen3c_sampling.sample`; the same seed for every trajectory, as the official
multi-trajectory script). The latents returned are the tokenizer's normalised latents (the sampler's ÷ ``sigma_data``),
``(V, T', C, h, w)``: ``decode`` turns them into frames, :mod:`lyra3d.pipelines.lyra1_reconstructor` into Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lyra3d.core.cache3d import TARGET_BUDGET, TrajectoryCondition, Warped, unproject, warp_each
from lyra3d.core.cameras import Cameras
from lyra3d.core.progress import Progress, no_progress
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.errors import InputError
from lyra3d.models.depth import DepthEstimator
from lyra3d.models.gen3c import gen3c_config_of
from lyra3d.models.gen3c_conditioning import SIGMA_DATA, cosmos_encoder
from lyra3d.models.gen3c_sampling import build_condition, sample
from lyra3d.models.offload import onloaded, place
from lyra3d.pipelines.teacher import Teacher, TeacherConfig, TeacherSample, cache_videos


def trajectory_condition(image: Tensor, depth: Tensor, camera: Cameras, name: str, num_frames: int,
                         movement_factor: float, center_depth: float) -> TrajectoryCondition:
    """One trajectory's cameras and the input's cache warped into them, as
    :func:`~lyra3d.core.cache3d.multi_trajectory_conditioning` makes it, the frames warped in passes of about
    ``TARGET_BUDGET`` target pixels (121 frames of 704×1280 at once would hold ~9 GB; in passes the result is the
    same to float rounding, and exactly the same where one pass holds them all)."""
    cache = unproject(image[None], depth[None], camera)
    cams = lyra_trajectories(camera, num_frames, center_depth, movement_factor, names=(name,))[name]
    per_pass = max(1, TARGET_BUDGET.get(image.device.type, TARGET_BUDGET["cuda"]) // (camera.width * camera.height))
    parts = [warp_each(cache, cams[a:min(len(cams), a + per_pass)]) for a in range(0, len(cams), per_pass)]
    return TrajectoryCondition(cams, Warped(*(torch.cat(x) for x in zip(*((p.rgb, p.mask, p.depth) for p in parts)))))


@dataclass
class Gen3CSettings:
    """What the GEN3C teacher adds to :class:`~lyra3d.pipelines.teacher.TeacherConfig`: the transformer's
    memory setting (:data:`lyra3d.models.offload.OFFLOAD_MODES`) and the official ``--noise_aug_strength``."""

    offload: str = "group"
    noise_aug_strength: float = 0.0


class Gen3CTeacher(Teacher):
    """Depth estimator + the Cosmos tokenizer + GEN3C (a diffusers ``CosmosTransformer3DModel`` of GEN3C's channel
    layout). ``text``: the T5 embeddings ``(prompt, negative_prompt)`` (:mod:`lyra3d.models.gen3c_text`).
    ``step_callback(i, n)`` (optional) is called after each denoising step (benchmarks time steps with it)."""

    def __init__(self, depth: DepthEstimator, tokenizer, transformer: nn.Module, text: tuple[Tensor, Tensor],
                 device: str | torch.device, config: TeacherConfig | None = None,
                 settings: Gen3CSettings | None = None):
        self.depth, self.tokenizer, self.video_model = depth, tokenizer, transformer.eval()
        self.gen3c = gen3c_config_of(transformer)
        if tokenizer.latent_channels != self.gen3c.latent_channels:
            raise InputError(f"GEN3C reads {self.gen3c.latent_channels}-channel latents; the tokenizer gives "
                             f"{tokenizer.latent_channels}: use the Cosmos 8x8x8 tokenizer (DIR/tokenizer)")
        if text[0].shape[-1] != self.gen3c.text_embed_dim:
            raise InputError(f"GEN3C reads text embeddings of width {self.gen3c.text_embed_dim}, got "
                             f"{text[0].shape[-1]}")
        self.text = text
        self._device = torch.device(device)
        self.config = config or TeacherConfig()
        self.settings = settings or Gen3CSettings()
        self.step_callback = None
        place(transformer, self._device, self.settings.offload)

    @property
    def device(self) -> torch.device:
        return self._device

    @torch.no_grad()
    def __call__(self, image: Tensor, camera: Cameras, depth: Tensor | None = None, seed: int = 0,
                 keep_cache: bool = False, progress: Progress | None = None) -> TeacherSample:
        """:meth:`Teacher.__call__`, one trajectory at a time (its cache, conditioning and sampling) so that only
        one trajectory's warped cache is ever in memory; ``keep_cache`` is not supported (one-line error)."""
        cfg = self.config
        say = progress or no_progress
        if keep_cache:
            raise InputError("the GEN3C teacher does not keep the warped cache (it holds one trajectory at a time)")
        image, camera, depth, center, record = self.input_depth(image, camera, depth, say)
        latents, cams = [], []
        for name in cfg.trajectories:
            cond = {name: trajectory_condition(image, depth, camera, name, cfg.num_frames, cfg.movement_factor,
                                               center)}
            say("cache", 1, 1)
            _, lat, c, _, _ = self.generate(cond, image, seed, say)
            latents.append(lat)
            cams.append(c)
            del cond
        return TeacherSample(tuple(cfg.trajectories), torch.cat(latents), Cameras.cat(cams), image, depth, center,
                             None, None, {"seed": seed, "steps": cfg.steps, "guidance": cfg.guidance,
                                          "movement_factor": cfg.movement_factor, "depth": record,
                                          "teacher": "GEN3C-Cosmos", "text": self.text_record()})

    def text_record(self) -> str:
        """How the prompt was conditioned (for the scene's report)."""
        return "zeros (the official --disable_prompt_encoder)" if not self.text[0].any() else "given T5 embeddings"

    @torch.no_grad()
    def generate(self, cond: dict[str, TrajectoryCondition], first: Tensor, seed: int = 0,
                 progress: Progress | None = None) -> tuple[tuple[str, ...], Tensor, Cameras, Tensor, Tensor]:
        """:meth:`Teacher.generate` with GEN3C: each trajectory of ``cond`` → its conditioning (``encode``) →
        its latents (``sample``); returns ``(names, latents (V, T', C, h, w), cameras (V·T), cache_rgb,
        cache_mask)`` (the last two of the last trajectory only)."""
        cfg, dev, st = self.config, self.device, self.settings
        say = progress or no_progress
        names = tuple(cond)
        encode = cosmos_encoder(self.tokenizer)
        text, negative = (t.to(dev) for t in self.text)
        out, cams, rgb, mask = [], [], None, None
        for name in names:
            rgb, mask, c = cache_videos({name: cond[name]})
            self.tokenizer.latent_frames(rgb.shape[1])  # 1 + 8·m frames, else one line
            g = torch.Generator(device=dev).manual_seed(seed) if st.noise_aug_strength else None
            condition = build_condition(encode, first.to(dev), rgb[0][:, None], mask[0][:, None], text, negative,
                                        self.gen3c.frame_buffer_max, st.noise_aug_strength, g)
            say("encode", 1, 1)
            def step(i: int, n: int) -> None:  # the steps as progress on the way (not timed: n + 1 > i)
                if self.step_callback is not None:
                    self.step_callback(i, n)
                say("sample", i, n + 1)

            with onloaded(self.video_model, dev, st.offload):
                lat = sample(self.video_model, condition, cfg.steps, cfg.guidance, seed, callback=step)
            out.append((lat / SIGMA_DATA).permute(0, 2, 1, 3, 4)[0].float())
            cams.append(c)
            del condition
            say("sample", 1, 1)
        return names, torch.stack(out), Cameras.cat(cams), rgb, mask
