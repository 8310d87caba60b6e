"""Train the video tokenizer on procedural-world videos (``lyra3d train tokenizer``, or :func:`train`).

Data: worlds from training seeds (< 1,000,000), each filmed along Lyra's six trajectories (movements drawn
from their ranges), rendered once on the training device at the start. Loss: L1 + 0.2 (1 − SSIM).
Training may use random square crops (``--crop``): the network is fully convolutional, and a crop costs a
fraction of a frame, so more clips are seen per second. Evaluation: reconstruction PSNR and SSIM on full
frames of held-out worlds (seeds >= 1,000,000). Resumable.

Real photos (issue 21): ``--photos DIR`` mixes pseudo-videos of photos (:func:`lyra3d.data.photos.pseudo_video`:
smooth pans and zooms over a photo, drawn afresh every step) into the batches, a ``photo_fraction`` of the
clips; only a folder's ``tune`` split is read (:func:`lyra3d.data.photos.training_photo_paths`), and its last
``photo_val`` photos are left out of training: fixed pseudo-videos of them are the evaluation's
``photo_psnr``/``photo_ssim``. ``--freeze-encoder`` trains the decoder only: the encoder (and so the latent
space that the video model and the 3DGS decoder were trained on) stays bit-identical; with ``--init-from
src/lyra3d/weights/tokenizer`` that fine-tunes the shipped tokenizer's decoder for photos.
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
from lyra3d.data import photos as photo_data
from lyra3d.data import worlds
from lyra3d.errors import InputError
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
    photos: str = ""  # a folder of real photos (its manifest's tune split): pseudo-videos join the batches
    photo_fraction: float = 0.5  # with photos: the share of clips that are photo pseudo-videos
    photo_val: int = 3  # with photos: the folder's last this many training photos are only evaluated
    photo_eval_clips: int = 12  # with photos: fixed pseudo-videos of those photos in the evaluation
    freeze_encoder: bool = False  # train the decoder only (the latent space stays exactly as it was)
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


ENCODER_PARTS = ("enc", "enc_first", "enc_group")


def encoder_parameter_names(model: VideoTokenizer) -> list[str]:
    """The names of the encoder's parameters (what ``--freeze-encoder`` keeps fixed)."""
    return [n for n, _ in model.named_parameters() if n.split(".")[0] in ENCODER_PARTS]


def _photo_data(config: TokenizerTrainConfig) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The training photos (uint8) and fixed evaluation pseudo-videos of the held-back ones (or ``None``)."""
    if not config.photos:
        return [], None
    if not 0 < config.photo_fraction <= 1:
        raise InputError(f"--photo-fraction must be in (0, 1], got {config.photo_fraction}")
    paths = photo_data.training_photo_paths(config.photos)
    if len(paths) <= config.photo_val:
        raise InputError(f"{config.photos} holds {len(paths)} training photos; need more than --photo-val "
                         f"{config.photo_val}")
    photos = [photo_data.load_photo(p) for p in paths]
    train_photos, val_photos = photos[:len(photos) - config.photo_val], photos[len(photos) - config.photo_val:]
    evals = None
    if val_photos and config.photo_eval_clips > 0:
        evals = photo_data.photo_clips(val_photos, config.photo_eval_clips, config.frames, config.width,
                                       config.height, seed=777)
    return train_photos, evals


def train(config: TokenizerTrainConfig) -> dict[str, float]:
    """Train (or resume) and return the last evaluation."""
    device = check_device(config.device)
    train_photos, photo_eval = _photo_data(config)  # a bad folder fails before any work
    train_photos = [p.to(device) for p in train_photos]  # pseudo-videos are resampled where they train
    model0 = initial_model(VideoTokenizer, config.model, config.init_from, device)
    run = Run(config.out, model0, config.lr, config.weight_decay, config.warmup, config.steps, config.train_time_s,
              frozen=encoder_parameter_names if config.freeze_encoder else None)
    run.resume(device)
    model, start_wall = run.model.train(), time.time()
    run.log({"config": dataclasses.asdict(config), "device": str(device),
             "parameters": sum(p.numel() for p in model.parameters()),
             "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
             "train_photos": len(train_photos), "photo_eval_clips": 0 if photo_eval is None else len(photo_eval)})
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
        if train_photos:  # replace a photo_fraction of the clips by fresh pseudo-videos of photos
            use = (torch.rand(config.batch_size, generator=gen) < config.photo_fraction).tolist()
            if any(use):
                video = video.clone()
                for i in (i for i, u in enumerate(use) if u):
                    photo = train_photos[int(torch.randint(len(train_photos), (), generator=gen))]
                    clip = photo_data.pseudo_video(photo, config.frames, config.width, config.height, gen)
                    video[i] = (clip * 255 + 0.5).to(torch.uint8).to(device)
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

    photo_eval = None if photo_eval is None else photo_eval.to(device)

    def eval_fn():
        metrics = evaluate(model, eval_data)
        if photo_eval is not None:
            metrics.update({f"photo_{k}": v for k, v in evaluate(model, photo_eval).items()})
        return metrics

    return train_loop(run, config, step_fn, eval_fn, start_wall)
