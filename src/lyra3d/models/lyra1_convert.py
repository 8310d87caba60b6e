"""Convert NVIDIA's released Lyra-1 decoder checkpoints (``lyra_static.pt``, ``lyra_dynamic.pt``) into a lyra3d
model folder (``config.json`` + ``model.safetensors``) of :class:`~lyra3d.models.lyra1_decoder.Lyra1Decoder`.

The official sampler loads them as ``torch.load(path)["module"]`` into ``LatentRecon`` (a DeepSpeed model-states
file); here the file is read with ``weights_only=True`` (no code in it runs), the state dict found (``module``,
else ``state_dict`` / ``model`` / the dict itself; a ``module.`` prefix from DistributedDataParallel dropped),
and every name and shape checked against the architecture before anything is written. The static and dynamic
models have the same tensors (both hold the time embeddings; only the dynamic one uses them), so the variant
comes from ``variant`` or, by default, the file name.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lyra3d.core.files import check_output, not_found
from lyra3d.errors import InputError
from lyra3d.models.checkpoint_file import load_checkpoint_file
from lyra3d.models.configs import Lyra1DecoderConfig
from lyra3d.models.lyra1_decoder import Lyra1Decoder

VARIANTS = ("static", "dynamic")


def variant_of(path: Path, variant: str | None) -> str:
    """``variant`` if given, else ``dynamic`` when the file name says so, else ``static``."""
    if variant is None or variant == "auto":
        return "dynamic" if "dynamic" in Path(path).name.lower() else "static"
    if variant not in VARIANTS:
        raise InputError(f"variant must be static or dynamic, got {variant!r}")
    return variant


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint file (one-line :class:`InputError` for anything else)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(not_found(path, "checkpoint") if path.is_symlink() else
                         f"checkpoint {path} not found; pass the official lyra_static.pt or lyra_dynamic.pt")
    state = data = load_checkpoint_file(path)
    if isinstance(data, dict):
        for key in ("module", "state_dict", "model"):
            if key in data:
                if not isinstance(data[key], dict):
                    raise InputError(f"{path} holds no state dict: its '{key}' entry is a "
                                     f"{type(data[key]).__name__}, not a dict of tensors")
                state = data[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
        raise InputError(f"{path} holds no state dict (expected a dict of tensors, or one under 'module')")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise InputError(f"{path}: the state dict holds non-tensors ({', '.join(not_tensors[:3])})")
    return state


def check_official_state(state: dict[str, torch.Tensor], model: torch.nn.Module, path: Path) -> None:
    """Names and shapes of ``state`` equal the model's; one line naming what differs."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    if missing or unexpected:
        raise InputError(f"{path} is not a Lyra-1 decoder checkpoint: {len(missing)} missing tensors "
                         f"({', '.join(missing[:3]) or 'none'}), {len(unexpected)} unexpected "
                         f"({', '.join(unexpected[:3]) or 'none'})")
    wrong = [f"{k} {list(state[k].shape)} (want {list(s)})" for k, s in want.items() if tuple(state[k].shape) != s]
    if wrong:
        raise InputError(f"{path} does not fit the Lyra-1 decoder: {len(wrong)} shape mismatches, e.g. "
                         f"{'; '.join(wrong[:2])}")
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise InputError(f"{path} holds NaN or infinite weights ({', '.join(broken[:3])})")


def convert_lyra1_decoder(checkpoint: str | Path, out: str | Path, variant: str | None = None,
                          force: bool = False, config: Lyra1DecoderConfig | None = None) -> tuple[Path, str]:
    """Write ``out`` (a lyra3d model folder) from an official Lyra-1 decoder checkpoint; returns ``(out,
    variant)``. ``config`` overrides the released models' settings (tests use small ones); its ``dynamic``
    is set by the variant. Nothing is written unless every tensor fits."""
    import dataclasses

    checkpoint, out = Path(checkpoint), Path(out)
    check_output(out, force, kind="folder")
    variant = variant_of(checkpoint, variant)
    state = read_official_state(checkpoint)
    config = dataclasses.replace(config or Lyra1DecoderConfig(), dynamic=variant == "dynamic")
    with torch.device("meta"):  # no initialisation: the checkpoint's tensors are assigned
        model = Lyra1Decoder(config)
    check_official_state(state, model, checkpoint)
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)
    note = (f"Converted by `lyra3d convert lyra1-decoder` from {checkpoint.name} (NVIDIA Lyra-1, {variant} "
            "3DGS decoder; license: the original checkpoint's). Architecture: lyra3d.models.lyra1_decoder.\n")
    model.save_pretrained(out, extra_files={"SOURCE.md": note})
    return out, variant
