"""Regenerate the example inputs in examples/inputs/.

    python examples/make_inputs.py                       # the procedural renders and captions.json
    python examples/make_inputs.py --photos SKIMAGE_DATA  # also the photos, from scikit-image's data folder

The procedural inputs are renders of held-out evaluation worlds (seeds >= 1,000,000, never trained on)
from the default input camera (320x176), with each world's caption in captions.json. The photos are
public-domain / CC0 images that scikit-image ships (see inputs/LICENSES.md), stored as JPEG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from lyra3d.core.cameras import default_camera
from lyra3d.data import worlds

SEEDS = (1_000_007, 1_000_011, 1_000_020)
#: scikit-image file -> name here (licences: inputs/LICENSES.md)
PHOTOS = {"coffee.png": "photo_coffee.jpg", "chelsea.png": "photo_chelsea.jpg",
          "astronaut.png": "photo_astronaut.jpg"}
MAX_PHOTO_WIDTH = 640


def make_worlds(out: Path) -> None:
    cam = default_camera()
    captions = {}
    for seed in SEEDS:
        assert worlds.is_eval_seed(seed)
        world = worlds.make_world(seed)
        rgb = worlds.render(world, cam).rgb[0]
        arr = (rgb.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy()
        name = f"world_{seed}.png"
        Image.fromarray(arr).save(out / name, optimize=True)
        captions[name] = {"seed": seed, "caption": world.caption}
        print(f"{name}: {world.caption}")
    (out / "captions.json").write_text(json.dumps(captions, indent=2) + "\n")


def make_photos(out: Path, data: Path) -> None:
    for src, dst in PHOTOS.items():
        im = Image.open(data / src).convert("RGB")
        if im.width > MAX_PHOTO_WIDTH:
            im = im.resize((MAX_PHOTO_WIDTH, round(im.height * MAX_PHOTO_WIDTH / im.width)),
                           Image.Resampling.LANCZOS)
        im.save(out / dst, quality=90, optimize=True)
        print(f"{dst}: {im.width}x{im.height} from {src}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "inputs")
    ap.add_argument("--photos", type=Path, default=None,
                    help="scikit-image's data folder (skimage/data) to copy the photos from")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_worlds(args.out)
    if args.photos is not None:
        make_photos(args.out, args.photos)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
