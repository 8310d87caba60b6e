"""The student at work: one held-out image → teacher frames → the shipped 3DGS decoder's Gaussians.

    python examples/decoder_grid.py --world 1000007 --out docs/decoder_grid.png

Columns: teacher frame (decoded latents) | student render (the Gaussians at that camera) | ray-cast truth.
Rows: the last frame of three trajectories, then two held-out cameras between trajectories (no teacher
frame exists there: the input image heads those rows instead). Prints each row's PSNR vs the truth.
"""

from __future__ import annotations

import argparse

import imageio.v3 as iio
import torch

from lyra3d.core.cameras import default_camera
from lyra3d.core.metrics import psnr
from lyra3d.core.render import rasterize
from lyra3d.data import worlds
from lyra3d.evaluation.teacher import between_cameras
from lyra3d.models.decoder import GaussianDecoder
from lyra3d.pipelines.teacher import Teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=int, default=1_000_007)
    ap.add_argument("--out", default="docs/decoder_grid.png")
    args = ap.parse_args()
    teacher, decoder = Teacher.from_pretrained(), GaussianDecoder.default()
    cam = default_camera()
    world = worlds.make_world(args.world)
    image = worlds.render(world, cam).rgb[0]
    gen = teacher(image, cam)
    t = gen.num_frames
    with torch.no_grad():
        gaussians = decoder.decode(gen.latents, gen.cameras).prune_by_opacity(keep_fraction=0.5)
    picks = [gen.names.index(n) for n in ("left", "up", "spiral")]
    frames = teacher.decode(gen.latents[picks])[:, -1]  # (3, 3, H, W)
    cams = [gen.cameras[i * t + t - 1] for i in picks]
    held = between_cameras(gen)
    held = [held[0], held[len(held) // 2]]
    gap = torch.ones(3, image.shape[-2], 8)
    rows = []
    for label, first, camera in [(gen.names[i], f, c) for i, f, c in zip(picks, frames, cams)] + \
                                [(f"held-out {k}", image, c) for k, c in enumerate(held)]:
        with torch.no_grad():
            student = rasterize(gaussians, camera).rgb[0].clamp(0, 1)
        truth = worlds.render(world, camera).rgb[0]
        print(f"{label:>12}: student vs truth {float(psnr(student[None], truth[None])):.2f} dB")
        rows.append(torch.cat([first, gap, student, gap, truth], -1))
    grid = torch.cat([torch.cat([r, torch.ones(3, 8, r.shape[-1])], -2) for r in rows], -2)
    iio.imwrite(args.out, (grid.permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
