"""Benchmark the teacher (shipped weights): seconds per stage to generate one image's trajectories.

    python benchmarks/teacher.py [--steps 4,8] [--guidance 1,1.5] [--device cpu] [--repeats 2]

Default size (176x320, 17 frames per trajectory); one trajectory and the six of Lyra. Stages: depth
(the depth network), cache (unproject + warp into every frame), encode (tokenizer: cache, masks, input),
sample (the video model's Euler steps), and, apart, decode (the RGB decoder, used by SDG and the
evaluation, not by image-to-3D inference). The best of ``--repeats`` runs is printed.
"""

from __future__ import annotations

import argparse
import time

import torch

from lyra3d.core.cameras import default_camera
from lyra3d.core.trajectories import LYRA_TRAJECTORIES
from lyra3d.data import worlds
from lyra3d.pipelines.teacher import Teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="4,8")
    ap.add_argument("--guidance", default="1,1.5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    teacher = Teacher.from_pretrained(device=args.device)
    cam = default_camera()
    image = worlds.render(worlds.make_world(1_000_007), cam).rgb[0]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(f"# teacher on {args.device}, {torch.get_num_threads()} threads, 176x320, 17 frames per trajectory")
    print(f"{'trajectories':>12} {'steps':>5} {'guidance':>8} {'depth':>6} {'cache':>6} {'encode':>6} {'sample':>6} "
          f"{'total':>6} {'decode':>6}")
    for names in (LYRA_TRAJECTORIES[:1], LYRA_TRAJECTORIES):
        for steps in (int(s) for s in args.steps.split(",")):
            for guidance in (float(g) for g in args.guidance.split(",")):
                teacher.config.trajectories, teacher.config.steps, teacher.config.guidance = names, steps, guidance
                best = None
                for _ in range(args.repeats):
                    marks = [("start", time.perf_counter())]

                    def mark(stage, done, total):  # lyra3d.core.progress.Progress: a stage ends at done == total
                        sync()
                        marks.append((stage, time.perf_counter()))

                    out = teacher(image, cam, progress=mark)
                    t0 = time.perf_counter()
                    teacher.decode(out.latents)
                    sync()
                    times = {b[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}
                    times["decode"] = time.perf_counter() - t0
                    times["total"] = marks[-1][1] - marks[0][1]
                    if best is None or times["total"] < best["total"]:
                        best = times
                print(f"{len(names):>12} {steps:>5} {guidance:>8.1f} {best['depth']:>6.2f} {best['cache']:>6.2f} "
                      f"{best['encode']:>6.2f} {best['sample']:>6.2f} {best['total']:>6.2f} {best['decode']:>6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
