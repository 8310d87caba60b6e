"""New weights vs the shipped ones after ``examples/train_on_photos.sh`` (issue 21 part 2): one table and a verdict.

    python examples/photo_training_report.py --eval OUT/eval --photos .photos --new OUT/weights --json OUT/summary.json

Reads the evaluations the script wrote under ``--eval`` (``new/`` and ``shipped/``: ``photos_on/photos.json``,
``photos_off/photos.json`` from ``examples/photo_eval.py`` on the held-out photos, ``worlds.json`` from its
``--worlds``, ``decoder.json`` from ``lyra3d eval decoder``), and measures the tokenizer alone on the held-out
photos (each photo as the pipeline sees it, 320×176, encoded and decoded as one frame: the teacher's first
frame), new vs shipped. Held-out photos are only evaluated here, as everywhere.

Ship only if the new weights are better on the held-out photos and no worse on the held-out worlds: the rules
are in :data:`RULES` ("better": at least +0.1 dB; "no worse": at most 0.05 dB lower).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

#: (file, key, what, rule): "up" must gain at least MIN_GAIN_DB, "keep" must not drop by more than TOLERANCE_DB,
#: "info" is shown only.
RULES = (
    ("tokenizer", "heldout_photo_psnr", "tokenizer alone, held-out photos (first frame)", "up"),
    ("photos_on", "input_view_psnr", "held-out photos, keep_input on: input view", "keep"),
    ("photos_on", "trajectory_end_psnr", "held-out photos, keep_input on: trajectory ends vs warped input", "up"),
    ("photos_off", "input_view_psnr", "held-out photos, decoder alone: input view", "up"),
    ("photos_off", "trajectory_end_psnr", "held-out photos, decoder alone: trajectory ends", "up"),
    ("worlds", "heldout_psnr_on", "12 worlds, keep_input on: held-out cameras vs truth", "keep"),
    ("worlds", "input_view_psnr_on", "12 worlds, keep_input on: input view", "keep"),
    ("worlds", "heldout_psnr_off", "12 worlds, decoder alone (pipeline): held-out cameras", "keep"),
    ("decoder", "heldout_psnr", "12 worlds, lyra3d eval decoder: held-out cameras vs truth", "keep"),
    ("decoder", "input_view_psnr", "12 worlds, lyra3d eval decoder: input view", "keep"),
    ("decoder", "heldout_depth_absrel", "12 worlds, lyra3d eval decoder: depth AbsRel (lower is better)", "info"),
    ("decoder", "student_vs_teacher_psnr", "12 worlds, student vs its own teacher (teachers differ)", "info"),
)
TOLERANCE_DB = 0.05
MIN_GAIN_DB = 0.1


def _summary(folder: Path, name: str) -> dict:
    path = {"photos_on": folder / "photos_on" / "photos.json", "photos_off": folder / "photos_off" / "photos.json",
            "worlds": folder / "worlds.json", "decoder": folder / "decoder.json"}[name]
    return json.loads(path.read_text())["summary"] if path.is_file() else {}


@torch.no_grad()
def tokenizer_psnr(tokenizer_dir: str | None, photos: Path) -> float:
    """Mean PSNR of the held-out photos (320×176, as generate crops them) through the tokenizer as one frame."""
    from lyra3d.core.metrics import psnr
    from lyra3d.evaluation.photos import photo_paths
    from lyra3d.io.images import load_image
    from lyra3d.models.modeling import shipped_weights
    from lyra3d.models.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir or shipped_weights("tokenizer"))
    scores = []
    for path in photo_paths(photos, "heldout"):
        image, _ = load_image(path, 320, 176)
        rec = tok.decode(tok.encode(image[None, None]))[0, 0]
        scores.append(float(psnr(rec, image)))
    return sum(scores) / len(scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", type=Path, required=True, help="the folder holding new/ and shipped/ evaluations")
    ap.add_argument("--photos", type=Path, required=True, help="the photo folder (manifest.json: heldout split)")
    ap.add_argument("--new", type=Path, required=True, help="the new weights folder (tokenizer/, decoder/)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tok_dir = args.new / "tokenizer"
    values = {"new": {"tokenizer": {"heldout_photo_psnr": tokenizer_psnr(str(tok_dir) if tok_dir.is_dir() else None,
                                                                           args.photos)}},
              "shipped": {"tokenizer": {"heldout_photo_psnr": tokenizer_psnr(None, args.photos)}}}
    for side in ("new", "shipped"):
        for name in ("photos_on", "photos_off", "worlds", "decoder"):
            values[side][name] = _summary(args.eval / side, name)
    rows, ok = [], True
    print("| measure | shipped | new | change | rule | pass |\n|---|---|---|---|---|---|")
    for name, key, what, rule in RULES:
        new, old = values["new"][name].get(key), values["shipped"][name].get(key)
        if new is None or old is None:
            print(f"| {what} | {old if old is not None else 'missing'} | {new if new is not None else 'missing'} "
                  f"| | {rule} | {'' if rule == 'info' else 'MISSING'} |")
            ok = ok and rule == "info"
            rows.append({"measure": what, "key": f"{name}.{key}", "shipped": old, "new": new, "rule": rule,
                         "pass": None})
            continue
        passed = None if rule == "info" else (new >= old + MIN_GAIN_DB if rule == "up" else new >= old - TOLERANCE_DB)
        ok = ok and passed is not False
        print(f"| {what} | {old:.3f} | {new:.3f} | {new - old:+.3f} | {rule} | "
              f"{'' if passed is None else ('yes' if passed else 'NO')} |")
        rows.append({"measure": what, "key": f"{name}.{key}", "shipped": old, "new": new, "rule": rule,
                     "pass": passed})
    verdict = "SHIP: better on held-out photos, no worse on held-out worlds" if ok else "DO NOT SHIP (see the NO rows)"
    print(f"\nverdict: {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"verdict": verdict, "ship": ok, "tolerance_db": TOLERANCE_DB,
                                         "min_gain_db": MIN_GAIN_DB, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
