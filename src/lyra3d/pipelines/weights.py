"""TODO(restructure): describe this module."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lyra3d.errors import InputError
from lyra3d.models.modeling import CONFIG_NAME, WEIGHTS_NAME, Pretrained

#: The parts of a weights folder, in the order they are loaded.
PARTS = ("depth", "tokenizer", "video_model", "decoder", "decoder4d", "text_to_image")


#: ``model_type`` of each part's own checkpoint (a folder that is one part's checkpoint is taken as that part).
_PART_MODEL_TYPES = {"lyra3d-depth-unet": "depth", "lyra3d-video-tokenizer": "tokenizer",
                     "lyra3d-video-dit": "video_model", "lyra3d-3dgs-decoder": "decoder",
                     "lyra3d-4dgs-decoder": "decoder4d", "lyra3d-text-to-image": "text_to_image"}


PIPELINE_CONFIG_NAME = "pipeline.json"


_LAYOUT = "depth/, tokenizer/, video_model/, decoder/, decoder4d/ or text_to_image/"


# -- loading parts ----------------------------------------------------------------------------------------------
def _model_type(folder: Path) -> str | None:
    try:
        raw = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return raw.get("model_type") if isinstance(raw, dict) else None


def resolve_weights(weights: str | Path | None) -> tuple[dict[str, Path], dict | None]:
    """The folder of each part found in a weights folder (missing parts are left out: the shipped default
    applies) and its ``pipeline.json`` settings, if any. ``None``: no parts (all shipped)."""
    if weights is None:
        return {}, None
    root = Path(weights).expanduser()
    fix = (f"give a folder holding {_LAYOUT} (a saved pipeline), or leave out --weights for the shipped models")
    if not root.exists():
        raise InputError(f"weights folder not found: {root}; {fix}")
    if not root.is_dir():
        raise InputError(f"--weights must be a folder, but {root} is a file; {fix}")
    own = _PART_MODEL_TYPES.get(_model_type(root) or "")
    if own is not None:  # the folder is one part's checkpoint
        return {own: root}, None
    parts = {name: root / name for name in PARTS if (root / name).is_dir()}
    for name, folder in parts.items():
        if not (folder / CONFIG_NAME).is_file():
            raise InputError(f"{folder} has no {CONFIG_NAME}; put a saved {name} model there (config.json + "
                             f"{WEIGHTS_NAME}) or remove the folder to use the shipped one")
    settings = None
    if (root / PIPELINE_CONFIG_NAME).is_file():
        from lyra3d.core.files import read_json

        settings = read_json(root / PIPELINE_CONFIG_NAME, "pipeline config")
        if not isinstance(settings, dict):
            raise InputError(f"{root / PIPELINE_CONFIG_NAME} is not a JSON object; remove it or re-save the pipeline")
    if not parts:
        raise InputError(f"{root} holds none of the model folders {_LAYOUT}; save a pipeline there "
                         "(save_pretrained), or leave out --weights for the shipped models")
    return parts, settings


def _missing_text_to_image() -> InputError:
    return InputError("no text-to-image weights: train with `lyra3d train text-to-image` or pass --weights DIR "
                      "holding DIR/text_to_image")


def _file_digest(folder: Path) -> str | None:
    f = folder / WEIGHTS_NAME
    if not f.is_file():
        return None
    h = hashlib.sha256()
    with f.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _save_part(model, folder: Path, source: Path | None) -> None:
    extra = {}
    if source is not None and (source / "MODEL_CARD.md").is_file():
        extra["MODEL_CARD.md"] = (source / "MODEL_CARD.md").read_text()
    if isinstance(model, Pretrained):
        model.save_pretrained(folder, extra_files=extra)
    elif hasattr(model, "vae") and hasattr(model.vae, "save_pretrained"):  # a diffusers VAE as tokenizer
        model.vae.save_pretrained(str(folder))
    else:
        raise InputError(f"cannot save the {folder.name} part ({type(model).__name__} has no save_pretrained)")
