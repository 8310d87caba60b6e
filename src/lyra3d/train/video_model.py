"""Train the camera-controlled video diffusion model on procedural worlds (``lyra3d train video-model``, or
:func:`train`). Needs a trained tokenizer (``--tokenizer DIR``).

Data, built once on the training device: for every training world, the input view and its true z-depth
give the 3D cache; along each of Lyra's six trajectories (movements drawn from their ranges) the cache is
warped into every frame; the ray-cast frames, the warped renders and their masks are encoded by the
tokenizer. The model learns to produce the frames' latents from the cache's (flow matching), with the
first frame given. Cameras are kept, Plücker rays are computed per batch. Resumable.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from lyra3d.core.cache3d import multi_trajectory_conditioning
from lyra3d.core.cameras import Cameras, default_camera, plucker_rays
from lyra3d.core.device import check_device
from lyra3d.data import worlds
from lyra3d.errors import InputError
from lyra3d.models.tokenizer import Tokenizer, TokenizerConfig, VideoTokenizer, load_tokenizer
from lyra3d.models.video_model import VideoDiffusionModel, VideoModelConfig, flow_matching_loss
from lyra3d.train.common import Run, RunConfig, make_worlds, optimizer_step, train_loop


@dataclass
class VideoModelTrainConfig(RunConfig):
    out: str = "runs/video_model"
    tokenizer: str = ""  # folder of a trained tokenizer (required, except for --tiny)
    steps: int = 10000
    batch_size: int = 8  # trajectories per step
    frames: int = 17  # frames per trajectory (1 + 4·m)
    lr: float = 2e-4
    weight_decay: float = 0.0
    drop_prob: float = 0.1  # share of samples without cache, mask and rays (classifier-free guidance)
    model: VideoModelConfig = field(default_factory=VideoModelConfig)

    @classmethod
    def tiny(cls, out: str) -> "VideoModelTrainConfig":
        return cls(out=out, steps=10, batch_size=2, frames=5, lr=1e-3, warmup=2, width=64, height=32,
                   num_worlds=2, eval_worlds=1, eval_every=10, save_every=5,
                   model=VideoModelConfig(dim=32, depth=1, heads=2))


def build_data(seeds: list[int], tokenizer: Tokenizer, frames: int, width: int, height: int,
               device: torch.device, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """Per trajectory: clean latents ``x0``, cache and mask latents, and the cameras (float16 latents)."""
    rows: dict[str, list[torch.Tensor]] = {"x0": [], "cache": [], "mask": [], "w2c": [], "k": []}
    cam = default_camera(width, height).to(device)
    for world in make_worlds(seeds):
        src = worlds.render(world, cam)
        cond = multi_trajectory_conditioning(src.rgb, src.depth * src.mask, cam, frames,
                                             center_depth=worlds.center_depth(world), generator=generator)
        for c in cond.values():
            truth = worlds.render(world, c.cameras).rgb
            videos = torch.stack([truth, c.warped.rgb * c.warped.mask, c.warped.mask.expand(-1, 3, -1, -1)])
            with torch.no_grad():
                lat = tokenizer.encode(videos)
            for key, value in zip(("x0", "cache", "mask"), lat):
                rows[key].append(value.half())
            rows["w2c"].append(c.cameras.world_to_camera)
            rows["k"].append(c.cameras.intrinsics)
    return {k: torch.stack(v) for k, v in rows.items()}


def batch_rays(w2c: torch.Tensor, k: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Plücker rays ``(B, T, 6, H, W)`` of a batch of trajectories' cameras ``(B, T, 4, 4)``, ``(B, T, 4)``."""
    b, t = w2c.shape[:2]
    rays = plucker_rays(Cameras(w2c.reshape(b * t, 4, 4), k.reshape(b * t, 4), width, height))
    return rays.reshape(b, t, 6, height, width)


def _loss(model, data, idx, config, generator):
    x0, cache, mask = (data[key][idx].float() for key in ("x0", "cache", "mask"))
    rays = batch_rays(data["w2c"][idx], data["k"][idx], config.width, config.height)
    return flow_matching_loss(model, x0, cache, mask, rays, config.drop_prob, generator)


def train(config: VideoModelTrainConfig) -> dict[str, float]:
    """Train (or resume) and return the last evaluation (flow-matching loss on held-out worlds)."""
    device = check_device(config.device)
    if config.tokenizer:
        tokenizer = load_tokenizer(config.tokenizer, device)
    elif config.steps <= 100:  # smoke runs only: an untrained tokenizer
        tokenizer = VideoTokenizer(TokenizerConfig(base_channels=8)).to(device).eval()
    else:
        raise InputError("--tokenizer DIR is required: train one first with `lyra3d train tokenizer`")
    m, s = config.model, int(tokenizer.spatial_factor)  # the latent shape is the tokenizer's (e.g. a diffusers VAE)
    config.model = dataclasses.replace(m, latent_channels=int(tokenizer.latent_channels), spatial_factor=s,
                                       temporal_factor=int(tokenizer.temporal_factor),
                                       patch_size=max(1, m.spatial_factor * m.patch_size // s))
    run = Run(config.out, VideoDiffusionModel(config.model).to(device), config.lr, config.weight_decay,
              config.warmup, config.steps, config.train_time_s)
    run.resume(device)
    model, start_wall = run.model.train(), time.time()
    run.log({"config": dataclasses.asdict(config), "device": str(device),
             "parameters": sum(p.numel() for p in model.parameters())})
    gen = torch.Generator().manual_seed(777 + run.step)
    data = build_data(worlds.train_seeds(config.num_worlds), tokenizer, config.frames, config.width, config.height,
                      device, gen)
    eval_data = build_data(worlds.eval_seeds(config.eval_worlds), tokenizer, config.frames, config.width,
                           config.height, device, None)
    run.log({"train_trajectories": int(data["x0"].shape[0]), "eval_trajectories": int(eval_data["x0"].shape[0]),
             "data_s": round(time.time() - start_wall, 1)})
    amp = device.type == "cuda"

    def step_fn():
        idx = torch.randint(0, data["x0"].shape[0], (config.batch_size,), generator=gen).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = _loss(model, data, idx, config, gen)
        return optimizer_step(run, loss, config.grad_clip)

    def eval_fn():
        g, n = torch.Generator().manual_seed(0), eval_data["x0"].shape[0]
        losses = [_loss(model, eval_data, torch.arange(i, min(i + config.batch_size, n), device=device), config,
                        g).item() for i in range(0, n, config.batch_size)]
        return {"flow_loss": sum(losses) / len(losses)}

    return train_loop(run, config, step_fn, eval_fn, start_wall)
