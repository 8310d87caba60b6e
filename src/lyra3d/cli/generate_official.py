"""``lyra3d generate --preset official --weights DIR --image PATH``: NVIDIA's released Lyra (GEN3C-Cosmos-7B, the
Cosmos tokenizer, the Lyra-1 decoder) through :class:`lyra3d.pipelines.official.OfficialImageTo3DPipeline`
(docs/official_lyra.md). Called by ``lyra3d generate`` when ``--preset official`` is given."""

from __future__ import annotations

import time
from pathlib import Path

from lyra3d.cli.app import StageBars, err, progress_bar
from lyra3d.core.files import check_output
from lyra3d.errors import InputError

#: generate's options that the official preset does not take, by what they are for.
NOT_OFFICIAL = {"text": "--text", "video": "--video", "images": "--images", "videos": "--videos",
                "prompts": "--prompts", "video_model": "--video-model", "text_to_image": "--text-to-image",
                "ray": "--ray", "ray_workers": "--ray-workers", "batch_size": "--batch-size", "times": "--times",
                "max_frames": "--max-frames", "reconstruct": "--reconstruct", "optimize_steps": "--optimize-steps",
                "optimize_seconds": "--optimize-seconds"}


#: The teacher's stages that run once per trajectory (:class:`lyra3d.pipelines.gen3c_teacher.Gen3CTeacher`).
PER_TRAJECTORY = ("cache", "encode", "sample")


def per_trajectory_stages(stages: tuple[str, ...], names: tuple[str, ...]) -> list[str]:
    """The pipeline's stages with the teacher's per-trajectory ones once per trajectory: ``"sample (left)"``..."""
    out = []
    for stage in stages:
        if stage == PER_TRAJECTORY[0]:
            out += [f"{s} ({n})" for n in names for s in PER_TRAJECTORY]
        elif stage not in PER_TRAJECTORY:
            out.append(stage)
    return out


class PerTrajectory:
    """A progress that names the teacher's per-trajectory stages by their trajectory for ``progress``."""

    def __init__(self, progress, names: tuple[str, ...]):
        self.progress, self.names, self.at = progress, names, -1

    def __call__(self, stage: str, done: int = 1, total: int = 1) -> None:
        if stage == PER_TRAJECTORY[0] and done >= total:
            self.at += 1
        if stage in PER_TRAJECTORY and 0 <= self.at < len(self.names):
            stage = f"{stage} ({self.names[self.at]})"
        self.progress(stage, done, total)


def generate_official(image: Path | None, out: Path, weights: Path | None, depth: Path | None, device: str,
                      overrides: dict, force: bool = False, flythrough_frames: int = 48,
                      flythrough_path: str = "flythrough", quiet: bool = False, **others) -> None:
    """One image → one scene folder with the official parts. ``overrides``: generate settings given on the
    command line (steps, seed, trajectories, ...); ``others``: the options this preset refuses when given."""
    given = [flag for name, flag in NOT_OFFICIAL.items() if others.get(name) is not None]
    if given:
        raise InputError(f"{given[0]} is not for --preset official (one image → 3D with the official parts)")
    if image is None:
        raise InputError("--preset official needs --image PATH (one image → 3D)")
    if weights is None:
        raise InputError("--preset official needs --weights DIR holding gen3c/, tokenizer/ and decoder/ "
                         "(docs/official_lyra.md)")
    check_output(out, force, "folder")
    start = time.perf_counter()
    from lyra3d.core import flythrough as fly

    if flythrough_path not in fly.PATHS:
        raise InputError(f"unknown --flythrough-path {flythrough_path!r}; choose from {', '.join(fly.PATHS)}")
    from lyra3d.core.device import environment
    from lyra3d.pipelines.image_to_3d import load_input_image
    from lyra3d.pipelines.official import OfficialImageTo3DPipeline, official_config
    from lyra3d.pipelines.outputs import save_scene

    overrides = {k: v for k, v in overrides.items() if v is not None and k != "preset"}
    config = official_config(device, **overrides)
    picture, info = load_input_image(image, config.resolution, config.fit)
    pipe = OfficialImageTo3DPipeline.from_pretrained(weights, device=device, config=config, depth=depth)
    names = tuple(pipe.config.trajectories)
    with progress_bar(quiet) as bar:
        rows = StageBars(bar, per_trajectory_stages(pipe.stages(), names))
        scene = pipe(picture, progress=PerTrajectory(rows, names), info=info)
        extra = {"command": "generate", "preset": "official", "device": str(pipe.device),
                 "environment": environment(), "models": {k: str(v) for k, v in pipe.sources.items()},
                 "teacher": "GEN3C-Cosmos (lyra3d.pipelines.gen3c_teacher)", "text": pipe.teacher.text_record(),
                 "decoder": "Lyra-1 (official pruning: the 20 % most opaque kept)",
                 "timings_s": {k: round(v, 4) for k, v in {"load_models": pipe.load_seconds, **scene.timings}.items()}}
        record = save_scene(scene, out, force=force, flythrough_frames=flythrough_frames,
                            flythrough_path=flythrough_path, report=extra, progress=rows, started=start)
    if not quiet:
        err.print(f"wrote {out}: {record['gaussians']:,} Gaussians, input-view PSNR "
                  f"{record['input_view_psnr']:.2f} dB, {time.perf_counter() - start:.1f} s", highlight=False,
                  soft_wrap=True)
