"""Per-scene 3DGS optimisation (issue 22, part 4): fit 3D Gaussians directly to the teacher's decoded frames, the
second reconstructor beside the feed-forward 3DGS decoder (``GenerateConfig.reconstruct = "optimize"``).

:func:`optimize_gaussians` is a pure function: initial Gaussians (the 3D cache's points: the input lifted with its
depth, :func:`initial_gaussians`), target frames and their cameras in, fitted Gaussians out. Each step renders a
few target cameras, takes 3DGS's loss, ``(1 − λ)·L1 + λ·(1 − SSIM)`` (plus, where target depths are given, a
light relative depth term), and steps Adam (one optimizer per parameter, the means' learning rate scaled by the
scene's size and decaying exponentially to 1 % over the budget, as gsplat's trainer does).

Densification is gsplat's own (``gsplat.strategy``): ``DefaultStrategy`` (3DGS's clone / split / prune by the
projected means' gradient) or ``MCMCStrategy`` (relocation of dead Gaussians, growth to a cap), driven through
their ``check_sanity`` / ``initialize_state`` / ``step_pre_backward`` / ``step_post_backward``. On CUDA with gsplat
installed the renders are gsplat's; elsewhere lyra3d's differentiable torch rasterizer
(:func:`lyra3d.core.render.rasterize` with ``backend="torch"``), which fills the same ``info`` dict the strategies
read (projected means whose gradient is retained, radii, size, camera count), so ``DefaultStrategy`` runs on a CPU
too. ``MCMCStrategy`` cannot: its relocation (``gsplat.relocation.compute_relocation``) and position noise
(``quat_scale_to_covar_preci``) are CUDA kernels. Without gsplat the Gaussian count stays fixed (``strategy`` is
then recorded as ``"none"``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.limits import MAX_OPTIMIZE_STEPS
from lyra3d.core.metrics import ssim
from lyra3d.core.progress import Progress, no_progress
from lyra3d.core.render import rasterize
from lyra3d.errors import InputError

#: Densification strategies (``OptimizeConfig.strategy``): gsplat's ``DefaultStrategy``, ``MCMCStrategy``, or none.
STRATEGIES = ("default", "mcmc", "none")
#: The progress stage of the optimisation.
STAGE = "optimize"


@dataclass(frozen=True)
class OptimizeConfig:
    """Settings of :func:`optimize_gaussians`.

    Attributes:
        steps: the step budget (each step renders ``cameras_per_step`` target cameras).
        seconds: a time budget: stop after the step during which it ran out (``None``: none).
        strategy: densification (:data:`STRATEGIES`): gsplat's ``DefaultStrategy`` or ``MCMCStrategy``, or
            ``"none"`` (a fixed count).
        lr_means: the means' learning rate, times the scene scale (decays to 1 % over ``steps``).
        lr_scales, lr_quats, lr_opacities, lr_colors: the other parameters' learning rates (log-scales,
            quaternions, opacity logits, SH coefficients).
        ssim_weight: λ of ``(1 − λ)·L1 + λ·(1 − SSIM)``.
        depth_weight: weight of the relative depth error where target depths are given (``> 0`` there; the image
            → 3D pipeline gives the input view's).
        cameras_per_step: target cameras rendered per step (the loss is their mean).
        anchor_every: every this many steps the step renders the first target (the input image, in
            :func:`optimize_sample`) instead of the next drawn cameras, so the input, one target among ~100 teacher
            frames, keeps its weight as the steps rise (``None``: the first target is drawn like the others).
        refine_every: densify every this many steps from the first such step (``None``: gsplat's schedule, every
            100 steps from step 500, so budgets up to 600 steps do not densify); densification stops at 75 % of
            the budget (at most 15,000).
        grow_grad2d: ``DefaultStrategy``'s gradient threshold of cloning and splitting (gsplat's default 2e-4).
        cap_growth: ``MCMCStrategy``'s cap on the count, as a multiple of the initial count.
        backend: rasterizer (``"auto"``: gsplat for CUDA tensors where installed, else the torch reference).
        seed: the order the target cameras are visited in (and the strategies' random draws).
    """

    steps: int = 300
    seconds: float | None = None
    strategy: str = "default"
    lr_means: float = 1.6e-4
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_colors: float = 2.5e-3
    ssim_weight: float = 0.2
    depth_weight: float = 0.1
    cameras_per_step: int = 1
    anchor_every: int | None = 4
    refine_every: int | None = None
    grow_grad2d: float = 2e-4
    cap_growth: float = 2.0
    backend: str = "auto"
    seed: int = 0

    def validate(self) -> OptimizeConfig:
        """Check every field; raise a one-line :class:`InputError`. Returns self."""
        check_steps(self.steps)
        check_seconds(self.seconds)
        if self.strategy not in STRATEGIES:
            raise InputError(f"optimisation strategy must be {', '.join(STRATEGIES)}, got {self.strategy!r}")
        for name in ("lr_means", "lr_scales", "lr_quats", "lr_opacities", "lr_colors", "grow_grad2d"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"optimisation {name} must be a number > 0, got {v!r}")
        for name in ("ssim_weight", "depth_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"optimisation {name} must be a number >= 0, got {v!r}")
        if self.ssim_weight > 1:
            raise InputError(f"optimisation ssim_weight must be in [0, 1], got {self.ssim_weight!r}")
        if not isinstance(self.cameras_per_step, int) or self.cameras_per_step < 1:
            raise InputError(f"cameras_per_step must be a whole number >= 1, got {self.cameras_per_step!r}")
        for name in ("anchor_every", "refine_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise InputError(f"{name} must be a whole number >= 1 or None, got {v!r}")
        if not self.cap_growth >= 1:
            raise InputError(f"cap_growth must be >= 1, got {self.cap_growth!r}")
        return self


def check_steps(steps, what: str = "optimize steps") -> int:
    """A step budget: a whole number from 1 to :data:`MAX_OPTIMIZE_STEPS` (one-line error otherwise)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_OPTIMIZE_STEPS:
        raise InputError(f"{what} must be a whole number from 1 to {MAX_OPTIMIZE_STEPS}, got {steps!r}")
    return steps


def check_seconds(seconds, what: str = "optimize seconds") -> float | None:
    """A time budget: ``None`` or a finite number of seconds > 0 (one-line error otherwise)."""
    if seconds is not None and not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                                    and math.isfinite(seconds) and seconds > 0):
        raise InputError(f"{what} must be a number of seconds > 0, got {seconds!r}")
    return seconds


