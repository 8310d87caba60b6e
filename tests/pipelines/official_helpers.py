"""Shared by the official-preset tests: a tiny official weights folder (tiny random GEN3C of the 81-channel layout
scaled down, a tiny AutoencoderKLCosmos, a tiny Lyra-1 decoder), saved as the real parts are."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from lyra3d.models.configs import Lyra1DecoderConfig
from lyra3d.models.gen3c import Gen3CConfig, build_gen3c_transformer

C = 4  # latent channels of the tiny tokenizer
GEN3C = Gen3CConfig(latent_channels=C, num_attention_heads=2, attention_head_dim=16, num_layers=2, text_embed_dim=24,
                    adaln_lora_dim=8, max_size=(8, 32, 48))
DECODER = Lyra1DecoderConfig(latent_channels=C, dim=32, depth=2, heads=4, transformer_every=2, mamba_d_state=8,
                             mamba_headdim=16)


def tiny_cosmos_vae():
    import diffusers

    return diffusers.AutoencoderKLCosmos(encoder_block_out_channels=(8, 8, 8, 8),
                                         decode_block_out_channels=(8, 8, 8, 8), attention_resolutions=(),
                                         resolution=64, num_layers=1, latent_channels=C,
                                         latents_mean=[0.01 * i for i in range(2 * C)],
                                         latents_std=[1 + 0.02 * i for i in range(2 * C)])


def make_official_folder(root: Path, text: bool = True, seed: int = 0, max_size=(8, 32, 48)) -> Path:
    """``root`` holding gen3c/, tokenizer/, decoder/ (and text_embeddings.safetensors); ``max_size``: GEN3C's
    largest latent grid (frames, rows, columns)."""
    from safetensors.torch import save_file

    from lyra3d.models.lyra1_decoder import Lyra1Decoder

    torch.manual_seed(seed)
    build_gen3c_transformer(dataclasses.replace(GEN3C, max_size=max_size)).save_pretrained(root / "gen3c")
    tiny_cosmos_vae().save_pretrained(root / "tokenizer")
    Lyra1Decoder(DECODER).save_pretrained(root / "decoder")
    if text:
        g = torch.Generator().manual_seed(seed)
        save_file({"prompt": torch.randn(1, 5, GEN3C.text_embed_dim, generator=g),
                   "negative_prompt": torch.randn(1, 5, GEN3C.text_embed_dim, generator=g)},
                  str(root / "text_embeddings.safetensors"))
    return root
