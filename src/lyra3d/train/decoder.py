"""Train the 3DGS decoder by self-distillation (``lyra3d train decoder``, or :func:`train`).

Data: an SDG folder (``lyra3d sdg``), or several (``--data A,B``: e.g. teacher runs of 17 and of 9 frames per
trajectory; or procedural worlds and photos, issue 21): the teacher's latents, decoded frames, their estimated
depth, the cameras. Nothing else: no world's ground truth is read. ``--data-weights 1,1`` draws each step's
folder by those shares (default: every sample alike, so a large folder dominates); validation then also
reports each folder's own PSNR (``val_psnr_vs_teacher_<i>``, ``i`` its place in ``--data``). Each step takes
one sample per process, decodes Gaussians from the latents of its input trajectories, renders them at
``render_frames`` random frames of those trajectories (``--backend``: gsplat on CUDA where installed, else the
torch rasterizer) and compares with the teacher's frames:

    loss = MSE + ssim_weight·(1 − SSIM) + depth_weight·(scale-and-shift-invariant depth L1 vs the estimated
           depth, sky excluded) + opacity_weight·mean opacity (final pruning stage only)

The decoder reads the latents' shape (channels, spatial and temporal factor;
:meth:`~lyra3d.models.configs.DecoderConfig.for_latents`): ``--tokenizer DIR``'s (any tokenizer folder, e.g. a
diffusers video VAE, read from its config.json), else the one the SDG folder records (``sdg.json``), else the one
its latents and frames show; a tokenizer or record that disagrees with the latents is refused before training.

Curriculum (Lyra's, shortened): the first ``few_views_until`` of training sees ``few_views`` random
trajectories, then all of them; the last ``prune_from`` share adds the opacity term. Ablations: ``views=1``
(a single trajectory throughout), ``depth_weight=0``. bf16 autocast on CUDA, AdamW with warm-up and cosine,
gradient clipping, resumable. ``torchrun --nproc_per_node N -m lyra3d train decoder ...`` (or ``accelerate
launch --num_processes N -m lyra3d train decoder ...``) runs data-parallel on N GPUs (or CPU processes with
gloo); the same command runs on one device without it.

``--dynamic 1`` trains the time-conditioned :class:`~lyra3d.models.decoder4d.GaussianDecoder4D` on dynamic SDG
(``lyra3d sdg --clips N``, docs/design.md §4 "Dynamic"): each step picks a clip sample and a frame index ``f``;
the decoder reads the chosen trajectories' latents with their frame times and the target time
``times[f]``, and the same loss compares its render at the cameras of frame ``f`` of those trajectories
with the teacher's frames there (which show the scene at that time), and, where the sample holds its input
video (``input.npy``), its render at the input camera of frame ``f`` with input frame ``f``, weighted
``input_weight`` (no trajectory passes the input camera after time 0: without this term the input view is
only seen at the first time). ``--input-view 1`` makes the 4D decoder read the input video's own latents
as one more view (:class:`~lyra3d.models.decoder4d.Decoder4DConfig` ``input_view``; a model from ``--init-from``
that already does keeps doing so): its Gaussians join the render; clip SDG written before the input
latents were stored (``input_latents``) is refused. ``--static-data DIR`` (an image SDG
folder) adds static steps (a ``static_share`` of them: frame times and target time 0, ``render_frames``
random frames), so the decoder keeps decoding still scenes. ``--init-from`` takes a static decoder folder
(the 4D decoder starts as it, :meth:`~lyra3d.models.decoder4d.GaussianDecoder4D.from_static`) or a 4D one; the
model's config then comes from that folder. ``--gaussian-stride 2`` with ``--init-from`` fine-tunes that decoder at a
finer stride (:meth:`~lyra3d.models.decoder.GaussianDecoder.with_stride`). Validation: PSNR vs the teacher frames at frames ``0``,
``T/2`` and ``T − 1`` (target time = their time) of the held-out clip samples.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lyra3d.core.cameras import Cameras, plucker_rays
from lyra3d.core.device import check_device
from lyra3d.core.metrics import psnr, ssim
from lyra3d.core.render import rasterize
from lyra3d.data.sdg import load_sample, sample_dirs, sdg_latent_shape
from lyra3d.errors import InputError
from lyra3d.models.decoder import DecoderConfig, GaussianDecoder
from lyra3d.models.decoder4d import Decoder4DConfig, GaussianDecoder4D, append_input_view
from lyra3d.models.diffusers_vae import LatentShape
from lyra3d.models.tokenizer import tokenizer_latent_shape
from lyra3d.train.common import Run, RunConfig, initial_model, train_loop


@dataclass
class DecoderTrainConfig(RunConfig):
    out: str = "runs/decoder"
    data: str = "runs/sdg"  # SDG folder, or several comma-separated (e.g. teacher runs of 17 and of 9 frames)
    steps: int = 20000
    batch_size: int = 1  # samples per process per step
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 300
    render_frames: int = 12  # frames rendered per step
    views: int = 0  # 0: all trajectories of a sample; 1: the single-trajectory ablation
    few_views: int = 2  # trajectories per step early in training (the curriculum)
    few_views_until: float = 0.2  # share of training with few_views, then all trajectories
    prune_from: float = 0.85  # share of training after which the opacity term is on (pruning)
    ssim_weight: float = 0.2  # weight of 1 - SSIM in the image loss
    depth_weight: float = 0.1  # weight of the depth loss vs the teacher frames' estimated depth
    opacity_weight: float = 0.01  # weight of the mean opacity, from prune_from on
    val_samples: int = 4  # the last samples of the SDG folder, held out for the validation PSNR
    dynamic: int = 0  # 1: a 4D decoder on dynamic (clip) SDG
    static_data: str = ""  # dynamic: an image SDG folder for the static steps
    static_share: float = 0.25  # dynamic: share of steps on a static sample (when static_data is given)
    input_weight: float = 0.5  # dynamic: weight of the input camera's loss vs the input frame at the target time
    input_view: int = 0  # dynamic: 1 = the decoder also reads the input video's latents as one more view
    gaussian_stride: int = 0  # 0: the model's; else the model at this stride (--init-from: GaussianDecoder.with_stride)
    data_weights: str = ""  # share of steps per --data folder, comma-separated (e.g. 1,1); empty: by sample count
    backend: str = "auto"  # rasterizer: auto (gsplat on CUDA where installed, else torch), gsplat or torch
    tokenizer: str = ""  # tokenizer folder (e.g. a diffusers video VAE) whose latents it reads; empty: the data's
    model: DecoderConfig = field(default_factory=DecoderConfig)

    @classmethod
    def tiny(cls, out: str) -> "DecoderTrainConfig":
        return cls(out=out, steps=6, warmup=2, render_frames=2, val_samples=1, eval_every=6, save_every=3,
                   model=DecoderConfig(dim=32, depth=2, heads=2, gaussian_stride=8))


def ssi_depth_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant L1 between depth maps ``(B, 1, H, W)``: per image, the least-squares scale
    and shift that best map ``pred`` onto ``target`` on ``mask``, then the mean absolute error relative to the
    target's median (so scenes of any scale weigh alike). Images with fewer than 16 masked pixels are skipped.
    Batched (closed-form 2×2 normal equations), no per-image loop."""
    m = mask.flatten(1).float()
    p, t = pred.flatten(1).float() * m, target.flatten(1).float() * m
    n = m.sum(1)
    sp, st, spp, spt = p.sum(1), t.sum(1), (p * p).sum(1), (p * t).sum(1)
    det = n * spp - sp * sp
    ok = (n >= 16) & (det.abs() > 1e-12 * n * n)
    det = torch.where(ok, det, torch.ones_like(det))
    scale = (n * spt - sp * st) / det
    shift = (st - scale * sp) / n.clamp_min(1)
    err = ((scale[:, None] * p + shift[:, None] - t).abs() * m).sum(1) / n.clamp_min(1)
    median = torch.nanmedian(torch.where(m > 0, target.flatten(1).float(), torch.nan), dim=1).values
    rel = err / torch.nan_to_num(median, nan=1.0).clamp_min(1e-3)
    return rel[ok].mean() if bool(ok.any()) else pred.sum() * 0


