"""Weights folders: one sub-folder per part (every part optional; a missing one is the shipped default)::

    WEIGHTS/depth/          config.json + model.safetensors (lyra3d train depth)
    WEIGHTS/tokenizer/      (lyra3d train tokenizer, or a diffusers video VAE)
    WEIGHTS/video_model/    (lyra3d train video-model, or a diffusers Wan VACE pipeline: its VAE is the tokenizer)
    WEIGHTS/decoder/        (lyra3d train decoder)
    WEIGHTS/decoder4d/      (lyra3d train decoder --dynamic 1; video → 4D only)
    WEIGHTS/text_to_image/  (lyra3d train text-to-image, or a diffusers text-to-image pipeline; text → 3D only)
    WEIGHTS/pipeline.json   the pipeline's class, the class of each part and the default settings

A folder that is itself one part's checkpoint (e.g. ``runs/decoder/model``) is taken as that part: its
``config.json`` names its class (:func:`lyra3d.models.modeling.model_class_of`), and the class its part."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lyra3d.errors import InputError
from lyra3d.models.modeling import CONFIG_NAME, WEIGHTS_NAME, Pretrained, model_class_of

#: The parts of a weights folder, in the order they are loaded.
PARTS = ("depth", "tokenizer", "video_model", "decoder", "decoder4d", "text_to_image")
PIPELINE_CONFIG_NAME = "pipeline.json"
DIFFUSERS_INDEX = "model_index.json"
_LAYOUT = "depth/, tokenizer/, video_model/, decoder/, decoder4d/ or text_to_image/"


# -- loading parts ----------------------------------------------------------------------------------------------
def _model_type(folder: Path) -> str | None:
    if is_diffusers_pipeline(folder):  # its class, from model_index.json
        try:
            raw = json.loads((folder / DIFFUSERS_INDEX).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return raw.get("_class_name") if isinstance(raw, dict) else None
    try:
        raw = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return raw.get("model_type") if isinstance(raw, dict) else None


def is_diffusers_pipeline(folder: Path) -> bool:
    """Whether ``folder`` holds a diffusers pipeline (its ``model_index.json``), e.g. a text-to-image one."""
    return (Path(folder) / DIFFUSERS_INDEX).is_file()


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
    own = model_class_of(root)
    if own is not None and own.part:  # the folder is one part's checkpoint
        own.check_pretrained(root)
        return {own.part: root}, None
    parts = {name: root / name for name in PARTS if (root / name).is_dir()}
    for name, folder in parts.items():
        if name in ("text_to_image", "video_model") and is_diffusers_pipeline(folder):  # checked when it loads
            continue
        if not (folder / CONFIG_NAME).is_file():
            raise InputError(f"{folder} has no {CONFIG_NAME}; put a saved {name} model there (config.json + "
                             f"{WEIGHTS_NAME}) or remove the folder to use the shipped one")
    for name, folder in parts.items():  # every part's config and tensor shapes, before anything loads
        if name in ("text_to_image", "video_model") and is_diffusers_pipeline(folder):
            continue
        cls = model_class_of(folder)
        if cls is None:
            from lyra3d.models.checks import read_config

            read_config(folder / CONFIG_NAME)  # says why it is unreadable, if it is
        else:
            cls.check_pretrained(folder)
    settings = read_pipeline_json(root, parts) if (root / PIPELINE_CONFIG_NAME).is_file() else None
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
    elif hasattr(model, "save_pretrained"):  # an adapter of a transformers or diffusers model
        model.save_pretrained(folder)
    else:
        raise InputError(f"cannot save the {folder.name} part ({type(model).__name__} has no save_pretrained)")


def write_pipeline_json(directory: Path, pipeline_class: str, parts: dict, config) -> Path:
    """``pipeline.json`` of a saved pipeline: the pipeline's class, the lyra3d version, the class of each part
    (``{"decoder": "GaussianDecoder", ...}``) and the default settings (a :class:`GenerateConfig`, less the
    device: where to run is the loader's choice)."""
    from lyra3d import __version__
    from lyra3d.core.files import atomic_path

    settings = config.to_dict()
    settings.pop("device")
    record = {"_class_name": pipeline_class, "_lyra3d_version": __version__,
              "parts": {name: type(getattr(m, "vae", m)).__name__ for name, m in parts.items()}, "settings": settings}
    with atomic_path(Path(directory) / PIPELINE_CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return Path(directory) / PIPELINE_CONFIG_NAME


def read_pipeline_json(root: Path, parts: dict[str, Path]) -> dict:
    """The default settings of a saved pipeline's ``pipeline.json``, after checking that every part it names
    is in the folder. (A file of settings alone, as written before parts were named, is read as settings.)"""
    from lyra3d.core.files import read_json

    path = root / PIPELINE_CONFIG_NAME
    record = read_json(path, "pipeline config")
    if not isinstance(record, dict):
        raise InputError(f"{path} is not a JSON object; remove it or re-save the pipeline")
    if "settings" not in record:
        return record
    named = record.get("parts") or {}
    missing = sorted(set(named) - set(parts)) if isinstance(named, dict) else ["(parts is not an object)"]
    if missing:
        raise InputError(f"{path} names parts that {root} does not hold: {', '.join(missing)}; re-save the "
                         "pipeline or remove pipeline.json")
    if not isinstance(record["settings"], dict):
        raise InputError(f"{path}: settings is not a JSON object; remove it or re-save the pipeline")
    return record["settings"]
