"""Input-view PSNR of generated scenes: held-out procedural images and the shipped photos.

    python examples/generate_eval.py [--worlds 12] [--device cuda] [--json docs/eval/generate_input_view.json] [--weights DIR]

For each input, ``ImageTo3DPipeline`` (the shipped models, default settings) generates the scene and the
Gaussians are rendered at the input camera; the PSNR against the (cropped) input is printed per input and
averaged per group (held-out worlds: seeds from 1,000,000, rendered at the default camera; photos:
``examples/inputs/photo_*.jpg``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lyra3d.core.cameras import default_camera
from lyra3d.data import worlds
from lyra3d.pipelines import ImageTo3DPipeline

PHOTOS = sorted((Path(__file__).parent / "inputs").glob("photo_*.jpg"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    ap.add_argument("--weights", default=None, help="a weights folder (as lyra3d generate --weights); default: shipped")
    args = ap.parse_args()
    pipe = ImageTo3DPipeline.from_pretrained(args.weights, device=args.device)
    cam = default_camera()
    inputs = [(f"world {s}", "held-out worlds", worlds.render(worlds.make_world(s), cam).rgb[0])
              for s in worlds.eval_seeds(args.worlds)]
    inputs += [(p.name, "photos", p) for p in PHOTOS]
    rows = []
    for name, group, image in inputs:
        scene = pipe(image, seed=0)
        rows.append({"input": name, "group": group, "input_view_psnr": scene.input_view_psnr,
                     "gaussians": len(scene.gaussians), "seconds": scene.timings.get("total")})
        print(f"{name:>24}: {scene.input_view_psnr:.2f} dB", flush=True)
    summary = {g: sum(r["input_view_psnr"] for r in rows if r["group"] == g) / max(1, sum(r["group"] == g for r in rows))
               for g in ("held-out worlds", "photos")}
    print("| inputs | mean input-view PSNR (dB) |\n|---|---|")
    for g, v in summary.items():
        print(f"| {g} | {v:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
