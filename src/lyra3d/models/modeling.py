"""Checkpoints on disk: ``config.json`` + ``model.safetensors`` (docs/design.md §6), written atomically.

:class:`Pretrained` gives a model the diffusers-style pair ``save_pretrained(dir)`` /
``from_pretrained(dir)``. A model class declares its typed config dataclass as ``config_class``, a stable
``model_type`` (the key of its checkpoints) and the ``part`` of a weights folder it fills, and takes its
config as its only constructor argument. ``config.json`` describes itself: ``model_type``, the class name
(``_class_name``) and the lyra3d version that wrote it (``_lyra3d_version``), then the config's fields.

Every model class registers itself when its module is imported (:func:`model_classes` imports them all):
:func:`load_pretrained` loads any lyra3d checkpoint folder without knowing its class.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import ClassVar, TypeVar

import torch

from lyra3d.core.files import staged_dir
from lyra3d.errors import InputError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
T = TypeVar("T", bound="Pretrained")
#: lyra3d's model classes by ``model_type``, filled as their modules are imported.
_REGISTRY: dict[str, type["Pretrained"]] = {}


class Pretrained(torch.nn.Module):
    """Mixin for models that save and load as ``config.json`` + ``model.safetensors``."""

    config_class: ClassVar[type]
    model_type: ClassVar[str]  # the stable name of the architecture in config.json
    part: ClassVar[str] = ""  # the part of a weights folder it fills (pipelines.weights.PARTS); "": none

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            _REGISTRY[cls.model_type] = cls

    def config_record(self) -> dict:
        """What ``config.json`` holds: the checkpoint's description, then the config's fields."""
        from lyra3d import __version__

        return {"model_type": self.model_type, "_class_name": type(self).__name__, "_lyra3d_version": __version__,
                **dataclasses.asdict(self.config)}

    def save_pretrained(self, directory: str | Path, extra_files: dict[str, str] | None = None) -> Path:
        """Write the config and weights (float32) into ``directory``, replacing it atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        with staged_dir(directory, force=True) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config_record(), indent=2) + "\n")
            state = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"model_type": self.model_type})
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
            if directory.is_dir():  # keep files that are not ours (model card, training log) unless replaced
                for f in directory.iterdir():
                    if f.is_file() and not (tmp / f.name).exists():
                        shutil.copy2(f, tmp / f.name)
        return directory

    @classmethod
    def check_pretrained(cls, directory: str | Path):
        """Check a checkpoint folder without loading a tensor: ``config.json`` against :attr:`config_class`
        (types, ranges, divisibility) and the tensor shapes in the ``model.safetensors`` header against the
        model it builds (:mod:`lyra3d.models.checks`). Returns the config; one-line :class:`InputError` else."""
        from lyra3d.models import checks

        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
            raise InputError(f"no {cls.model_type} checkpoint in {directory}: expected {CONFIG_NAME} and "
                             f"{WEIGHTS_NAME} (train one, or pass the folder of a saved model)")
        raw = checks.read_config(directory / CONFIG_NAME)
        if raw.get("model_type", cls.model_type) != cls.model_type:
            raise InputError(f"{directory} holds a different kind of model ({raw.get('model_type')}), "
                             f"not a {cls.model_type}")
        raw = checks.check_config(directory / CONFIG_NAME, cls.config_class, cls.model_type, raw)
        try:
            config = cls.config_class(**raw)
        except (TypeError, ValueError) as e:
            raise InputError(f"{directory / CONFIG_NAME} is not a {cls.model_type} config ({e})") from None
        checks.check_shapes(directory, directory / WEIGHTS_NAME, cls, config)
        return config

    @classmethod
    def from_pretrained(cls: type[T], directory: str | Path, device: str | torch.device = "cpu") -> T:
        """Load a model saved by :meth:`save_pretrained`, checked first (:meth:`check_pretrained`)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        config = cls.check_pretrained(directory)
        model = cls(config)
        try:
            state = load_file(str(directory / WEIGHTS_NAME))
        except (SafetensorError, OSError) as e:
            raise InputError(f"{directory / WEIGHTS_NAME} is not a readable safetensors file ({e})") from None
        broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:  # else the model's output would be blamed (NaN Gaussians, NaN frames)
            raise InputError(f"{directory / WEIGHTS_NAME} holds NaN or infinite weights ({', '.join(broken[:3])}); "
                             "the training diverged: use an earlier checkpoint or retrain")
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InputError(f"{directory / WEIGHTS_NAME} does not fit the config: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        return model.to(device).eval()


def shipped_weights(name: str) -> Path:
    """Folder of a model shipped inside the package (``lyra3d/weights/<name>``)."""
    return Path(__file__).resolve().parents[1] / "weights" / name


def model_classes() -> dict[str, type[Pretrained]]:
    """Every lyra3d model class by ``model_type`` (the modules of :mod:`lyra3d.models` are imported once,
    and each class registers itself: no hand-kept table)."""
    import importlib
    import pkgutil

    import lyra3d.models as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(_REGISTRY)


def model_class_of(directory: str | Path) -> type[Pretrained] | None:
    """The lyra3d model class of a checkpoint folder (from its config.json's ``model_type``), or ``None``
    when the folder holds no lyra3d checkpoint (no or unreadable config.json, a diffusers model, ...)."""
    try:
        raw = json.loads((Path(directory) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    kind = raw.get("model_type") if isinstance(raw, dict) else None
    return model_classes().get(kind) if isinstance(kind, str) else None


def load_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Any lyra3d checkpoint folder, as the class its config.json names."""
    cls = model_class_of(directory)
    if cls is None:
        raise InputError(f"{directory} holds no lyra3d model: its {CONFIG_NAME} is missing or names no known "
                         f"model_type ({', '.join(sorted(model_classes()))})")
    return cls.from_pretrained(directory, device)
