"""A local diffusers text-to-image pipeline (``AutoPipelineForText2Image``: Stable Diffusion 1.x/2.x, SDXL, SD3,
PixArt, Sana, Flux, ...) as the text → 3D pipeline's text-to-image part, in place of the shipped 10M-parameter
model. Local folders only (``local_files_only=True``); ``diffusers`` (extra ``real``) is imported when such a
folder loads, never when lyra3d is imported.

The image is generated at the pipeline's native pixel count with the preset's aspect (sides a multiple of
:func:`generation_size`'s step); the text → 3D pipeline then fits it to the preset like any input image.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.errors import InputError

INDEX_NAME = "model_index.json"


@contextlib.contextmanager
def quiet_diffusers():
    """diffusers' and transformers' warnings and progress bars off while a pipeline loads and runs."""
    import warnings

    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = dlog.get_verbosity(), tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])
        dlog.enable_progress_bar()
        if bars:
            tlog.enable_progress_bar()


def generation_size(native: int, aspect: float, step: int) -> tuple[int, int]:
    """``(width, height)`` of about ``native``² pixels with ``width / height ≈ aspect``, both multiples of
    ``step`` (at least ``step``)."""
    h = native / math.sqrt(aspect)
    w = h * aspect
    return max(step, round(w / step) * step), max(step, round(h / step) * step)


class DiffusersTextToImage:
    """Prompt → image ``(B, 3, H, W)`` in [0, 1] with a diffusers text-to-image pipeline. It has no fixed vocabulary
    (no unknown-word warning) and reads no lyra3d tokenizer (its own VAE decodes the image)."""

    def __init__(self, pipeline, directory: Path | None = None):
        self.pipeline, self.directory = pipeline, directory
        pipeline.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "DiffusersTextToImage":
        """The pipeline saved in ``directory`` (its ``model_index.json``), in float32 on a CPU and bfloat16 on a
        GPU. One-line :class:`InputError` for a missing folder, a folder that is no text-to-image pipeline, or one
        that would need a download."""
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise InputError(f"text-to-image folder not found: {directory}; give a local diffusers text-to-image "
                             "pipeline folder (with model_index.json); nothing is downloaded")
        if not (directory / INDEX_NAME).is_file():
            raise InputError(f"{directory} has no {INDEX_NAME}: it is not a diffusers pipeline folder (give one "
                             "saved by save_pretrained, e.g. a Stable Diffusion or Flux folder)")
        try:
            from diffusers import AutoPipelineForText2Image
        except ImportError:
            raise InputError(f"{directory} is a diffusers pipeline: install the extra (pip install "
                             "'lyra3d[real]')") from None
        dev = torch.device(device)
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        with quiet_diffusers():
            try:
                pipe = AutoPipelineForText2Image.from_pretrained(str(directory), local_files_only=True,
                                                                 torch_dtype=dtype)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, ImportError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise InputError(f"cannot load a text-to-image pipeline from {directory} ({first[:200]}); nothing "
                                 "is downloaded: give a complete local diffusers text-to-image folder") from None
        return cls(pipe.to(dev), directory)

    # -- what the text → 3D pipeline uses ----------------------------------------------------------------------------
    def eval(self) -> "DiffusersTextToImage":
        return self

    def to(self, device: str | torch.device) -> "DiffusersTextToImage":
        self.pipeline.to(device)
        return self

    def save_pretrained(self, directory: str | Path) -> Path:
        self.pipeline.save_pretrained(str(directory))
        return Path(directory)

    @property
    def class_name(self) -> str:
        return type(self.pipeline).__name__

    def native_size(self) -> int:
        """The pipeline's default image side in pixels (its denoiser's sample size × the VAE's factor)."""
        pipe = self.pipeline
        sample = getattr(pipe, "default_sample_size", None)
        for name in ("unet", "transformer"):
            if sample is None:
                sample = getattr(getattr(getattr(pipe, name, None), "config", None), "sample_size", None)
        if isinstance(sample, (list, tuple)):
            sample = sample[0]
        return int(sample) * self.vae_factor if sample else 512

    @property
    def vae_factor(self) -> int:
        return int(getattr(self.pipeline, "vae_scale_factor", 8) or 8)

    def size_for(self, aspect: float) -> tuple[int, int]:
        """``(width, height)`` to generate at for an output of aspect ``aspect`` (:func:`generation_size`, in steps
        of twice the VAE's factor: what every latent packing of SD/SD3/Flux/PixArt/Sana divides)."""
        return generation_size(self.native_size(), aspect, max(16, 2 * self.vae_factor))

    @torch.no_grad()
    def generate(self, prompts: str | Sequence[str], tokenizer=None, steps: int = 8, guidance: float = 3.0,
                 seed: int = 0, aspect: float = 1.0) -> Tensor:
        """Images ``(B, 3, H, W)`` in [0, 1], float32, for one prompt or a list (``tokenizer`` is ignored: the
        pipeline decodes with its own VAE); ``steps`` and ``guidance`` are the pipeline's
        ``num_inference_steps`` and ``guidance_scale``; ``seed`` seeds a CPU generator."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        width, height = self.size_for(aspect)
        with quiet_diffusers():
            out = self.pipeline(prompt=prompts, num_inference_steps=steps, guidance_scale=guidance,
                                generator=torch.Generator("cpu").manual_seed(seed), width=width, height=height,
                                output_type="pt")
        images = out.images
        if not isinstance(images, Tensor):
            images = torch.as_tensor(images)
        if images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] != 3:
            images = images.permute(0, 3, 1, 2)
        return images.float().clamp(0, 1)

    def record(self) -> dict:
        """What made the image (for ``report.json``)."""
        return {"pipeline": self.class_name, "folder": str(self.directory) if self.directory else None,
                "native_size": self.native_size()}

