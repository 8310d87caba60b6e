"""Train the monocular depth network on procedural worlds (``lyra3d train depth``, or :func:`train`).

Data: worlds from training seeds (< 1,000,000), each rendered from a few random cameras around the input
view (the range Lyra's trajectories move in), rendered once on the training device at the start and
kept there. Loss: scale-invariant log loss on surface pixels, a small absolute log term so the network
stays metric, and a far-depth term on the sky. Evaluation: held-out worlds (seeds >= 1,000,000), AbsRel
and δ<1.25 after median scaling. Resumable: ``OUT/model`` (config + safetensors) and ``OUT/trainer.pt``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lyra3d.core.cameras import Cameras, intrinsics_from_fov, look_at
from lyra3d.core.device import check_device
from lyra3d.core.metrics import depth_errors
from lyra3d.data import worlds
from lyra3d.models.depth import DepthNet, DepthNetConfig, scale_invariant_log_loss
from lyra3d.train.common import Run, RunConfig, make_worlds, optimizer_step, train_loop


@dataclass
class DepthTrainConfig(RunConfig):
    out: str = "runs/depth"
    steps: int = 6000
    batch_size: int = 32  # images per step
    num_worlds: int = 2000
    views_per_world: int = 4  # random cameras around each training world's input view
    seed_offset: int = 0  # the first training world's seed
    eval_worlds: int = 64
    model: DepthNetConfig = field(default_factory=DepthNetConfig)  # its inference size becomes the run's

    @classmethod
    def tiny(cls, out: str) -> "DepthTrainConfig":
        """A CPU-sized run for tests: a few steps on a handful of small worlds."""
        return cls(out=out, steps=30, batch_size=4, lr=2e-3, warmup=5, width=48, height=32, num_worlds=6,
                   views_per_world=2, eval_worlds=2, eval_every=30, save_every=15,
                   model=DepthNetConfig(base_channels=8, levels=3, height=32, width=48))


def sample_cameras(center_depth: float, n: int, width: int, height: int, generator: torch.Generator) -> Cameras:
    """Random cameras around the input view: moved up to a fifth of the centre depth, turned towards a
    point near the scene centre, vertical FOV 40–65°."""
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    cd = center_depth
    eyes = torch.stack([(u(n) - 0.5) * 0.4 * cd, (u(n) - 0.7) * 0.3 * cd, (u(n) - 0.5) * 0.4 * cd], -1)
    targets = torch.stack([(u(n) - 0.5) * 0.6 * cd, (u(n) - 0.4) * 0.3 * cd, cd * (0.8 + 0.4 * u(n))], -1)
    fov = 40 + 25 * u(n)
    k = torch.stack([intrinsics_from_fov(float(f), width, height) for f in fov])
    return Cameras(look_at(eyes, targets), k, width, height)


def render_views(seeds: list[int], views: int, width: int, height: int, device: torch.device,
                 generator: torch.Generator, log: bool = True) -> dict[str, torch.Tensor]:
    """Render ``views`` random views of each world: rgb uint8, depth float16, mask bool, on ``device``
    (``log``: print JSON lines on the way)."""
    rgb, depth, mask = [], [], []
    t0 = time.time()
    all_worlds = make_worlds(seeds)
    if log:
        print(json.dumps({"built_worlds": len(seeds), "s": round(time.time() - t0, 1)}), flush=True)
    for i, world in enumerate(all_worlds):
        cams = sample_cameras(worlds.center_depth(world), views, width, height, generator).to(device)
        r = worlds.render(world, cams)
        rgb.append((r.rgb * 255 + 0.5).to(torch.uint8))
        depth.append(r.depth.half())
        mask.append(r.mask > 0)
        if log and (i + 1) % max(1, len(seeds) // 10) == 0:
            print(json.dumps({"rendered_worlds": i + 1, "of": len(seeds), "s": round(time.time() - t0, 1)}), flush=True)
    return {"rgb": torch.cat(rgb), "depth": torch.cat(depth), "mask": torch.cat(mask)}


def depth_loss(log_pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor, max_depth: float) -> torch.Tensor:
    surface = (mask & (depth < max_depth)).float()
    log_gt = torch.log(depth.clamp(1e-3, max_depth))
    silog = scale_invariant_log_loss(log_pred, depth.clamp(1e-3, max_depth), surface)
    n = surface.sum().clamp_min(1)
    absolute = ((log_pred - log_gt).abs() * surface).sum() / n
    sky = (~mask).float()
    far = (F.relu(math.log(max_depth) - 0.1 - log_pred) * sky).sum() / sky.sum().clamp_min(1)
    return silog + 0.2 * absolute + 0.1 * far


@torch.no_grad()
def evaluate(model: DepthNet, data: dict[str, torch.Tensor], max_depth: float, batch: int = 32) -> dict[str, float]:
    """Mean per-image AbsRel and δ<1.25 after median scaling, on surface pixels."""
    model.eval()
    rows = []
    for i in range(0, data["rgb"].shape[0], batch):
        rgb = data["rgb"][i:i + batch].float() / 255
        pred = model(rgb).float().exp()
        for p, d, m in zip(pred, data["depth"][i:i + batch].float(), data["mask"][i:i + batch]):
            sel = m & (d < max_depth)
            if sel.sum() > 16:
                rows.append(depth_errors(p, d, sel, align="median"))
    model.train()
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("abs_rel", "delta1", "rmse")}


def evaluate_estimator(estimator, seeds: list[int], views: int = 2, width: int = 320, height: int = 176,
                       max_depth: float = 100.0, seed: int = 99) -> dict[str, float]:
    """Any :class:`~lyra3d.models.depth.DepthEstimator` on procedural worlds: mean per-image AbsRel, δ<1.25 and
    RMSE after median scaling, over surface pixels (held-out seeds >= 1,000,000 for reported numbers)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for world in make_worlds(seeds):
        cams = sample_cameras(worlds.center_depth(world), views, width, height, gen)
        r = worlds.render(world, cams)
        pred = estimator(r.rgb, cams.intrinsics).depth
        for p, d, m in zip(pred, r.depth, r.mask > 0):
            sel = m & (d < max_depth)
            if sel.sum() > 16:
                rows.append(depth_errors(p, d, sel, align="median"))
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("abs_rel", "delta1", "rmse")}


