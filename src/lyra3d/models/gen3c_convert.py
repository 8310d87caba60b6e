"""GEN3C's released checkpoint (``Gen3C-Cosmos-7B/model.pt``) → a diffusers ``CosmosTransformer3DModel`` folder.

The released file is what the official ``load_network_model`` reads: a ``torch.save``d dict of the model's
``ModuleDict`` state (``net.*`` the ``VideoExtendGeneralDIT``, ``logvar.*`` the training loss weighting), or the
same under a ``"model"`` key. The names come from the official module definitions (``general_dit.py``,
``blocks.py``, ``attention.py``, ``position_embedding.py``) and map one to one onto diffusers' Cosmos-1.0 names
(diffusers' own ``convert_cosmos_to_diffusers.py`` rules, written here as one explicit rule per parameter):

========================================================  =========================================================
official (after ``net.``)                                  diffusers
========================================================  =========================================================
``x_embedder.proj.1.weight``                               ``patch_embed.proj.weight``
``t_embedder.1.linear_{1,2}.weight``                       ``time_embed.t_embedder.linear_{1,2}.weight``
``affline_norm.weight``                                    ``time_embed.norm.weight``
``extra_pos_embedder.pos_emb_{t,h,w}``                     ``learnable_pos_embed.pos_emb_{t,h,w}``
``blocks.blockI.blocks.0.block.attn.to_{q,k,v}.0.weight``   ``transformer_blocks.I.attn1.to_{q,k,v}.weight``
``blocks.blockI.blocks.0.block.attn.to_{q,k}.1.weight``     ``transformer_blocks.I.attn1.norm_{q,k}.weight``
``blocks.blockI.blocks.0.block.attn.to_out.0.weight``       ``transformer_blocks.I.attn1.to_out.0.weight``
``blocks.blockI.blocks.1.block.attn.*``                    ``transformer_blocks.I.attn2.*`` (the same)
``blocks.blockI.blocks.2.block.layer{1,2}.weight``          ``transformer_blocks.I.ff.net.{0.proj,2}.weight``
``blocks.blockI.blocks.{0,1,2}.adaLN_modulation.{1,2}``     ``transformer_blocks.I.norm{1,2,3}.linear_{1,2}``
``final_layer.adaLN_modulation.{1,2}.weight``               ``norm_out.linear_{1,2}.weight``
``final_layer.linear.weight``                               ``proj_out.weight``
========================================================  =========================================================

Dropped (not parameters of the network diffusers runs): ``pos_embedder.seq`` (a buffer of ``arange``),
``logvar.*``, ``conditioner.*`` and Transformer Engine's ``*._extra_state`` (FP8 metadata). Anything else, a
missing parameter or a shape that differs from the diffusers model of the checkpoint's own sizes is refused with
one line naming it. The sizes (width, heads, blocks, channels, buffers) are read from the tensors; the RoPE
scales, which no tensor holds, are GEN3C's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import Tensor

from lyra3d.errors import InputError
from lyra3d.models.checkpoint_file import load_checkpoint_file
from lyra3d.models.gen3c import GEN3C_COSMOS_7B, Gen3CConfig, build_gen3c_transformer

_BLOCK = re.compile(r"blocks\.block(\d+)\.blocks\.([012])\.(.+)")
_SUB = {"0": ("attn1", "norm1"), "1": ("attn2", "norm2"), "2": ("ff", "norm3")}
_ATTN = {"to_q.0": "to_q", "to_q.1": "norm_q", "to_k.0": "to_k", "to_k.1": "norm_k", "to_v.0": "to_v",
         "to_out.0": "to_out.0"}
_TOP = {
    "x_embedder.proj.1.weight": "patch_embed.proj.weight",
    "t_embedder.1.linear_1.weight": "time_embed.t_embedder.linear_1.weight",
    "t_embedder.1.linear_2.weight": "time_embed.t_embedder.linear_2.weight",
    "affline_norm.weight": "time_embed.norm.weight",
    "extra_pos_embedder.pos_emb_t": "learnable_pos_embed.pos_emb_t",
    "extra_pos_embedder.pos_emb_h": "learnable_pos_embed.pos_emb_h",
    "extra_pos_embedder.pos_emb_w": "learnable_pos_embed.pos_emb_w",
    "final_layer.adaLN_modulation.1.weight": "norm_out.linear_1.weight",
    "final_layer.adaLN_modulation.2.weight": "norm_out.linear_2.weight",
    "final_layer.linear.weight": "proj_out.weight",
}
#: official keys (after ``net.``) that hold no parameter of the network diffusers runs
_DROPPED_NET = ("pos_embedder.seq", "pos_embedder.dim_spatial_range", "pos_embedder.dim_temporal_range")
#: top-level parts of the official model's ModuleDict besides ``net``
_DROPPED_PARTS = ("logvar.", "conditioner.")
PREFIX = "net."


def diffusers_key(official: str) -> str | None:
    """The diffusers name of one official network parameter (without ``net.``); ``None`` for the keys that are
    dropped; :class:`InputError` for a name the official network does not have."""
    if official in _TOP:
        return _TOP[official]
    if official in _DROPPED_NET or official.endswith("._extra_state") or official == "_extra_state":
        return None
    m = _BLOCK.fullmatch(official)
    if m:
        idx, sub, rest = m.groups()
        attn, norm = _SUB[sub]
        head = f"transformer_blocks.{idx}"
        ada = re.fullmatch(r"adaLN_modulation\.([12])\.weight", rest)
        if ada:
            return f"{head}.{norm}.linear_{ada.group(1)}.weight"
        if sub in "01":
            a = re.fullmatch(r"block\.attn\.(to_[qkv]\.[01]|to_out\.0)\.weight", rest)
            if a and a.group(1) in _ATTN and a.group(1) != "to_v.1":
                return f"{head}.{attn}.{_ATTN[a.group(1)]}.weight"
        else:
            f = re.fullmatch(r"block\.layer([12])\.weight", rest)
            if f:
                return f"{head}.ff.net.{'0.proj' if f.group(1) == '1' else '2'}.weight"
    raise InputError(f"unexpected key net.{official}: not a parameter of GEN3C's network (VideoExtendGeneralDIT)")


def official_to_diffusers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official GEN3C state dict (``net.*`` keys, plus ``logvar.*``/``conditioner.*`` which are dropped)
    to diffusers' names. One-line :class:`InputError` for a key outside the network."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED_PARTS) or key.endswith("_extra_state"):
            continue
        if not key.startswith(PREFIX):
            raise InputError(f"unexpected key {key}: a GEN3C checkpoint holds net.*, logvar.* and conditioner.* keys")
        new = diffusers_key(key[len(PREFIX):])
        if new is not None:
            out[new] = value
    return out


def config_from_state(state: dict[str, Tensor]) -> Gen3CConfig:
    """The network sizes of a renamed (diffusers-named) GEN3C state dict, read from its tensors."""
    try:
        patch = state["patch_embed.proj.weight"]
        out = state["proj_out.weight"]
        norm_q = state["transformer_blocks.0.attn1.norm_q.weight"]
        lora = state["transformer_blocks.0.norm1.linear_1.weight"]
        text = state["transformer_blocks.0.attn2.to_k.weight"]
        ff = state["transformer_blocks.0.ff.net.0.proj.weight"]
        pos = [state[f"learnable_pos_embed.pos_emb_{a}"] for a in "thw"]
    except KeyError as e:
        raise InputError(f"missing key {e.args[0]} (diffusers name): not a complete GEN3C checkpoint") from None
    p_t, p_h, p_w = GEN3C_COSMOS_7B.patch_size
    hidden, c_out = patch.shape[0], out.shape[0] // (p_t * p_h * p_w)
    in_ch = patch.shape[1] // (p_t * p_h * p_w) - 1  # the padding-mask channel comes on top
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")}
    head_dim = norm_q.shape[0]
    extra = in_ch - c_out - 1
    if extra <= 0 or extra % (2 * c_out) or hidden % head_dim:
        raise InputError(f"shape mismatch: patch embedding of {in_ch} input channels and {c_out} latent channels is "
                         f"not GEN3C's layout ({c_out} + 1 + 2·{c_out}·buffers; 81 for GEN3C-Cosmos-7B)")
    return Gen3CConfig(latent_channels=c_out, frame_buffer_max=extra // (2 * c_out),
                       num_attention_heads=hidden // head_dim, attention_head_dim=head_dim,
                       num_layers=max(blocks) + 1 if blocks else 0, mlp_ratio=ff.shape[0] / hidden,
                       text_embed_dim=text.shape[1], adaln_lora_dim=lora.shape[0],
                       max_size=(pos[0].shape[0] * p_t, pos[1].shape[0] * p_h, pos[2].shape[0] * p_w))


def check_against_model(state: dict[str, Tensor], config: Gen3CConfig) -> None:
    """Refuse (one line, naming the first offenders) a renamed state dict whose keys or shapes differ from the
    diffusers model of ``config`` (built on the meta device: no memory)."""
    want = {k: tuple(v.shape) for k, v in build_gen3c_transformer(config, device="meta").state_dict().items()}
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing:
        raise InputError(f"missing keys ({len(missing)}): {', '.join(missing[:3])}: not a complete GEN3C checkpoint")
    if unexpected:
        raise InputError(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:3])}")
    bad = [k for k in want if tuple(state[k].shape) != want[k]]
    if bad:
        k = bad[0]
        raise InputError(f"shape mismatch ({len(bad)} tensors): {k} is {tuple(state[k].shape)}, the network needs "
                         f"{want[k]}")


def read_official_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The network state dict of an official checkpoint file (flat, or under ``"model"``/``"state_dict"``), read
    safely (:func:`~lyra3d.models.checkpoint_file.load_checkpoint_file`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}; give the official Gen3C-Cosmos-7B/model.pt")
    raw = load_checkpoint_file(path)
    for key in ("model", "state_dict"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict) or not any(isinstance(k, str) and k.startswith(PREFIX) for k in raw):
        raise InputError(f"{path} holds no GEN3C network weights (no net.* keys); give the official "
                         "Gen3C-Cosmos-7B/model.pt")
    tensors = {k: v for k, v in raw.items() if isinstance(v, Tensor)}
    others = [k for k in raw if k not in tensors and not str(k).endswith("_extra_state")]
    if others:
        raise InputError(f"{path}: {others[0]} is not a tensor: not a GEN3C checkpoint")
    return tensors


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def convert_gen3c_checkpoint(checkpoint: str | Path, out_dir: str | Path, dtype: str = "bf16",
                             force: bool = False) -> dict:
    """Convert the official GEN3C checkpoint to a diffusers ``CosmosTransformer3DModel`` folder (``config.json`` +
    safetensors shards), written atomically. Returns a summary (config, tensors, parameters, dropped keys)."""
    from lyra3d.core.files import check_output, staged_dir

    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    check_output(out_dir, force, "folder")
    raw = read_official_checkpoint(checkpoint)
    state = official_to_diffusers(raw)
    config = config_from_state(state)
    check_against_model(state, config)
    model = build_gen3c_transformer(config, device="meta")
    cast = {k: v.to(DTYPES[dtype]) for k, v in state.items()}
    model.load_state_dict(cast, strict=True, assign=True)
    with staged_dir(out_dir, force=force) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True, max_shard_size="5GB")
        summary = {"source": str(checkpoint), "dtype": dtype, "tensors": len(state),
                   "parameters": int(sum(v.numel() for v in state.values())),
                   "dropped": sorted(k for k in raw if official_key_dropped(k)),
                   "is_gen3c_cosmos_7b": config == GEN3C_COSMOS_7B}
        (tmp / "lyra3d_conversion.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def official_key_dropped(key: str) -> bool:
    """Whether an official checkpoint key is dropped by the conversion (not a parameter diffusers runs)."""
    if key.startswith(_DROPPED_PARTS) or key.endswith("_extra_state"):
        return True
    return key.startswith(PREFIX) and key[len(PREFIX):] in _DROPPED_NET