@dataclass
class Optimized:
    """What :func:`run_optimization` did: the fitted ``gaussians``, the ``steps`` done, the ``seconds`` they
    took, the loss of the first and last step, the strategy that ran (``"none"`` when gsplat is missing or the
    config said so), the Gaussian count before and after, and why it stopped (``"steps"`` or ``"seconds"``)."""

    gaussians: Gaussians
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    strategy: str
    initial_gaussians: int
    stopped_by: str
    backend: str = ""
    losses: list[float] = field(default_factory=list)
    targets: int = 0
    depth_weight: float = 0.0
    input_gaussians: int = 0

    def record(self) -> dict:
        """A JSON-ready summary (without the Gaussians and the loss history)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("gaussians", "losses")}
        out["gaussians"] = len(self.gaussians)
        out["seconds"] = round(self.seconds, 4)
        out["first_loss"], out["last_loss"] = round(self.first_loss, 6), round(self.last_loss, 6)
        return out


# -- initialisation -------------------------------------------------------------------------------------------------
def initial_gaussians(image: Tensor, depth: Tensor, camera: Cameras, far_ratio: float = 20.0) -> Gaussians:
    """The 3D cache's points as Gaussians: one flat disc per input pixel at its depth, the sky (depth 0) a
    backdrop at ``far_ratio`` × the near depth (:func:`lyra3d.core.photo_gaussians.photo_gaussians` with the
    settings ``keep_input`` uses)."""
    from lyra3d.core.photo_gaussians import photo_gaussians, sky_depth
    from lyra3d.pipelines.keep_input import PHOTO_SETTINGS

    dev = image.device
    depth, camera = depth.to(dev), camera.to(dev)
    return photo_gaussians(image, depth, camera, PHOTO_SETTINGS, sky_depth=sky_depth(depth, far_ratio))


def scene_scale(gaussians: Gaussians, cameras: Cameras) -> float:
    """The scene's size for the means' learning rate and the strategies' 3D-scale thresholds: as gsplat's
    trainer, 1.1 × the largest distance of a camera centre from their mean, but at least a tenth of the median
    distance of the Gaussians from the first camera (a still camera)."""
    centres = cameras.centers.detach().float()
    extent = float((centres - centres.mean(0)).norm(dim=-1).max()) * 1.1
    dist = float((gaussians.means.detach().float() - centres[0]).norm(dim=-1).median())
    return max(extent, 0.1 * dist, 1e-6)


# -- the strategies -------------------------------------------------------------------------------------------------
def _make_strategy(config: OptimizeConfig, device: torch.device, count: int):
    """gsplat's strategy for ``config`` (``None``: a fixed count) and the name of what runs."""
    if config.strategy == "none":
        return None, "none"
    try:
        from gsplat.strategy import DefaultStrategy, MCMCStrategy
    except (ImportError, OSError):
        return None, "none"
    # gsplat's schedule (refine every 100 steps from step 500): on this start a short budget is better without
    # (measured: 50 steps of a held-out world, 26.3 dB without refining, 25.5 dB refining every 10 steps)
    every = config.refine_every or 100
    start = every - 1 if config.refine_every else 500
    stop = min(15_000, max(start + 1, int(0.75 * config.steps)))  # a quarter of the budget left to settle
    if config.strategy == "mcmc":
        if device.type != "cuda":
            raise InputError("the mcmc strategy needs CUDA (gsplat's relocation is a CUDA kernel); on a CPU use "
                             "strategy default or none")
        return MCMCStrategy(cap_max=int(config.cap_growth * count), refine_start_iter=start, refine_stop_iter=stop,
                            refine_every=every), "mcmc"
    # reset_every beyond the budget: an opacity reset needs thousands of steps to recover from
    return DefaultStrategy(refine_start_iter=start, refine_stop_iter=stop, refine_every=every,
                           reset_every=10 * MAX_OPTIMIZE_STEPS, grow_grad2d=config.grow_grad2d), "default"


