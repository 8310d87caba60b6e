"""Train the text-to-image model on procedural-world captions and renders (``lyra3d train text-to-image
--tokenizer DIR --out runs/t2i``, or :func:`train`), then measure how well it follows prompts it never saw.

Data, built once on the training device at the start: every training world (seeds < 1,000,000) is rendered
at the default camera and at ``views`` nearby cameras turned left or right by up to ``yaw_deg`` degrees (a
pure turn keeps the caption's left-to-right order; a view is kept only if every object keeps at least half
of its pixels, so the caption stays true), and, with ``mirror``, every image is also flipped left-right and
paired with the caption of the mirrored world (``mirror_world``: the generator writes that caption itself,
so swapped left/right order and everything else stay correct). Images are encoded by the tokenizer (an
image is a one-frame video). The model learns the latents from the caption by rectified flow (text dropped
10 % of the time for classifier-free guidance). Evaluation during training: flow loss on held-out worlds
(seeds >= 1,000,000), with the caption and without (the gap is what the text is worth).

Prompt following (:func:`evaluate_prompts`), at the end of training: images are generated for the captions
of held-out worlds and judged by :class:`LabelJudge`, a small CNN trained here on the training worlds'
ground-truth renders and their tokenizer reconstructions. Its targets are the world generator's own labels:
per 8×8-pixel cell, the shape and main colour of the object seen there (from the renderer's surface ids and
``World.labels``), and per image the floor colour and pattern, the sky and whether there are walls. A
(colour, shape) object counts as present in an image when the judge sees it in at least ``min_cells``
cells; the caption's labels (``World.describe()``) are what it is compared with. Why a trained judge: a
generated image has no ground truth of its own, so something has to look at it; dense per-cell targets make
a judge that learns from a few thousand renders (an image-level presence classifier, tried first,
memorised them and stayed at chance on held-out worlds), and its own error is measured: it is first scored
on held-out ground-truth renders (its ceiling: a generated image cannot do better than a true render of
the caption) and on their tokenizer reconstructions (the ceiling for anything the tokenizer decodes), then
on the generated images. Chance level: the judge's verdicts on held-out renders scored against another
world's caption (what a model that ignores the prompt would score), and the majority class of the
single-label heads. Presence labels (``objects`` = (colour, shape) pairs, ``colors``, ``kinds``) are scored
by micro precision, recall (the share of the caption's objects that the judge finds) and F1; the others by
accuracy.

Writes ``OUT/model`` (the text-to-image model), ``OUT/judge``, ``OUT/prompt_eval.json``,
``OUT/prompt_samples.png`` (ground truth above, generated below, for the first prompts) and
``OUT/prompt_samples.json`` (their captions), besides ``OUT/train_log.jsonl`` and ``OUT/trainer.pt``.
``--eval-only 1`` re-runs the prompt evaluation of a finished run (its model and judge).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.device import check_device
from lyra3d.data import worlds
from lyra3d.data.worlds.captions import caption_vocabulary
from lyra3d.errors import InputError
from lyra3d.models.modeling import Pretrained
from lyra3d.models.text_to_image import (
    TextToImageConfig,
    TextToImageModel,
    WordTokenizer,
    flow_loss,
)
from lyra3d.models.tokenizer import (
    Tokenizer,
    TokenizerConfig,
    VideoTokenizer,
    load_tokenizer,
)
from lyra3d.train.common import (
    Run,
    RunConfig,
    make_worlds,
    optimizer_step,
    train_loop,
)


@dataclass
class TextToImageTrainConfig(RunConfig):
    out: str = "runs/t2i"
    tokenizer: str = ""  # folder of a trained tokenizer (required, except for --tiny)
    steps: int = 100000
    batch_size: int = 128  # images per step
    lr: float = 4e-4
    weight_decay: float = 0.0
    warmup: int = 500
    num_worlds: int = 1500
    eval_worlds: int = 256  # held-out worlds: flow loss and the prompt evaluation
    eval_every: int = 1000
    save_every: int = 1000
    views: int = 2  # nearby (turned) cameras per world, besides the default one
    yaw_deg: float = 6.0  # largest turn of a nearby camera, in degrees
    mirror: int = 1  # 1: also train on every image flipped left-right, with its mirrored world's caption
    drop_prob: float = 0.1  # share of samples without their caption (classifier-free guidance)
    dim: int = 256  # the model's width
    depth: int = 8  # the model's transformer blocks
    heads: int = 4  # the model's attention heads
    text_dim: int = 128  # the text encoder's width
    text_depth: int = 2  # the text encoder's transformer blocks
    judge_steps: int = 3000  # training steps of the judge (at most)
    judge_time_s: float = 30.0  # training-time budget of the judge
    judge_batch: int = 128  # images per judge step
    judge_channels: int = 32  # the judge CNN's base channels
    sample_steps: int = 8  # sampler steps of the prompt evaluation
    guidance: str = "1.5,3,5"  # the prompt evaluation runs once per guidance scale
    eval_only: int = 0  # 1: only the prompt evaluation of the run in --out (needs OUT/model and OUT/judge)

    @classmethod
    def tiny(cls, out: str) -> "TextToImageTrainConfig":
        return cls(out=out, steps=30, batch_size=4, lr=2e-3, warmup=3, width=64, height=32, num_worlds=3,
                   eval_worlds=2, eval_every=30, save_every=15, views=1, dim=32, depth=1, heads=2, text_dim=16,
                   text_depth=1, judge_steps=5, judge_batch=4, judge_channels=8, sample_steps=2, guidance="3")

    def model_config(self, latent_shape: tuple[int, int, int], mean: list[float], std: list[float]
                     ) -> TextToImageConfig:
        c, h, w = latent_shape
        return TextToImageConfig(vocab=caption_vocabulary(), text_dim=self.text_dim, text_depth=self.text_depth, latent_channels=c,
                                 latent_height=h, latent_width=w, dim=self.dim, depth=self.depth, heads=self.heads,
                                 latent_mean=mean, latent_std=std)


# -- data --------------------------------------------------------------------------------------------------
def mirror_world(world: worlds.World) -> worlds.World:
    """The world reflected in the plane x = 0 (the default camera's vertical midplane): its render from
    the default camera is the original's flipped left-right (up to the phase of procedural patterns), and
    its caption and labels are the generator's own for that mirrored content."""
    def motion(m: worlds.Motion) -> worlds.Motion:
        return replace(m, velocity=(-m.velocity[0], m.velocity[1], m.velocity[2]),
                       pivot=(-m.pivot[0], m.pivot[1]), angular_speed=-m.angular_speed)

    objects = tuple(replace(o, center=(-o.center[0], o.center[1], o.center[2]), yaw=-o.yaw, motion=motion(o.motion))
                    for o in world.objects)
    planes = []
    for p in world.planes:
        bx = (-p.bounds[0][1], -p.bounds[0][0])
        planes.append(replace(p, offset=-p.offset if p.axis == 0 else p.offset, bounds=(bx, *p.bounds[1:]),
                              origin=(-p.origin[0], p.origin[1], p.origin[2])))
    d = world.light.direction
    light = replace(world.light, direction=(-d[0], d[1], d[2]))
    return replace(world, objects=objects, planes=tuple(planes), light=light)


def turned_cameras(yaws_deg: Tensor, width: int, height: int) -> Cameras:
    """Default cameras turned about their vertical axis by ``yaws_deg (N,)`` degrees (centre fixed)."""
    a = torch.deg2rad(yaws_deg.float())
    w2c = torch.eye(4).repeat(len(a), 1, 1)
    w2c[:, 0, 0], w2c[:, 0, 2], w2c[:, 2, 0], w2c[:, 2, 2] = a.cos(), a.sin(), -a.sin(), a.cos()
    k = default_camera(width, height).intrinsics.expand(len(a), 4)
    return Cameras(w2c, k, width, height)


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


def train_judge(images: list[Tensor], targets: dict[str, Tensor], config: TextToImageTrainConfig,
                device: torch.device, generator: torch.Generator, log=print) -> LabelJudge:
    """Train the judge on ``images`` (a list of uint8 tensors sharing one row order with ``targets``: the
    ground-truth renders and their tokenizer reconstructions, taken in turn batch by batch)."""
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


# -- data building -----------------------------------------------------------------------------------------
def build_data(seeds: list[int], tokenizer: Tokenizer, config: TextToImageTrainConfig, device: torch.device,
               generator: torch.Generator | None, augment: bool, judge_config: JudgeConfig | None = None
               ) -> dict:
    """Renders (uint8), tokenizer latents ``(N, C, h, w)`` (float16), captions and judge targets of the
    worlds of ``seeds``; with ``augment``, turned views and mirrored copies too (see the module doc)."""
    w, h = config.width, config.height
    jc = judge_config or JudgeConfig(map_height=h // 8, map_width=w // 8)
    images, maps, captions, targets, seed_of = [], [], [], [], []
    threshold = 0.5
    for world in make_worlds(seeds):
        yaws = [0.0]
        if augment and config.views > 0:
            yaws += ((torch.rand(config.views, generator=generator) * 2 - 1) * config.yaw_deg).tolist()
        r = worlds.render(world, turned_cameras(torch.tensor(yaws), w, h).to(device))
        first, n_obj = len(world.planes), len(world.objects)
        counts = torch.stack([(r.surface == first + i).flatten(1).sum(1) for i in range(n_obj)], 1) \
            if n_obj else torch.zeros(len(yaws), 0, device=device)
        keep = [0] + [v for v in range(1, len(yaws)) if bool((counts[v] >= threshold * counts[0]).all())]
        rgb = (r.rgb[keep] * 255 + 0.5).to(torch.uint8)
        cells = label_maps(world, r.surface[keep], jc)
        variants = [(rgb, cells, world)]
        if augment and config.mirror:  # the mirrored world keeps its objects' order, shapes and colours
            variants.append((rgb.flip(-1), cells.flip(-1), mirror_world(world)))
        for imgs, cell, wd in variants:
            images.append(imgs)
            maps.append(cell)
            captions += [wd.caption] * len(imgs)
            targets += [world_targets(wd, jc)] * len(imgs)
            seed_of += [world.seed] * len(imgs)
    images_t = torch.cat(images)
    latents = []
    with torch.no_grad():
        for i in range(0, len(images_t), 64):
            x = images_t[i:i + 64].float()[:, None] / 255
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                latents.append(tokenizer.encode(x)[:, 0].float().half())
    targets_t = _stack_targets(targets, device)
    targets_t["maps"] = torch.cat(maps)
    return {"images": images_t, "latents": torch.cat(latents), "captions": captions, "targets": targets_t,
            "seeds": seed_of}


@torch.no_grad()
def reconstruct(tokenizer: Tokenizer, latents: Tensor, batch: int = 64) -> Tensor:
    """Tokenizer decodes of ``latents (N, C, h, w)`` as uint8 images."""
    out = []
    for i in range(0, len(latents), batch):
        lat = latents[i:i + batch].float()[:, None]
        with torch.autocast(lat.device.type, dtype=torch.bfloat16, enabled=lat.device.type == "cuda"):
            img = tokenizer.decode(lat)[:, 0].float()
        out.append((img.clamp(0, 1) * 255 + 0.5).to(torch.uint8))
    return torch.cat(out)


def latent_statistics(latents: Tensor) -> tuple[list[float], list[float]]:
    x = latents.float().transpose(0, 1).reshape(latents.shape[1], -1)
    return [round(v, 5) for v in x.mean(1).tolist()], [round(max(v, 1e-3), 5) for v in x.std(1).tolist()]


def tokenize_all(words: WordTokenizer, captions: list[str], device) -> tuple[Tensor, Tensor]:
    ids, mask = words.batch(captions)
    return ids.to(device), mask.to(device)


# -- prompt following --------------------------------------------------------------------------------------
@torch.no_grad()
def generate_images(model: TextToImageModel, tokenizer: Tokenizer, prompts: list[str], steps: int, guidance: float,
                    seed: int = 0, batch: int = 64) -> Tensor:
    """Images (uint8, on the CPU) for ``prompts``, ``batch`` at a time; batch ``i`` uses seed ``seed + i``."""
    dev = model.device
    out = []
    for j, i in enumerate(range(0, len(prompts), batch)):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            img = model.generate(prompts[i:i + batch], tokenizer, steps=steps, guidance=guidance, seed=seed + j)
        out.append((img.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
    return torch.cat(out)


def evaluate_prompts(model: TextToImageModel, tokenizer: Tokenizer, judge: LabelJudge, captions: list[str],
                     targets: dict[str, Tensor], gt_images: Tensor | None = None, recon_images: Tensor | None = None,
                     steps: int = 8, guidances: tuple[float, ...] = (3.0,), seed: int = 0
                     ) -> tuple[dict, dict[float, Tensor]]:
    """Prompt following on held-out captions, judged by ``judge`` (see the module doc).

    Returns ``(report, images)``: the report holds, per source, the judge's scores against the captions'
    labels: ``ground_truth`` renders and ``reconstructed`` ones (ceilings), ``generated@g`` per guidance
    ``g``, ``chance_other_caption`` (ground-truth renders against another world's labels) and
    ``majority`` (the most frequent class of each single-label head); ``images`` maps guidance → the
    generated images (uint8)."""
    targets = {k: v.cpu() for k, v in targets.items() if k != "maps"}
    n = len(captions)
    other = {k: v.roll(1, 0) for k, v in targets.items()}
    report: dict = {"prompts": n, "sample_steps": steps}
    if gt_images is not None:
        gt_pred = judge_predict(judge, gt_images)
        report["ground_truth"] = judge_scores(gt_pred, targets)
        report["chance_other_caption"] = judge_scores(gt_pred, other)
    if recon_images is not None:
        report["reconstructed"] = judge_scores(judge_predict(judge, recon_images), targets)
    report["majority"] = {f"{k}_acc": targets[k].long().bincount().max().item() / n for k in SINGLE_HEADS}
    images = {}
    for g in guidances:
        t0 = time.time()
        images[g] = generate_images(model, tokenizer, captions, steps, g, seed)
        scores = judge_scores(judge_predict(judge, images[g]), targets)
        scores["sampling_s_per_image"] = (time.time() - t0) / n
        report[f"generated@{g:g}"] = scores
    return report, images


def save_samples(out: Path, captions: list[str], gt: Tensor, generated: Tensor, count: int = 8) -> None:
    """``out/prompt_samples.png``: ground truth (top) and generated (bottom) for the first ``count`` prompts,
    two rows of pairs per line; ``out/prompt_samples.json``: their captions."""
    import imageio.v3 as iio

    count = min(count, len(captions))
    pairs = [torch.cat([gt[i], generated[i]], 1) for i in range(count)]  # (3, 2H, W)
    cols = 4
    rows = []
    for r in range(0, count, cols):
        row = pairs[r:r + cols] + [torch.zeros_like(pairs[0])] * (cols - len(pairs[r:r + cols]))
        rows.append(torch.cat(row, 2))
    grid = torch.cat(rows, 1).permute(1, 2, 0).contiguous().numpy()
    iio.imwrite(out / "prompt_samples.png", grid)
    (out / "prompt_samples.json").write_text(json.dumps(captions[:count], indent=1) + "\n")


# -- training ------------------------------------------------------------------------------------------------
def _tokenizer(config: TextToImageTrainConfig, device: torch.device) -> Tokenizer:
    if config.tokenizer:
        return load_tokenizer(config.tokenizer, device)
    if config.steps <= 100:  # smoke runs only: an untrained tokenizer
        torch.manual_seed(0)
        return VideoTokenizer(TokenizerConfig(base_channels=8)).to(device).eval()
    raise InputError("--tokenizer DIR is required: train one first with `lyra3d train tokenizer`")


def _guidances(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(g) for g in text.split(",") if g.strip())
    except ValueError:
        raise InputError(f"--guidance takes comma-separated numbers, got {text!r}") from None


def prompt_evaluation(model: TextToImageModel, tokenizer: Tokenizer, judge: LabelJudge, eval_data: dict,
                      config: TextToImageTrainConfig, log=print) -> dict:
    """Run :func:`evaluate_prompts` on the held-out worlds and write the report and sample grid."""
    out = Path(config.out)
    recon = reconstruct(tokenizer, eval_data["latents"])
    gs = _guidances(config.guidance)
    report, images = evaluate_prompts(model, tokenizer, judge, eval_data["captions"], eval_data["targets"],
                                      eval_data["images"], recon, config.sample_steps, gs)
    report["judge"] = ("LabelJudge: a small CNN trained on the training worlds' ground-truth renders and their "
                       "tokenizer reconstructions to map, per 8x8-pixel cell, the shape and colour of the object "
                       "there (from the renderer's surface ids), plus floor colour/pattern, sky and walls; an "
                       f"object (colour, shape) is present when it covers >= {judge.config.min_cells} cells")
    report["eval_seeds"] = [eval_data["seeds"][0], eval_data["seeds"][-1]]
    (out / "prompt_eval.json").write_text(json.dumps(report, indent=1) + "\n")
    save_samples(out, eval_data["captions"], eval_data["images"].cpu(), images[gs[len(gs) // 2]])
    summary = {k: {m: round(v, 3) for m, v in s.items() if m in ("objects_f1", "colors_f1", "kinds_f1",
                                                                "floor_color_acc", "sky_acc")}
               for k, s in report.items() if isinstance(s, dict)}
    log({"prompt_eval": summary})
    return report


def train(config: TextToImageTrainConfig) -> dict[str, float]:
    """Train (or resume), then train the judge and evaluate prompt following; returns the last flow-loss
    evaluation merged with the headline prompt-following numbers."""
    device = check_device(config.device)
    start_wall = time.time()
    tokenizer = _tokenizer(config, device)
    out = Path(config.out)
    gen = torch.Generator().manual_seed(777)
    if config.eval_only:
        model = TextToImageModel.from_pretrained(out / "model", device)
        judge = LabelJudge.from_pretrained(out / "judge", device)
        eval_data = build_data(worlds.eval_seeds(config.eval_worlds), tokenizer, config, device, None, False,
                               judge.config)
        return prompt_evaluation(model, tokenizer, judge, eval_data, config)

    data = build_data(worlds.train_seeds(config.num_worlds), tokenizer, config, device, gen, True)
    eval_data = build_data(worlds.eval_seeds(config.eval_worlds), tokenizer, config, device, None, False)
    mean, std = latent_statistics(data["latents"])
    model_config = config.model_config(tuple(data["latents"].shape[1:]), mean, std)
    torch.manual_seed(0)  # the initial weights
    run = Run(config.out, TextToImageModel(model_config).to(device), config.lr, config.weight_decay, config.warmup,
              config.steps, config.train_time_s)
    resumed = run.resume(device)
    model = run.model.train()
    run.log({"config": dataclasses.asdict(config), "device": str(device),
             "parameters": sum(p.numel() for p in model.parameters()),
             "text_encoder_parameters": sum(p.numel() for p in model.text.parameters())})
    run.log({"train_images": len(data["captions"]), "train_worlds": config.num_worlds,
             "eval_images": len(eval_data["captions"]), "latent_shape": list(data["latents"].shape[1:]),
             "data_s": round(time.time() - start_wall, 1)})
    ids, mask = tokenize_all(model.words, data["captions"], device)
    eval_ids, eval_mask = tokenize_all(model.words, eval_data["captions"], device)
    x_all, x_eval = model.normalize(data["latents"].float()).half(), model.normalize(eval_data["latents"].float())
    amp = device.type == "cuda"
    gen = torch.Generator(device).manual_seed(777 + run.step)  # on the device: no host-side noise per step

    def step_fn():
        idx = torch.randint(0, len(x_all), (config.batch_size,), generator=gen, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = flow_loss(model, x_all[idx].float(), ids[idx], mask[idx], config.drop_prob, gen)
        return optimizer_step(run, loss, config.grad_clip)

    def eval_fn():
        g, n, b = torch.Generator(device).manual_seed(0), len(x_eval), config.batch_size
        sums = {"flow_loss": 0.0, "flow_loss_uncond": 0.0}
        for i in range(0, n, b):
            sl = slice(i, min(i + b, n))
            state = g.get_state()
            for key, p in (("flow_loss", 0.0), ("flow_loss_uncond", 1.0)):
                g.set_state(state)  # same noise and times for both
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = flow_loss(model, x_eval[sl], eval_ids[sl], eval_mask[sl], p, g)
                sums[key] += loss.item() * (sl.stop - sl.start)
        return {k: v / n for k, v in sums.items()}

    if not resumed:
        model.eval()
        with torch.no_grad():
            run.log({"step": 0, "eval": {k: round(v, 5) for k, v in eval_fn().items()}})
        model.train()
    metrics = train_loop(run, config, step_fn, eval_fn, start_wall)
    model = run.model.eval()

    judge_data = [data["images"], reconstruct(tokenizer, data["latents"])]
    judge = train_judge(judge_data, data["targets"], config, device, gen, run.log)
    judge.save_pretrained(out / "judge")
    del judge_data
    report = prompt_evaluation(model, tokenizer, judge, eval_data, config, run.log)
    g = _guidances(config.guidance)
    best = report[f"generated@{g[len(g) // 2]:g}"]
    return {**metrics, "objects_f1": best["objects_f1"], "colors_f1": best["colors_f1"],
            "judge_objects_f1": report["ground_truth"]["objects_f1"]}
