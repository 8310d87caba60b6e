"""``lyra3d sdg``: synthetic data generation, the teacher's output for decoder training
(:func:`lyra3d.data.sdg.run_sdg`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lyra3d.cli.app import StageBars, app, progress_bar
from lyra3d.cli.batch import RayCommand
from lyra3d.core import limits as L
from lyra3d.errors import InputError


@app.command(cls=RayCommand)
def sdg(
    out: Path = typer.Option(..., "--out", help="SDG folder (resumed if it exists; shards write into the same one)."),
    worlds: Optional[int] = typer.Option(None, "--worlds", min=1, max=L.MAX_WORLDS, help="Inputs: this many procedural training worlds "
                                         "(their default-camera render)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Inputs: the images of this folder."),
    augment: int = typer.Option(1, "--augment", min=1, max=64, help="--images: views per image (the centre crop, "
                                "then random crops of 60-100 % with a coin-flip mirror)."),
    split: Optional[str] = typer.Option(None, "--split", help="--images: only this split of the folder's "
                                        "manifest.json (examples/real_photos.py; tune is the one to train on)."),
    clips: Optional[int] = typer.Option(None, "--clips", min=1, max=L.MAX_WORLDS, help="Inputs: this many dynamic clips of procedural "
                                        "training worlds, as videos (each also reversed: 2 samples per clip)."),
    frames: Optional[int] = typer.Option(None, min=1, max=L.MAX_FRAMES, help="Frames per trajectory, 1 + 4·m (--worlds and --images; default: the teacher's, 17)."),
    clip_frames: int = typer.Option(17, "--clip-frames", min=1, max=L.MAX_FRAMES, help="Frames per clip, 1 + 4·m (--clips)."),
    clip_camera: str = typer.Option("mixed", "--clip-camera", help="Camera of the clips: mixed, static or a "
                                    "trajectory name."),
    width: int = typer.Option(320, min=16, max=L.MAX_SIDE, help="Input width in pixels."),
    height: int = typer.Option(176, min=16, max=L.MAX_SIDE, help="Input height in pixels."),
    first_seed: int = typer.Option(0, "--first-seed", help="First world seed (training seeds are < 1,000,000)."),
    shard: int = typer.Option(0, help="This process's shard: inputs shard, shard + n, shard + 2n, ..."),
    num_shards: int = typer.Option(1, "--num-shards", help="Number of shards n (one process or GPU each)."),
    steps: Optional[int] = typer.Option(None, min=1, max=L.MAX_STEPS, help="The teacher's sampler steps (default: the teacher's, 4)."),
    guidance: Optional[float] = typer.Option(None, min=0.0, max=L.MAX_GUIDANCE, help="The teacher's classifier-free guidance scale (1: none; default: the teacher's, 1)."),
    seed: int = typer.Option(0, help="The sampler's seed."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer folder: a lyra3d tokenizer or a diffusers video VAE (Wan 2.1, CogVideoX, LTX-Video, HunyuanVideo, Cosmos; default: the shipped one)."),
    video_model: Optional[Path] = typer.Option(None, "--video-model", help="Video model folder (default: the "
                                               "shipped one), or a local diffusers Wan 2.1 VACE folder (its VAE is "
                                               "then the tokenizer)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights folder: its depth/, tokenizer/ "
                                           "and video_model/ parts (e.g. video_model/ a Wan VACE folder) are the "
                                           "teacher's; --tokenizer and --video-model replace them."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto (a CUDA GPU when there is one)."),
    video_memory: str = typer.Option("auto", "--video-memory", help="A Wan VACE video model on a GPU: auto (the "
                                     "fastest that fits the free memory), none, model_offload or group_offload (the "
                                     "least memory)."),
    vae_tiling: str = typer.Option("auto", "--vae-tiling", help="A Wan VACE video model's VAE in tiles: auto (sides "
                                   "over 512 px, and under group_offload), on or off."),
    threads: int = typer.Option(0, help="CPU threads of this process (0: the CPU count / --num-shards)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on a Ray cluster instead of one shard: --ray alone "
                                      "starts a local one, --ray ADDRESS joins one (needs the ray extra)."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, help="Ray workers (default: one per "
                                              "GPU, or per CPU slot on a cluster without GPUs)."),
) -> None:
    """Synthetic data generation: run the teacher over procedural worlds, images or dynamic clips and write
    what the 3DGS decoder learns from (latents, the teacher's frames, their depth, cameras); sharded and
    resumable. Prints {"written": N, "out": DIR}."""
    from lyra3d.data.sdg import run_sdg
    from lyra3d.pipelines.teacher import TeacherConfig  # torch: imported once the options are checked

    if ray is not None and (shard != 0 or num_shards != 1):
        raise InputError("--ray hands the inputs out itself: leave out --shard and --num-shards")
    if ray is not None and (video_memory, vae_tiling) != ("auto", "auto"):
        raise InputError("--video-memory and --vae-tiling are not passed to Ray workers yet: leave them out with --ray")
    depth = None
    if weights is not None:
        from lyra3d.pipelines.weights import resolve_weights

        parts, _ = resolve_weights(weights)
        tokenizer = tokenizer or parts.get("tokenizer")
        video_model = video_model or parts.get("video_model")
        depth = parts.get("depth")
        if ray is not None and depth is not None:
            raise InputError("--ray takes no depth part yet: leave depth/ out of the weights folder")
    defaults = TeacherConfig()
    frames = defaults.num_frames if frames is None else frames
    steps = defaults.steps if steps is None else steps
    guidance = defaults.guidance if guidance is None else guidance

    with progress_bar(quiet, remaining=True) as bar:
        where = f"SDG on Ray ({ray})" if ray is not None else f"SDG shard {shard}"
        rows = StageBars(bar, labels={"samples": f"{where} → {out.name}"})
        if ray is not None:
            from lyra3d.data.sdg_ray import run_sdg_ray

            written = run_sdg_ray(out, address=ray, workers=ray_workers, worlds=worlds, clips=clips, images=images,
                                  augment=augment, split=split, frames=frames, clip_frames=clip_frames,
                                  camera=clip_camera, width=width, height=height, first_seed=first_seed, steps=steps,
                                  guidance=guidance, seed=seed, tokenizer=tokenizer, video_model=video_model,
                                  device=device, progress=rows)
        else:
            written = run_sdg(out, worlds=worlds, clips=clips, images=images, augment=augment, split=split,
                              frames=frames, clip_frames=clip_frames,
                              camera=clip_camera, width=width, height=height, first_seed=first_seed, shard=shard,
                              num_shards=num_shards, steps=steps, guidance=guidance, seed=seed, tokenizer=tokenizer,
                              video_model=video_model, device=device, threads=threads, progress=rows,
                              video_memory=video_memory, vae_tiling=vae_tiling,
                              **({"depth": depth} if depth is not None else {}))
    print(json.dumps({"written": written, "out": str(out)}))