def _params(init: Gaussians) -> dict[str, torch.nn.Parameter]:
    g = init.detach().to(dtype=torch.float32)
    return {"means": torch.nn.Parameter(g.means.clone()), "scales": torch.nn.Parameter(g.scales.clone()),
            "quats": torch.nn.Parameter(g.quats.clone()), "opacities": torch.nn.Parameter(g.opacities.clone()),
            "sh": torch.nn.Parameter(g.sh.clone())}


def _gaussians(params: dict[str, Tensor]) -> Gaussians:
    return Gaussians(params["means"], params["scales"], params["quats"], params["opacities"], params["sh"])


def image_loss(rgb: Tensor, target: Tensor, ssim_weight: float) -> Tensor:
    """3DGS's photometric loss ``(1 − λ)·L1 + λ·(1 − SSIM)`` between ``(B, 3, H, W)`` images."""
    l1 = (rgb - target).abs().mean()
    if ssim_weight == 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(rgb, target).mean())


def depth_loss(depth: Tensor, alpha: Tensor, target: Tensor) -> Tensor:
    """Mean relative depth error ``|z − z*| / z*`` where the target is known (``> 0``) and the render opaque."""
    valid = (target > 0) & (alpha.detach() > 0.5)
    if not bool(valid.any()):
        return depth.sum() * 0
    return ((depth - target).abs() / target.clamp_min(1e-6))[valid].mean()


