"""Checkpoints on disk: ``config.json`` + ``model.safetensors`` (DESIGN §6), written atomically.

:class:`Pretrained` gives a model the diffusers-style pair ``save_pretrained(dir)`` /
``from_pretrained(dir)``. A model class declares its typed config dataclass as ``config_class`` and takes
that config as its only constructor argument.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar, TypeVar

import torch

from lyra3d.errors import InputError

WEIGHTS_NAME = "model.safetensors"


CONFIG_NAME = "config.json"


T = TypeVar("T", bound="Pretrained")


class Pretrained(torch.nn.Module):
    """Mixin for models that save and load as ``config.json`` + ``model.safetensors``."""

    config_class: ClassVar[type]
    model_type: ClassVar[str]

    def save_pretrained(self, directory: str | Path, extra_files: dict[str, str] | None = None) -> Path:
        """Write the config and weights (float32) into ``directory``, replacing it atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            config = {"model_type": self.model_type, **dataclasses.asdict(self.config)}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
            state = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"model_type": self.model_type})
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
            tmp.chmod(0o755)  # mkdtemp makes private folders; checkpoints are shared files
            for f in tmp.iterdir():
                f.chmod(0o644)
            if directory.exists():
                # Keep files that are not ours (model card, training log) unless replaced.
                for f in directory.iterdir():
                    if f.is_file() and not (tmp / f.name).exists():
                        shutil.copy2(f, tmp / f.name)
                old = directory.with_name(f".{directory.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                directory.rename(old)
                tmp.rename(directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def from_pretrained(cls: type[T], directory: str | Path, device: str | torch.device = "cpu") -> T:
        """Load a model saved by :meth:`save_pretrained`."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
            raise InputError(f"no {cls.model_type} checkpoint in {directory}: expected {CONFIG_NAME} and "
                             f"{WEIGHTS_NAME} (train one, or pass the folder of a saved model)")
        try:
            raw = json.loads((directory / CONFIG_NAME).read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{directory / CONFIG_NAME} is not valid JSON ({e})") from None
        if raw.pop("model_type", cls.model_type) != cls.model_type:
            raise InputError(f"{directory} holds a different kind of model, not a {cls.model_type}")
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise InputError(f"{directory / CONFIG_NAME} has unknown keys {unknown} for {cls.model_type}")
        model = cls(cls.config_class(**raw))
        try:
            state = load_file(str(directory / WEIGHTS_NAME))
        except (SafetensorError, OSError) as e:
            raise InputError(f"{directory / WEIGHTS_NAME} is not a readable safetensors file ({e})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InputError(f"{directory / WEIGHTS_NAME} does not fit the config: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        return model.to(device).eval()


def shipped_weights(name: str) -> Path:
    """Folder of a model shipped inside the package (``lyra3d/weights/<name>``)."""
    return Path(__file__).resolve().parents[1] / "weights" / name
