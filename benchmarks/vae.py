"""Benchmark diffusers video VAEs as lyra3d's tokenizer: encode and decode seconds and peak memory at the
published architectures' sizes (random weights), through lyra3d's adapter
(:class:`lyra3d.models.diffusers_vae.DiffusersVideoTokenizer`), with and without the VAE's tiling and slicing.

    PYTHONUNBUFFERED=1 python benchmarks/vae.py [--device cuda] [--vaes wan,cogvideox,ltx,hunyuan,cosmos]
        [--workloads trajectories,long] [--modes whole,sliced,tiled] [--repeats 2] [--out DIR]
    python benchmarks/vae.py --tiny --repeats 1   # tiny configs and clips: a CPU smoke run (~3 min on 2 busy cores)

Architectures (the public ``config.json`` values; diffusers' defaults are these): Wan 2.1 VAE (base_dim 96,
z_dim 16, dim_mult 1,2,4,4), CogVideoX-2b VAE (128,256,256,512; 3 layers; scaling 1.15258426), LTX-Video 0.9.0
VAE (128 channels, 32x space, 8x time), HunyuanVideo VAE (128,256,512,512; scaling 0.476986), Cosmos CV8x8x8
(8x space, 8x time, 16 channels). Workloads: ``trajectories`` = 6 trajectories × 17 frames of 320×176 (lyra3d's
teacher batch; LTX-Video takes sides in multiples of 32: 320×192 there), ``long`` = 1 × 81 frames of 480×832.
Modes: ``whole`` (no tiling, no slicing), ``sliced`` (one video of the batch at a time), ``tiled`` (tiling and
slicing, tiling forced on: lyra3d's default ``tiling="auto"`` is ``sliced`` at 320×176 and ``tiled`` at
480×832). bf16 on CUDA, float32 on the CPU. Each cell is the best of ``--repeats`` runs
(the first also warms up); memory is the peak CUDA memory allocated during the cell (the weights and the input
included; CPU: the process's peak resident size so far); an out-of-memory cell reads ``OOM``. Expected on one H100: about 6–10 minutes for
everything (the untiled 81-frame decodes dominate); split with ``--vaes`` if a call is limited to 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from functools import partial
from pathlib import Path

import torch

from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer

#: name → (diffusers class, the published VAE's architecture config)
REAL = {
    "wan": ("AutoencoderKLWan", dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                     temperal_downsample=[False, True, True])),
    "cogvideox": ("AutoencoderKLCogVideoX", dict(block_out_channels=(128, 256, 256, 512), latent_channels=16,
                                                 layers_per_block=3, norm_num_groups=32, temporal_compression_ratio=4,
                                                 scaling_factor=1.15258426, use_quant_conv=False,
                                                 use_post_quant_conv=False)),
    "ltx": ("AutoencoderKLLTXVideo", dict(latent_channels=128, block_out_channels=(128, 256, 512, 512),
                                          layers_per_block=(4, 3, 3, 3, 4),
                                          spatio_temporal_scaling=(True, True, True, False),
                                          patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
                                          timestep_conditioning=False, scaling_factor=1.0)),
    "hunyuan": ("AutoencoderKLHunyuanVideo", dict(latent_channels=16, block_out_channels=(128, 256, 512, 512),
                                                  layers_per_block=2, norm_num_groups=32, scaling_factor=0.476986,
                                                  spatial_compression_ratio=8, temporal_compression_ratio=4,
                                                  mid_block_add_attention=True)),
    "cosmos": ("AutoencoderKLCosmos", dict(latent_channels=16, encoder_block_out_channels=(128, 256, 512, 512),
                                           decode_block_out_channels=(256, 512, 512, 512), attention_resolutions=(32,),
                                           resolution=1024, num_layers=2, patch_size=4, spatial_compression_ratio=8,
                                           temporal_compression_ratio=8)),
}

#: name → the same structure (compression factors), a few channels: --tiny
TINY = {
    "wan": dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1),
    "cogvideox": dict(block_out_channels=(8, 8, 8, 8), latent_channels=16, layers_per_block=1, norm_num_groups=2),
    "ltx": dict(latent_channels=32, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                layers_per_block=(1,) * 5, decoder_layers_per_block=(1,) * 5),
    "hunyuan": dict(latent_channels=16, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=2),
    "cosmos": dict(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8),
                   attention_resolutions=(), resolution=64, num_layers=1),
}

WORKLOADS = {"trajectories": (6, 17, 176, 320), "long": (1, 81, 480, 832)}  # videos, frames, height, width
TINY_WORKLOADS = {"trajectories": (2, 9, 64, 64), "long": (1, 17, 64, 64)}
MODES = {"whole": (False, False), "sliced": (False, True), "tiled": (True, True)}  # tiling, slicing (forced)


def build(name: str, tiny: bool, device: torch.device, dtype: torch.dtype):
    import diffusers

    cls_name, config = REAL[name]
    torch.manual_seed(0)
    with torch.device(device):
        vae = getattr(diffusers, cls_name)(**(TINY[name] if tiny else config))
    diffusers.utils.logging.set_verbosity_error()  # random weights cast with .to(): no float32-module warning
    return vae.to(dtype).eval()


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def timed(fn, device: torch.device, repeats: int):
    """``(best seconds, peak GiB, result)`` of ``fn()`` over ``repeats`` runs; ``(None, None, None)`` on OOM."""
    best, out = float("inf"), None
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            out = None
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - t0)
        return best, peak_gib(device), out
    except torch.OutOfMemoryError:
        out = None
        torch.cuda.empty_cache()
        return None, None, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--vaes", default=",".join(REAL))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="tiny configs and clips (a CPU smoke run)")
    ap.add_argument("--out", default="", help="also write vae.md and vae.json into this folder")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if cuda else torch.float32
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    size = "tiny configs" if args.tiny else "published architectures, random weights"
    lines = [f"# diffusers video VAEs as the lyra3d tokenizer: {size}, {str(dtype).removeprefix('torch.')}, {where}",
             "", "| VAE | params M | latents C,s,k | workload | mode | encode s | encode GiB | decode s | decode GiB |",
             "|---|---:|---|---|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    rows = []
    workloads = TINY_WORKLOADS if args.tiny else WORKLOADS
    for name in args.vaes.split(","):
        t0 = time.perf_counter()
        vae = build(name, args.tiny, device, dtype)
        build_s = time.perf_counter() - t0
        params = sum(p.numel() for p in vae.parameters()) / 1e6
        for wl in args.workloads.split(","):
            b, t, h, w = workloads[wl]
            for mode in args.modes.split(","):
                tiling, slicing = MODES[mode]
                tok = DiffusersVideoTokenizer(vae, tiling=tiling, slicing=slicing)
                s = tok.spatial_factor
                hh, ww = -(-h // s) * s, -(-w // s) * s  # LTX-Video: sides in multiples of 32
                video = torch.rand(b, t, 3, hh, ww, generator=torch.Generator().manual_seed(0)).to(device)
                enc_s, enc_gib, z = timed(partial(tok.encode, video), device, args.repeats)
                if z is None:  # the encoder ran out of memory: decode latents of the right shape instead
                    z = torch.randn(b, tok.latent_frames(t), tok.latent_channels, hh // s, ww // s, device=device)
                dec_s, dec_gib, frames = timed(partial(tok.decode, z), device, args.repeats)
                if frames is not None:
                    assert frames.shape == video.shape, (frames.shape, video.shape)
                row = {"vae": name, "class": type(vae).__name__, "params_m": round(params, 1),
                       "latents": [tok.latent_channels, s, tok.temporal_factor], "workload": wl,
                       "shape": [b, t, hh, ww], "mode": mode, "encode_s": enc_s, "encode_gib": enc_gib,
                       "decode_s": dec_s, "decode_gib": dec_gib, "build_s": round(build_s, 1)}
                rows.append(row)
                num = lambda x: "OOM" if x is None else f"{x:.3f}" if x < 10 else f"{x:.1f}"  # noqa: E731
                line = (f"| {name} | {params:.3g} | {tok.latent_channels},{s},{tok.temporal_factor} "
                        f"| {wl} {b}×{t}×{ww}×{hh} "
                        f"| {mode} | {num(enc_s)} | {num(enc_gib)} | {num(dec_s)} | {num(dec_gib)} |")
                lines.append(line)
                print(line, flush=True)
                video = z = frames = None  # free before the next cell
        del vae
        if cuda:
            torch.cuda.empty_cache()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "vae.md").write_text("\n".join(lines) + "\n")
        (out / "vae.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
