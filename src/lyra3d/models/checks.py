"""Checks of a checkpoint folder before any work (issue 26): ``config.json`` against its config dataclass
(JSON form, field types, ranges, divisibility) and against the tensor shapes in ``model.safetensors``'s header
(read without loading a tensor; the model is built on the meta device, which allocates nothing).

Every message is one line naming the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path

from lyra3d.errors import InputError

#: (numerator, denominator) field pairs that must divide: attention splits ``dim`` over ``heads``.
DIVISIBLE = (("dim", "heads"), ("text_dim", "text_heads"))
#: Number fields that may be zero or negative (offsets, not sizes).
SIGNED = {"distance_shift", "prune_ratio", "random_ratio"}
RESAVE = "fix the value or re-save the model (save_pretrained)"
#: Keys of config.json that describe the checkpoint rather than the model's config.
META_KEYS = ("model_type", "_class_name", "_lyra3d_version")


def _type_name(tp) -> str:
    if typing.get_args(tp):  # list[int], int | None: the whole form
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp)


def _fits(value, tp) -> bool:
    """Whether a JSON value has the dataclass field type ``tp`` (int, float, bool, str, list[X], tuple[X, ...],
    X | None)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, list):
            return False
        item = args[0] if args else typing.Any
        return item is typing.Any or all(_fits(v, item) for v in value)
    return True  # a type this check does not know: the constructor decides


def read_config(path: Path) -> dict:
    """``config.json`` as a dict, or one line saying why it is not one."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}); re-save the model (save_pretrained)") from None
    except OSError as e:
        raise InputError(f"cannot read {path} ({e.strerror or e})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e}); re-save the model (save_pretrained)") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path} holds a JSON {type(raw).__name__ if raw is not None else 'null'}, not an object "
                         "of model settings; re-save the model (save_pretrained)")
    return raw


def check_fields(path: Path, config_class: type, raw: dict) -> None:
    """Each field of ``raw`` has its dataclass type; sizes are >= 1, numbers finite, ``dim % heads == 0``."""
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        if f.name not in raw:
            continue
        value, tp = raw[f.name], hints[f.name]
        if not _fits(value, tp):
            raise InputError(f"{path}: {f.name} must be {_type_name(tp)}, got {json.dumps(value)}; {RESAVE}")
        numbers = value if isinstance(value, list) else [value]
        for v in numbers:
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{path}: {f.name} must be a finite number, got {v}; {RESAVE}")
        if f.name in SIGNED or isinstance(value, (bool, list, str)) or value is None:
            continue
        if isinstance(value, int) and _fits(1, tp) and not _fits(1.5, tp) and value < 1:
            raise InputError(f"{path}: {f.name} must be a whole number >= 1, got {value}; {RESAVE}")
        if value <= 0:
            raise InputError(f"{path}: {f.name} must be > 0, got {value}; {RESAVE}")
    defaults = {f.name: f.default for f in dataclasses.fields(config_class) if f.default is not dataclasses.MISSING}
    for num, den in DIVISIBLE:
        a, b = raw.get(num, defaults.get(num)), raw.get(den, defaults.get(den))
        if isinstance(a, int) and isinstance(b, int) and b > 0 and a % b:
            raise InputError(f"{path}: {num} ({a}) must be a multiple of {den} ({b}); {RESAVE}")


def check_config(path: Path, config_class: type, model_type: str, raw: dict) -> dict:
    """``raw`` (a config.json's object) without its :data:`META_KEYS`, after checking it has no unknown keys
    and that its fields fit ``config_class`` (:func:`check_fields`)."""
    raw = {k: v for k, v in raw.items() if k not in META_KEYS}
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise InputError(f"{path} has unknown keys {unknown} for {model_type}; remove them or re-save the model")
    check_fields(path, config_class, raw)
    return raw


def check_shapes(directory: Path, weights: Path, model_class: type, config) -> None:
    """The model that ``config`` builds has exactly the tensors (names and shapes) of ``weights``."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with torch.device("meta"):
            model = model_class(config)
    except (ValueError, TypeError, ZeroDivisionError, RuntimeError, AssertionError, IndexError) as e:
        raise InputError(f"{directory / 'config.json'} does not describe a buildable {model_class.model_type} "
                         f"({type(e).__name__}: {e}); {RESAVE}") from None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    try:
        with safe_open(str(weights), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{weights} is not a readable safetensors file ({e}); re-save the model") from None
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    if missing or unexpected:
        raise InputError(f"{weights} does not fit {directory / 'config.json'}: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}; use the config.json saved with these weights")
    for k, shape in want.items():
        if have[k] != shape:
            raise InputError(f"{weights} does not fit {directory / 'config.json'}: {k} is {list(have[k])} in the "
                             f"weights but {list(shape)} by the config (a field such as dim or latent_channels "
                             "differs); use the config.json saved with these weights")


def check_config_file(folder: Path) -> None:
    """``folder/config.json`` of a lyra3d checkpoint: readable, and its fields fit its config class (torch-free:
    no tensor is read). A config naming no lyra3d ``model_type`` is left to its loader."""
    from lyra3d.models.configs import CONFIGS

    path = folder / "config.json"
    raw = read_config(path)
    config_class = CONFIGS.get(raw.get("model_type"))
    if config_class is None:
        return
    check_config(path, config_class, raw["model_type"], raw)


def check_weights_configs(weights: str | Path | None) -> None:
    """Every ``config.json`` of a weights folder (the folder itself and each part folder in it), checked by
    :func:`check_config_file` before anything imports torch; the shapes are checked when the folder resolves
    (:meth:`lyra3d.models.modeling.Pretrained.check_pretrained`)."""
    if weights is None:
        return
    root = Path(weights).expanduser()
    if not root.is_dir():
        return  # the resolver names the problem
    for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        if (folder / "config.json").is_file():
            check_config_file(folder)
