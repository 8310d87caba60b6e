"""Keep the input (issue 21), measured: real photos (held-out split) and held-out procedural worlds.

    python examples/real_photos.py --out photos                     # collect the photos first
    python examples/photo_eval.py --photos photos --split heldout --out docs/eval/photos_heldout_cpu
    python examples/photo_eval.py --worlds 12 --json docs/eval/keep_input_12worlds_cpu.json

Photos (:func:`lyra3d.evaluation.photos.evaluate_photos`): per photo the scene of ``lyra3d generate``'s
defaults, its input-view PSNR/SSIM and, at the last frame of each trajectory, its render vs the input warped
there on the pixels the cache covers; ``photos.json`` and ``contact_sheet.png`` in ``--out``; ``--keep-input
off`` for the decoder alone. Worlds (:func:`lyra3d.evaluation.photos.evaluate_worlds`): seeds from
1,000,000 (evaluation only), both ``keep_input`` modes on one teacher output each, held-out cameras between
the trajectories vs the ray-cast truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lyra3d.evaluation.photos import evaluate_photos, evaluate_worlds
from lyra3d.evaluation.report import summarize, table
from lyra3d.pipelines import ImageTo3DPipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=None, help="a folder of photos (with manifest.json) or one photo")
    ap.add_argument("--split", default=None, help="only this split of the folder's manifest (heldout, tune)")
    ap.add_argument("--out", type=Path, default=None, help="photos.json and contact_sheet.png go here")
    ap.add_argument("--keep-input", default="on", choices=("on", "off"))
    ap.add_argument("--worlds", type=int, default=0, help="also this many held-out procedural worlds")
    ap.add_argument("--json", type=Path, default=None, help="the worlds' rows and summary")
    ap.add_argument("--weights", type=Path, default=None, help="a weights folder (default: the shipped models)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = ImageTo3DPipeline.from_pretrained(args.weights, device=args.device)
    if args.photos is not None:
        rows = evaluate_photos(pipe, args.photos, out_dir=args.out, split=args.split, keep_input=args.keep_input,
                               progress=lambda name, row: print(
                                   f"{name:>28}: input view {row['input_view_psnr']:.2f} dB, trajectory ends "
                                   f"{row['trajectory_end_psnr']:.2f} dB, {row['seconds']:.1f} s", flush=True))
        print(table(summarize([{k: v for k, v in r.items() if k != "photo"} for r in rows]),
                    f"{len(rows)} photos, keep_input={args.keep_input}"))
    if args.worlds:
        from lyra3d.data import worlds

        seeds = worlds.eval_seeds(args.worlds)
        rows = []
        for seed in seeds:
            rows += evaluate_worlds(pipe, [seed])
            print(" ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), flush=True)
        summary = summarize(rows)
        print(table(summary, f"{len(rows)} held-out worlds"))
        if args.json:
            args.json.write_text(json.dumps({"device": args.device, "weights": str(args.weights), "seeds": seeds,
                                             "summary": summary, "rows": rows},
                                            indent=1) + "\n")


if __name__ == "__main__":
    main()
