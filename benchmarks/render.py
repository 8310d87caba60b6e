"""Benchmark lyra3d.core.render.rasterize: ms per frame by Gaussian count × resolution × backend.

    python benchmarks/render.py                                   # CPU: torch and cpu backends
    python benchmarks/render.py --device cuda --backends gsplat,torch --gaussians 1000000 --sizes 704x1280
    python benchmarks/render.py --out results.json

The scene imitates a 3DGS decoder's output (docs/design.md §4), generated deterministically from a seed:

- 4 source frames: the reference camera (60° horizontal field of view, 16:9-ish 320:176 aspect, at the
  origin looking down +z) and three cameras moved left, right and up by 0.2–0.3 units, all facing the
  point (0, 0, 4). Every frame contributes N/4 Gaussians, one per pixel block of a regular grid over its
  image (the block size follows from N), placed on the block centre's ray.
- The z-depth along each ray is a smooth field in [2, 8] (a sum of sinusoids of the pixel position, i.e. a
  wavy surface) plus 1 % jitter, so the frames' Gaussians interleave on one surface, as a decoder's do.
- Each Gaussian's scale is the block's footprint in the world at that depth times U(0.4, 0.8) on the two
  surface axes and times 0.15 along the third, with a random rotation; 2 % are "large" (×8). At 200k
  Gaussians and 176×320 a block is about one pixel, so a splat's 3σ footprint is a few pixels, and it grows
  with the resolution.
- Opacity logits ~ N(2, 1.5) (most Gaussians nearly opaque, some faint); colours: a smooth colour field plus
  noise in the degree-0 SH coefficient (``--sh-degree`` adds small random higher-order coefficients).

The frame rendered is the reference camera at each requested size (intrinsics scaled). Timings are the
median of ``--repeats`` runs after ``--warmup`` runs, under ``torch.no_grad()``; CUDA timings use CUDA
events after a synchronize. Slow combinations (a run over ``--slow-s`` seconds) are timed once. On CPU the
table also gives the process CPU time per frame (all threads summed): on a shared, oversubscribed machine
the wall time can be far above it, and it shows what the work itself costs.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import torch

from lyra3d.core.cameras import Cameras, look_at
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.render import available_backends, rasterize

REF_W, REF_H = 320, 176


def reference_cameras(device: str = "cpu") -> Cameras:
    """The 4 source cameras at 176×320: reference first."""
    fx = 0.5 * REF_W / math.tan(math.radians(60.0) / 2)
    eyes = torch.tensor([[0.0, 0.0, 0.0], [-0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, -0.2, 0.0]])
    w2c = look_at(eyes, torch.tensor([[0.0, 0.0, 4.0]]).expand(4, 3))
    w2c[0] = torch.eye(4)
    k = torch.tensor([fx, fx, REF_W / 2, REF_H / 2]).expand(4, 4)
    return Cameras(w2c, k, REF_W, REF_H).to(device)


def make_scene(n: int, seed: int = 0, sh_degree: int = 0, device: str = "cpu") -> Gaussians:
    """Deterministic decoder-like Gaussians (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    cams = reference_cameras()
    c2w = torch.linalg.inv(cams.world_to_camera)
    fx = float(cams.fx[0])
    phases = torch.rand(6, generator=gen) * 2 * math.pi
    parts = []
    per_frame = [n // 4 + (1 if i < n % 4 else 0) for i in range(4)]
    for f, nf in enumerate(per_frame):
        if nf == 0:
            continue
        gw = max(1, round(math.sqrt(nf * REF_W / REF_H)))
        gh = math.ceil(nf / gw)
        v, u = torch.meshgrid((torch.arange(gh) + 0.5) * REF_H / gh, (torch.arange(gw) + 0.5) * REF_W / gw,
                              indexing="ij")
        u, v = u.reshape(-1)[:nf], v.reshape(-1)[:nf]
        un, vn = u / REF_W, v / REF_H
        wave = (torch.sin(6.0 * un + phases[0]) + 0.6 * torch.sin(11.0 * vn + phases[1])
                + 0.4 * torch.sin(17.0 * (un + vn) + phases[2]))  # in [-2, 2]
        depth = 5.0 + 1.5 * wave
        depth = (depth * (1 + 0.01 * torch.randn(nf, generator=gen))).clamp(2.0, 8.0)
        d_cam = torch.stack([(u - REF_W / 2) / fx, (v - REF_H / 2) / fx, torch.ones_like(u)], -1)
        p_cam = d_cam * depth[:, None]
        means = p_cam @ c2w[f, :3, :3].T + c2w[f, :3, 3]
        footprint = depth * (REF_W / gw) / fx  # world size of one block at that depth
        s = footprint[:, None] * torch.cat([0.4 + 0.4 * torch.rand(nf, 2, generator=gen),
                                            torch.full((nf, 1), 0.15)], 1)
        large = torch.rand(nf, generator=gen) < 0.02
        s[large] *= 8.0
        quats = torch.randn(nf, 4, generator=gen)
        opac = 2.0 + 1.5 * torch.randn(nf, generator=gen)
        rgb = torch.stack([0.5 + 0.4 * torch.sin(5 * un + phases[3]), 0.5 + 0.4 * torch.sin(7 * vn + phases[4]),
                           0.5 + 0.4 * torch.sin(9 * (un - vn) + phases[5])], -1)
        rgb = (rgb + 0.05 * torch.randn(nf, 3, generator=gen)).clamp(0, 1)
        sh = torch.zeros(nf, (sh_degree + 1) ** 2, 3)
        sh[:, 0] = (rgb - 0.5) / 0.28209479177387814
        if sh_degree > 0:
            sh[:, 1:] = 0.1 * torch.randn(nf, sh.shape[1] - 1, 3, generator=gen)
        parts.append(Gaussians(means, torch.log(s), quats, opac, sh))
    return Gaussians.cat(parts).to(device)


def gsplat_kernel(g: Gaussians, cams: Cameras):
    """``gsplat.rasterization`` alone on pre-activated tensors: the pseudo-backend ``gsplat-kernel`` shows
    how much of a ``gsplat`` frame is lyra3d's wrapper (checks, activations) and how much is gsplat."""
    import gsplat

    args = dict(means=g.means, quats=g.quats, scales=torch.exp(g.scales), opacities=torch.sigmoid(g.opacities),
                colors=g.sh.contiguous(), viewmats=cams.world_to_camera, Ks=cams.K, width=cams.width,
                height=cams.height, sh_degree=g.sh_degree, render_mode="RGB+ED", rasterize_mode="classic")
    return lambda: gsplat.rasterization(**args)


def time_backend(g: Gaussians, cams: Cameras, backend: str, warmup: int, repeats: int, slow_s: float
                 ) -> tuple[float, float | None, int]:
    """Median wall ms per frame, median process CPU ms per frame (CPU devices only), and the timed runs."""
    cuda = g.means.device.type == "cuda"
    render = gsplat_kernel(g, cams) if backend == "gsplat-kernel" else lambda: rasterize(g, cams, backend=backend)

    def once() -> tuple[float, float | None]:
        if cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            render()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end), None
        t0, c0 = time.perf_counter(), time.process_time()
        render()
        return 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)

    with torch.no_grad():
        first = once()
        if first[0] / 1000 > slow_s:
            return first[0], first[1], 1
        for _ in range(max(0, warmup - 1)):
            once()
        runs = [once() for _ in range(repeats)]
    cpu = None if cuda else statistics.median(r[1] for r in runs)
    return statistics.median(r[0] for r in runs), cpu, len(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default=None,
                    help="comma-separated: torch,cpu,gsplat (default: all available on --device); "
                         "gsplat-kernel times gsplat.rasterization alone")
    ap.add_argument("--sizes", default="176x320,352x640,704x1280", help="comma-separated HxW")
    ap.add_argument("--gaussians", default="50000,200000,1000000", help="comma-separated counts")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sh-degree", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--slow-s", type=float, default=3.0, help="time once when a run is slower than this")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP CPU threads")
    ap.add_argument("--batch", type=int, default=1,
                    help="cameras rendered per call; ms/frame is the call's time over this (throughput)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends.split(",") if args.backends else available_backends(args.device)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    counts = [int(float(c)) for c in args.gaussians.split(",")]
    device_name = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                   else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"# lyra3d render benchmark on {args.device} ({device_name}), torch {torch.__version__}, "
          f"SH degree {args.sh_degree}, {args.batch} camera(s) per call")
    print(f"{'gaussians':>10} {'H x W':>10} {'backend':>13} {'ms/frame':>10} {'cpu ms':>10} {'runs':>5}")
    results = []
    for n in counts:
        g = make_scene(n, sh_degree=args.sh_degree, device=args.device)
        for h, w in sizes:
            cams = reference_cameras(args.device)[[0] * args.batch].resized(w, h)
            for backend in backends:
                ms, cpu_ms, runs = time_backend(g, cams, backend, args.warmup, args.repeats, args.slow_s)
                ms, cpu_ms = ms / args.batch, (cpu_ms / args.batch if cpu_ms is not None else None)
                cpu_txt = f"{cpu_ms:>10.1f}" if cpu_ms is not None else f"{'-':>10}"
                print(f"{n:>10} {f'{h}x{w}':>10} {backend:>13} {ms:>10.2f} {cpu_txt} {runs:>5}", flush=True)
                results.append({"gaussians": n, "height": h, "width": w, "backend": backend, "ms": ms,
                                "cpu_ms": cpu_ms, "runs": runs})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": args.device, "device_name": device_name, "torch": torch.__version__,
                       "sh_degree": args.sh_degree, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