def data_folders(folders: str) -> list[str]:
    """The SDG folders of ``--data`` (comma-separated)."""
    return [f.strip() for f in folders.split(",") if f.strip()]


def folder_weights(weights: str, folders: list[str]) -> list[float] | None:
    """``--data-weights`` as one share per folder (normalised), or ``None`` (sample uniformly over all samples)."""
    if not weights.strip():
        return None
    try:
        w = [float(x) for x in weights.split(",")]
    except ValueError:
        w = []
    if len(w) != len(folders) or any(not x >= 0 for x in w) or sum(w) <= 0:
        raise InputError(f"--data-weights takes one non-negative number per --data folder ({len(folders)}), "
                         f"not all zero; got {weights!r}")
    return [x / sum(w) for x in w]


def split_data(folders: str, val_samples: int) -> tuple[list, list]:
    """Training and validation sample folders of the SDG folder(s) ``folders`` (comma-separated): the last
    ``val_samples`` of each folder are held out for validation."""
    train_dirs, val_dirs = [], []
    for folder in data_folders(folders):
        dirs = sample_dirs(folder)
        if len(dirs) <= val_samples:
            raise InputError(f"{folder} holds {len(dirs)} samples; need more than val_samples={val_samples}")
        train_dirs += dirs[:len(dirs) - val_samples]
        val_dirs += dirs[len(dirs) - val_samples:]
    if not train_dirs:
        raise InputError("no SDG folder given (--data DIR[,DIR...])")
    return train_dirs, val_dirs


