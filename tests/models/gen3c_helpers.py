"""Shared by the GEN3C tests: a tiny GEN3C config, and fake official checkpoints with the official parameter names
(from the committed key list of the official network) at tiny sizes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from lyra3d.models.gen3c import Gen3CConfig

OFFICIAL_KEYS = Path(__file__).parent / "data" / "gen3c_official_keys.json"
TINY = Gen3CConfig(num_attention_heads=2, attention_head_dim=16, num_layers=2, text_embed_dim=24, adaln_lora_dim=8,
                   max_size=(8, 32, 48))


def official_record() -> dict:
    return json.loads(OFFICIAL_KEYS.read_text())


def tiny_official_shapes(cfg: Gen3CConfig = TINY) -> dict[str, tuple[int, ...]]:
    """The official key names (those of the committed list, blocks ``< cfg.num_layers``) with the shapes the
    official network has at ``cfg``'s sizes (written from the official module definitions)."""
    h, hd, r, text = cfg.hidden_size, cfg.attention_head_dim, cfg.adaln_lora_dim, cfg.text_embed_dim
    p = cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2]
    t, mh, mw = cfg.max_size[0] // cfg.patch_size[0], cfg.max_size[1] // cfg.patch_size[1], \
        cfg.max_size[2] // cfg.patch_size[2]
    ff = int(h * cfg.mlp_ratio)
    fixed = {"x_embedder.proj.1.weight": (h, (cfg.in_channels + 1) * p), "pos_embedder.seq": (max(t, mh, mw),),
             "extra_pos_embedder.pos_emb_h": (mh, h), "extra_pos_embedder.pos_emb_w": (mw, h),
             "extra_pos_embedder.pos_emb_t": (t, h), "t_embedder.1.linear_1.weight": (h, h),
             "t_embedder.1.linear_2.weight": (3 * h, h), "final_layer.linear.weight": (p * cfg.latent_channels, h),
             "final_layer.adaLN_modulation.1.weight": (r, h), "final_layer.adaLN_modulation.2.weight": (2 * h, r),
             "affline_norm.weight": (h,)}
    out = {}
    for key, shape in official_record()["keys"].items():
        if key.startswith("logvar."):
            out[key] = tuple(shape)
            continue
        name = key.removeprefix("net.")
        m = re.fullmatch(r"blocks\.block(\d+)\.blocks\.(\d)\.(.+)", name)
        if m is None:
            out[key] = fixed[name]
            continue
        idx, sub, rest = int(m.group(1)), m.group(2), m.group(3)
        if idx >= cfg.num_layers:
            continue
        ctx = text if sub == "1" else h
        if rest.endswith("adaLN_modulation.1.weight"):
            out[key] = (r, h)
        elif rest.endswith("adaLN_modulation.2.weight"):
            out[key] = (3 * h, r)
        elif rest.endswith((".1.weight",)):  # to_q.1 / to_k.1: the per-head RMSNorm
            out[key] = (hd,)
        elif re.search(r"to_[kv]\.0\.weight$", rest):
            out[key] = (h, ctx)
        elif rest.endswith(("to_q.0.weight", "to_out.0.weight")):
            out[key] = (h, h)
        elif rest.endswith("layer1.weight"):
            out[key] = (ff, h)
        elif rest.endswith("layer2.weight"):
            out[key] = (h, ff)
        else:
            raise AssertionError(f"no tiny shape rule for {key}")
    return out


def tiny_official_state(cfg: Gen3CConfig = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.1 for k, s in tiny_official_shapes(cfg).items()}
