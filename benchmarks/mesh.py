"""Benchmark the sim-ready export on held-out procedural worlds: surface error, floor error, drop test,
extraction time and file sizes.

    python benchmarks/mesh.py [--seeds 1000000,1000001,...] [--frames 9] [--out benchmarks/results/mesh.md]
    python benchmarks/mesh.py --generated [--device cuda] --out benchmarks/results/mesh_generated.md

For each world (seeds >= 1,000,000 are evaluation worlds, never trained on), a stand-in for a generated scene
is written (:func:`lyra3d.simready.mesh.write_world_scene`: one layer of flat Gaussians on the true surface, seen by
Lyra's six trajectories of ``--frames`` frames at 320x176, plus ``cameras.json``), then
:func:`lyra3d.simready.stage.export_simready` runs with its defaults (mesh extraction, USD stage, glb, obj, the
PyBullet drop test) and the mesh is compared with the world's exact geometry
(:func:`lyra3d.simready.mesh.evaluate_mesh`): Chamfer distance (mean of accuracy, mesh → truth, and completeness,
truth seen by the cameras → mesh), also as a fraction of the scene size (the diagonal of the seen truth's
bounding box), and the fitted floor's height and tilt errors. Prints a markdown table and writes it to
``--out``. With ``--generated`` the scene is the one ``lyra3d generate`` makes from the world's input view
(the shipped models, seed 0: Gaussians and cameras in the input camera's frame, which is the world's
frame), so the numbers include the depth network's scale error and everything the teacher and decoder
got wrong.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from lyra3d.core.cameras import Cameras
from lyra3d.data import worlds
from lyra3d.evaluation.mesh import evaluate_mesh, write_world_scene
from lyra3d.simready.stage import mesh
from lyra3d.simready.stage import stage as simready


def write_generated_scene(world, folder: Path, device: str) -> Path:
    """``scene.ply`` + ``cameras.json`` of the scene generated from ``world``'s input view."""
    import json

    from lyra3d.core.cameras import default_camera
    from lyra3d.core.gaussians import save_ply
    from lyra3d.pipelines import ImageTo3DPipeline

    global _PIPE
    if _PIPE is None:
        _PIPE = ImageTo3DPipeline.from_pretrained(device=device)
    scene = _PIPE(worlds.render(world, default_camera()).rgb[0], seed=0)
    folder.mkdir(parents=True)
    save_ply(scene.gaussians.to("cpu"), folder / "scene.ply")
    (folder / "cameras.json").write_text(json.dumps(scene.cameras_record()))
    return folder


_PIPE = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default=",".join(str(s) for s in worlds.eval_seeds(5)))
    ap.add_argument("--frames", type=int, default=9, help="frames per trajectory of the stand-in scene")
    ap.add_argument("--stride", type=int, default=1, help="pixel stride of the stand-in's Gaussians")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--generated", action="store_true", help="scenes generated from the input view (see above)")
    ap.add_argument("--device", default="cpu", help="for --generated: where the pipeline runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mesh.md"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(not worlds.is_eval_seed(s) for s in seeds):
        raise SystemExit("benchmark only evaluation worlds (seeds >= 1,000,000)")
    load0 = os.getloadavg()
    header = ("| world | Gaussians | faces | Chamfer m | Chamfer / size | accuracy m | completeness m | scene size m "
              "| floor height err m | floor tilt ° | drop test | extract s | export s | scene.usd MB | mesh.glb MB "
              "| mesh.obj MB |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    print("\n".join(lines), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lyra3d-mesh-bench-") as tmp:
        for seed in seeds:
            world = worlds.make_world(seed)
            if args.generated:
                scene = write_generated_scene(world, Path(tmp) / f"scene_{seed}", args.device)
            else:
                scene = write_world_scene(world, Path(tmp) / f"scene_{seed}", frames=args.frames,
                                               stride=args.stride)
            cams = Cameras.load_json(scene / "cameras.json")
            t0 = time.perf_counter()
            res = simready.export_simready(scene, Path(tmp) / f"sim_{seed}")
            export_s = time.perf_counter() - t0
            ev = evaluate_mesh(res.mesh, world, cams)
            drop = res.drop_test
            row = (f"| {seed} | {res.report['gaussians']:,} | {res.mesh.num_faces:,} | {ev.chamfer:.4f} | "
                   f"{100 * ev.chamfer_fraction:.2f} % | {ev.accuracy:.4f} | {ev.completeness:.4f} | "
                   f"{ev.scene_size:.1f} | {ev.floor_height_error:.4f} | {ev.floor_tilt_degrees:.2f} | "
                   f"{sum(o.passed for o in drop.objects)}/{len(drop.objects)} |"
                   f" {res.mesh.seconds['total']:.1f} | {export_s:.1f} | {res.files['scene.usd'] / 1e6:.2f} | "
                   f"{res.files['mesh.glb'] / 1e6:.2f} | {res.files['mesh.obj'] / 1e6:.2f} |")
            rows.append((ev, res, export_s))
            lines.append(row)
            print(row, flush=True)
    n = len(rows)
    mean = lambda f: sum(f(r) for r in rows) / n  # noqa: E731
    summary = (f"mean over {n} worlds: Chamfer {mean(lambda r: r[0].chamfer):.4f} m "
               f"({100 * mean(lambda r: r[0].chamfer_fraction):.2f} % of scene size), floor height error "
               f"{mean(lambda r: r[0].floor_height_error):.4f} m, "
               f"tilt {mean(lambda r: r[0].floor_tilt_degrees):.2f}°, "
               f"extraction {mean(lambda r: r[1].mesh.seconds['total']):.1f} s, whole export "
               f"{mean(lambda r: r[2]):.1f} s; drop test passed on "
               f"{sum(r[1].drop_test.passed for r in rows)}/{n} worlds")
    load1 = os.getloadavg()
    stages = {k: mean(lambda r: r[1].mesh.seconds[k])
              for k in ("render", "fuse", "surface", "ground", "floor", "decimate")}
    threads = torch.get_num_threads()
    meta = (f"`python benchmarks/mesh.py{' --threads ' + str(args.threads) if args.threads else ''}` on "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"with {threads} thread{'s' if threads > 1 else ''}; load average {load0[0]:.1f} at the start, "
            f"{load1[0]:.1f} at the end (1 means one core's worth of other jobs; with the cores shared, OpenMP's "
            f"spinning threads make more threads slower, hence --threads). "
            + (f"Generated scenes (`lyra3d generate` defaults, shipped models, on {args.device}). "
               if args.generated else f"Stand-in scenes: {args.frames} frames x 6 trajectories "
               f"at 320x176, Gaussians every {args.stride} px. ") + "Extraction defaults: "
            f"{mesh.ExtractionConfig()}. Mean seconds per stage: "
            + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()) + ".")
    print(summary)
    text = (f"# Sim-ready export on held-out procedural worlds (`python benchmarks/mesh.py"
            f"{' --generated' if args.generated else ''}`)\n\n"
            + "\n".join(lines) + f"\n\n{summary}.\n\n{meta}\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
