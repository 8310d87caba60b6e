"""Benchmark the video diffusion model: seconds to sample all six trajectories of one image.

    python benchmarks/video_model.py [--steps 4,8] [--device cpu]

Default config (10.2M parameters), default size (176x320, 17 frames: 5 latent frames of 16x22x40), a batch
of 6 trajectories, classifier-free guidance (two network passes per step) and without it. Weights are
random: the cost does not depend on them.
"""

from __future__ import annotations

import argparse
import time

import torch

from lyra3d.video_model import VideoDiffusionModel, VideoModelConfig, sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="4,8")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    model = VideoDiffusionModel(VideoModelConfig()).to(args.device).eval()
    n = sum(p.numel() for p in model.parameters())
    lat = torch.randn(6, 5, 16, 22, 40, device=args.device)
    rays = torch.randn(6, 17, 6, 176, 320, device=args.device)
    print(f"# video model: {n / 1e6:.1f}M parameters, 6 trajectories x 17 frames at 176x320, {args.device}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'steps':>6} {'guidance':>9} {'seconds':>8}")
    for steps in (int(s) for s in args.steps.split(",")):
        for guidance in (1.0, 2.0):
            t0 = time.perf_counter()
            sample(model, lat[:, 0], lat, lat, rays, steps=steps, guidance=guidance)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            print(f"{steps:>6} {guidance:>9.1f} {time.perf_counter() - t0:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
