"""The teacher at work: one held-out image, the six generated trajectories, and the ray-cast truth.

    python examples/teacher_grid.py --world 1000007 --out docs/teacher_grid.png

One row per trajectory (left, right, up, zoom-out, zoom-in, spiral): the warped cache, the generated frame
(decoded latents) and the true view, at the middle and at the last frame; the input image heads the grid.
Prints the PSNR of each trajectory's generated frames against the truth.
"""

from __future__ import annotations

import argparse

import imageio.v3 as iio
import torch

from lyra3d.core.cameras import default_camera
from lyra3d.core.metrics import psnr
from lyra3d.data import worlds
from lyra3d.pipelines.teacher import Teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=int, default=1_000_007)
    ap.add_argument("--out", default="docs/teacher_grid.png")
    args = ap.parse_args()
    teacher = Teacher.from_pretrained()
    cam = default_camera()
    world = worlds.make_world(args.world)
    image = worlds.render(world, cam).rgb[0]
    gen = teacher(image, cam, keep_cache=True)
    frames = teacher.decode(gen.latents)
    v, t = frames.shape[:2]
    truth = worlds.render(world, gen.cameras).rgb.reshape(frames.shape)
    gap = torch.ones(3, frames.shape[-2], 8)
    rows = [torch.cat([image] + [gap, torch.ones_like(image)] * 5, -1)]
    for i, name in enumerate(gen.names):
        cells = []
        for j in (t // 2, t - 1):
            cells += [gen.cache_rgb[i, j], frames[i, j], truth[i, j]]
        row = cells[0]
        for c in cells[1:]:
            row = torch.cat([row, gap, c], -1)
        rows.append(row)
        print(f"{name:>9}: generated vs truth {float(psnr(frames[i], truth[i]).mean()):.2f} dB "
              f"(cache only, holes black: {float(psnr(gen.cache_rgb[i], truth[i]).mean()):.2f} dB)")
    grid = torch.cat([torch.cat([r, torch.ones(3, 8, r.shape[-1])], -2) for r in rows], -2)
    iio.imwrite(args.out, (grid.permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).byte().numpy())
    print(f"wrote {args.out}: columns per row: cache, generated, truth at frame {t // 2}, then at frame {t - 1}")


if __name__ == "__main__":
    main()