def data_latent_shape(config: DecoderTrainConfig, dirs: list) -> LatentShape:
    """The latent shape the decoder must read: ``--tokenizer``'s (from its config.json), else what the SDG
    folders record (``sdg.json``), else what the first sample's latents and frames show; one-line errors
    (before any run starts) when these disagree."""
    folders = [f.strip() for f in (config.data + "," + config.static_data).split(",") if f.strip()]
    seen = sample_latent_shape(load_sample(dirs[0]))
    claims = [(f"--tokenizer {config.tokenizer} gives", tokenizer_latent_shape(config.tokenizer))] \
        if config.tokenizer else []
    claims += [(f"{f}/sdg.json records", shape) for f in folders if (shape := sdg_latent_shape(f)) is not None]
    for who, shape in claims:
        if (shape.latent_channels, shape.spatial_factor) != (seen.latent_channels, seen.spatial_factor) or \
                (seen.temporal_factor and shape.temporal_factor != seen.temporal_factor):
            raise InputError(f"{who} {shape.describe()}, but {dirs[0]} holds {seen.describe()}: pass the "
                             "--tokenizer that wrote the SDG, or write the SDG with this one (lyra3d sdg "
                             "--tokenizer DIR)")
    return claims[0][1] if claims else seen


def sample_latent_shape(sample) -> LatentShape:
    """The latent shape a sample's latents ``(V, T', C, h, w)`` and frames ``(V, T, 3, H, W)`` show."""
    (tl, c, h, _), (t, _, hh, _) = sample.latents.shape[1:], sample.frames.shape[1:]
    return LatentShape(int(c), hh // h, (t - 1) // (tl - 1) if tl > 1 else 0)  # 0: one latent frame shows no factor


def check_data_shape(data: list[dict], shape: LatentShape, folders: str) -> None:
    """Every sample's latents must have ``shape`` (channels, and ``H = s·h``, ``T = 1 + k(T' − 1)``)."""
    s, k = shape.spatial_factor, shape.temporal_factor
    for d in data:
        (tl, c, h, w), (t, _, hh, ww) = d["latents"].shape[1:], d["frames"].shape[1:]
        if c != shape.latent_channels or (hh, ww) != (s * h, s * w) or t != 1 + k * (tl - 1):
            raise InputError(f"{folders} holds latents {tuple(d['latents'].shape[1:])} of frames "
                             f"{tuple(d['frames'].shape[1:])}, not {shape.describe()}: pass the --tokenizer that "
                             "wrote them, or write the SDG again")


def load_data(dirs, device) -> list[dict]:
    """Samples in memory: latents, uint8 frames, float16 depth, camera tensors, frame times (``times (T,)``,
    zeros for an image's sample), ``dynamic`` (a video's sample), ``input``: a video sample's input frames
    (uint8) and cameras, or ``None``, and ``input_latents``: its input video's latents, or ``None``."""
    data = []
    for d in dirs:
        s = load_sample(d, uint8=True)
        v, t = s.frames.shape[:2]
        inp = None if s.input_frames is None else (s.input_frames.to(device), s.input_cameras.to(device))
        data.append({"latents": s.latents.to(device), "frames": s.frames.to(device),
                     "depth": s.depth.half().to(device), "w2c": s.cameras.world_to_camera.reshape(v, t, 4, 4).to(device),
                     "k": s.cameras.intrinsics.reshape(v, t, 4).to(device), "size": (s.cameras.width, s.cameras.height),
                     "times": s.times.to(device), "dynamic": "times" in s.meta, "input": inp,
                     "input_latents": None if s.input_latents is None else s.input_latents.to(device)})
    return data


def image_loss(rgb: torch.Tensor, target: torch.Tensor, config: DecoderTrainConfig) -> torch.Tensor:
    """MSE + ``ssim_weight``·(1 − SSIM) between renders and targets ``(B, 3, H, W)``."""
    return F.mse_loss(rgb, target) + config.ssim_weight * (1 - ssim(rgb, target).mean())


def sample_loss(model, decoder: GaussianDecoder, sample: dict, views: torch.Tensor, frames: torch.Tensor,
                config: DecoderTrainConfig, opacity_weight: float, backend: str,
                target_time: float | None = None, input_frame: int | None = None) -> tuple[torch.Tensor, dict]:
    """Loss of one sample with input trajectories ``views`` rendered at ``frames`` (indices into views × T).

    ``target_time``: a 4D decoder's (:class:`~lyra3d.models.decoder4d.GaussianDecoder4D`) target time in seconds; it
    also reads the sample's frame times (``sample["times"]``). ``None``: a static decoder. ``input_frame``:
    also render the input camera of that frame and compare with the input frame (``input_weight``; a
    sample holding its input video only). A 4D decoder with ``input_view`` also reads the sample's input
    video latents as the last view (a video sample; an image sample's static step has none)."""
    width, height = sample["size"]
    lat = sample["latents"][views]
    v, t = lat.shape[0], sample["frames"].shape[1]
    w2c, k = sample["w2c"][views].reshape(-1, 4, 4), sample["k"][views].reshape(-1, 4)
    cams = Cameras(w2c, k, width, height)
    all_cams, extra = cams, ()
    if target_time is not None:
        extra = (sample["times"][None].float(), torch.full((1,), float(target_time), device=lat.device))
        if getattr(decoder.config, "input_view", False) and sample.get("input_latents") is not None:
            lat, all_cams = append_input_view(lat, cams, sample["input_latents"], sample["input"][1])
            extra = extra + (True,)
    rays = plucker_rays(all_cams).reshape(1, lat.shape[0], t, 6, height, width)
    amp = lat.device.type == "cuda"
    with torch.autocast(lat.device.type, dtype=torch.bfloat16, enabled=amp):
        raw = model(lat[None], rays, *extra)[0]
    g = decoder.activate(raw.float().flatten(0, 1), all_cams)
    out = rasterize(g, cams[frames], backend=backend)
    target = sample["frames"][views].reshape(v * t, 3, height, width)[frames].float() / 255
    loss = image_loss(out.rgb, target, config)
    est = sample["depth"][views].reshape(v * t, 1, height, width)[frames].float()
    terms = {"psnr": float(psnr(out.rgb.detach(), target).mean())}
    if input_frame is not None and sample.get("input") is not None:
        video, in_cams = sample["input"]
        rgb = rasterize(g, in_cams[[input_frame]], backend=backend).rgb
        target_in = video[input_frame:input_frame + 1].float() / 255
        if config.input_weight > 0:
            loss = loss + config.input_weight * image_loss(rgb, target_in, config)
        terms["input_psnr"] = float(psnr(rgb.detach(), target_in).mean())
    if config.depth_weight > 0:
        sky = est >= 0.9 * est.amax(dim=(1, 2, 3), keepdim=True)
        d = ssi_depth_loss(out.depth, est, (~sky) & (out.alpha.detach() > 0.5))
        loss = loss + config.depth_weight * d
        terms["depth"] = float(d.detach())
    if opacity_weight > 0:
        loss = loss + opacity_weight * torch.sigmoid(g.opacities).mean()
    return loss, terms


def frame_picks(n_views: int, t: int, f: int) -> torch.Tensor:
    """Indices (into views × T) of frame ``f`` of each of ``n_views`` trajectories: the cameras of one time."""
    return torch.arange(n_views) * t + f


def train_backend(backend: str, device: torch.device) -> str:
    """The rasterizer of a run on ``device``: ``auto`` is gsplat on CUDA where it is installed, else torch."""
    from lyra3d.core.render import available_backends

    if backend not in ("auto", "gsplat", "torch"):
        raise InputError(f"--backend must be auto, gsplat or torch, got {backend!r}")
    if backend == "auto":
        return "gsplat" if "gsplat" in available_backends(device) else "torch"
    if backend == "gsplat" and "gsplat" not in available_backends(device):
        raise InputError("--backend gsplat needs CUDA and gsplat (pip install gsplat); use --backend torch")
    return backend


def initial_model_4d(config: DecoderTrainConfig, device: torch.device) -> GaussianDecoder4D:
    """A fresh 4D decoder of ``config.model``, or one from ``config.init_from``: a static decoder folder
    (:meth:`GaussianDecoder4D.from_static`) or a 4D folder. With a folder, its config replaces
    ``config.model`` (the static part)."""
    if not config.init_from:
        model_config = Decoder4DConfig(**dataclasses.asdict(config.model), input_view=bool(config.input_view))
        return GaussianDecoder4D(model_config).to(device)
    from pathlib import Path

    path = Path(config.init_from)
    try:
        kind = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, json.JSONDecodeError):
        raise InputError(f"--init-from {path} holds no model (config.json)") from None
    if kind == GaussianDecoder4D.model_type:
        model = GaussianDecoder4D.from_pretrained(path, device)
    else:
        model = GaussianDecoder4D.from_static(GaussianDecoder.from_pretrained(path, device))
    if config.input_view:  # a flag of the architecture, no new weights: the input view's embedding is unused so far
        model.config = dataclasses.replace(model.config, input_view=True)
    static = {f.name for f in dataclasses.fields(DecoderConfig)}
    config.model = DecoderConfig(**{k: v for k, v in dataclasses.asdict(model.config).items() if k in static})
    return model.train()


