"""Image → 3D Gaussians (docs/design.md §1): the teacher generates every trajectory's latents from the
image, the 3DGS decoder turns them into Gaussians in one pass, pruned by opacity rank (docs/design.md §4),
and the Gaussians rendered at the input camera measure how faithfully they keep the input (PSNR). With
``reconstruct="optimize"`` the Gaussians are instead fitted to the teacher's decoded frames, starting from the
input's own (:mod:`lyra3d.pipelines.optimize`)::

    pipe = ImageTo3DPipeline.from_pretrained()      # the shipped models, or a weights folder
    scene = pipe("photo.jpg", seed=0)               # a path, or an image tensor (3, H, W) in [0, 1]"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.progress import Progress, StageClock
from lyra3d.errors import InputError
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

    @torch.no_grad()
    def batch(self, images: Sequence[Tensor | str | Path], seeds: int | Sequence[int] | None = None,
              progress: Progress | None = None, *, infos: Sequence[ImageInfo | None] | None = None,
              prompts: Sequence[str | None] | None = None, unknown_words: Sequence[tuple[str, ...]] | None = None,
              **overrides) -> list[Scene]:
        """Generate the scenes of many images at once: each stage runs once for the whole batch on the device
        (depth, encode, sample, decoder: :func:`lyra3d.pipelines.batched.teacher_batch`); what is a scene's own
        (centre depth, trajectory size, seed, pruning, ``keep_input``, the input-view render) stays per scene.
        Scene ``i`` equals ``self(images[i], seed=seeds[i], **overrides)`` to float tolerance. With
        ``reconstruct="optimize"`` the teacher still runs once for the batch; the Gaussians of each scene are
        then optimised one scene after another (``teacher_frames`` and ``optimize`` are told once per scene).

        Args:
            images: paths or ``(3, H, W)`` tensors (each fitted to the preset as a single call does).
            seeds: one seed for every scene or one per scene (default ``config.seed``).
            progress: told ``(stage, 1, 1)`` once per stage of :meth:`stages` for the whole batch.
            infos: what was done to already prepared tensors; prompts / unknown_words: of text → 3D.
            **overrides: any :class:`GenerateConfig` field (as for a single call).

        Each scene's ``timings`` are the batch's stage seconds divided by the batch size (its share)."""
        from lyra3d.pipelines.batched import teacher_batch

        n = len(images)
        if n == 0:
            return []
        cfg = self._call_config(None, overrides)
        seeds = [cfg.seed] * n if seeds is None else [seeds] * n if isinstance(seeds, int) else list(seeds)
        if len(seeds) != n:
            raise InputError(f"{n} images need {n} seeds, got {len(seeds)}")
        configs = [cfg.replace(seed=int(s)) for s in seeds]
        self.check(cfg)
        clock = StageClock(self.device, progress)
        fitted = [self.prepare_image(im, cfg) for im in images]
        infos = [(infos[i] if infos is not None and infos[i] is not None else fitted[i][1]) for i in range(n)]
        p = cfg.resolution
        camera = default_camera(p.width, p.height, p.fov_y_degrees)
        self._set_teacher(cfg, cfg.frames)
        gens = teacher_batch(self.teacher, torch.stack([f[0] for f in fitted]), camera, seeds, progress=clock)
        if cfg.reconstruct == "optimize":  # per-scene optimisation: one scene after another
            made = [self._reconstruct(g, camera, c, clock) for g, c in zip(gens, configs)]
            made = [(k, f if cfg.keep_frames else None, r) for k, f, r in made]
        else:
            raws = self.decoder.decode_batch(torch.stack([g.latents for g in gens]), [g.cameras for g in gens],
                                             bf16=self._decoder_bf16(cfg))
            made = [(kept, None, {"reconstructor": "decoder"}) for kept in self._keep_batch(gens, raws, cfg, camera)]
            del raws
            clock.mark("decoder")
        cam = camera.to(self.device)
        scores = self._input_view_psnrs([m[0][0] for m in made], cam, [g.image for g in gens], cfg)
        clock.mark("input_view")
        frames = [None] * n
        if cfg.keep_frames:
            frames = [(m[1] if m[1] is not None else self.teacher.decode(g.latents)).cpu() for m, g in zip(made, gens)]
            if any(m[1] is None for m in made):
                clock.mark("teacher_frames")
        share = {k: v / n for k, v in clock.total().items()}
        return [self._scene(gens[i], made[i][0], cam, scores[i], dict(share), configs[i], infos[i],
                            prompts[i] if prompts is not None else None, frames[i],
                            tuple(unknown_words[i]) if unknown_words is not None else (), made[i][2])
                for i in range(n)]

    def _reconstruct(self, gen, camera: Cameras, cfg: GenerateConfig, clock: StageClock) -> tuple:
        """One scene's Gaussians from the teacher's sample: the decoder's (pruned, ``keep_input``), or with
        ``reconstruct="optimize"`` optimised to the teacher's frames. Returns ``((gaussians, count before
        pruning, what keep_input did), the teacher's frames or None, the reconstruction record)``."""
        if cfg.reconstruct == "optimize":
            g, frames, recon = self._optimize(gen, camera, cfg, clock)
            return (g, recon["initial_gaussians"], None), frames, recon
        raw = self.decoder.decode(gen.latents, gen.cameras, bf16=self._decoder_bf16(cfg))
        kept = self._keep(gen, raw, cfg, camera)
        del raw
        clock.mark("decoder")
        return kept, None, {"reconstructor": "decoder"}

    def _decoder_bf16(self, cfg: GenerateConfig) -> bool:
        """Whether the decoder's network runs under bf16 autocast for ``cfg.precision`` (its Gaussians come out in
        fp32 either way)."""
        from lyra3d.pipelines.teacher import uses_bf16

        return uses_bf16(cfg.precision, self.device)

    def _keep(self, gen, raw, cfg: GenerateConfig, camera: Cameras) -> tuple:
        """The decoder's Gaussians of one scene pruned by opacity rank and joined with the input's own
        (``keep_input``): ``(gaussians, count before pruning, what keep_input did)``."""
        return self._keep_batch([gen], [raw], cfg, camera)[0]

    def _keep_batch(self, gens, raws, cfg: GenerateConfig, camera: Cameras) -> list[tuple]:
        """:meth:`_keep` of a batch's scenes: each pruned on its own, the input's Gaussians of all made at once."""
        from lyra3d.pipelines.keep_input import keep_input_batch

        before = [len(raw) for raw in raws]
        pruned = [raw.prune_by_opacity(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction < 1 else raw
                  for raw in raws]
        kept = keep_input_batch(pruned, torch.stack([g.image for g in gens]), torch.stack([g.depth for g in gens]),
                                camera, cfg.keep_input, self.teacher.config.far_ratio)
        return [(g, n, record) for (g, record), n in zip(kept, before)]

    @staticmethod
    def _input_view_psnrs(gs, cam: Cameras, images: Sequence[Tensor], cfg: GenerateConfig) -> list[float]:
        """The input-view PSNR of each scene of a batch, all rendered at once
        (:func:`lyra3d.core.render.rasterize.rasterize_each`: one pass for the torch backend)."""
        from lyra3d.core.metrics import psnr
        from lyra3d.core.render.rasterize import rasterize_each

        renders = rasterize_each(list(gs), cam[[0] * len(gs)], backend=cfg.backend).rgb
        return [float(x) for x in psnr(renders.clamp(0, 1), torch.stack(images).to(renders)).tolist()]

    @staticmethod
    def _input_view_psnr(g, cam: Cameras, image: Tensor, cfg: GenerateConfig) -> float:
        from lyra3d.core.metrics import psnr
        from lyra3d.core.render import rasterize

        render = rasterize(g, cam, backend=cfg.backend).rgb[0]
        return float(psnr(render.clamp(0, 1), image.to(render)))

    @staticmethod
    def _scene(gen, kept: tuple, cam: Cameras, score: float, timings: dict, cfg: GenerateConfig,
               info: ImageInfo | None, prompt: str | None, frames: Tensor | None,
               unknown_words: tuple[str, ...], reconstruction: dict | None = None) -> Scene:
        g, before, keep = kept
        return Scene(gaussians=g, cameras=gen.cameras, trajectories=tuple(gen.names), input_camera=cam,
                     input_image=gen.image, center_depth=float(gen.center_depth), input_view_psnr=score,
                     timings=timings, seed=cfg.seed, config=cfg, info=info, prompt=prompt, frames=frames,
                     gaussians_before_pruning=before, unknown_words=unknown_words, preset=cfg.resolution,
                     input_depth=gen.depth.cpu(), keep_input=keep, depth=gen.meta.get("depth"),
                     reconstruction=reconstruction or {"reconstructor": "decoder"})

    def _generate(self, image: Tensor, info: ImageInfo | None, cfg: GenerateConfig, clock: StageClock,
                  camera: Cameras | None = None, depth: Tensor | None = None, prompt: str | None = None,
                  unknown_words: tuple[str, ...] = ()) -> Scene:
        p = cfg.resolution
        self.check(cfg)
        if camera is None:
            camera = default_camera(p.width, p.height, p.fov_y_degrees)
        self._set_teacher(cfg, cfg.frames)
        text = {"prompt": prompt} if prompt and getattr(self.teacher, "takes_prompt", False) else {}  # a VACE teacher
        gen = self.teacher(image, camera, depth=depth, seed=cfg.seed, progress=clock, **text)
        kept, frames, recon = self._reconstruct(gen, camera, cfg, clock)
        cam = camera.to(self.device)
        score = self._input_view_psnr(kept[0], cam, gen.image, cfg)
        clock.mark("input_view")
        if cfg.keep_frames and frames is None:
            frames = self.teacher.decode(gen.latents)
            clock.mark("teacher_frames")
        frames = frames.cpu() if cfg.keep_frames else None
        return self._scene(gen, kept, cam, score, clock.total(), cfg, info, prompt, frames, unknown_words, recon)

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
