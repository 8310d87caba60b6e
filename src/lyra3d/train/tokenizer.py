"""Train the video tokenizer on procedural-world videos (``lyra3d train tokenizer``, or :func:`train`).

Data: worlds from training seeds (< 1,000,000), each filmed along Lyra's six trajectories (movements drawn
from their ranges), rendered once on the training device at the start. Loss: L1 + 0.2 (1 − SSIM).
Training may use random square crops (``--crop``): the network is fully convolutional, and a crop costs a
fraction of a frame, so more clips are seen per second. Evaluation: reconstruction PSNR and SSIM on full
frames of held-out worlds (seeds >= 1,000,000). Resumable.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.device import check_device
from lyra3d.core.metrics import psnr, ssim
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.data import worlds
from lyra3d.models.tokenizer import TokenizerConfig, VideoTokenizer, reconstruction_loss
from lyra3d.train.common import Run, RunConfig, initial_model, make_worlds, optimizer_step, train_loop


@dataclass
class TokenizerTrainConfig(RunConfig):
    out: str = "runs/tokenizer"
    steps: int = 6000
    batch_size: int = 2  # clips per step
    frames: int = 17  # frames per clip (1 + 4·m)
    lr: float = 4e-4
    warmup: int = 200
    num_worlds: int = 400
    crop: int = 0  # > 0: train on random crop x crop windows (the net is fully convolutional), 0: full frames
    model: TokenizerConfig = field(default_factory=TokenizerConfig)

    @classmethod
    def tiny(cls, out: str) -> "TokenizerTrainConfig":
        return cls(out=out, steps=20, batch_size=1, frames=5, lr=1e-3, warmup=5, width=48, height=32,
                   num_worlds=2, eval_worlds=1, eval_every=20, save_every=10,
                   model=TokenizerConfig(base_channels=8))


def render_clips(seeds: list[int], frames: int, width: int, height: int, device: torch.device,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Clips ``(N, T, 3, H, W)`` uint8 on ``device``: every world along the six trajectories."""
    clips = []
    for world in make_worlds(seeds):
        trajs = lyra_trajectories(default_camera(width, height), frames, worlds.center_depth(world),
                                  generator=generator)
        r = worlds.render(world, Cameras.cat(list(trajs.values())).to(device))
        clips.append((r.rgb * 255 + 0.5).to(torch.uint8).reshape(len(trajs), frames, 3, height, width))
    return torch.cat(clips)


@torch.no_grad()
def evaluate(model: VideoTokenizer, clips: torch.Tensor, batch: int = 2) -> dict[str, float]:
    """Mean reconstruction PSNR and SSIM over all frames of ``clips`` (uint8)."""
    model.eval()
    p, s = [], []
    for i in range(0, clips.shape[0], batch):
        video = clips[i:i + batch].float() / 255
        rec = model.decode(model.encode(video)).float()
        p.append(psnr(rec, video).flatten())
        s.append(ssim(rec.flatten(0, 1), video.flatten(0, 1)))
    model.train()
    return {"psnr": float(torch.cat(p).mean()), "ssim": float(torch.cat(s).mean())}


def train(config: TokenizerTrainConfig) -> dict[str, float]:
    """Train (or resume) and return the last evaluation."""
    device = check_device(config.device)
    run = Run(config.out, initial_model(VideoTokenizer, config.model, config.init_from, device), config.lr, config.weight_decay, config.warmup,
              config.steps, config.train_time_s)
    run.resume(device)
    model, start_wall = run.model.train(), time.time()
    run.log({"config": dataclasses.asdict(config), "device": str(device),
             "parameters": sum(p.numel() for p in model.parameters())})
    gen = torch.Generator().manual_seed(4321 + run.step)
    data = render_clips(worlds.train_seeds(config.num_worlds), config.frames, config.width, config.height, device, gen)
    eval_data = render_clips(worlds.eval_seeds(config.eval_worlds), config.frames, config.width, config.height,
                             device, None)
    run.log({"train_clips": int(data.shape[0]), "eval_clips": int(eval_data.shape[0]),
             "data_s": round(time.time() - start_wall, 1)})
    amp = device.type == "cuda"
    if amp:
        torch.backends.cudnn.benchmark = True
        model.to(memory_format=torch.channels_last)

    def step_fn():
        idx = torch.randint(0, data.shape[0], (config.batch_size,), generator=gen).to(device)
        video = data[idx]
        if config.crop:
            y = int(torch.randint(0, video.shape[-2] - config.crop + 1, (), generator=gen)) // 8 * 8
            x = int(torch.randint(0, video.shape[-1] - config.crop + 1, (), generator=gen)) // 8 * 8
            video = video[..., y:y + config.crop, x:x + config.crop]
        video = video.float() / 255
        if torch.rand((), generator=gen) < 0.5:
            video = video.flip(-1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(video)
        return optimizer_step(run, reconstruction_loss(pred.float(), video), config.grad_clip)

    return train_loop(run, config, step_fn, lambda: evaluate(model, eval_data), start_wall)