def train(config: DecoderTrainConfig) -> dict[str, float]:
    """Train (or resume) on ``config.data``; returns the last validation metrics."""
    from accelerate import Accelerator

    check_device(config.device)  # an unknown device or a missing GPU: one line (accelerate picks the device)
    acc = Accelerator(cpu=config.device == "cpu")
    device, main = acc.device, acc.is_main_process
    backend = train_backend(config.backend, device)
    train_dirs, val_dirs = split_data(config.data, config.val_samples)
    folders = data_folders(config.data)
    weights = folder_weights(config.data_weights, folders)
    folder_of = {str(d): i for i, f in enumerate(folders) for d in sample_dirs(f)}
    dynamic = bool(config.dynamic)
    if config.static_data and not dynamic:
        raise InputError("--static-data is for --dynamic 1 runs (static steps of a 4D decoder)")
    if config.gaussian_stride and not config.init_from:
        config.model = dataclasses.replace(config.model, gaussian_stride=config.gaussian_stride)
    shape = data_latent_shape(config, train_dirs)
    if not config.init_from:  # the decoder reads the tokenizer's latents: channels, spatial and temporal factor
        config.model = config.model.for_latents(shape)
    model0 = initial_model_4d(config, device) if dynamic else \
        initial_model(GaussianDecoder, config.model, config.init_from, device)
    if config.gaussian_stride:  # a model from --init-from at a finer stride
        model0 = model0.with_stride(config.gaussian_stride)
        config.model = dataclasses.replace(config.model, gaussian_stride=config.gaussian_stride)
    if not model0.config.reads(shape):
        raise InputError(f"--init-from {config.init_from} reads {model0.config.latent_channels}-channel latents with "
                         f"temporal factor {model0.config.temporal_factor} and spatial factor "
                         f"{model0.config.spatial_factor}; the data holds {shape.describe()}: train from scratch "
                         "(leave out --init-from)")
    run = Run(config.out, model0, config.lr, config.weight_decay, config.warmup, config.steps, config.train_time_s)
    run.resume(device)
    start_wall = time.time()
    decoder = run.model.train()
    model = acc.prepare_model(decoder)  # DDP across processes; the plain module when alone
    if main:
        run.log({"config": dataclasses.asdict(config), "device": str(device), "processes": acc.num_processes,
                 "parameters": sum(p.numel() for p in decoder.parameters())})
    mine = train_dirs[acc.process_index::acc.num_processes]
    data = load_data(mine, device)
    for s, d in zip(data, mine):
        s["folder"] = folder_of[str(d)]
    val = load_data(val_dirs, device) if main else []
    for s, d in zip(val, val_dirs):
        s["folder"] = folder_of[str(d)]
    by_folder = [[s for s in data if s["folder"] == i] for i in range(len(folders))]
    if weights is not None and any(w > 0 and not by_folder[i] for i, w in enumerate(weights)):
        raise InputError("a --data folder with a share in --data-weights has no training sample for this process")
    static_data = []
    if config.static_data:
        static_data = [s for s in load_data(sample_dirs(config.static_data)[acc.process_index::acc.num_processes],
                                            device) if not s["dynamic"]]
        if not static_data:
            raise InputError(f"--static-data {config.static_data} holds no image sample")
    if dynamic and not all(s["dynamic"] for s in data + val):
        raise InputError(f"--dynamic 1 needs clip SDG (lyra3d sdg --clips N); {config.data} holds image samples "
                         "(pass those as --static-data)")
    if dynamic and getattr(decoder.config, "input_view", False) and \
            any(s["input_latents"] is None or s["input"] is None for s in data + val):
        raise InputError(f"this 4D decoder reads the input video's latents, which {config.data} does not hold: "
                         "write the clip SDG again with this version (lyra3d sdg --clips N)")
    check_data_shape(data + val + static_data, shape, config.data)
    frames = sorted({int(s["frames"].shape[1]) for s in data + val})
    # the saved config records what the decoder was trained on (generate warns outside it)
    decoder.config = dataclasses.replace(decoder.config, trained_frames=sorted({*decoder.config.trained_frames,
                                                                                *frames}))
    if main:
        run.log({"train_samples": len(train_dirs), "val_samples": len(val_dirs), "static_samples": len(static_data),
                 "frames_per_trajectory": frames, "backend": backend, "folder_weights": weights,
                 "samples_per_folder": [len(f) for f in by_folder], "data_s": round(time.time() - start_wall, 1)})
    gen = torch.Generator().manual_seed(1234 + run.step * acc.num_processes + acc.process_index)
    num_v = data[0]["latents"].shape[0]

    def pick(n_views: int, t: int):
        views = torch.randperm(num_v, generator=gen)[:n_views].sort().values
        frames = torch.randperm(n_views * t, generator=gen)[:config.render_frames].sort().values
        return views, frames

    def training_pool() -> list[dict]:
        """All training samples, or (``--data-weights``) those of one folder drawn by its share."""
        if weights is None:
            return data
        return by_folder[int(torch.multinomial(torch.tensor(weights), 1, generator=gen))]

    def one_loss(n_views: int, ow: float):
        """A static step (a static decoder, or a 4D one on an image sample at time 0), or a dynamic step."""
        if not dynamic or (static_data and float(torch.rand((), generator=gen)) < config.static_share):
            pool = static_data or training_pool()
            sample = pool[int(torch.randint(len(pool), (), generator=gen))]
            return sample_loss(model, decoder, sample, *pick(n_views, sample["frames"].shape[1]), config, ow, backend,
                               target_time=0.0 if dynamic else None)[0]
        pool = training_pool()
        sample = pool[int(torch.randint(len(pool), (), generator=gen))]
        t = sample["frames"].shape[1]
        views = torch.randperm(num_v, generator=gen)[:n_views].sort().values
        f = int(torch.randint(t, (), generator=gen))
        return sample_loss(model, decoder, sample, views, frame_picks(n_views, t, f), config, ow, backend,
                           target_time=float(sample["times"][f]), input_frame=f)[0]

    def step_fn():
        p = run.progress
        n_views = config.views or (config.few_views if p < config.few_views_until else num_v)
        ow = config.opacity_weight if p >= config.prune_from else 0.0
        total = 0.0
        run.opt.zero_grad(set_to_none=True)
        for _ in range(config.batch_size):
            loss = one_loss(n_views, ow)
            acc.backward(loss / config.batch_size)
            total += float(loss.detach()) / config.batch_size
        gnorm = acc.clip_grad_norm_(decoder.parameters(), config.grad_clip)
        run.opt.step()
        return total, float(gnorm)

    def eval_fn():
        g = torch.Generator().manual_seed(0)
        scores, static_scores, input_scores = [], [], []
        per_folder: dict[int, list[float]] = {}
        n_views = config.views or num_v
        views = torch.arange(n_views)
        for sample in val:
            t = sample["frames"].shape[1]
            with torch.no_grad():
                if dynamic:  # the teacher frames of one time, at three times
                    for f in sorted({0, t // 2, t - 1}):
                        _, terms = sample_loss(decoder, decoder, sample, views, frame_picks(n_views, t, f), config,
                                               0.0, backend, target_time=float(sample["times"][f]), input_frame=f)
                        scores.append(terms["psnr"])
                        if "input_psnr" in terms:
                            input_scores.append(terms["input_psnr"])
                else:
                    frames = torch.randperm(n_views * t, generator=g)[:config.render_frames].sort().values
                    _, terms = sample_loss(decoder, decoder, sample, views, frames, config, 0.0, backend)
                    scores.append(terms["psnr"])
                    per_folder.setdefault(sample["folder"], []).append(terms["psnr"])
        out = {"val_psnr_vs_teacher": sum(scores) / max(1, len(scores))}
        if len(per_folder) > 1:  # each --data folder's own validation samples (e.g. worlds and photos)
            out.update({f"val_psnr_vs_teacher_{i}": sum(v) / len(v) for i, v in sorted(per_folder.items())})
        if input_scores:  # the input camera vs the input frame, at the same three times
            out["val_input_psnr"] = sum(input_scores) / len(input_scores)
        if main and static_data:  # a few training image samples: does the 4D decoder still decode still scenes?
            for sample in static_data[:2]:
                t = sample["frames"].shape[1]
                frames = torch.randperm(n_views * t, generator=g)[:config.render_frames].sort().values
                with torch.no_grad():
                    _, terms = sample_loss(decoder, decoder, sample, views, frames, config, 0.0, backend, 0.0)
                static_scores.append(terms["psnr"])
            out["static_psnr_vs_teacher"] = sum(static_scores) / len(static_scores)
        return out

    metrics = train_loop(run, config, step_fn, eval_fn, start_wall, main=main)
    # every rank waits for the main one's last evaluation and save, then the process group is destroyed: a rank
    # that simply exits while another still works can abort in gloo's teardown ("terminate called ...")
    acc.wait_for_everyone()
    acc.end_training()
    return metrics
