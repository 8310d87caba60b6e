"""Lyra-1's official 3DGS decoder in lyra3d (:mod:`lyra3d.models.lyra1_decoder`): parity against NVIDIA's own
module with random weights, and the real-size forward (seconds, peak GPU memory). Random weights only.

    PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:src python benchmarks/lyra1_decoder.py --device cuda \\
        --repo /tmp/lyra/Lyra-1 --save $OUT/lyra1_decoder.md

Parts (each row catches its own errors, OOM included, and says what could not run):

0. ``attn-parity`` (CPU too): as ``parity`` below, with the official ``use_mamba`` off (16 transformer blocks):
   every part but the Mamba2 kernels (embeddings, time, attention, the transposed-convolution head, activations,
   pruning) against the official code where no GPU is at hand.
1. ``mamba``: one official ``Mamba2Block`` (mamba-ssm's fused Triton kernels: ``mamba_split_conv1d_scan_combined``)
   against lyra3d's ``Mamba2Block`` with the same weights, through lyra3d's PyTorch SSD and through mamba-ssm's
   ``mamba_chunk_scan_combined``; float32, 6 × 2 × 8 × 16 tokens (and the PyTorch SSD against the kernel at a
   long sequence).
2. ``parity``: the official ``LatentRecon`` (static and dynamic configs, real width and depth, 32.8 M parameters)
   with random weights (every tensor perturbed, the zero-initialised embeddings included), the same
   ``state_dict`` loaded into lyra3d's ``Lyra1Decoder`` (strict), the same inputs (2 trajectories × 3 latent
   frames × 16 × 32: 17 frames of 128 × 256), float32: the Gaussians ``(N, 14)`` before pruning compared
   element-wise, after pruning as sets.
3. ``real size``: 6 trajectories × 121 frames at 704 × 1280 (latents 6 × 16 × 16 × 88 × 160; Plücker latents
   32 channels; rays at 88 × 160 per frame), bf16, one forward of lyra3d's decoder (head chunked, pruning on),
   and of the official module (if it imports) for comparison; seconds (best of 2 after a warm-up) and peak
   allocated GPU memory.

The official code is imported with stand-ins for imports that are not the network (tools/lyra1_official.py);
on a machine without the compiled ``causal-conv1d`` its forward conv is PyTorch's ``conv1d`` (said in the
output). Without ``--repo``, only lyra3d's rows run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from lyra3d.models import mamba2 as ours_mamba
from lyra3d.models.configs import Lyra1DecoderConfig
from lyra3d.models.lyra1_decoder import Lyra1Decoder

ROWS: list[str] = []


def row(*cells) -> None:
    line = "| " + " | ".join(str(c) for c in cells) + " |"
    ROWS.append(line)
    print(line, flush=True)


def note(text: str) -> None:
    ROWS.append(text)
    print(text, flush=True)


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every tensor so that every path matters (the zero-initialised embeddings too); keep the
    SSM parameters (A_log, dt_bias, D) in their ranges."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g).to(p.device, p.dtype)
            if name.endswith(("A_log", "dt_bias")):
                p.add_(0.1 * noise)
            elif name.endswith((".D", "norm.weight")):
                p.copy_(1 + 0.1 * noise)
            else:
                fan_in = max(1, p[0].numel()) if p.ndim > 1 else 50
                p.add_(noise / fan_in ** 0.5 * 0.5)


def inputs(b, v, tl, h, w, c=16, dynamic=False, device="cpu", dtype=torch.float32, seed=1):
    g = torch.Generator(device="cpu").manual_seed(seed)
    t = 1 + 8 * (tl - 1)

    def rnd(*shape):
        return torch.randn(*shape, generator=g).to(device, dtype)

    latents = rnd(b, v, tl, c, h, w)
    plucker = rnd(b, v, tl, 2 * c, h, w)
    rays_o = rnd(b, v, t, 3, 1, 1).expand(b, v, t, 3, h, w).contiguous() * 0.3
    rays_d = torch.nn.functional.normalize(rnd(b, v, t, 3, h, w) + torch.tensor([0, 0, 2.0], device=device,
                                                                                 dtype=dtype)[:, None, None], dim=3)
    time_in = rnd(b, tl, c, h, w) if dynamic else None
    time_tgt = rnd(b, 1, c, h, w) if dynamic else None
    return latents, plucker, rays_o, rays_d, time_in, time_tgt


def official_call(model, latents, plucker, rays_o, rays_d, time_in, time_tgt):
    """The official ``forward_gaussians`` on the same inputs (views folded into its frame axis)."""
    v = latents.shape[1]
    fold = lambda x: x.flatten(1, 2)
    times = torch.cat([time_in, time_tgt], 1) if time_in is not None else None
    out, _ = model.forward_gaussians(fold(latents), fold(plucker), fold(rays_o), fold(rays_d), times,
                                     num_input_multi_views=v)
    return out


def compare(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    diff = (a.double() - b.double()).abs()
    return diff.max().item(), (diff.max() / b.double().abs().max().clamp_min(1e-12)).item()


def mamba_rows(repo, device) -> None:
    from lyra1_official import load_official

    load_official(repo, conv_shim=True)
    from src.models.utils.mamba2 import Mamba2Block as Official

    torch.manual_seed(0)
    official = Official(512).to(device)
    randomise(official)
    ours = ours_mamba.Mamba2Block(512).to(device)
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, 6 * 2 * 8 * 16, 512, device=device)
    with torch.no_grad():
        ref = official(x)
        os.environ["LYRA3D_MAMBA_KERNELS"] = "0"
        torch_out = ours(x)
        os.environ["LYRA3D_MAMBA_KERNELS"] = "1"
        kernel_ok = ours_mamba.kernels_available()
        kern_out = ours(x) if kernel_ok else None
    m, r = compare(torch_out, ref)
    row("mamba", "Mamba2Block, 1536 tokens, fp32", "lyra3d PyTorch SSD vs official fused kernels", f"{m:.2e}", f"{r:.2e}")
    if kern_out is not None:
        m, r = compare(kern_out, ref)
        row("mamba", "Mamba2Block, 1536 tokens, fp32", "lyra3d + mamba_chunk_scan_combined vs official", f"{m:.2e}",
            f"{r:.2e}")
        long = torch.randn(1, 6 * 16 * 44 * 80 // 4, 512, device=device)
        with torch.no_grad():
            os.environ["LYRA3D_MAMBA_KERNELS"] = "0"
            a = ours(long)
            os.environ["LYRA3D_MAMBA_KERNELS"] = "1"
            b = ours(long)
            c = official(long)
        m, r = compare(a, b)
        row("mamba", f"Mamba2Block, {long.shape[1]} tokens, fp32", "lyra3d PyTorch SSD vs mamba-ssm kernel", f"{m:.2e}",
            f"{r:.2e}")
        m, r = compare(b, c)
        row("mamba", f"Mamba2Block, {long.shape[1]} tokens, fp32", "lyra3d + kernel vs official fused", f"{m:.2e}",
            f"{r:.2e}")
    else:
        row("mamba", "", "mamba_chunk_scan_combined not importable: kernel row skipped", "", "")


def parity_rows(repo, device, variant: str, mamba: bool = True) -> None:
    from lyra1_official import build_official

    extra = {} if mamba else {"use_mamba": False}
    official, opt, stubs = build_official(repo, variant, device="cpu", conv_shim=True, gaussians_prune_ratio=0.0,
                                          **extra)
    official = official.to(device).eval()
    randomise(official, seed=3)
    cfg = Lyra1DecoderConfig(dynamic=variant == "dynamic", use_mamba=mamba)
    if not mamba:
        variant += ", all 16 blocks attention (use_mamba false)"
    ours = Lyra1Decoder(cfg).to(device).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    args = inputs(1, 2, 3, 16, 32, dynamic=cfg.dynamic, device=device)
    with torch.no_grad():
        ref = official_call(official, *args)
        for label, env in (("PyTorch SSD", "0"), ("mamba-ssm SSD kernel", "1")):
            if not mamba and env == "1":
                continue
            if env == "1" and not ours_mamba.kernels_available():
                row(f"parity {variant}", "", f"{label}: not importable, skipped", "", "")
                continue
            os.environ["LYRA3D_MAMBA_KERNELS"] = env
            mine = ours(*args, prune=False)
            m, r = compare(mine, ref)
            row(f"parity {variant}", f"{ref.shape[1]} Gaussians × 14, fp32", f"lyra3d ({label if mamba else 'no Mamba'}) vs official, "
                "before pruning", f"{m:.2e}", f"{r:.2e}")
        os.environ["LYRA3D_MAMBA_KERNELS"] = "1"
        pruned = ours(*args, prune=True) if cfg.prune_ratio > 0 else None
        opt["gaussians_prune_ratio"] = cfg.prune_ratio
        ref_pruned = official_call(official, *args)
    if pruned is not None:
        same_n = pruned.shape == ref_pruned.shape
        m, r = compare(pruned[0, :, 3].sort().values, ref_pruned[0, :, 3].sort().values) if same_n else (float("nan"),) * 2
        row(f"parity {variant}", f"pruned to {ref_pruned.shape[1]} (ours {pruned.shape[1]})",
            "kept opacities, sorted", f"{m:.2e}", f"{r:.2e}")
    note(f"(official module imported with stand-ins: {', '.join(stubs)})")


def peak_run(fn, device, repeats=2):
    torch.cuda.synchronize(device)
    fn()  # warm-up (Triton autotuning, cuDNN)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best, torch.cuda.max_memory_allocated(device) / 2**30, out


def real_rows(repo, device, pytorch_ssd: bool) -> None:
    cfg = Lyra1DecoderConfig()
    official = None
    if repo is not None:
        try:
            from lyra1_official import build_official

            official, opt, _ = build_official(repo, "static", device="cpu", conv_shim=True)
            randomise(official, seed=4)
            official = official.to(device).eval()
        except Exception as e:  # noqa: BLE001
            row("real size", "official LatentRecon", f"could not be built: {type(e).__name__}: {str(e)[:160]}", "", "")
            official = None
    model = Lyra1Decoder(cfg).to(device).eval()
    if official is not None:
        model.load_state_dict(official.state_dict(), strict=True)
        # parity at the real size, float32, before pruning (the chunked head, 337,920-token Mamba scans)
        args = inputs(1, 6, 16, 88, 160, device=device, dtype=torch.float32)
        try:
            with torch.no_grad():
                opt["gaussians_prune_ratio"] = 0.0
                ref = official_call(official, *args)
                mine = model(*args, prune=False)
            m, r = compare(mine, ref)
            pos = compare(mine[..., :3], ref[..., :3])
            row("real size parity", f"{ref.shape[1]:,} Gaussians × 14, fp32, lyra3d (kernels: "
                f"{ours_mamba.kernels_available()}) vs official", f"all: {m:.2e} (rel {r:.2e}); xyz rel {pos[1]:.2e}",
                "", "")
            del ref, mine
        except torch.cuda.OutOfMemoryError:
            row("real size parity", "fp32", "out of memory", "", "")
        except Exception as e:  # noqa: BLE001
            row("real size parity", "fp32", f"failed: {type(e).__name__}: {str(e)[:160]}", "", "")
        opt["gaussians_prune_ratio"] = cfg.prune_ratio
        torch.cuda.empty_cache()
    model = model.to(torch.bfloat16)
    args = inputs(1, 6, 16, 88, 160, device=device, dtype=torch.bfloat16)
    weights_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    modes = [("mamba-ssm SSD kernel", "1")] if ours_mamba.kernels_available() else []
    if pytorch_ssd or not modes:
        modes.append(("PyTorch SSD", "0"))
    for label, env in modes:
        os.environ["LYRA3D_MAMBA_KERNELS"] = env
        out = None
        try:
            with torch.no_grad():
                s, peak, out = peak_run(lambda: model(*args), device, repeats=2)
            row("real size", f"lyra3d, bf16, {label}, head chunk {cfg.head_chunk_frames} frames",
                f"{out.shape[1]:,} Gaussians kept of {6 * 121 * 88 * 160:,}", f"{s:.2f} s", f"{peak:.2f} GiB")
        except torch.cuda.OutOfMemoryError:
            row("real size", f"lyra3d, {label}", "out of memory", "", "")
        except Exception as e:  # noqa: BLE001 (the table goes on)
            row("real size", f"lyra3d, {label}", f"failed: {type(e).__name__}: {str(e)[:120]}", "", "")
        del out
        torch.cuda.empty_cache()
    os.environ["LYRA3D_MAMBA_KERNELS"] = "1"
    note(f"(weights {weights_gib:.3f} GiB in bf16; inputs: latents, Plücker latents, rays, all bf16; time: best of 2 "
         "after a warm-up; peak: torch.cuda.max_memory_allocated over those runs)")
    if official is None:
        return
    out = None
    try:
        official = official.to(torch.bfloat16)
        with torch.no_grad():
            s, peak, out = peak_run(lambda: official_call(official, *args), device)
        row("real size", "official LatentRecon, bf16 (its fused Mamba2 kernels; attention via SDPA)",
            f"{out.shape[1]:,} Gaussians kept", f"{s:.2f} s", f"{peak:.2f} GiB")
    except torch.cuda.OutOfMemoryError:
        row("real size", "official LatentRecon", "out of memory", "", "")
    except Exception as e:  # noqa: BLE001
        row("real size", "official LatentRecon", f"failed: {type(e).__name__}: {str(e)[:160]}", "", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repo", type=Path, help="the official Lyra-1 folder (parity rows need it)")
    ap.add_argument("--parts", default="attn-parity,mamba,parity,real",
                    help="attn-parity runs on a CPU too (the official module without Mamba blocks)")
    ap.add_argument("--pytorch-ssd", action="store_true", help="also time the real size with the PyTorch SSD")
    ap.add_argument("--save", type=Path)
    args = ap.parse_args()
    device = torch.device(args.device)
    from lyra1_official import install_stubs, stub_compiled_mamba1

    stubbed = stub_compiled_mamba1()  # a pure-Python mamba-ssm: its Triton SSD kernels without the Mamba-1 kernel
    if args.repo is not None:  # before mamba_ssm is first imported (it binds causal_conv1d's functions then)
        install_stubs(conv_shim=True)
    torch.backends.cuda.matmul.allow_tf32 = False  # parity in true float32
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    note(f"# Lyra-1 decoder (lyra3d.models.lyra1_decoder), {name}, torch {torch.__version__}, random weights")
    note(f"mamba-ssm kernels importable: {ours_mamba.kernels_available()}"
         f"{' (selective_scan_cuda stubbed: a pure-Python mamba-ssm)' if stubbed else ''}")
    note("")
    note("| part | what | compared / result | max abs diff / time | relative / peak GPU memory |")
    note("|---|---|---|---:|---:|")
    parts = args.parts.split(",")
    for part, fn in (("attn-parity", lambda: [parity_rows(args.repo, device, v, mamba=False)
                                              for v in ("static", "dynamic")]),
                     ("mamba", lambda: mamba_rows(args.repo, device)),
                     ("parity", lambda: [parity_rows(args.repo, device, v) for v in ("static", "dynamic")]),
                     ("real", lambda: real_rows(args.repo, device, args.pytorch_ssd))):
        if part not in parts:
            continue
        if part in ("attn-parity", "mamba", "parity") and args.repo is None:
            row(part, "", "skipped: no --repo (the official code)", "", "")
            continue
        if part in ("mamba", "parity", "real") and device.type != "cuda":
            row(part, "", "skipped: CUDA only (the official Mamba2 runs only as Triton kernels)", "", "")
            continue
        try:
            fn()
        except Exception as e:  # noqa: BLE001 (report and go on)
            row(part, "", f"failed: {type(e).__name__}: {str(e)[:200]}", "", "")
            traceback.print_exc()
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text("\n".join(ROWS) + "\n")


if __name__ == "__main__":
    main()
