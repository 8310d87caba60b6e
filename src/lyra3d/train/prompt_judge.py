"""The prompt judge: a small convolutional network that labels a render of a procedural world (which
objects, colours, floor, sky, walls), trained on ray-cast label maps, to measure how well the text-to-image
model follows its prompts (:func:`lyra3d.train.text_to_image.prompt_evaluation`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.data import worlds
from lyra3d.models.modeling import Pretrained

# -- the judge ---------------------------------------------------------------------------------------------
MULTI_HEADS = ("objects", "colors", "kinds")


SINGLE_HEADS = ("floor_color", "floor_texture", "sky", "walls")


IGNORE = 255  # colour-map value of cells that show no object


@dataclass
class JudgeConfig:
    map_height: int = 22  # the judge's label maps: one cell per 8×8-pixel block of a 176×320 image
    map_width: int = 40
    base_channels: int = 32
    min_cells: int = 2  # an object (colour, shape) counts as present when it covers this many cells
    colors: list[str] = field(default_factory=lambda: list(worlds.PALETTE))
    kinds: list[str] = field(default_factory=lambda: ["sphere", "box", "cylinder"])
    textures: list[str] = field(default_factory=lambda: list(worlds.TEXTURES))
    skies: list[str] = field(default_factory=lambda: list(worlds.SKIES))

    def head_sizes(self) -> dict[str, int]:
        nc = len(self.colors)
        return {"objects": nc * len(self.kinds), "colors": nc, "kinds": len(self.kinds), "floor_color": nc,
                "floor_texture": len(self.textures), "sky": len(self.skies), "walls": 2}


def world_targets(world: worlds.World, config: JudgeConfig) -> dict[str, Tensor]:
    """Image-level labels from the generator's own (``World.describe()``): multi-hot ``objects`` ((colour,
    shape) pairs, by an object's main colour), ``colors``, ``kinds``; class indices ``floor_color``,
    ``floor_texture``, ``sky``, ``walls`` (0 none, 1 walls)."""
    d = world.describe()
    nk = len(config.kinds)
    out = {k: torch.zeros(n) for k, n in config.head_sizes().items() if k in MULTI_HEADS}
    for o in d["objects"]:
        ci, ki = config.colors.index(o["color"]), config.kinds.index(o["kind"])
        out["objects"][ci * nk + ki] = 1
        out["colors"][ci] = 1
        out["kinds"][ki] = 1
    floor = d["floor"] or {"color": config.colors[0], "texture": config.textures[0]}
    out["floor_color"] = torch.tensor(config.colors.index(floor["color"]))
    out["floor_texture"] = torch.tensor(config.textures.index(floor["texture"]))
    out["sky"] = torch.tensor(config.skies.index(d["sky"]))
    out["walls"] = torch.tensor(int(d["walls"] is not None))
    return out


def label_maps(world: worlds.World, surface: Tensor, config: JudgeConfig) -> Tensor:
    """Per-cell labels ``(B, 2, map_h, map_w)`` uint8 from a render's ``surface (B, 1, H, W)``: the shape
    (0 no object, 1 + index in ``config.kinds``) and the main colour (index, or :data:`IGNORE`) of the
    object at each cell's centre pixel."""
    b, _, h, w = surface.shape
    sy, sx = h // config.map_height, w // config.map_width
    centre = surface[:, 0, sy // 2::sy, sx // 2::sx][:, :config.map_height, :config.map_width]
    first = len(world.planes)
    kind = torch.zeros(len(world.surfaces) + 1, dtype=torch.uint8)  # index: surface id + 1 (sky = -1)
    color = torch.full((len(world.surfaces) + 1,), IGNORE, dtype=torch.uint8)
    for i, o in enumerate(world.objects):
        kind[first + i + 1] = 1 + config.kinds.index(o.kind)
        color[first + i + 1] = config.colors.index(o.material.color)
    idx = (centre + 1).long().cpu()
    return torch.stack([kind[idx], color[idx]], 1).to(surface.device)


class LabelJudge(Pretrained):
    """A small convolutional judge of images ``(B, 3, H, W)`` in [0, 1] (resized to 4× its label map).

    Dense heads: per cell of a ``map_height × map_width`` grid, the shape of the object seen there (or none)
    and its colour; image heads: floor colour and pattern, sky, walls. Dense supervision (every cell of every
    training render is labelled, from the renderer's surface ids) learns from a few thousand images what a
    per-image presence classifier cannot. :meth:`presence` turns the maps into the caption-level
    multi-hot labels: a (colour, shape) is present when at least ``min_cells`` cells show it."""

    config_class = JudgeConfig
    model_type = "lyra3d-label-judge"

    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = config
        c = config.base_channels

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(8, cout), nn.SiLU())

        self.down = nn.ModuleList([
            nn.Sequential(conv(3, c), conv(c, c, 2), conv(c, c)),  # 1/2 of the input
            nn.Sequential(conv(c, 2 * c, 2), conv(2 * c, 2 * c)),  # 1/4: the map
            nn.Sequential(conv(2 * c, 4 * c, 2), conv(4 * c, 4 * c)),  # 1/8
            nn.Sequential(conv(4 * c, 4 * c, 2), conv(4 * c, 4 * c)),  # 1/16
        ])
        self.lateral = nn.ModuleList([nn.Conv2d(4 * c, 4 * c, 1), nn.Conv2d(2 * c, 4 * c, 1)])
        self.fuse = nn.ModuleList([conv(4 * c, 4 * c), conv(4 * c, 4 * c)])
        self.kind_head = nn.Conv2d(4 * c, 1 + len(config.kinds), 1)
        self.color_head = nn.Conv2d(4 * c, len(config.colors), 1)
        sizes = config.head_sizes()
        self.image_heads = nn.ModuleDict({k: nn.Linear(8 * c, sizes[k]) for k in SINGLE_HEADS})

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Logits: ``kind_map (B, 1 + kinds, h, w)``, ``color_map (B, colors, h, w)`` and one per image head."""
        cfg = self.config
        x = F.interpolate(images * 2 - 1, size=(4 * cfg.map_height, 4 * cfg.map_width), mode="area")
        feats = []
        for stage in self.down:
            x = stage(x)
            feats.append(x)
        pooled = torch.cat([feats[3].mean((2, 3)), feats[3].amax((2, 3))], 1)
        y = feats[3]
        for lateral, fuse, skip in zip(self.lateral, self.fuse, (feats[2], feats[1])):
            y = fuse(lateral(skip) + F.interpolate(y, size=skip.shape[-2:], mode="nearest"))
        out = {"kind_map": self.kind_head(y).float(), "color_map": self.color_head(y).float()}
        out.update({k: head(pooled).float() for k, head in self.image_heads.items()})
        return out

    def presence(self, logits: dict[str, Tensor]) -> dict[str, Tensor]:
        """Caption-level multi-hot ``objects``, ``colors``, ``kinds`` (float 0/1) from the dense logits."""
        nk, nc = len(self.config.kinds), len(self.config.colors)
        kind = logits["kind_map"].argmax(1)  # (B, h, w), 0 = no object
        color = logits["color_map"].argmax(1)
        pair = torch.where(kind > 0, color * nk + kind - 1, nc * nk)  # nc*nk = "nothing"
        counts = F.one_hot(pair.flatten(1), nc * nk + 1).sum(1)[:, :-1]  # (B, nc*nk)
        objects = (counts >= self.config.min_cells).float()
        grid = objects.reshape(-1, nc, nk)
        return {"objects": objects, "colors": grid.amax(2), "kinds": grid.amax(1)}


def judge_loss(logits: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of the shape map (every cell), the colour map (object cells) and the image heads."""
    maps = targets["maps"].long()
    loss = F.cross_entropy(logits["kind_map"], maps[:, 0])
    if bool((maps[:, 1] != IGNORE).any()):
        loss = loss + F.cross_entropy(logits["color_map"], maps[:, 1], ignore_index=IGNORE)
    return loss + sum(F.cross_entropy(logits[k], targets[k].long()) for k in SINGLE_HEADS)


