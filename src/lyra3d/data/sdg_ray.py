"""``lyra3d sdg --ray``: synthetic data generation on a Ray cluster (:mod:`lyra3d.core.ray_pool`). One worker
per GPU (or CPU slot) loads the teacher once; each task is one input (a world seed, a clip seed or an image
file), made into its input on the worker and written with :func:`lyra3d.data.sdg.write_sample`, atomically, into
the shared SDG folder. The driver appends each finished sample to ``manifest-ray.jsonl`` (read with every
shard's manifest by :func:`~lyra3d.data.sdg.finished_ids`), so the resume rule is the index-shard path's: a
sample counts once it is in a manifest and its folder exists. A worker that dies has its input redone by
another. The same seeds and settings write the same samples as ``--shard``/``--num-shards`` runs (a test
compares the latents). The index-shard path stays for Slurm-style launches (one process per GPU, no Ray)."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from lyra3d.core.files import check_settings
from lyra3d.core.progress import Progress, no_progress
from lyra3d.errors import InputError

#: The manifest the Ray driver appends to.
RAY_MANIFEST = "manifest-ray.jsonl"


@dataclass
class SDGWorker:
    """One Ray worker's job: load the teacher on first use, then ``worker(task)`` writes the samples of one
    task, ``("world", seed)``, ``("clip", seed)`` or ``("image", path)``, and returns their manifest entries."""

    out: str
    teacher: dict  # TeacherConfig fields
    tokenizer: str | None
    video_model: str | None
    device: str
    seed: int
    width: int
    height: int
    clip_frames: int = 17
    camera: str = "mixed"
    threads: int = 1
    augment: int = 1  # images: views per image (:func:`lyra3d.data.sdg.image_file_inputs`)
    _state: dict = field(default_factory=dict, repr=False)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_state"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._state = {}

    def load(self):
        if "teacher" not in self._state:
            import torch

            from lyra3d.core.device import check_device
            from lyra3d.pipelines.teacher import Teacher, TeacherConfig

            if self.threads:
                torch.set_num_threads(self.threads)
            dev = check_device(self.device)
            cfg = dict(self.teacher)
            cfg["trajectories"] = tuple(cfg["trajectories"])
            self._state["teacher"] = Teacher.from_pretrained(self.tokenizer, self.video_model, device=dev,
                                                             config=TeacherConfig(**cfg))
            self._state["device"] = dev
        return self._state["teacher"], self._state["device"]

    def __call__(self, task: tuple[str, object]) -> list[dict]:
        from lyra3d.data import sdg

        teacher, dev = self.load()
        kind, what = task
        if kind == "world":
            inputs = list(sdg.world_inputs([int(what)], self.width, self.height, device=dev))
        elif kind == "clip":
            inputs = list(sdg.clip_inputs([int(what)], dev, self.clip_frames, self.width, self.height, self.camera))
        else:
            inputs = list(sdg.image_file_inputs(what, self.width, self.height, self.augment))
        out = Path(self.out)
        done = sdg.finished_ids(out)
        return [sdg.write_sample(teacher, item, out, self.seed, shard=os.getpid()) for item in inputs
                if item.id not in done]


def run_sdg_ray(out: str | Path, *, address: str | None, workers: int | None = None, worlds: int | None = None,
                clips: int | None = None, images: str | Path | None = None, augment: int = 1,
                split: str | None = None, frames: int = 17, clip_frames: int = 17, camera: str = "mixed",
                width: int = 320, height: int = 176, first_seed: int = 0, steps: int = 4,
                guidance: float = 1.0, seed: int = 0, tokenizer=None, video_model=None, device: str = "auto",
                progress: Progress | None = None) -> int:
    """SDG over a Ray cluster (the module docstring); the arguments are :func:`lyra3d.data.sdg.run_sdg`'s.
    Returns the number of samples written."""
    from lyra3d.core.ray_pool import connect, ray_map
    from lyra3d.data.sdg import (check_sdg_inputs, finished_ids, image_ids, image_paths, sdg_settings,
                                 written_before_latents)
    from lyra3d.models.modeling import shipped_weights
    from lyra3d.models.tokenizer import tokenizer_latent_shape
    from lyra3d.pipelines.teacher import DEFAULT_TOKENIZER_WEIGHTS, TeacherConfig

    if augment < 1:
        raise InputError(f"--augment must be >= 1, got {augment}")
    out = Path(out)
    config = TeacherConfig(num_frames=frames, steps=steps, guidance=guidance)
    # the tokenizer's latent shape from its config.json (the driver loads no model): recorded in sdg.json
    shape = tokenizer_latent_shape(tokenizer or shipped_weights(DEFAULT_TOKENIZER_WEIGHTS))
    clip_settings = check_sdg_inputs(worlds, clips, images, width, height, shape.spatial_factor, first_seed,
                                     clip_frames, camera)
    if images is None:
        count = worlds if worlds is not None else clips
        kind = "clip" if clips is not None else "world"
        tasks = [(kind, s) for s in range(first_seed, first_seed + count)]
        ids = [[f"world_{s:07d}"] + ([f"world_{s:07d}_rev"] if clips is not None else []) for _, s in tasks]
    else:
        files = image_paths(images, split)
        tasks = [("image", str(p)) for p in files]
        ids = [image_ids(p, augment) for p in files]
    out.mkdir(parents=True, exist_ok=True)
    latents = None if written_before_latents(out / "sdg.json") else shape
    check_settings(out / "sdg.json", sdg_settings(config, seed, clip_settings, (width, height), latents), "samples")
    started = time.time()
    for stale in out.glob(".tmp-*"):  # left by killed workers (a live shard's is newer than this run)
        if stale.is_dir() and stale.stat().st_mtime < started - 1:
            shutil.rmtree(stale, ignore_errors=True)
    done = finished_ids(out)
    todo = [t for t, i in zip(tasks, ids) if not set(i) <= done]
    say = progress or no_progress
    total, finished = len(tasks), len(tasks) - len(todo)
    say("samples", finished, total)
    written = 0
    errors: list[str] = []
    worker = SDGWorker(str(out), {**config.__dict__, "trajectories": list(config.trajectories)},
                       None if tokenizer is None else str(tokenizer), None if video_model is None else str(video_model),
                       device if device != "auto" else "cpu", seed, width, height, clip_frames, camera,
                       augment=augment)

    def got(task, entries) -> None:
        nonlocal written, finished
        with open(out / RAY_MANIFEST, "a") as f:
            for entry in entries:
                f.write(json.dumps(entry) + "\n")
        written += len(entries)
        finished += 1
        say("samples", finished, total)

    def lost(task, reason: str) -> None:
        nonlocal finished
        errors.append(f"{task[0]} {task[1]}: {reason}")
        finished += 1
        say("samples", finished, total)

    ray, started = connect(address)
    try:
        gpu = device != "cpu" and (device != "auto" or ray.cluster_resources().get("GPU", 0) >= 1)
        worker.device = "cuda" if gpu and device == "auto" else worker.device
        worker.threads = 0 if gpu else 1
        ray_map(worker, todo, address=address, gpu=gpu, workers=workers, on_result=got, on_lost=lost)
    finally:
        if started:
            ray.shutdown()
    if errors:
        raise InputError(f"{len(errors)} SDG input(s) failed ({errors[0]}); rerun to retry them")
    return written

