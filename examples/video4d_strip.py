"""Video → 4D at work: a held-out dynamic clip → the shipped models → the 4D Gaussians at five times.

    python examples/video4d_strip.py --world 1000001 --out docs/video4d_strip.png

The clip: 17 frames (320×176) of a procedural world with moving objects, filmed by a still camera over 4 s
(so ``fps=4`` and times are the world's seconds). Columns: five times (frames 0, 4, 8, 12, 16). Rows: the
input frame | the 4D Gaussians of that time rendered at the input camera | rendered at a novel camera (the
end of the bullet-time swing, 18° about the scene centre) | the ray-cast truth there at that time. Prints
each row's PSNR (mean over the five times).
"""

from __future__ import annotations

import argparse

import imageio.v3 as iio
import torch

from lyra3d.core.metrics import psnr
from lyra3d.core.render import rasterize
from lyra3d.data.clips import make_clip
from lyra3d.pipelines.outputs import bullet_time_cameras
from lyra3d.pipelines.video_to_4d import VideoTo4DPipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=int, default=1_000_001, help="a held-out dynamic world (seed >= 1,000,000)")
    ap.add_argument("--out", default="docs/video4d_strip.png")
    args = ap.parse_args()
    clip = make_clip(args.world, 17)
    fps = (len(clip) - 1) / float(clip.times[-1] - clip.times[0])
    picks = [0, 4, 8, 12, 16]
    scene = VideoTo4DPipeline.from_pretrained()(clip.frames, seed=0, fps=fps, times=[i / fps for i in picks])
    novel = bullet_time_cameras(scene.input_cameras[0], scene.center_depth, 3)[2]
    rows = {"input frame": [], "4D, input camera": [], "4D, novel camera": [], "truth, novel camera": []}
    for k, f in enumerate(picks):
        t = float(clip.times[f])
        with torch.no_grad():
            rows["input frame"].append(clip.frames[f])
            rows["4D, input camera"].append(scene.input_views[k])
            rows["4D, novel camera"].append(rasterize(scene.gaussians[k], novel).rgb[0].clamp(0, 1))
            rows["truth, novel camera"].append(clip.truth(novel, t).rgb[0])
    for name in ("4D, input camera", "4D, novel camera"):
        truth = rows["input frame"] if name == "4D, input camera" else rows["truth, novel camera"]
        score = sum(float(psnr(a, b)) for a, b in zip(rows[name], truth)) / len(picks)
        print(f"{name:>18}: {score:.2f} dB vs {'the input frame' if truth is rows['input frame'] else 'the truth'}")
    gap = torch.ones(3, clip.frames.shape[-2], 6)
    lines = [torch.cat([x for img in images for x in (img, gap)][:-1], -1) for images in rows.values()]
    grid = torch.cat([x for line in lines for x in (line, torch.ones(3, 6, line.shape[-1]))][:-1], -2)
    iio.imwrite(args.out, (grid.permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy())
    print(f"wrote {args.out} (world {args.world}, times {[round(float(clip.times[f]), 2) for f in picks]} s)")


if __name__ == "__main__":
    main()
