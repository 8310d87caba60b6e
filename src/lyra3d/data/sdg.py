"""Synthetic data generation (docs/design.md §6): run the teacher over inputs and write what the 3DGS decoder
learns from: the latents of every trajectory, the teacher's decoded frames, their estimated depth, the
cameras. No ground truth of any world is written or used: inputs are images (a procedural world's render
at the default camera, or any image file), and everything else comes from the teacher.

Layout of an SDG folder::

    sdg.json                        the settings (a resumed or sharded run must use the same), and "latents":
                                    the tokenizer's latent shape (channels, spatial and temporal factor)
    manifest-<shard>.jsonl          one line per finished sample of that shard (shards write their own)
    <id>/latents.safetensors        latents float16 (V, T', C, h, w); for a video input also
                                    "input_latents" (T', C, h, w): the tokenizer's latents of the input video
         frames.npy                 teacher RGB uint8 (V, T, 3, H, W)
         depth.npy                  estimated z-depth of the teacher frames float16 (V, T, 1, H, W)
         cameras.json               {"names": [...], "cameras": Cameras.to_dict() of the V·T frames}
         meta.json                  input, caption, seed, teacher settings, timings; for a video input
                                    also "times" (seconds shown by each frame t of every trajectory),
                                    "clip" (its seed, camera motion, frames) and "reversed"
         input.npy                  a video input only: the input video uint8 (T, 3, H, W); cameras.json then
                                    also holds its "input_cameras" (T): the input camera at each frame time

Inputs are single images (the teacher), or videos (:func:`clip_inputs`: dynamic clips of procedural
training worlds and their time-reversed copies, run through :func:`lyra3d.pipelines.teacher.video_teacher`), never
both in one folder (``sdg.json`` records which).

A sample is written into a hidden temporary folder and renamed when complete; a rerun skips finished
samples. :func:`shard_of` splits the inputs (input ``i`` belongs to shard ``i % num_shards``), so several
processes or GPUs (Slurm-style launches) each run one shard into the same folder; on a Ray cluster
``lyra3d sdg --ray`` (:func:`lyra3d.data.sdg_ray.run_sdg_ray`) hands the inputs to one worker per GPU instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

import lyra3d
from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.device import check_device
from lyra3d.core.files import check_settings, usual_mode
from lyra3d.core.limits import MAX_SIDE, MAX_WORLDS
from lyra3d.core.progress import Progress, StageClock, no_progress
from lyra3d.errors import InputError
from lyra3d.io.images import MIN_IMAGE_SIDE
from lyra3d.models.diffusers_vae import LatentShape
from lyra3d.models.tokenizer import latent_shape_of
from lyra3d.pipelines.teacher import Teacher, TeacherConfig

_TMP = ".tmp-"


@dataclass
class SDGInput:
    """One input: an ``image (3, H, W)`` seen by ``camera`` (one), or a video: ``video (T, 3, H, W)`` filmed by
    ``cameras`` (T, or one for a still camera) at ``times (T,)`` seconds (``image``/``camera``: its first
    frame). ``clip``: what the video is (written to meta.json); ``reversed``: a time-reversed copy."""

    id: str
    image: Tensor  # (3, H, W)
    camera: Cameras
    caption: str = ""
    video: Tensor | None = None
    cameras: Cameras | None = None
    times: Tensor | None = None
    clip: dict = field(default_factory=dict)
    reversed: bool = False


@dataclass
class SDGSample:
    """One generated sample read back: ``latents (V, T', C, h, w)``, ``frames (V, T, 3, H, W)`` in [0, 1],
    ``depth (V, T, 1, H, W)``, ``cameras`` (V·T, trajectory-major) and ``meta``; a video sample also has its
    input, ``input_frames (T, 3, H, W)``, ``input_cameras`` (T) and ``input_latents (T', C, h, w)`` (``None``
    for an image's, and for video samples written before they were stored)."""

    latents: Tensor
    frames: Tensor
    depth: Tensor
    cameras: Cameras
    names: list[str]
    meta: dict
    input_frames: Tensor | None = None
    input_cameras: Cameras | None = None
    input_latents: Tensor | None = None

    @property
    def times(self) -> Tensor:
        """``(T,)`` seconds shown by frame ``t`` of every trajectory: the video's frame times for a video
        sample, zeros for an image's (a static scene)."""
        t = self.frames.shape[1]
        return torch.tensor(self.meta.get("times") or [0.0] * t, dtype=torch.float32)


def world_inputs(seeds: list[int], width: int = 320, height: int = 176,
                 device: str | torch.device = "cpu") -> Iterator[SDGInput]:
    """Procedural worlds as inputs: the render at the default camera and the caption (no depth, no truth).
    Built one by one in this process (~0.1 s each on a CPU core) and ray-cast on ``device``: parallel SDG
    runs one process per shard."""
    from lyra3d.data import worlds

    cam = default_camera(width, height).to(device)
    for seed in seeds:
        world = worlds.make_world(seed)
        yield SDGInput(f"world_{seed:07d}", worlds.render(world, cam).rgb[0], cam, world.caption)


def clip_camera(seed: int, camera: str = "mixed") -> str:
    """The camera motion of training clip ``seed``: ``camera`` itself, or for ``"mixed"`` a still camera for
    even seeds and a slow move along trajectory ``(seed // 2) % 6`` for odd ones."""
    from lyra3d.data.clips import CAMERA_MOTIONS

    if camera != "mixed":
        if camera not in CAMERA_MOTIONS:
            raise InputError(f"unknown clip camera {camera!r}; choose mixed or one of {', '.join(CAMERA_MOTIONS)}")
        return camera
    return "static" if seed % 2 == 0 else CAMERA_MOTIONS[1 + (seed // 2) % (len(CAMERA_MOTIONS) - 1)]


def clip_inputs(seeds: list[int], device: str | torch.device = "cpu", num_frames: int = 17, width: int = 320,
                height: int = 176, camera: str = "mixed") -> Iterator[SDGInput]:
    """Dynamic clips of procedural **training** worlds as video inputs (:func:`lyra3d.data.clips.make_clip`,
    frames ray-cast on ``device``), each followed by its time-reversed copy
    (:func:`lyra3d.data.clips.with_reversed`): ids ``world_XXXXXXX`` and ``world_XXXXXXX_rev``. Only the
    video, its cameras and frame times go in; the world's truth never does. Seeds from 1,000,000 (held out)
    are refused."""
    from lyra3d.data.clips import make_clip, with_reversed

    held_out = [s for s in seeds if s >= 1_000_000]
    if held_out:
        raise InputError(f"SDG uses training seeds only (< 1,000,000); got {held_out[0]}")
    for seed in seeds:
        motion = clip_camera(seed, camera)
        for clip in with_reversed(make_clip(seed, num_frames, width, height, camera_motion=motion, device=device)):
            info = {"seed": int(seed), "camera_motion": motion, "frames": len(clip)}
            yield SDGInput(f"world_{seed:07d}" + ("_rev" if clip.reversed else ""), clip.frames[0], clip.cameras[0],
                           clip.world.caption, video=clip.frames, cameras=clip.cameras, times=clip.times, clip=info,
                           reversed=clip.reversed)


def image_paths(folder: str | Path, split: str | None = None) -> list[Path]:
    """The image files of ``folder``, sorted; with ``split``, those of that split of its ``manifest.json``
    (``examples/real_photos.py``: ``tune`` is the split training may read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"input folder not found: {folder}")
    if split is not None:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            raise InputError(f"{folder} has no manifest.json, so it has no splits; leave out --split")
        entries = json.loads(manifest.read_text()).get("photos", [])
        files = sorted(folder / e["file"] for e in entries if e.get("split") == split)
        if not files:
            raise InputError(f"{manifest} lists no photo of split {split!r}")
        return files
    suffixes = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{folder} holds no PNG, JPEG, WebP or TIFF image")
    return files


def image_inputs(folder: str | Path, width: int = 320, height: int = 176, augment: int = 1,
                 split: str | None = None) -> Iterator[SDGInput]:
    """Every image file of ``folder`` (sorted; ``split``: :func:`image_paths`), centre-cropped to the model's size,
    default camera. ``augment`` > 1: each image also gives ``augment - 1`` random views (a crop of 60–100 % of
    the largest window, a coin-flip mirror: :func:`lyra3d.data.photos.random_crop`), ids ``<stem>_augNN``,
    drawn from the image's name, so a rerun or another shard makes the same ones."""
    if augment < 1:
        raise InputError(f"--augment must be >= 1, got {augment}")
    for path in image_paths(folder, split):
        yield from image_file_inputs(path, width, height, augment)


def image_ids(path: str | Path, augment: int = 1) -> list[str]:
    """The sample ids :func:`image_file_inputs` gives an image file: its stem, then ``<stem>_augNN``."""
    stem = Path(path).stem
    return [stem] + [f"{stem}_aug{k:02d}" for k in range(1, augment)]


def image_file_inputs(path: str | Path, width: int = 320, height: int = 176, augment: int = 1) -> Iterator[SDGInput]:
    """One image file's inputs (:func:`image_inputs`): the centre crop, then ``augment - 1`` random views."""
    import zlib

    from lyra3d.data.photos import load_photo, random_crop
    from lyra3d.io.images import load_image

    path = Path(path)
    cam = default_camera(width, height)
    ids = image_ids(path, augment)
    image, _ = load_image(path, width, height)
    yield SDGInput(ids[0], image, cam, "")
    if augment > 1:
        photo = load_photo(path, max_side=4 * max(width, height))
        gen = torch.Generator().manual_seed(zlib.crc32(path.stem.encode()))
        for k in range(1, augment):
            view, _ = random_crop(photo, width, height, gen)
            yield SDGInput(ids[k], view, cam, "")


def finished_ids(out: str | Path) -> set[str]:
    """Ids of the samples listed in any shard's manifest whose folder exists."""
    out = Path(out)
    ids = set()
    for manifest in out.glob("manifest-*.jsonl"):
        for line in manifest.read_text().splitlines():
            try:
                ids.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line
    return {i for i in ids if (out / i).is_dir()}


def shard_of(items: list, shard: int, num_shards: int) -> list:
    """Shard ``shard`` of ``num_shards``: items ``shard, shard + n, shard + 2n, ...``."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise InputError(f"shard must be in [0, {num_shards}), got {shard}")
    return items[shard::num_shards]


def sdg_settings(config: TeacherConfig, seed: int, clips: dict | None, size: tuple[int, int] | None,
                 latents: LatentShape | None = None) -> dict:
    """What ``sdg.json`` records (a resumed, sharded or Ray run into the same folder must match it); ``latents``:
    the tokenizer's latent shape, what a decoder trained on them reads (``None``: not recorded)."""
    settings = {"teacher": asdict(config), "seed": seed, "lyra3d_version": lyra3d.__version__}
    settings["teacher"]["trajectories"] = list(settings["teacher"]["trajectories"])
    settings["clips"] = clips  # None for images (also what a folder written before clips existed reads as)
    settings["size"] = list(size) if size is not None else None
    if latents is not None:
        settings["latents"] = asdict(latents)
    return settings


def generate(teacher: Teacher, inputs: list[SDGInput] | Iterator[SDGInput], out: str | Path, seed: int = 0,
             shard: int = 0, progress: Progress | None = None, total: int | None = None,
             clips: dict | None = None, size: tuple[int, int] | None = None) -> int:
    """Run the teacher over ``inputs`` (one shard's: ``shard`` names its manifest) and write the samples;
    returns how many were written (finished samples are skipped).

    ``progress`` (:class:`~lyra3d.core.progress.Progress`) is told ``("samples", done, total)`` as each input
    is written or found finished; ``total`` is the number of inputs (default ``len(inputs)``; give it for an
    iterator). ``clips``: the settings of video inputs (:func:`clip_inputs`: frames, size, camera), recorded in
    ``sdg.json`` so a folder never mixes clip and image samples; ``None`` for image inputs. ``size``: the inputs'
    ``(width, height)``, recorded too, so a resumed run never appends samples of another size."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    latents = None if written_before_latents(out / "sdg.json") else latent_shape_of(teacher.tokenizer)
    # (a folder from before the latent shape was recorded resumes as it was)
    check_settings(out / "sdg.json", sdg_settings(teacher.config, seed, clips, size, latents), "samples")
    for stale in out.glob(f"{_TMP}*-shard{shard}"):
        shutil.rmtree(stale, ignore_errors=True)
    done = finished_ids(out)
    manifest = out / f"manifest-{shard:05d}.jsonl"
    say = progress or no_progress
    if progress is not None and total is None:
        total = len(inputs)
    written = 0
    say("samples", 0, total or 0)
    for count, item in enumerate(inputs, 1):
        if (item.video is not None) != (clips is not None):
            raise InputError(f"input {item.id} is {'a video' if item.video is not None else 'an image'}, but "
                             f"this SDG run is for {'clips' if clips is not None else 'images'}")
        if item.id not in done:
            entry = write_sample(teacher, item, out, seed, shard)
            with open(manifest, "a") as f:
                f.write(json.dumps(entry) + "\n")
            written += 1
        say("samples", count, total or 0)
    return written


@torch.no_grad()
def write_sample(teacher: Teacher, item: SDGInput, out: Path, seed: int, shard: int = 0) -> dict:
    """Generate one sample and write it atomically; returns its manifest entry."""
    from safetensors.torch import save_file

    t0 = time.time()
    clock = StageClock(teacher.device)
    if item.video is None:
        gen = teacher(item.image, item.camera, seed=seed, progress=clock)
    else:
        from lyra3d.pipelines.teacher import video_teacher

        gen = video_teacher(teacher, item.video, item.cameras if item.cameras is not None else item.camera,
                            seed=seed, times=item.times, progress=clock)
    frames = teacher.decode(gen.latents)  # (V, T, 3, H, W)
    clock("decode")
    v, t = frames.shape[:2]
    depth = torch.cat([teacher.depth(frames[i], gen.cameras[i * t:(i + 1) * t].intrinsics).depth
                       for i in range(v)]).reshape(v, t, 1, *frames.shape[-2:])
    clock("frame_depth")
    tmp = out / f"{_TMP}{item.id}-shard{shard}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tensors = {"latents": gen.latents}
        cams = {"names": list(gen.names), "cameras": gen.cameras.to_dict()}
        if item.video is not None:  # the input itself: the 4D decoder also learns the input camera at every time
            tensors["input_latents"] = gen.input_latents
            cams["input_cameras"] = gen.input_cameras.to_dict()
            np.save(tmp / "input.npy", (gen.video * 255 + 0.5).to(torch.uint8).cpu().numpy())
        save_file({k: x.half().contiguous().cpu() for k, x in tensors.items()}, str(tmp / "latents.safetensors"))
        usual_mode(tmp / "latents.safetensors")  # safetensors writes 0600; the sample's other files are 0644
        np.save(tmp / "frames.npy", (frames * 255 + 0.5).to(torch.uint8).cpu().numpy())
        np.save(tmp / "depth.npy", depth.half().cpu().numpy())
        (tmp / "cameras.json").write_text(json.dumps(cams))
        meta = {"id": item.id, "caption": item.caption, "seed": seed, "center_depth": gen.center_depth,
                "teacher": gen.meta, "seconds": round(time.time() - t0, 3),
                "stage_seconds": {k: round(v, 4) for k, v in clock.seconds.items()},
                "lyra3d_version": lyra3d.__version__}
        if item.video is not None:
            meta.update({"times": [round(float(x), 6) for x in gen.times], "clip": item.clip,
                         "reversed": bool(item.reversed)})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        final = out / item.id
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"id": item.id, "caption": item.caption, "seconds": meta["seconds"]}


def load_sample(path: str | Path, uint8: bool = False) -> SDGSample:
    """Read one sample folder written by :func:`generate` (``uint8``: frames as stored, 0–255)."""
    from safetensors.torch import load_file

    path = Path(path)
    missing = [f for f in ("latents.safetensors", "frames.npy", "depth.npy", "cameras.json", "meta.json")
               if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path} is not an SDG sample (missing {', '.join(missing)}); pass a folder written by sdg")
    cams = json.loads((path / "cameras.json").read_text())
    frames = torch.from_numpy(np.load(path / "frames.npy"))
    inp = torch.from_numpy(np.load(path / "input.npy")) if (path / "input.npy").is_file() else None
    if inp is not None and not uint8:
        inp = inp.float() / 255
    tensors = load_file(str(path / "latents.safetensors"))
    return SDGSample(latents=tensors["latents"].float(),
                     frames=frames if uint8 else frames.float() / 255,
                     depth=torch.from_numpy(np.load(path / "depth.npy")).float(),
                     cameras=Cameras.from_dict(cams["cameras"]), names=cams["names"],
                     meta=json.loads((path / "meta.json").read_text()), input_frames=inp,
                     input_cameras=Cameras.from_dict(cams["input_cameras"]) if "input_cameras" in cams else None,
                     input_latents=tensors["input_latents"].float() if "input_latents" in tensors else None)


def written_before_latents(path: Path) -> bool:
    """Whether ``path`` (an ``sdg.json``) is from before the latent shape was recorded (such a folder resumes
    without it)."""
    try:
        return path.is_file() and "latents" not in json.loads(path.read_text())
    except json.JSONDecodeError:
        return False  # check_settings says so


def sdg_latent_shape(out: str | Path) -> LatentShape | None:
    """The tokenizer's latent shape an SDG folder records in ``sdg.json`` (``None``: not recorded, e.g. a
    folder written before it was)."""
    path = Path(out) / "sdg.json"
    try:
        shape = json.loads(path.read_text()).get("latents") if path.is_file() else None
        return LatentShape(**shape) if shape else None
    except (json.JSONDecodeError, TypeError, AttributeError):
        raise InputError(f"{path} is not an SDG settings file (its latents entry is unreadable); write the SDG "
                         "folder again") from None


def sample_dirs(out: str | Path) -> list[Path]:
    """The finished sample folders of an SDG folder, sorted by id."""
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"SDG folder not found: {out}")
    return [out / i for i in sorted(finished_ids(out))]


def check_sdg_inputs(worlds: int | None, clips: int | None, images, width: int, height: int,
                     spatial_factor: int | None = None, first_seed: int = 0, clip_frames: int = 17,
                     camera: str = "mixed") -> dict | None:
    """Refuse SDG arguments that cannot run, before any work (one line each): not exactly one input, a size out of
    range or not a multiple of the tokenizer's ``spatial_factor`` (when given), counts out of range, evaluation
    seeds, an unknown clip camera. Returns the clip settings recorded in ``sdg.json`` (``None`` unless ``clips``)."""
    if sum(x is not None for x in (worlds, clips, images)) != 1:
        raise InputError("give exactly one input: --worlds N, --clips N or --images DIR")
    for name, side in (("width", width), ("height", height)):
        if not (isinstance(side, int) and MIN_IMAGE_SIDE <= side <= MAX_SIDE):
            raise InputError(f"--{name} must be a whole number from {MIN_IMAGE_SIDE} to {MAX_SIDE}, got {side!r}")
    for name, n in (("--worlds", worlds), ("--clips", clips)):
        if n is not None and not (isinstance(n, int) and 1 <= n <= MAX_WORLDS):
            raise InputError(f"{name} must be a whole number from 1 to {MAX_WORLDS}, got {n!r}")
    if spatial_factor is not None and (width % spatial_factor or height % spatial_factor):
        raise InputError(f"--width and --height must be multiples of the tokenizer's spatial factor {spatial_factor}, "
                         f"got {width}x{height}")
    if images is not None:
        return None
    count = worlds if worlds is not None else clips
    if first_seed < 0 or first_seed + count > 1_000_000:
        raise InputError("SDG for training uses training seeds only (< 1,000,000)")
    if clips is None:
        return None
    clip_camera(0, camera)  # a bad name fails before any work
    return {"frames": clip_frames, "width": width, "height": height, "camera": camera}


def run_sdg(out: str | Path, *, worlds: int | None = None, clips: int | None = None,
            images: str | Path | None = None, augment: int = 1, split: str | None = None,
            frames: int = TeacherConfig.num_frames, clip_frames: int = 17,
            camera: str = "mixed", width: int = 320, height: int = 176, first_seed: int = 0, shard: int = 0,
            num_shards: int = 1, steps: int = TeacherConfig.steps, guidance: float = TeacherConfig.guidance,
            seed: int = 0, tokenizer: str | Path | None = None, video_model: str | Path | None = None,
            device: str = "auto", threads: int = 0, progress: Progress | None = None,
            depth: str | Path | None = None, video_memory: str = "auto", vae_tiling: str = "auto") -> int:
    """One SDG run (``lyra3d sdg``): load the teacher, make this shard's inputs, :func:`generate`. Returns the
    number of samples written.

    Inputs, exactly one of: ``worlds`` procedural training worlds from seed ``first_seed``, ``clips`` dynamic
    clips of them (``clip_frames`` frames, their ``camera``: mixed, static or a trajectory name; each
    also time-reversed: 2 samples per clip), or the images of the folder ``images`` (``split``: only that
    split of its manifest; ``augment``: views per image, :func:`image_inputs`). ``frames`` per trajectory
    (1 + 4·m; images and worlds); ``width``/``height`` of the inputs; the teacher's sampler ``steps``,
    ``guidance`` and ``seed``; ``tokenizer``/``video_model``/``depth`` folders (default: the shipped ones; a diffusers
    Wan VACE ``video_model`` brings its VAE as the tokenizer: :mod:`lyra3d.pipelines.teacher.VACETeacher`, placed on the
    GPU by ``video_memory`` with ``vae_tiling``: :class:`~lyra3d.pipelines.teacher.TeacherConfig`); ``threads``:
    CPU threads of this process (0: the CPU count / ``num_shards``). ``progress``: as :func:`generate`. On a Ray
    cluster: :func:`lyra3d.data.sdg_ray.run_sdg_ray` (the same arguments, no shards)."""
    check_sdg_inputs(worlds, clips, images, width, height)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // max(1, num_shards)))
    dev = check_device(device)
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolutions once
    teacher = Teacher.from_pretrained(tokenizer, video_model, depth, device=dev,
                                      config=TeacherConfig(num_frames=frames, steps=steps, guidance=guidance,
                                                           video_memory=video_memory, vae_tiling=vae_tiling))
    teacher.tokenizer.latent_frames(frames)  # a frame count the tokenizer cannot take fails before any work
    clip_settings = check_sdg_inputs(worlds, clips, images, width, height, int(teacher.tokenizer.spatial_factor),
                                     first_seed, clip_frames, camera)
    if images is None:
        count = worlds if worlds is not None else clips
        seeds = shard_of(list(range(first_seed, first_seed + count)), shard, num_shards)
        if clips is not None:
            inputs, total = clip_inputs(seeds, dev, clip_frames, width, height, camera), 2 * len(seeds)
        else:
            inputs, total = world_inputs(seeds, width, height, device=dev), len(seeds)
    else:
        inputs = shard_of(list(image_inputs(images, width, height, augment, split)), shard, num_shards)
        total = len(inputs)
    return generate(teacher, inputs, out, seed, shard, progress=progress, total=total, clips=clip_settings,
                    size=(width, height))
