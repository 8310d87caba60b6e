"""Image → 3D Gaussians (docs/design.md §1): the teacher generates every trajectory's latents from the
image, the 3DGS decoder turns them into Gaussians in one pass, pruned by opacity rank (docs/design.md §4),
and the Gaussians rendered at the input camera measure how faithfully they keep the input (PSNR). With
``reconstruct="optimize"`` the Gaussians are instead fitted to the teacher's decoded frames, starting from the
input's own (:mod:`lyra3d.pipelines.optimize`)::

    pipe = ImageTo3DPipeline.from_pretrained()      # the shipped models, or a weights folder
    scene = pipe("photo.jpg", seed=0)               # a path, or an image tensor (3, H, W) in [0, 1]"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.progress import Progress, StageClock
from lyra3d.io.images import ImageInfo, fit_image_tensor
from lyra3d.pipelines.base import TeacherPipeline
from lyra3d.pipelines.config import PRESETS, GenerateConfig, Preset
from lyra3d.pipelines.outputs import Scene


# -- inputs -----------------------------------------------------------------------------------------------------
def load_input_image(path: str | Path, preset: str | Preset = "default", fit: str = "crop"
                     ) -> tuple[Tensor, ImageInfo]:
    """An image file at the preset's size (:func:`lyra3d.io.images.load_image`: one-line errors)."""
    from lyra3d.io.images import load_image

    p = PRESETS[preset] if isinstance(preset, str) else preset
    return load_image(path, p.width, p.height, fit)


# -- image → 3D ---------------------------------------------------------------------------------------------------
class ImageTo3DPipeline(TeacherPipeline):
    """Image → 3D Gaussians: the teacher's multi-trajectory latents, then the 3DGS decoder
    (:class:`lyra3d.models.decoder.GaussianDecoder`). Loading, saving and settings: :class:`TeacherPipeline`."""

    def stages(self, **overrides) -> tuple[str, ...]:
        """The stage names a call with these settings reports, in order: with ``reconstruct="optimize"`` the
        teacher's frames are decoded and optimised to instead of the decoder's pass."""
        cfg = self.check(self._call_config(None, overrides))
        if cfg.reconstruct != "optimize":
            return super().stages(**overrides)
        names = list(self.STAGES)
        i = names.index("decoder")
        return tuple(names[:i] + ["teacher_frames", "optimize"] + names[i + 1:])

    def prepare_image(self, image: Tensor | str | Path, config: GenerateConfig | None = None
                      ) -> tuple[Tensor, ImageInfo]:
        """A path or tensor → ``(3, H, W)`` at the preset's size and what was done to it."""
        cfg = config or self.config
        p = cfg.resolution
        if isinstance(image, (str, Path)):
            return load_input_image(image, p, cfg.fit)
        return fit_image_tensor(image, p.width, p.height, cfg.fit)

    @torch.no_grad()
    def __call__(self, image: Tensor | str | Path, seed: int | None = None,
                 progress: Progress | None = None, *, camera: Cameras | None = None,
                 depth: Tensor | None = None, info: ImageInfo | None = None, **overrides) -> Scene:
        """Generate the scene of one image.

        Args:
            image: a file path, or a tensor ``(3, H, W)`` in [0, 1] (another size is cropped/padded and
                resampled to the preset's).
            seed: the sampler's seed (default ``config.seed``); the same seed gives the same scene.
            progress: a :class:`~lyra3d.core.progress.Progress`, told ``(stage, 1, 1)`` as each stage of
                :meth:`stages` ends, in that order.
            camera: the input camera (one, at the preset's size); default: identity pose, the preset's
                field of view.
            depth: ``(1, H, W)`` z-depth of the input to use instead of the depth network's.
            info: what was done to an already prepared image tensor (kept in the scene's report).
            **overrides: any :class:`GenerateConfig` field for this call (``trajectories``, ``steps``,
                ``keep_frames``, ...).
        """
        cfg = self._call_config(seed, overrides)
        clock = StageClock(self.device, progress)
        img, fitted = self.prepare_image(image, cfg)
        return self._generate(img, info or fitted, cfg, clock, camera, depth)

    def _generate(self, image: Tensor, info: ImageInfo | None, cfg: GenerateConfig, clock: StageClock,
                  camera: Cameras | None = None, depth: Tensor | None = None, prompt: str | None = None,
                  unknown_words: tuple[str, ...] = ()) -> Scene:
        from lyra3d.core.metrics import psnr
        from lyra3d.core.render import rasterize
        from lyra3d.pipelines.keep_input import keep_input

        p, dev = cfg.resolution, self.device
        self.check(cfg)
        if camera is None:
            camera = default_camera(p.width, p.height, p.fov_y_degrees)
        self._set_teacher(cfg, cfg.frames)
        gen = self.teacher(image, camera, depth=depth, seed=cfg.seed, progress=clock)
        frames = recon = None
        if cfg.reconstruct == "optimize":
            g, frames, recon = self._optimize(gen, camera, cfg, clock)
            before, kept = recon["initial_gaussians"], None
        else:
            raw = self.decoder.decode(gen.latents, gen.cameras)
            before = len(raw)
            g = raw.prune_by_opacity(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction < 1 else raw
            del raw
            g, kept = keep_input(g, gen.image, gen.depth, camera, cfg.keep_input, self.teacher.config.far_ratio)
            clock.mark("decoder")
        cam = camera.to(dev)
        render = rasterize(g, cam, backend=cfg.backend).rgb[0]
        score = float(psnr(render.clamp(0, 1), gen.image.to(render)))
        clock.mark("input_view")
        if cfg.keep_frames and frames is None:
            frames = self.teacher.decode(gen.latents)
            clock.mark("teacher_frames")
        frames = frames.cpu() if cfg.keep_frames else None
        timings = clock.total()
        return Scene(gaussians=g, cameras=gen.cameras, trajectories=tuple(gen.names), input_camera=cam,
                     input_image=gen.image, center_depth=float(gen.center_depth), input_view_psnr=score,
                     timings=timings, seed=cfg.seed, config=cfg, info=info, prompt=prompt, frames=frames,
                     gaussians_before_pruning=before, unknown_words=unknown_words, preset=p,
                     input_depth=gen.depth.cpu(), keep_input=kept, depth=gen.meta.get("depth"),
                     reconstruction=recon or {"reconstructor": "decoder"})

    def _optimize(self, gen, camera: Cameras, cfg: GenerateConfig, clock: StageClock):
        """Per-scene optimisation (``reconstruct="optimize"``, :func:`lyra3d.pipelines.optimize.optimize_sample`).
        Returns the Gaussians, the teacher's frames ``(V, T, 3, H, W)`` and the record of what was done."""
        from lyra3d.pipelines.optimize import OptimizeConfig, optimize_sample

        frames = self.teacher.decode(gen.latents).clamp(0, 1)
        clock.mark("teacher_frames")
        config = OptimizeConfig(steps=cfg.optimize_steps, seconds=cfg.optimize_seconds, seed=cfg.seed)
        result = optimize_sample(gen, frames, camera, config, self.teacher.config.far_ratio, progress=clock,
                                 teacher=self.teacher)
        return result.gaussians, frames, {"reconstructor": "optimize", **result.record()}
