"""lyra3d: generative 3D scene reconstruction by video-diffusion self-distillation.

The code is layered (README "How the code is laid out"; the contract is in pyproject.toml)::

    core/        cameras, trajectories, Gaussians + PLY, the 3D cache, rasterize, metrics, files
    models/      the nn.Modules: depth, tokenizer, video model, 3DGS / 4D decoder, text-to-image
    pipelines/   image → 3D, text → 3D, video → 4D (and the teacher they share)
    data/        procedural worlds, clips, datasets, SDG;  evaluation/, train/ above them
    io/          images, videos, prompts in; .splat and USD out;  simready/, viewer/, cli/

The names most scripts need are importable from here, lazily (``import lyra3d`` loads no torch)::

    from lyra3d import ImageTo3DPipeline, Gaussians, Cameras, rasterize
"""

from __future__ import annotations

import importlib

from lyra3d.errors import InputError, LyraError

__version__ = "0.1.0"

#: The top-level names and the module each comes from (imported on first use).
_LAZY = {
    "Cameras": "lyra3d.core.cameras",
    "Gaussians": "lyra3d.core.gaussians",
    "load_ply": "lyra3d.core.gaussians",
    "save_ply": "lyra3d.core.gaussians",
    "rasterize": "lyra3d.core.render",
    "ImageTo3DPipeline": "lyra3d.pipelines",
    "TextTo3DPipeline": "lyra3d.pipelines",
    "VideoTo4DPipeline": "lyra3d.pipelines",
    "GenerateConfig": "lyra3d.pipelines",
    "save_scene": "lyra3d.pipelines",
}

__all__ = ["InputError", "LyraError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'lyra3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
