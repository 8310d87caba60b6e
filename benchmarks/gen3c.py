"""GEN3C-Cosmos-7B at the official size with RANDOM weights (bf16): time per denoising step and peak GPU memory
at each memory setting, and the Cosmos 8x8x8 tokenizer's decoding of one 121-frame trajectory (issue 24).

    PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:src python benchmarks/gen3c.py --device cuda --save $OUT/gen3c.md
    PYTHONPATH=src python benchmarks/gen3c.py --tiny          # a seconds-long CPU smoke run of the same code

The workload is the official one: 704x1280, 121 frames → latents 16x88x160 (56,320 tokens), 81 input channels
(latent, condition mask, 2 warped buffers of rgb + mask latents), T5 context 512x1024, and the official step
(:func:`lyra3d.models.gen3c_sampling.denoise_step`): two network passes (conditional and unconditional: the
official guidance 1 still runs both), condition-frame replacement, Euler update. One step is measured after one
warm-up pass; the trajectory (35 steps) and the scene (6 trajectories) are EXTRAPOLATED from it (plus the
transfer of the weights for model CPU offload). The weights are random: time and memory are real, the output
is not. Each row catches out-of-memory and goes on.

Rows: all on the GPU; model CPU offload (the whole network moved to the GPU for a trajectory and back: its cost
is one transfer per trajectory); diffusers group offloading, block level, one block per group, with CUDA streams
(prefetching the next block while one runs) from pinned CPU memory. Then AutoencoderKLCosmos (the CV8x8x8 config,
random weights, bf16) decoding 16 latent frames to 121 frames of 704x1280: whole, and in overlapping spatial tiles
(:func:`lyra3d.models.vae_tiling.decode_spatial_tiles`; diffusers 0.42's AutoencoderKLCosmos records
``enable_tiling`` but its decode does not tile).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lyra3d.models.gen3c import GEN3C_COSMOS_7B, Gen3CConfig, build_gen3c_transformer
from lyra3d.models.gen3c_conditioning import NUM_STEPS, condition_indicator
from lyra3d.models.gen3c_sampling import Gen3CCondition, denoise_step, edm_sigmas
from lyra3d.models.vae_tiling import decode_spatial_tiles

TRAJECTORIES = 6
OFFICIAL = "official code (nv-tlabs/lyra issues): ~43 GB peak with full offloading; ~14 min per trajectory on an A100"
TINY = Gen3CConfig(num_attention_heads=2, attention_head_dim=16, num_layers=2, text_embed_dim=32, adaln_lora_dim=8,
                   max_size=(16, 32, 32))
COSMOS_VAE = dict(latent_channels=16, encoder_block_out_channels=(128, 256, 512, 512),
                  decode_block_out_channels=(256, 512, 512, 512), attention_resolutions=(32,), resolution=1024,
                  num_layers=2, patch_size=4, spatial_compression_ratio=8, temporal_compression_ratio=8)
TINY_VAE = dict(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8),
                attention_resolutions=(), resolution=64, num_layers=1)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def make_condition(config: Gen3CConfig, latent: tuple[int, int, int], text_len: int, device, dtype) -> Gen3CCondition:
    t, h, w = latent
    g = torch.Generator(device=device).manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g, device=device)  # noqa: E731
    return Gen3CCondition(gt_latent=rnd(1, config.latent_channels, t, h, w),
                          indicator=condition_indicator(t, 1).to(device),
                          buffers=rnd(1, config.buffer_channels, t, h, w).to(dtype),
                          text=rnd(1, text_len, config.text_embed_dim).to(dtype),
                          negative_text=rnd(1, text_len, config.text_embed_dim).to(dtype))


def time_step(model, cond, device, steps: int) -> float:
    """Seconds per official step (mean of ``steps`` after one warm-up step)."""
    sig = edm_sigmas(NUM_STEPS).tolist()
    xt = torch.randn(cond.gt_latent.shape, device=device) * sig[0]
    with torch.no_grad():
        denoise_step(model, xt, sig[0], sig[1], cond)  # warm-up (kernels, offload hooks, allocator)
        sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            xt = denoise_step(model, xt, sig[i], sig[i + 1], cond)
        sync(device)
    return (time.perf_counter() - t0) / steps


def transformer_rows(args, device, config, latent, text_len) -> list[dict]:
    dtype = torch.bfloat16
    rows = []
    t0 = time.perf_counter()
    model = build_gen3c_transformer(config, device=device, dtype=dtype)
    sync(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"built {params / 1e9:.2f} B parameters on {device} in {time.perf_counter() - t0:.1f} s", flush=True)
    cond = make_condition(config, latent, text_len, device, dtype)

    def row(setting, fn, note=""):
        reset_peak(device)
        try:
            step, extra = fn()
            traj = extra + NUM_STEPS * step
            rows.append(dict(setting=setting, step=step, traj=traj, scene=TRAJECTORIES * traj, peak=peak_gib(device),
                             note=note))
        except Exception as e:
            if not is_oom(e):
                raise
            rows.append(dict(setting=setting, step=None, traj=None, scene=None, peak=peak_gib(device),
                             note=f"out of memory ({note})" if note else "out of memory"))
        print(rows[-1], flush=True)

    if "gpu" in args.rows:
        row("all on the GPU", lambda: (time_step(model, cond, device, args.steps), 0.0))
    if device.type != "cuda":
        return rows
    model.to("cpu")  # the weights now live on the CPU (bf16); pin them for fast transfers
    for p in model.parameters():
        p.data = p.data.pin_memory()
    reset_peak(device)

    if "cpu_offload" in args.rows:
        def cpu_offload():
            t0 = time.perf_counter()
            model.to(device)
            sync(device)
            onload = time.perf_counter() - t0
            step = time_step(model, cond, device, args.steps)
            t0 = time.perf_counter()
            model.to("cpu")
            for p in model.parameters():
                p.data = p.data.pin_memory()
            return step, onload + (time.perf_counter() - t0)
        row("model CPU offload", cpu_offload, "one transfer each way per trajectory")

    if "group" in args.rows:
        def group():
            model.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                       offload_type="block_level", num_blocks_per_group=1, use_stream=True)
            return time_step(model, cond, device, args.steps), 0.0
        row("group offload, block level, 1 block/group, streams", group, "diffusers enable_group_offload")
    return rows


def vae_rows(args, device, vae_cfg, latent) -> list[dict]:
    from diffusers import AutoencoderKLCosmos

    rows = []
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            vae = AutoencoderKLCosmos(**vae_cfg).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    z = torch.randn(1, 16, *latent, device=device, dtype=torch.bfloat16)
    tile, overlap = (6, 2) if args.tiny else (48, 8)

    def tiled():
        return decode_spatial_tiles(lambda t: vae.decode(t).sample, z, 8, tile=tile, overlap=overlap)

    modes = {"whole": lambda: vae.decode(z).sample,
             f"spatial tiles of {tile} latent px, overlap {overlap} (lyra3d.models.vae_tiling)": tiled}
    for mode, run in modes.items():
        reset_peak(device)
        name = f"AutoencoderKLCosmos decode {latent[0]} latent → {1 + 8 * (latent[0] - 1)} frames, {mode}"
        try:
            with torch.no_grad():
                sync(device)
                t0 = time.perf_counter()
                out = run()
                sync(device)
            sec = time.perf_counter() - t0
            rows.append(dict(setting=name, step=sec, traj=sec, scene=TRAJECTORIES * sec, peak=peak_gib(device),
                             note=f"output {tuple(out.shape)}"))
            del out
        except Exception as e:
            if not is_oom(e):
                raise
            rows.append(dict(setting=name, step=None, traj=None, scene=None, peak=peak_gib(device),
                             note="out of memory"))
        print(rows[-1], flush=True)
    return rows


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def table(rows, header) -> str:
    lines = [header, "",
             "| setting | s / step (2 passes) | s / trajectory (35 steps, extrapolated) | s / scene (6 traj.) "
             "| peak GiB | note |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {fmt(r['step'])} | {fmt(r['traj'], 0)} | {fmt(r['scene'], 0)} | "
                     f"{fmt(r['peak'])} | {r['note']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="a tiny network and small latents (CPU smoke run)")
    ap.add_argument("--steps", type=int, default=1, help="timed steps per row (after one warm-up step)")
    ap.add_argument("--rows", default="gpu,cpu_offload,group,vae", help="which rows: gpu,cpu_offload,group,vae")
    ap.add_argument("--save", type=Path, help="write the table (markdown) here")
    args = ap.parse_args()
    args.rows = set(args.rows.split(","))
    device = torch.device(args.device)
    config, latent, text_len, vae_cfg = ((TINY, (3, 8, 12), 8, TINY_VAE) if args.tiny else
                                         (GEN3C_COSMOS_7B, (16, 88, 160), 512, COSMOS_VAE))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    t0 = time.perf_counter()
    rows = transformer_rows(args, device, config, latent, text_len)
    if "vae" in args.rows:
        rows += vae_rows(args, device, vae_cfg, latent)
    header = (f"# GEN3C-Cosmos-7B{' (TINY config)' if args.tiny else ''}, random weights, bf16, {name}\n\n"
              f"latents 1x{config.latent_channels}x{'x'.join(map(str, latent))}, {config.in_channels} input channels, "
              f"text 1x{text_len}x{config.text_embed_dim}; torch {torch.__version__}; {OFFICIAL}. "
              f"Total benchmark time {time.perf_counter() - t0:.0f} s. VAE rows: the s/step column is one decode, "
              f"s/scene six.")
    text = table(rows, header)
    print(text)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(text)


if __name__ == "__main__":
    main()