def _check(init: Gaussians, frames: Tensor, cameras: Cameras, depths: Tensor | None) -> None:
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"target frames must be (N, 3, H, W), got {tuple(frames.shape)}")
    if len(cameras) != frames.shape[0]:
        raise InputError(f"{frames.shape[0]} target frames but {len(cameras)} cameras; give one camera per frame")
    if (cameras.width, cameras.height) != (frames.shape[-1], frames.shape[-2]):
        raise InputError(f"cameras of {cameras.width}x{cameras.height} do not match frames of "
                         f"{frames.shape[-1]}x{frames.shape[-2]}")
    if depths is not None and tuple(depths.shape) != (frames.shape[0], 1, *frames.shape[-2:]):
        raise InputError(f"target depths must be {(frames.shape[0], 1, *frames.shape[-2:])}, "
                         f"got {tuple(depths.shape)}")
    if len(init) == 0:
        raise InputError("no initial Gaussians to optimise")


# -- the optimisation -------------------------------------------------------------------------------------------------
@torch.enable_grad()  # also inside a pipeline's no_grad call
def run_optimization(init: Gaussians, frames: Tensor, cameras: Cameras, config: OptimizeConfig | None = None,
                     progress: Progress | None = None, depths: Tensor | None = None) -> Optimized:
    """Fit Gaussians to target frames (:func:`optimize_gaussians`), with what was done (:class:`Optimized`)."""
    cfg = (config or OptimizeConfig()).validate()
    _check(init, frames, cameras, depths)
    say = progress or no_progress
    t0 = time.perf_counter()
    dev = init.device
    frames = frames.to(dev, torch.float32)
    cameras = cameras.to(dev, torch.float32)
    depths = depths.to(dev, torch.float32) if depths is not None and cfg.depth_weight > 0 else None
    params = _params(init)
    scale = scene_scale(init, cameras)
    lrs = {"means": cfg.lr_means * scale, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacities": cfg.lr_opacities, "sh": cfg.lr_colors}
    optimizers = {k: torch.optim.Adam([{"params": [p], "lr": lrs[k], "name": k}], eps=1e-15)
                  for k, p in params.items()}
    decay = 0.01 ** (1 / cfg.steps)  # the means' learning rate reaches 1 % at the end of the budget
    strategy, name = _make_strategy(cfg, dev, len(init))
    state = None
    if strategy is not None:
        strategy.check_sanity(params, optimizers)
        state = strategy.initialize_state(scene_scale=scale) if name == "default" else strategy.initialize_state()
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the strategies' draws (splits, relocations) use the global generator
    order = torch.randperm(len(cameras), generator=gen)
    pos, losses, stopped, backend = 0, [], "steps", ""
    say(STAGE, 0, cfg.steps)
    step = 0
    for step in range(cfg.steps):
        if cfg.anchor_every is not None and step % cfg.anchor_every == cfg.anchor_every - 1:
            pick = [0]
        else:
            if pos + cfg.cameras_per_step > len(order):
                order, pos = torch.randperm(len(cameras), generator=gen), 0
            pick = order[pos:pos + cfg.cameras_per_step].tolist()
            pos += cfg.cameras_per_step
        info: dict | None = {} if strategy is not None else None
        out = rasterize(_gaussians(params), cameras[pick], backend=_backend(cfg.backend, dev), info=info)
        backend = out.backend
        loss = image_loss(out.rgb, frames[pick], cfg.ssim_weight)
        if depths is not None:
            loss = loss + cfg.depth_weight * depth_loss(out.depth, out.alpha, depths[pick])
        if name == "mcmc":  # MCMC's regularisers (gsplat's trainer: opacity and scale, 0.01 each)
            loss = loss + 0.01 * torch.sigmoid(params["opacities"]).mean() + 0.01 * torch.exp(params["scales"]).mean()
        if strategy is not None:
            strategy.step_pre_backward(params, optimizers, state, step, info)
        loss.backward()
        losses.append(float(loss.detach()))
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if strategy is not None:
            if name == "mcmc":
                strategy.step_post_backward(params, optimizers, state, step, info,
                                            lr=optimizers["means"].param_groups[0]["lr"])
            else:
                strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        optimizers["means"].param_groups[0]["lr"] *= decay
        if step + 1 < cfg.steps:
            say(STAGE, step + 1, cfg.steps)
        if cfg.seconds is not None and time.perf_counter() - t0 >= cfg.seconds and step + 1 < cfg.steps:
            stopped = "seconds"
            break
    done = step + 1
    say(STAGE, done, done)  # the stage ends (early, when the time budget stopped it)
    fitted = _gaussians({k: p.detach() for k, p in params.items()}).to(dtype=init.means.dtype)
    return Optimized(fitted, done, time.perf_counter() - t0, losses[0], losses[-1], name, len(init), stopped,
                     backend, losses)


def optimize_gaussians(init: Gaussians, frames: Tensor, cameras: Cameras, config: OptimizeConfig | None = None,
                       progress: Progress | None = None, depths: Tensor | None = None) -> Gaussians:
    """Fit 3D Gaussians to target frames by gradient descent with gsplat's densification (module docstring).

    Args:
        init: the initial Gaussians (e.g. :func:`initial_gaussians`, the 3D cache's points); not modified.
        frames: target images ``(N, 3, H, W)`` in [0, 1] (e.g. the teacher's decoded frames, all trajectories).
        cameras: their ``N`` cameras.
        config: :class:`OptimizeConfig` (steps and time budget, learning rates, strategy).
        progress: told ``("optimize", done, steps)`` after each step and ``("optimize", done, done)`` at the end.
        depths: target z-depths ``(N, 1, H, W)`` (0 = unknown) for the depth term (``config.depth_weight``).

    Returns:
        the fitted Gaussians (degree-0 SH, float32 or ``init``'s dtype), on ``init``'s device.
    """
    return run_optimization(init, frames, cameras, config, progress, depths).gaussians


def key_frames(num_frames: int, every: int = 4) -> list[int]:
    """The frames of a trajectory whose depth is estimated (every ``every``-th, the last included)."""
    return sorted(set(range(0, num_frames, every)) | {num_frames - 1})


def frame_depths(teacher, frames: Tensor, cameras: Cameras, batch: int = 8) -> Tensor:
    """The teacher's depth estimate of ``frames (N, 3, H, W)`` seen by ``cameras`` (N): ``(N, 1, H, W)`` z-depth,
    0 where the estimator saturates or beyond the teacher's sky cut (``teacher.clean_depth`` per frame)."""
    out = []
    for i in range(0, len(frames), batch):
        d = teacher.depth(frames[i:i + batch], cameras.intrinsics[i:i + batch]).depth
        out.extend(teacher.clean_depth(x).to(frames) for x in d)
    return torch.stack(out)


@torch.no_grad()
def grow_from_frames(init: Gaussians, frames: Tensor, cameras: Cameras, depths: Tensor, sky: float | None = None,
                     stride: int = 2, coverage: float = 0.5, backend: str = "auto") -> tuple[Gaussians, Tensor]:
    """Add what the input does not show: for each frame in turn, its pixels that the Gaussians so far leave
    uncovered (rendered alpha below ``coverage``) and whose estimated depth is known become discs
    (:func:`~lyra3d.core.photo_gaussians.photo_gaussians`, one per ``stride × stride`` block) at that depth
    scaled to the scene: times the median ratio, over the frame's covered pixels, of the rendered depth to the
    estimate (a monocular estimate of a generated frame need not share the input's scale). Uncovered pixels
    of unknown depth (the sky) become discs at the ``sky`` depth (``None``: left out), as the input's sky does.

    Returns the grown Gaussians and the scaled depths ``(N, 1, H, W)`` (the depth targets)."""
    from lyra3d.core.photo_gaussians import PhotoSettings, photo_gaussians
    from lyra3d.pipelines.keep_input import PHOTO_SETTINGS

    settings = PhotoSettings(**{**PHOTO_SETTINGS.__dict__, "stride": stride, "sharpen": 0})
    parts, scaled = [init], torch.zeros_like(depths)
    g = init
    for i in range(len(frames)):
        out = rasterize(g, cameras[[i]], backend=backend)
        alpha, rendered, est = out.alpha[0], out.depth[0], depths[i]
        both = (alpha > 0.9) & (est > 0) & (rendered > 0)
        scale = float((rendered[both] / est[both]).median()) if int(both.sum()) >= 16 else 1.0
        scaled[i] = est * scale
        hole = alpha < coverage
        if sky is None:
            hole &= est > 0
        if int(hole.sum()) < stride * stride:
            continue
        fill = scaled[i] if sky is None else torch.where(est > 0, scaled[i], torch.full_like(est, sky))
        new = photo_gaussians(frames[i], torch.where(hole, fill, torch.zeros_like(est)), cameras[[i]], settings)
        if len(new):
            parts.append(new.to(init.device, init.means.dtype))
            g = Gaussians.cat(parts)
    return g, scaled


def optimize_sample(gen, frames: Tensor, camera: Cameras, config: OptimizeConfig | None = None,
                    far_ratio: float = 20.0, progress: Progress | None = None, teacher=None) -> Optimized:
    """Per-scene optimisation of one teacher output (what ``reconstruct="optimize"`` runs): the teacher's
    ``frames (V, T, 3, H, W)`` at its cameras plus the input image at the input ``camera`` as targets, the
    input's own Gaussians as the start (:func:`initial_gaussians`) and its depth the depth target there
    (``config.depth_weight``). With the ``teacher``, its depth estimate of the key frames of every trajectory
    (:func:`key_frames`, :func:`frame_depths`) adds Gaussians where the input's leave holes
    (:func:`grow_from_frames`) and is the depth target at those frames.

    ``gen``: a :class:`~lyra3d.pipelines.teacher.TeacherSample`."""
    from lyra3d.core.photo_gaussians import sky_depth

    config = config or OptimizeConfig()
    dev = frames.device
    v, t = frames.shape[:2]
    image, cam = gen.image.to(dev, frames.dtype), camera.to(dev)
    targets = torch.cat([image[None], frames.flatten(0, 1)])
    cams = Cameras.cat([cam.to(dtype=gen.cameras.world_to_camera.dtype), gen.cameras.to(dev)])
    depths = torch.zeros(len(targets), 1, *targets.shape[-2:], device=dev)
    depths[0] = gen.depth.to(dev)
    init = initial_gaussians(image, gen.depth, cam, far_ratio)
    start = len(init)
    if teacher is not None:
        keys = [1 + a * t + j for a in range(v) for j in key_frames(t) if j > 0]
        est = frame_depths(teacher, targets[keys], cams[keys])
        init, scaled = grow_from_frames(init, targets[keys], cams[keys], est, sky_depth(gen.depth, far_ratio))
        depths[keys] = scaled
    result = run_optimization(init, targets, cams, config, progress=progress, depths=depths)
    result.targets, result.depth_weight = len(targets), config.depth_weight
    result.input_gaussians = start
    return result


def _backend(backend: str, device: torch.device) -> str:
    """``"auto"``: gsplat on CUDA where installed, else the differentiable torch reference (never the CPU
    kernel, which is forward-only)."""
    if backend != "auto":
        return backend
    if device.type == "cuda":
        from lyra3d.core.render.rasterize import _gsplat_importable

        return "gsplat" if _gsplat_importable() else "torch"
    return "torch"


def psnr_of(gaussians: Gaussians, frames: Tensor, cameras: Cameras, backend: str = "auto") -> float:
    """Mean PSNR (dB) of ``gaussians`` rendered at ``cameras`` against ``frames (N, 3, H, W)``."""
    from lyra3d.core.metrics import mean_psnr

    with torch.no_grad():
        rgb = torch.cat([rasterize(gaussians, cameras[i:i + 8], backend=backend).rgb
                         for i in range(0, len(cameras), 8)])
    return float(mean_psnr(rgb.clamp(0, 1), frames.to(rgb)))
