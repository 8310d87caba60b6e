"""TODO(restructure): describe this module."""

from __future__ import annotations

from lyra3d.data import worlds
from lyra3d.errors import InputError
from lyra3d.evaluation.decoder import evaluate_decoder
from lyra3d.evaluation.decoder4d import evaluate_decoder4d
from lyra3d.evaluation.report import summarize, table, write_results
from lyra3d.evaluation.teacher import evaluate_teacher
from lyra3d.models.decoder import GaussianDecoder
from lyra3d.models.tokenizer import check_trajectory_frames
from lyra3d.pipelines.teacher import Teacher


def main(argv: list[str] | None = None) -> None:
    """``python -m lyra3d.evaluation teacher|decoder|decoder4d --worlds N [--json FILE]``: evaluate on held-out
    worlds (dynamic ones for decoder4d, against the static decoder ``--decoder``) and print a table."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="lyra3d eval", description=main.__doc__)
    p.add_argument("what", choices=["teacher", "decoder", "decoder4d"])
    p.add_argument("--worlds", type=int, default=8, help="held-out worlds (seeds from 1,000,000)")
    p.add_argument("--steps", type=int, default=None, help="teacher sampler steps (default: the teacher's)")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--video-model", default=None)
    p.add_argument("--decoder", default=None)
    p.add_argument("--decoder4d", default=None, help="4D decoder folder (decoder4d)")
    p.add_argument("--no-baseline", action="store_true", help="decoder4d: skip the static decoder baseline")
    p.add_argument("--backend", default="auto", help="rasterizer: auto, gsplat or torch")
    p.add_argument("--width", type=int, default=320, help="decoder4d: clip frame size")
    p.add_argument("--height", type=int, default=176)
    p.add_argument("--clip-frames", type=int, default=17, help="decoder4d: frames per clip (1 + 4·m)")
    p.add_argument("--frames", type=int, default=None,
                   help="teacher, decoder: frames per trajectory (1 + 4·m; default: the teacher's, 17)")
    p.add_argument("--views", default="", help="comma-separated trajectory indices the decoder reads (ablation)")
    p.add_argument("--keep-fraction", default="0.5",
                   help="decoder: opacity-rank pruning share(s), comma-separated (the first is the main column)")
    p.add_argument("--train-worlds-from", type=int, default=None, metavar="SEED",
                   help="teacher, decoder: score training worlds from this seed instead (to choose settings "
                        "without looking at the held-out worlds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the rows and summary here")
    a = p.parse_args(argv)
    try:
        keep = tuple(float(f) for f in a.keep_fraction.split(","))
    except ValueError:
        keep = ()
    if not keep or not all(0 < f <= 1 for f in keep):
        raise InputError(f"--keep-fraction takes numbers in (0, 1], comma-separated; got {a.keep_fraction!r}")
    split = "held-out"
    teacher = Teacher.from_pretrained(a.tokenizer, a.video_model, device=a.device)
    if a.steps is not None:
        teacher.config.steps = a.steps
    if a.guidance is not None:
        teacher.config.guidance = a.guidance
    if a.frames is not None:
        check_trajectory_frames(a.frames, teacher.tokenizer.temporal_factor, "--frames")
        teacher.config.num_frames = a.frames
    if a.what == "decoder4d":
        from lyra3d.data.clips import dynamic_eval_seeds
        from lyra3d.models.decoder4d import GaussianDecoder4D

        if not a.decoder4d:
            raise InputError("eval decoder4d needs --decoder4d DIR (a 4D decoder: lyra3d train decoder --dynamic 1)")
        seeds = dynamic_eval_seeds(a.worlds)
        d4 = GaussianDecoder4D.from_pretrained(a.decoder4d, a.device).eval()
        static = None if a.no_baseline else \
            (GaussianDecoder.from_pretrained(a.decoder, a.device) if a.decoder else GaussianDecoder.default(a.device))
        rows = evaluate_decoder4d(teacher, d4, seeds, static_decoder=static, backend=a.backend, width=a.width,
                                  height=a.height, num_frames=a.clip_frames,
                                  progress=lambda row: print(json.dumps(row), flush=True))
    elif a.train_worlds_from is not None:
        seeds, split = worlds.train_seeds(a.worlds, a.train_worlds_from), "training"
    else:
        seeds = worlds.eval_seeds(a.worlds)
    if a.what == "teacher":
        rows = evaluate_teacher(teacher, seeds)
    elif a.what == "decoder":
        decoder = GaussianDecoder.from_pretrained(a.decoder) if a.decoder else GaussianDecoder.default(a.device)
        views = [int(v) for v in a.views.split(",")] if a.views else None
        rows = evaluate_decoder(teacher, decoder.to(a.device), seeds, views=views, keep_fraction=keep)
    summary = summarize(rows)
    print(table(summary, f"{a.what} on {len(seeds)} {split} {'dynamic ' * (a.what == 'decoder4d')}worlds"))
    if a.json:
        write_results(a.json, vars(a), seeds, summary, rows)
