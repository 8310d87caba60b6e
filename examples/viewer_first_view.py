"""The viewer's first view in headless Chromium, as a new user sees it: the README's picture.

    lyra3d generate --image examples/inputs/world_1000007.png --out scene_out
    python examples/viewer_first_view.py scene_out --out docs/viewer_first_view.png

Starts ``lyra3d.viewer.view`` on the folder, opens it in a 1280 × 720 viewport of Debian's headless Chromium
(software WebGL), waits until the picture stops changing and saves it. The "software WebGL" notification,
which a browser with a GPU does not show, is hidden. Prints the PSNR of the 3D view (panel hidden) against
``rasterize`` of the scene at the same camera and size, and the seconds taken.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lyra3d.core.render import rasterize
from lyra3d.viewer.browser import Chromium
from lyra3d.viewer.server import view


def save_small_png(img: np.ndarray, path: Path, limit: int = 300_000) -> None:
    """``img`` as a PNG under ``limit`` bytes (for the README): as it is if small enough, else in 256 colours
    (an octree palette refined by k-means, Floyd-Steinberg dithering), scaled down in steps of 10 % if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pic = Image.fromarray(img)
    pic.save(path, optimize=True)
    scale = 1.0
    while path.stat().st_size > limit and scale > 0.3:
        small = pic.resize((round(pic.width * scale), round(pic.height * scale)), Image.Resampling.LANCZOS)
        palette = small.quantize(colors=256, method=Image.Quantize.FASTOCTREE, kmeans=3)
        small.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
        scale -= 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene", type=Path, help="a generate output folder (or any path lyra3d view takes)")
    ap.add_argument("--out", type=Path, default=Path("docs/viewer_first_view.png"))
    ap.add_argument("--size", default="1280x720", help="viewport, WIDTHxHEIGHT")
    ap.add_argument("--raw", type=Path, help="also save the screenshot here, as it is")
    ap.add_argument("--timeout", type=float, default=400.0, help="seconds to wait for the picture to settle")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    start = time.time()
    with view(args.scene, port=0) as v, Chromium() as browser:
        browser.open(v.url + "?fixedDpr=1", width, height)
        time.sleep(3.0)
        browser.settled(lambda img: True, timeout=args.timeout, interval=3.0)
        browser.hide(".mantine-Notification-root")
        shot = browser.settled(lambda img: True, timeout=args.timeout, interval=2.0)
        browser.canvas_only()
        canvas = browser.settled(lambda img: True, timeout=args.timeout, interval=2.0)
        cams = v.home.cameras(width, height)  # the first view on this window
        g = v.scene.frames[0]
    ref = rasterize(g, cams, background=torch.ones(3)).rgb[0].clamp(0, 1).permute(1, 2, 0).numpy()
    mse = float(np.mean((canvas.astype(np.float64) / 255 - ref) ** 2))
    save_small_png(shot, args.out)
    if args.raw:
        Image.fromarray(shot).save(args.raw)
    size = Image.open(args.out).size
    print(f"{args.out}: {size[0]}x{size[1]}, {args.out.stat().st_size / 1e3:.0f} kB; 3D view vs rasterize "
          f"{10 * math.log10(1 / mse):.2f} dB; {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
