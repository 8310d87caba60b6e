"""Text → 3D: the text-to-image model makes the input image (decoded by the teacher's tokenizer; or a local
diffusers text-to-image pipeline, :mod:`lyra3d.models.diffusers_text_to_image`), then
:class:`~lyra3d.pipelines.image_to_3d.ImageTo3DPipeline` makes the scene."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch

from lyra3d.core.device import check_device
from lyra3d.core.progress import Progress, StageClock, no_progress
from lyra3d.errors import InputError
from lyra3d.io.images import fit_image_tensor
from lyra3d.models.modeling import CONFIG_NAME, shipped_weights
from lyra3d.pipelines.base import with_depth
from lyra3d.pipelines.config import GenerateConfig
from lyra3d.pipelines.image_to_3d import ImageTo3DPipeline
from lyra3d.pipelines.outputs import Scene
from lyra3d.pipelines.weights import (
    _missing_text_to_image, _model_type, _save_part, is_diffusers_pipeline, resolve_weights, write_pipeline_json)


# -- text → 3D ----------------------------------------------------------------------------------------------------
class TextTo3DPipeline:
    """Text → image (the text-to-image model, decoded by the teacher's tokenizer) → :class:`ImageTo3DPipeline`."""

    def __init__(self, text_to_image, image_to_3d: ImageTo3DPipeline):
        self.text_to_image, self.image_to_3d = text_to_image.eval(), image_to_3d
        tok = image_to_3d.teacher.tokenizer
        channels = getattr(getattr(text_to_image, "config", None), "latent_channels", None)  # lyra3d's own model
        if channels is not None and channels != tok.latent_channels:
            raise InputError(f"the text-to-image model makes {text_to_image.config.latent_channels}-channel latents; "
                             f"the tokenizer reads {tok.latent_channels}: use the tokenizer it was trained with")

    @property
    def config(self) -> GenerateConfig:
        return self.image_to_3d.config

    @property
    def sources(self) -> dict[str, Path]:
        return self.image_to_3d.sources

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, device: str | torch.device | None = None,
                        config: GenerateConfig | None = None, depth: str | Path | None = None,
                        text_to_image: str | Path | None = None, video_model: str | Path | None = None
                        ) -> "TextTo3DPipeline":
        """The shipped models or a weights folder (as :meth:`ImageTo3DPipeline.from_pretrained`) plus the
        text-to-image model (``text_to_image``, else ``WEIGHTS/text_to_image``, else the shipped one): lyra3d's
        own or a local diffusers text-to-image pipeline folder (``model_index.json``)."""
        from lyra3d.models.diffusers_text_to_image import DiffusersTextToImage
        from lyra3d.models.text_to_image import TextToImageModel

        t0 = time.perf_counter()
        parts, settings = resolve_weights(weights)
        parts = with_depth(parts, depth, video_model)
        folder = Path(text_to_image).expanduser() if text_to_image is not None else \
            parts.get("text_to_image", shipped_weights("text_to_image"))
        own = str(_model_type(folder) or "").startswith("lyra3d-")  # a lyra3d checkpoint; else diffusers says why
        diffusers = is_diffusers_pipeline(folder) or (text_to_image is not None and not own)
        if not diffusers and not (folder / CONFIG_NAME).is_file():
            raise _missing_text_to_image()
        config = ImageTo3DPipeline._config(config, settings, device)
        model = (DiffusersTextToImage if diffusers else TextToImageModel).from_pretrained(folder, config.device)
        teacher, decoder, sources = ImageTo3DPipeline._load_parts(parts, config.device, config)
        inner = ImageTo3DPipeline(teacher, decoder, config)
        inner.sources = {**sources, "text_to_image": folder}
        pipe = cls(model, inner)
        inner.load_seconds = time.perf_counter() - t0
        return pipe

    @property
    def load_seconds(self) -> float:
        return self.image_to_3d.load_seconds

    @property
    def device(self) -> torch.device:
        return self.image_to_3d.device

    def to(self, device: str | torch.device) -> "TextTo3DPipeline":
        self.image_to_3d.to(device)
        self.text_to_image.to(check_device(device))
        return self

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        inner = self.image_to_3d
        inner.save_pretrained(directory)
        _save_part(self.text_to_image, directory / "text_to_image", self.sources.get("text_to_image"))
        t = inner.teacher
        depth = t.depth if hasattr(t.depth, "save_pretrained") else t.depth.model
        parts = {"depth": depth, "tokenizer": t.tokenizer, "video_model": t.video_model,
                 inner.decoder_part: inner.decoder, "text_to_image": self.text_to_image}
        write_pipeline_json(directory, type(self).__name__, parts, self.config)
        return directory

    def stages(self, **overrides) -> tuple[str, ...]:
        return ("text_to_image",) + self.image_to_3d.stages(**overrides)

    def model_versions(self) -> dict[str, dict]:
        return self.image_to_3d.model_versions()

    def unknown_words(self, prompt: str) -> tuple[str, ...]:
        """Words of ``prompt`` outside the model's vocabulary (they reach it as ``<unk>``)."""
        words = getattr(self.text_to_image, "words", None)
        if words is None:  # a diffusers pipeline: no fixed vocabulary
            return ()
        return tuple(dict.fromkeys(w for w in words.split(prompt) if w not in words.index))

    @torch.no_grad()
    def __call__(self, prompt: str, seed: int | None = None, progress: Progress | None = None,
                 **overrides) -> Scene:
        """Generate the scene of a text prompt (the image is ``scene.input_image``); ``progress`` is told
        ``(stage, 1, 1)`` as each stage of :meth:`stages` ends."""
        from lyra3d.io.prompts import validate_prompt

        prompt = validate_prompt(prompt)
        pipe = self.image_to_3d
        cfg = pipe._call_config(seed, overrides)
        clock = StageClock(pipe.device, progress)
        p = cfg.resolution
        aspect = {"aspect": p.width / p.height} if hasattr(self.text_to_image, "size_for") else {}  # diffusers'
        image = self.text_to_image.generate(prompt, pipe.teacher.tokenizer, steps=cfg.text_steps,
                                            guidance=cfg.text_guidance, seed=cfg.seed, **aspect)[0]
        info = None
        if tuple(image.shape[-2:]) != (p.height, p.width):
            image, info = fit_image_tensor(image.float().clamp(0, 1), p.width, p.height, cfg.fit)
        clock.mark("text_to_image")
        return pipe._generate(image.clamp(0, 1), info, cfg, clock, prompt=prompt,
                              unknown_words=self.unknown_words(prompt))

    @torch.no_grad()
    def batch(self, prompts: Sequence[str], seeds: int | Sequence[int] | None = None,
              progress: Progress | None = None, **overrides) -> list[Scene]:
        """The scenes of many prompts: each prompt's image as a single call makes it (its own seed), then the
        images through :meth:`ImageTo3DPipeline.batch` at once. Scene ``i`` equals ``self(prompts[i],
        seed=seeds[i])`` to float tolerance; ``progress`` is told ``("text_to_image", i, n)`` as images are made,
        then the image pipeline's stages once for the batch."""
        from lyra3d.io.prompts import validate_prompt

        say = progress or no_progress
        pipe = self.image_to_3d
        cfg = pipe._call_config(None, overrides)
        n = len(prompts)
        seeds = [cfg.seed] * n if seeds is None else [seeds] * n if isinstance(seeds, int) else list(seeds)
        p = cfg.resolution
        aspect = {"aspect": p.width / p.height} if hasattr(self.text_to_image, "size_for") else {}  # diffusers'
        images, infos = [], []
        for i, (prompt, seed) in enumerate(zip([validate_prompt(x) for x in prompts], seeds)):
            image = self.text_to_image.generate(prompt, pipe.teacher.tokenizer, steps=cfg.text_steps,
                                                guidance=cfg.text_guidance, seed=int(seed), **aspect)[0]
            info = None
            if tuple(image.shape[-2:]) != (p.height, p.width):
                image, info = fit_image_tensor(image.float().clamp(0, 1), p.width, p.height, cfg.fit)
            images.append(image.clamp(0, 1))
            infos.append(info)
            say("text_to_image", i + 1, n)
        return pipe.batch(images, seeds, progress, infos=infos, prompts=list(prompts),
                          unknown_words=[self.unknown_words(x) for x in prompts], **overrides)
