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
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.device import check_device
from lyra3d.data import worlds
from lyra3d.data.worlds.captions import caption_vocabulary
from lyra3d.errors import InputError
from lyra3d.models.text_to_image import TextToImageConfig, TextToImageModel, WordTokenizer, flow_loss
from lyra3d.models.tokenizer import Tokenizer, TokenizerConfig, VideoTokenizer, load_tokenizer
from lyra3d.train.common import Run, RunConfig, make_worlds, optimizer_step, train_loop
from lyra3d.train.prompt_judge import (
    SINGLE_HEADS,
    JudgeConfig,
    LabelJudge,
    _stack_targets,
    judge_predict,
    judge_scores,
    label_maps,
    train_judge,
    world_targets,
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
