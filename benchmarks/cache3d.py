"""Benchmark the 3D cache: seconds to unproject one image and warp it into Lyra's six trajectories.

    python benchmarks/cache3d.py [--frames 17] [--sizes 176x320,352x640] [--device cpu]

Prints a table (trajectories × frames × size → seconds, median of --repeats). The scene is procedural
world 1,000,000 (an evaluation seed) with its true depth.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lyra3d.core.cache3d import unproject, warp
from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.data import worlds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--sizes", default="176x320,352x640", help="comma-separated HxW")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    world = worlds.make_world(worlds.eval_seeds(1)[0])
    print(f"# lyra3d cache3d benchmark on {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'H x W':>10} {'trajectories':>13} {'frames':>7} {'unproject s':>12} {'warp s':>8}")
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        cam = default_camera(w, h).to(args.device)
        r = worlds.render(world, cam)
        targets = Cameras.cat(list(lyra_trajectories(cam, args.frames, worlds.center_depth(world)).values()))
        times_u, times_w = [], []
        for _ in range(args.repeats + 1):
            t0 = time.perf_counter()
            cache = unproject(r.rgb, r.depth * r.mask, cam)
            t1 = time.perf_counter()
            warp(cache, targets)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            times_u.append(t1 - t0)
            times_w.append(t2 - t1)
        print(f"{size:>10} {6:>13} {args.frames:>7} {statistics.median(times_u[1:]):>12.3f} "
              f"{statistics.median(times_w[1:]):>8.3f}", flush=True)


if __name__ == "__main__":
    main()
