"""Benchmark the 3DGS decoder's forward pass: seconds and peak memory, random weights of a given config.

    python benchmarks/decoder.py [--device cpu|cuda] [--configs default,lyra] [--repeats 3]

``default``: lyra3d's shipped size (6 trajectories × 17 frames of 176×320, latents 16×22×40, fp32 on the
CPU, bf16 autocast on CUDA). ``lyra``: Lyra's size (6 trajectories × 121 frames of 704×1280, latents
16×88×160, bf16; latents and rays in, raw Gaussians out, no activation or rendering) — CUDA only.
The best of ``--repeats`` runs is printed, with the peak memory of the forward (CUDA: allocated by
torch; CPU: the process's peak resident size).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from lyra3d.core.cameras import Cameras, default_camera, plucker_rays
from lyra3d.models.decoder import DecoderConfig, GaussianDecoder

SIZES = {  # name: (trajectories, latent frames, latent height, latent width)
    "default": (6, 5, 22, 40),
    "lyra": (6, 31, 88, 160),
}


def inputs(name: str, config: DecoderConfig, device: torch.device, dtype: torch.dtype):
    v, tl, h, w = SIZES[name]
    t = 1 + config.temporal_factor * (tl - 1)
    cam = default_camera(w * config.spatial_factor, h * config.spatial_factor)
    cams = Cameras.cat([cam] * (v * t))
    latents = torch.randn(1, v, tl, config.latent_channels, h, w, device=device, dtype=dtype)
    rays = torch.cat([plucker_rays(cams[i:i + t].to(device)).to(dtype) for i in range(0, v * t, t)])
    return latents, rays.reshape(1, v, t, 6, cam.height, cam.width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    print(f"# 3DGS decoder forward on {device} ({torch.cuda.get_device_name(device) if cuda else f'{torch.get_num_threads()} threads'})")
    print("| config | parameters | tokens | Gaussians | dtype | forward s | peak memory GiB |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for name in args.configs.split(","):
        if name == "lyra" and not cuda:
            print(f"| {name} | (CUDA only) | | | | | |")
            continue
        config = DecoderConfig()
        model = GaussianDecoder(config).to(device).eval()
        dtype = torch.bfloat16 if cuda else torch.float32
        latents, rays = inputs(name, config, device, dtype)
        v, tl, h, w = SIZES[name]
        tokens = v * tl * (h // config.patch_size) * (w // config.patch_size)
        gaussians = rays.shape[1] * rays.shape[2] * (rays.shape[-2] // config.gaussian_stride) * (
            rays.shape[-1] // config.gaussian_stride)
        best = float("inf")
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                raw = model(latents, rays)
            if cuda:
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - t0)
            del raw
        peak = (torch.cuda.max_memory_allocated(device) if cuda
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {params / 1e6:.2f}M | {tokens:,} | {gaussians:,} | {str(dtype)[6:]} | {best:.3f} | {peak:.2f} |")
        del latents, rays, model


if __name__ == "__main__":
    main()
