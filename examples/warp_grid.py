"""The 3D cache at work: one image, its depth, and its warps into Lyra's six trajectories.

    python examples/warp_grid.py --world 1000007 --out docs/warp_grid.png

Writes a PNG grid (row 1: input image, estimated depth, true depth; then one row per trajectory: the
warped render at the middle and last frame, each beside its validity mask and the true view) and prints
PSNR on valid pixels of the warps against the ray-cast truth, for estimated and for true depth.
"""

from __future__ import annotations

import argparse

import torch

from lyra3d.core.cache3d import unproject, warp
from lyra3d.core.cameras import default_camera
from lyra3d.core.metrics import psnr
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.data import worlds
from lyra3d.models.depth import NetworkDepth


def colorize(depth: torch.Tensor) -> torch.Tensor:
    """``(1, H, W)`` depth to a ``(3, H, W)`` near-warm / far-cool image (inverse depth, normalised)."""
    inv = 1 / depth.clamp_min(1e-3)
    x = (inv - inv.min()) / (inv.max() - inv.min() + 1e-8)
    return torch.cat([x, 1 - (2 * x - 1).abs(), 1 - x])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", type=int, default=1_000_007, help="procedural world seed")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--out", default="warp_grid.png")
    args = p.parse_args()

    world = worlds.make_world(args.world)
    cam = default_camera()
    src = worlds.render(world, cam, supersample=2)
    est = NetworkDepth.from_pretrained()(src.rgb).depth
    cd = worlds.center_depth(world)
    trajs = lyra_trajectories(cam, args.frames, cd)
    pick = [args.frames // 2, args.frames - 1]
    rows = [torch.cat([src.rgb[0], colorize(est[0]), colorize(src.depth[0] * src.mask[0] + (1 - src.mask[0]) * 100),
                       torch.zeros(3, cam.height, cam.width * 3)], 2)]
    results = {}
    for label, depth in (("estimated", est), ("true", src.depth * src.mask)):
        cache = unproject(src.rgb, depth, cam)
        for name, t in trajs.items():
            targets = t[pick]
            out = warp(cache, targets)
            truth = worlds.render(world, targets, supersample=2).rgb
            results[(label, name)] = psnr(out.rgb, truth, out.mask).tolist()
            if label == "estimated":
                cells = []
                for i in range(len(pick)):
                    cells += [out.rgb[i] * out.mask[i], out.mask[i].expand(3, -1, -1), truth[i]]
                rows.append(torch.cat(cells, 2))
    import imageio.v3 as iio

    grid = torch.cat(rows, 1)
    iio.imwrite(args.out, (grid.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy())
    print(f"world {args.world}: {world.caption}")
    print(f"{'trajectory':<10} {'depth':<10} PSNR on valid pixels (middle, last frame)")
    for (label, name), v in results.items():
        print(f"{name:<10} {label:<10} {v[0]:6.2f} {v[1]:6.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