def train(config: DepthTrainConfig) -> dict[str, float]:
    """Train (or resume) and return the last evaluation. The network's inference size (``config.model``'s
    height and width) is set to the run's frame size."""
    device = check_device(config.device)
    config.model = dataclasses.replace(config.model, height=config.height, width=config.width)
    run = Run(config.out, DepthNet(config.model).to(device), config.lr, config.weight_decay, config.warmup,
              config.steps, config.train_time_s)
    run.resume(device)
    start_wall = time.time()
    run.model.train()
    run.log({"config": dataclasses.asdict(config), "device": str(device),
             "parameters": sum(p.numel() for p in run.model.parameters())})

    gen = torch.Generator().manual_seed(1234 + run.step)
    train_seeds = worlds.train_seeds(config.num_worlds, offset=config.seed_offset)
    data = render_views(train_seeds, config.views_per_world, config.width, config.height, device, gen)
    eval_data = render_views(worlds.eval_seeds(config.eval_worlds), 2, config.width, config.height, device,
                             torch.Generator().manual_seed(99), log=False)
    run.log({"train_images": int(data["rgb"].shape[0]), "eval_images": int(eval_data["rgb"].shape[0]),
             "data_s": round(time.time() - start_wall, 1)})

    n = data["rgb"].shape[0]
    amp = device.type == "cuda"

    def step_fn():
        idx = torch.randint(0, n, (config.batch_size,), generator=gen).to(device)
        rgb = data["rgb"][idx].float() / 255
        depth, mask = data["depth"][idx].float(), data["mask"][idx]
        if torch.rand((), generator=gen) < 0.5:  # horizontal flip
            rgb, depth, mask = rgb.flip(-1), depth.flip(-1), mask.flip(-1)
        rgb = (rgb * (0.8 + 0.4 * torch.rand(rgb.shape[0], 3, 1, 1, generator=gen).to(device))).clamp(0, 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            log_pred = run.model(rgb)
        return optimizer_step(run, depth_loss(log_pred.float(), depth, mask, config.model.max_depth), config.grad_clip)

    return train_loop(run, config, step_fn, lambda: evaluate(run.model, eval_data, config.model.max_depth),
                      start_wall)