def judge_scores(pred: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, float]:
    """Micro precision/recall/F1 of the presence labels (``pred`` from :func:`judge_predict`: 0/1 for
    ``objects``, ``colors``, ``kinds``; class indices for the rest) and accuracy of the single labels."""
    out = {}
    for k in MULTI_HEADS:
        p, t = pred[k] > 0.5, targets[k] > 0.5
        tp, fp, fn = (p & t).sum().item(), (p & ~t).sum().item(), (~p & t).sum().item()
        out[f"{k}_precision"] = tp / max(tp + fp, 1)
        out[f"{k}_recall"] = tp / max(tp + fn, 1)
        out[f"{k}_f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    for k in SINGLE_HEADS:
        out[f"{k}_acc"] = (pred[k].long() == targets[k].long()).float().mean().item()
    return out


@torch.no_grad()
def judge_predict(judge: LabelJudge, images: Tensor, batch: int = 64) -> dict[str, Tensor]:
    """The judge's verdicts on ``images`` (float in [0, 1] or uint8), on the CPU: presence (0/1) of
    ``objects``, ``colors``, ``kinds``, and the class index of every single-label head."""
    dev = next(judge.parameters()).device
    parts = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(dev)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = judge(x)
        verdict = judge.presence(logits)
        verdict.update({k: logits[k].argmax(1) for k in SINGLE_HEADS})
        parts.append({k: v.cpu() for k, v in verdict.items()})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _subset(targets: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    return {k: v[idx.to(v.device)] for k, v in targets.items()}


def _stack_targets(rows: list[dict[str, Tensor]], device) -> dict[str, Tensor]:
    return {k: torch.stack([r[k] for r in rows]).to(device) for k in rows[0]}


def train_judge(images: list[Tensor], targets: dict[str, Tensor], config,
                device: torch.device, generator: torch.Generator, log=print) -> LabelJudge:
    """Train the judge on ``images`` (a list of uint8 tensors sharing one row order with ``targets``: the
    ground-truth renders and their tokenizer reconstructions, taken in turn batch by batch). ``config``: the
    text-to-image run's settings (:class:`~lyra3d.train.text_to_image.TextToImageTrainConfig`: size, judge_*)."""
    jc = JudgeConfig(map_height=config.height // 8, map_width=config.width // 8, base_channels=config.judge_channels)
    judge = LabelJudge(jc).to(device).train()
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
    n, amp = len(images[0]), device.type == "cuda"
    t0, step = time.time(), 0
    while step < config.judge_steps and (time.time() - t0 < config.judge_time_s or step == 0):
        progress = max(step / config.judge_steps, (time.time() - t0) / config.judge_time_s)
        for g in opt.param_groups:
            g["lr"] = 2e-3 * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        idx = torch.randint(0, n, (config.judge_batch,), generator=generator, device=generator.device).to(device)
        source = images[step % len(images)]
        x = source[idx.to(source.device)].to(device).float() / 255
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = judge_loss(judge(x), _subset(targets, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            log({"judge_step": step, "judge_loss": round(loss.item(), 4), "s": round(time.time() - t0, 1)})
    log({"judge_steps": step, "judge_s": round(time.time() - t0, 1), "judge_loss": round(loss.item(), 4)})
    return judge.eval()
