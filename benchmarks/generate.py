"""Benchmark ``lyra3d generate`` for one image (or one video: ``--video``): seconds and peak memory per stage,
end to end.

    python benchmarks/generate.py [--device cpu|cuda] [--weights DIR] [--random-decoder] [--trajectories 6]
                                  [--steps 4] [--preset default] [--frames N] [--flythrough-frames 48]
                                  [--image PATH | --video [PATH] [--times N]] [--save FILE]

One cold run, as a user meets it: load the models, generate (depth, cache, encode, sample, decoder, input
view), then write the output folder (fly-through render + video, PLY, PNG, JSON) into a temporary folder.
"CPU seconds" is the process's CPU time (all threads: up to 2× the seconds on 2 cores), which other load
on the machine inflates less than the wall seconds. Memory per stage is the peak resident set size of the
process during the stage (sampled every 5 ms from ``/proc/self/statm``; the process peak, ``ru_maxrss``, is
printed too); on CUDA also the peak of ``torch.cuda.max_memory_allocated`` per stage. The input is
procedural world 1,000,007 (held out) rendered at the preset's size, unless ``--image`` is given.
``--random-decoder`` times a randomly initialised decoder of the default configuration, for when no trained
decoder exists yet (same cost, meaningless picture). Prints a Markdown table.

``--video`` times video → 4D (:class:`lyra3d.pipelines.video_to_4d.VideoTo4DPipeline` and its output folder) on a video
file, by default held-out dynamic world 1,000,001 filmed as a 17-frame clip (320×176, still camera) and
written as an MP4 first (reading it is part of the end-to-end time); ``--times N`` decodes N output times
instead of one per frame. ``decoder`` and ``input view`` then cover every output time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from lyra3d import pipelines as pl
from lyra3d.core.device import peak_memory_mb
from lyra3d.pipelines.config import parse_trajectories
from lyra3d.pipelines.image_to_3d import load_input_image
from lyra3d.pipelines.outputs import save_scene4d


class RssSampler:
    """Peak resident memory (bytes) between :meth:`take` calls, sampled by a background thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, self.current(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def current() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: the process peak so far
            return int(peak_memory_mb() * 2**20)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def take(self) -> int:
        peak = max(self.peak, self.current())
        self.peak = self.current()
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _held_out_clip(path: Path, preset: pl.Preset, frames: int) -> Path:
    """Held-out dynamic world 1,000,001 filmed by the default still camera as an MP4 (24 fps)."""
    from lyra3d.data.clips import make_clip
    from lyra3d.io.video import write_video

    clip = make_clip(1_000_001, frames, preset.width, preset.height)
    return write_video(clip.frames, path, fps=24)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None, help="weights folder (default: the shipped models)")
    ap.add_argument("--random-decoder", action="store_true",
                    help="a random decoder of the default configuration in place of a trained one")
    ap.add_argument("--trajectories", default="6", help="names, or N for the first N of Lyra's six")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--flythrough-frames", type=int, default=48)
    ap.add_argument("--keep-input", default=None, choices=("on", "off"),
                    help="image: the input's own Gaussians in the scene (default: GenerateConfig's, on)")
    ap.add_argument("--image", default=None)
    ap.add_argument("--video", nargs="?", const="", default=None,
                    help="video → 4D; a video file (default: held-out dynamic world 1,000,001 as a 17-frame MP4)")
    ap.add_argument("--times", type=int, default=None, help="--video: output times (default: one per frame)")
    ap.add_argument("--no-write", action="store_true",
                    help="stop after generating (no fly-through or files; e.g. where no ffmpeg is installed)")
    ap.add_argument("--save", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)

    if args.video is not None and args.image:
        ap.error("give --image or --video, not both")
    load = os.getloadavg()
    cuda = torch.device(args.device).type == "cuda"
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    rss = RssSampler()
    rows: list[tuple[str, float, float, float, float | None]] = []
    last = [time.perf_counter(), time.process_time()]

    def mark(stage: str) -> None:
        sync()
        now, cpu = time.perf_counter(), time.process_time()
        gpu = None
        if cuda:
            gpu = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
        rows.append((stage.replace("_", " "), now - last[0], cpu - last[1], rss.take() / 2**20, gpu))
        last[:] = [now, cpu]

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if args.random_decoder:
            from lyra3d.models.decoder import DecoderConfig, GaussianDecoder
            from lyra3d.models.decoder4d import Decoder4DConfig, GaussianDecoder4D

            weights = Path(tmp) / "weights"
            torch.manual_seed(0)
            if args.video is not None:
                GaussianDecoder4D(Decoder4DConfig()).save_pretrained(weights / "decoder4d")
            else:
                GaussianDecoder(DecoderConfig()).save_pretrained(weights / "decoder")
            if args.weights:
                for part in ("depth", "tokenizer", "video_model"):
                    if (Path(args.weights) / part).is_dir():
                        os.symlink(Path(args.weights).resolve() / part, weights / part)
        overrides = {"trajectories": parse_trajectories(args.trajectories), "steps": args.steps,
                     "preset": args.preset, "num_frames": args.frames, "output_times": args.times,
                     "keep_input": args.keep_input}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        config = pl.GenerateConfig().replace(device=args.device, **overrides)
        p = config.resolution
        if args.video is not None:
            video = args.video or _held_out_clip(Path(tmp) / "clip.mp4", p, config.frames)
            what = Path(video).name if args.video else "world 1000001 (held-out dynamic clip, MP4)"
        elif args.image:
            image, _ = load_input_image(args.image, p, config.fit)
            what = Path(args.image).name
        else:
            from lyra3d.core.cameras import default_camera
            from lyra3d.data import worlds

            camera = default_camera(p.width, p.height, p.fov_y_degrees)
            image = worlds.render(worlds.make_world(1_000_007), camera).rgb[0]
            what = "world 1000007"
        rss.take()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start, start_cpu = last[:] = [time.perf_counter(), time.process_time()]
        if args.video is not None:
            from lyra3d.pipelines import video_to_4d as pl4

            pipe = pl4.VideoTo4DPipeline.from_pretrained(weights, device=args.device, config=config)
            mark("load_models")
            scene = pipe(video, progress=lambda stage, done, total: mark(stage) if done == total else None)
            save = save_scene4d
        else:
            pipe = pl.ImageTo3DPipeline.from_pretrained(weights, device=args.device, config=config)
            mark("load_models")
            scene = pipe(image, progress=lambda stage, done, total: mark(stage) if done == total else None)
            save = pl.save_scene
        seen: list[str] = []

        def on_save(what_: str, done: int, total: int) -> None:
            if what_ not in seen:
                if seen:
                    mark(seen[-1])  # the next part's first report ends the part before (fly-through, ...)
                seen.append(what_)

        record = None
        if not args.no_write:
            record = save(scene, Path(tmp) / "out", flythrough_frames=args.flythrough_frames, progress=on_save)
            mark("write")
        total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    rss.stop()

    gpu_col = cuda
    lines = [f"# lyra3d generate on {args.device}"
             + (f" ({torch.cuda.get_device_name()})" if cuda else f", {torch.get_num_threads()} threads")
             + f", torch {torch.__version__}; preset {p.name} {p.width}x{p.height}, {config.frames} frames per "
             f"trajectory, {len(config.trajectories)} trajectories, {config.steps} steps, "
             f"guidance {config.guidance:g}; "
             f"{what}; {pipe.decoder_name} "
             f"{'random (default config)' if args.random_decoder else pipe.sources[pipe.decoder_part]}",
             "",
             "| stage | seconds | CPU seconds | peak RSS (MB) |" + (" peak CUDA (MB) |" if gpu_col else ""),
             "|---|---:|---:|---:|" + ("---:|" if gpu_col else "")]
    for name, sec, cpu, mem, gpu in rows:
        lines.append(f"| {name} | {sec:.2f} | {cpu:.2f} | {mem:,.0f} |" + (f" {gpu:,.0f} |" if gpu_col else ""))
    lines.append(f"| **end to end** | **{total:.2f}** | **{total_cpu:.2f}** | **{peak_memory_mb():,.0f}** "
                 "(process peak) |" + (" |" if gpu_col else ""))
    if args.video is not None:
        size = sum(record["files"].values()) / 1e6 if record else float("nan")
        lines += ["", f"{len(scene.frame_indices)} of {scene.frames_in_input} frames read; {len(scene)} output times, "
                  f"each {scene.gaussians_before_pruning:,} Gaussians decoded, {len(scene.gaussians[0]):,} kept; "
                  f"input-view PSNR {scene.input_view_psnr:.2f} dB (mean over times); fly-through and bullet time "
                  f"{args.flythrough_frames} frames each; output folder {size:.0f} MB"]
    else:
        kept = scene.keep_input
        lines += ["", f"{scene.gaussians_before_pruning:,} Gaussians decoded, {len(scene.gaussians):,} kept"
                  + (f" (keep_input: {kept['input_gaussians']:,} of the input, {kept['decoder_gaussians_dropped']:,} of "
                     f"the decoder's dropped, {kept['seconds']:.2f} s)" if kept else " (keep_input off)")
                  + f"; input-view PSNR {scene.input_view_psnr:.2f} dB; fly-through {args.flythrough_frames} frames"]
    lines += [f"machine load average before / after the run: {load[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"({os.cpu_count()} CPUs)"]
    text = "\n".join(lines)
    print(text)
    if args.save:
        Path(args.save).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
