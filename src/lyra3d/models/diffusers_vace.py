"""Wan 2.1 VACE from diffusers as lyra3d's video model (issue 23): GEN3C's idea without retraining. Per
trajectory, the warped 3D-cache renders are VACE's control video and the cache's holes its mask; the input image is
frame 0 (kept whole); the prompt is optional (``""``: none).

The mask convention, as diffusers 0.42's ``WanVACEPipeline`` implements it (``prepare_video_latents``: the mask is
binarised at 0.5, ``inactive = video * (1 - mask)`` and ``reactive = video * mask`` are encoded separately, and the
mask itself joins them at latent size in ``prepare_masks``; its docstring: "Black areas in the mask indicate
conditioning regions, while white areas indicate regions for generation"):

- **mask = 0 (black): keep** the control video there (the pixels the cache covers, and all of frame 0);
- **mask = 1 (white): generate** (the cache's holes). The control video is mid-grey there (0 in the VAE's [-1, 1]),
  as in diffusers' and VACE's own inpainting examples, so the ``reactive`` half of the conditioning carries nothing.

The backend uses the pipeline's own parts and steps: its text encoding (``encode_prompt``), its conditioning
(``prepare_video_latents``, ``prepare_masks``: VACE's 96 = 16 inactive + 16 reactive + 64 mask channels for the 1.3B
and 14B models), its transformer and its scheduler. Only the loop over denoising steps is written here, because
``WanVACEPipeline.__call__`` generates one video per call and lyra3d samples a batch of trajectories in one
transformer call; the loop is ``__call__``'s (same calls, same order; a test checks equal latents).

Latents are returned normalised as lyra3d's Wan tokenizer normalises (:mod:`lyra3d.models.diffusers_vae`:
``(z - latents_mean) / latents_std``), which is also the space the VACE transformer samples in, so the 3DGS decoder,
per-scene optimisation and :class:`~lyra3d.models.diffusers_vae.DiffusersVideoTokenizer` (the same VAE) read them.

Tested pipelines: ``WanVACEPipeline`` only (:data:`VACE_PIPELINES`). Other diffusers video pipelines that take a
control video and a mask (e.g. a Wan 2.2 VACE folder, which loads as the same class with a ``transformer_2``) are not
tested; a folder of any other class (text-to-video, image-to-video, ...) is refused with one line.

Memory: :mod:`lyra3d.models.vace_memory` (``memory="auto" | "none" | "model_offload" | "group_offload"``).
Nothing is downloaded: the folder loads with ``local_files_only=True``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lyra3d.errors import InputError
from lyra3d.models.vace_memory import MEMORY_SETTINGS, MemoryPlan, PartSizes, plan_memory

#: ``vae_tiling="auto"`` tiles frames with a side over this (pixels), and always under group offloading.
AUTO_TILE_SIDE = 512

#: diffusers pipeline classes this backend drives (a control video + mask → video model).
VACE_PIPELINES = ("WanVACEPipeline",)
#: The parts a VACE folder must hold (``model_index.json`` entries with their sub-folders).
VACE_PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class VACEConfig:
    """Settings of the VACE backend (the sampler's steps and guidance are the teacher's: ``TeacherConfig``).

    Attributes:
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on a CPU), ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        memory: ``"auto"`` or one of :data:`~lyra3d.models.vace_memory.MEMORY_SETTINGS`.
        trajectory_batch: trajectories per transformer call; 0: as many as fit (all six where memory allows).
        conditioning_scale: weight of the control stream in every VACE layer (diffusers' ``conditioning_scale``).
        negative_prompt: the prompt classifier-free guidance steers away from (guidance > 1).
        max_sequence_length: text tokens (diffusers' default 512).
        vae_tiling: ``"auto"`` (frames with a side over 512 px, and always under group offloading), true or false
            (``"on"``/``"off"`` read as true/false).
    """

    dtype: str = "auto"
    memory: str = "auto"
    trajectory_batch: int = 0
    conditioning_scale: float = 1.0
    negative_prompt: str = ""
    max_sequence_length: int = 512
    vae_tiling: bool | str = "auto"

    def validate(self) -> "VACEConfig":
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise InputError(f"VACE dtype must be auto, {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.memory != "auto" and self.memory not in MEMORY_SETTINGS:
            raise InputError(f"video memory (--video-memory) must be auto, {', '.join(MEMORY_SETTINGS)}, got "
                             f"{self.memory!r}")
        if not isinstance(self.trajectory_batch, int) or self.trajectory_batch < 0:
            raise InputError(f"trajectory batch must be a whole number >= 0, got {self.trajectory_batch!r}")
        self.vae_tiling = tiling_setting(self.vae_tiling)
        return self


def tiling_setting(value: bool | str) -> bool | str:
    """A VAE tiling setting as :class:`VACEConfig` keeps it: ``"auto"``, True (``"on"``) or False (``"off"``)."""
    known = {"auto": "auto", "on": True, "off": False, True: True, False: False}
    if isinstance(value, (bool, str)) and value in known:
        return known[value]
    raise InputError(f"vae tiling (--vae-tiling) must be auto, on or off, got {value!r}")


# -- the folder ---------------------------------------------------------------------------------------------------
def is_diffusers_folder(directory: str | Path) -> bool:
    """Whether ``directory`` holds a diffusers pipeline (its ``model_index.json``)."""
    return (Path(directory) / "model_index.json").is_file()


def read_vace_index(directory: str | Path) -> dict:
    """The ``model_index.json`` of a VACE folder, after one-line checks: the folder exists, is a diffusers pipeline
    of a class in :data:`VACE_PIPELINES` (a control video + mask model), and holds the sub-folder of every part."""
    directory = Path(directory).expanduser()
    fix = "give a local diffusers Wan VACE folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, " \
          "scheduler/), e.g. Wan-AI/Wan2.1-VACE-1.3B-diffusers downloaded beforehand"
    if not directory.is_dir():
        raise InputError(f"video model folder not found: {directory}; {fix}")
    path = directory / "model_index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is missing or not JSON; {fix}") from None
    name = index.get("_class_name", "") if isinstance(index, dict) else ""
    if name not in VACE_PIPELINES:
        raise InputError(f"{directory} holds a diffusers {name or 'pipeline of no class'}, not a control-video + mask "
                         f"video model; the teacher takes a {' or '.join(VACE_PIPELINES)} folder")
    missing = [p for p in VACE_PARTS if not isinstance(index.get(p), list) or index[p][0] is None
               or not (directory / p).is_dir()]
    if missing:
        raise InputError(f"{directory} lacks the part(s) {', '.join(missing)} of a {name}; copy the whole "
                         "pipeline folder (save_pretrained writes them all)")
    return index


def run_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``dtype`` (``"auto"``: bf16 on CUDA, fp32 elsewhere) as a torch dtype."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[dtype]


def part_sizes(pipe) -> PartSizes:
    """Weight bytes of a loaded VACE pipeline's parts, each parameter at its own dtype
    (:class:`~lyra3d.models.vace_memory.PartSizes`; the blocks as group offloading cuts them:
    :func:`offload_targets`)."""
    def nbytes(params) -> int:
        return sum(p.numel() * p.element_size() for p in params)

    def blocks(m) -> tuple[int, int]:  # the largest block and what lies outside all the offloaded block lists
        lists = [c for t in offload_targets(m) for c in t.children() if isinstance(c, BLOCK_LISTS)]
        inside = {id(p) for lst in lists for p in lst.parameters()}
        largest = max((nbytes(b.parameters()) for lst in lists for b in lst), default=0)
        return largest, nbytes(p for p in m.parameters() if id(p) not in inside)

    tr, te = pipe.transformer, pipe.text_encoder
    te_block, te_rest = blocks(te)
    tr_block, tr_rest = blocks(tr)
    cfg = tr.config
    return PartSizes(nbytes(te.parameters()), te_block, te_rest, nbytes(tr.parameters()), tr_block, tr_rest,
                     nbytes(pipe.vae.parameters()), cfg.num_attention_heads * cfg.attention_head_dim, cfg.ffn_dim,
                     tuple(cfg.patch_size))


BLOCK_LISTS = (torch.nn.ModuleList, torch.nn.Sequential)


def offload_targets(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules block-level group offloading is applied to so that ``module``'s blocks stream one at a time:
    ``module`` itself when a direct child is a block list (the Wan transformer's ``blocks``/``vace_blocks``), else its
    children that hold one (UMT5EncoderModel keeps its 24 blocks in ``encoder.block``: applied to the whole model,
    diffusers would find no block list and move the whole encoder in as one group)."""
    if any(isinstance(c, BLOCK_LISTS) for c in module.children()):
        return [module]
    inner = [c for c in module.children() if any(isinstance(g, BLOCK_LISTS) for g in c.children())]
    return inner or [module]


def _empty_cache(device: torch.device) -> None:
    """Hand cached, unused GPU blocks back between stages (an offloaded part's freed blocks would otherwise stay
    reserved by this process)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _empty_host_cache() -> None:
    """Hand freed pinned CPU blocks back to the system (PyTorch caches them, rounded up to powers of two)."""
    if torch.cuda.is_available() and hasattr(torch._C, "_host_emptyCache"):
        torch._C._host_emptyCache()


def _pin_blocks(module: torch.nn.Module) -> None:
    """Move the weights of ``module``'s block lists into pinned CPU memory in place, one tensor at a time, before
    diffusers' streamed group offloading pins them: it then keeps these tensors instead of making pinned copies of
    all blocks at once, so the CPU never holds a part twice (a 14B transformer is 32 GiB). What lies outside the
    blocks is left pageable (diffusers moves it with a plain copy)."""
    for lst in (c for c in module.children() if isinstance(c, BLOCK_LISTS)):
        for t in [*lst.parameters(), *lst.buffers()]:
            if t.device.type == "cpu" and not t.is_pinned():
                t.data = t.data.pin_memory()


# -- the control video --------------------------------------------------------------------------------------------
def vace_control(cache_rgb: Tensor, cache_mask: Tensor, first: Tensor) -> tuple[Tensor, Tensor]:
    """VACE's control video and mask of ``V`` trajectories: ``cache_rgb (V, T, 3, H, W)`` in [0, 1] and
    ``cache_mask (V, T, 1, H, W)`` (1 where the cache covers a pixel), ``first (3, H, W)`` the input image, which
    becomes frame 0 of every trajectory (kept whole). Returns ``video (V, 3, T, H, W)`` in [-1, 1] (mid-grey, 0,
    where VACE generates) and ``mask (V, 3, T, H, W)``: 0 = keep the control video, 1 = generate (the cache's holes),
    the layouts ``WanVACEPipeline.prepare_video_latents`` takes."""
    if cache_rgb.ndim != 5 or cache_rgb.shape[2] != 3 or cache_mask.shape[:2] != cache_rgb.shape[:2]:
        raise InputError(f"cache must be (V, T, 3, H, W) with a mask (V, T, 1, H, W), got {tuple(cache_rgb.shape)} "
                         f"and {tuple(cache_mask.shape)}")
    keep = (cache_mask > 0.5).expand_as(cache_rgb).clone()
    rgb = cache_rgb.clone()
    rgb[:, 0] = first.to(rgb)
    keep[:, 0] = True
    video = torch.where(keep, rgb, torch.full_like(rgb, 0.5)) * 2 - 1
    mask = (~keep).to(rgb.dtype)
    return video.permute(0, 2, 1, 3, 4).contiguous(), mask.permute(0, 2, 1, 3, 4).contiguous()


# -- the backend --------------------------------------------------------------------------------------------------
class VACEVideoModel:
    """A diffusers ``WanVACEPipeline`` driven as lyra3d's video model: :meth:`condition` (control video + mask →
    VACE's conditioning latents), :meth:`sample` (→ latents ``(V, T', C, h, w)`` in the tokenizer's normalised
    space), :attr:`tokenizer` (its VAE as a :class:`~lyra3d.models.diffusers_vae.DiffusersVideoTokenizer`).

    The memory setting is applied at the first call on a GPU, when the video's size is known
    (:func:`~lyra3d.models.vace_memory.plan_memory`); ``plan`` is what was chosen."""

    def __init__(self, pipe, device: str | torch.device = "cpu", config: VACEConfig | None = None,
                 source: Path | None = None):
        from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer

        name = type(pipe).__name__
        if name not in VACE_PIPELINES:
            raise InputError(f"a diffusers {name} is not a control-video + mask video model; the teacher takes a "
                             f"{' or '.join(VACE_PIPELINES)}")
        self.pipe, self.config, self.source = pipe, (config or VACEConfig()).validate(), source
        self._device = torch.device(device)
        self.sizes = part_sizes(pipe)
        self.plan: MemoryPlan | None = None
        self._embeds: dict[tuple[str, bool], tuple[Tensor, Tensor | None]] = {}
        self.tokenizer = DiffusersVideoTokenizer(pipe.vae, tiling=self.config.vae_tiling)
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        config: VACEConfig | None = None) -> "VACEVideoModel":
        """Load the VACE folder ``directory`` (local only) in the config's dtype; parts stay in CPU memory until the
        first call places them by the memory setting."""
        directory = Path(directory).expanduser()
        read_vace_index(directory)
        config = (config or VACEConfig()).validate()
        try:
            import diffusers
        except ImportError:
            raise InputError(f"{directory} is a diffusers pipeline: install diffusers (pip install 'lyra3d[real]')") \
                from None
        dev = torch.device(device)
        try:
            pipe = diffusers.WanVACEPipeline.from_pretrained(str(directory), torch_dtype=run_dtype(config.dtype, dev),
                                                             local_files_only=True)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"cannot load the Wan VACE pipeline in {directory}: {first}") from None
        return cls(pipe, dev, config, directory)

    # -- placement ------------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.transformer.dtype

    def to(self, device: str | torch.device) -> "VACEVideoModel":
        """Run on ``device``; the memory setting is (re)applied at the next call (a placed pipeline is released
        first: :meth:`release`)."""
        device = torch.device(device)
        if self.plan is not None and device != self._device:
            self.release()
        self._device = device
        if self.plan is None and device.type == "cpu":
            self.pipe.to("cpu")
        return self

    def eval(self) -> "VACEVideoModel":
        return self

    def parameters(self):
        return self.pipe.transformer.parameters()

    def save_pretrained(self, directory: str | Path) -> None:
        self.pipe.save_pretrained(str(directory))

    def place(self, trajectories: int, frames: int, height: int, width: int) -> MemoryPlan:
        """Choose the memory setting and the trajectory batch for this video size, and (at the first call) apply the
        setting to the pipeline's parts."""
        dev = self._device
        free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else None
        setting = self.config.memory if self.plan is None else self.plan.setting
        if free is not None and self.plan is not None:  # already placed: the resident weights count as free
            free += torch.cuda.memory_allocated(dev)
        plan = plan_memory(self.sizes, setting, trajectories, frames, height, width, free, self.dtype.itemsize,
                           self.config.trajectory_batch)
        if self.plan is None:
            self._apply(plan.setting)
        self.plan = plan
        if self.config.vae_tiling == "auto":
            self.pipe.vae.use_tiling = plan.setting == "group_offload" or max(height, width) > AUTO_TILE_SIDE
        return plan

    def _apply(self, setting: str) -> None:
        """Place the parts by ``setting`` with diffusers' own mechanisms. Parts are in CPU memory until here and an
        offloaded part is never moved to the GPU whole. On a CPU ``"group_offload"`` and ``"model_offload"`` install
        the same hooks with the CPU as both devices (no memory saved; the code path is the GPU's)."""
        pipe, dev = self.pipe, self._device
        if setting == "none":
            pipe.to(dev)
            _empty_host_cache()  # pinned CPU copies a group offloading left behind
        elif setting == "model_offload":  # accelerate hooks: a part moves in whole when it runs, the previous out
            pipe.enable_model_cpu_offload(device=dev)
        else:

            go = dict(onload_device=dev, offload_device=torch.device("cpu"), offload_type="block_level",
                      num_blocks_per_group=1, use_stream=dev.type == "cuda")
            if go["use_stream"]:
                _pin_blocks(pipe.transformer)
            pipe.transformer.enable_group_offload(**go)
            # the text encoder stays in CPU memory and runs there, once per prompt: streamed through group offloading
            # its 5.7B-parameter UMT5 left ~31 GiB allocated on an H200 (benchmarks/results/vace_h200.md)
            pipe.text_encoder.to("cpu")
            pipe.vae.to(dev)  # 0.25 GB: on the GPU, tiled
            if self.config.vae_tiling is not False:
                pipe.vae.enable_tiling()

    def release(self) -> None:
        """Undo the memory setting: diffusers' group-offloading hooks and accelerate's offload hooks removed, every
        part back in CPU memory, the cached prompt embeddings dropped; the next call places the parts again."""
        from diffusers.hooks import HookRegistry

        pipe = self.pipe
        names = ("group_offloading", "layer_execution_tracker", "lazy_prefetch_group_offloading")
        for part in (pipe.transformer, pipe.text_encoder):
            for m in [part, *offload_targets(part)]:
                if hasattr(m, "_diffusers_hook"):
                    for name in names:
                        HookRegistry.check_if_exists_or_initialize(m).remove_hook(name, recurse=True)
        pipe.remove_all_hooks()
        pipe.to("cpu")
        self.plan = None
        self._embeds.clear()
        _empty_cache(self._device)
        _empty_host_cache()

    # -- prompt ---------------------------------------------------------------------------------------------------
    def prompt_embeds(self, prompt: str, guidance: float) -> tuple[Tensor, Tensor | None]:
        """The text encoder's embeddings of ``prompt`` and (guidance > 1) of the negative prompt, cached per prompt
        (SDG and batches reuse them: the text encoder runs once per distinct prompt)."""
        key = (prompt, guidance > 1)
        if key not in self._embeds:
            on_cpu = self.plan is not None and self.plan.setting == "group_offload"  # the text encoder runs there
            pos, neg = self.pipe.encode_prompt(prompt=prompt, negative_prompt=self.config.negative_prompt,
                                               do_classifier_free_guidance=guidance > 1, num_videos_per_prompt=1,
                                               max_sequence_length=self.config.max_sequence_length,
                                               device=torch.device("cpu") if on_cpu else self._device)
            self._embeds[key] = tuple(None if x is None else x.to(self._device, self.dtype) for x in (pos, neg))
            del pos, neg
            if self.plan is not None and self.plan.setting == "model_offload":
                self.pipe.maybe_free_model_hooks()  # the text encoder back to the CPU before anything else runs
            if self.plan is not None and self.plan.setting != "none":
                _empty_cache(self._device)
        return self._embeds[key]

    # -- conditioning and sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def condition(self, video: Tensor, mask: Tensor) -> Tensor:
        """VACE's conditioning latents ``(V, 96, T', h, w)`` (inactive, reactive, mask at latent size) of
        ``video``/``mask (V, 3, T, H, W)`` (:func:`vace_control`), one trajectory at a time through the pipeline's
        ``prepare_video_latents`` and ``prepare_masks``."""
        v, _, t, h, w = video.shape
        self.place(v, t, h, w)  # the batch for this many trajectories of this size (the setting: at the first call)
        out = []
        for i in range(v):
            vid = video[i:i + 1].to(self._device, torch.float32)
            msk = mask[i:i + 1].to(self._device, torch.float32)
            lat = self.pipe.prepare_video_latents(vid, msk, [[]], None, self._device)
            m = self.pipe.prepare_masks(msk, [[]], None)
            out.append(torch.cat([lat, m.to(lat)], dim=1))
            del vid, msk, lat, m
        if self.plan.setting != "none":
            _empty_cache(self._device)
        return torch.cat(out).to(self.dtype)

    @torch.no_grad()
    def sample(self, conditioning: Tensor, steps: int, guidance: float, seed: int = 0, prompt: str = "",
               noise: Tensor | None = None) -> Tensor:
        """Denoise ``V`` trajectories guided by ``conditioning (V, 96, T', h, w)`` (:meth:`condition`): the noise of
        trajectory ``i`` is row ``i`` of one draw from ``seed`` (so the batch size does not change the result),
        ``plan.batch`` trajectories per transformer call. Returns latents ``(V, T', C, h, w)`` float32, normalised
        as lyra3d's Wan tokenizer does."""
        pipe, dev = self.pipe, self._device
        v, _, tl, lh, lw = conditioning.shape
        tr = pipe.transformer
        if noise is None:
            gen = torch.Generator().manual_seed(int(seed))
            noise = torch.randn((v, tr.config.in_channels, tl, lh, lw), generator=gen)
        plan = self.plan or self.place(v, 1 + (tl - 1) * self.tokenizer.temporal_factor,
                                       lh * self.tokenizer.spatial_factor, lw * self.tokenizer.spatial_factor)
        pos, neg = self.prompt_embeds(prompt, guidance)
        scale = torch.full((len(tr.config.vace_layers),), float(self.config.conditioning_scale), device=dev,
                           dtype=self.dtype)
        out = []
        try:
            for i in range(0, v, plan.batch):
                out.append(self._denoise(noise[i:i + plan.batch].to(dev, torch.float32),
                                         conditioning[i:i + plan.batch].to(dev), pos, neg, scale, steps, guidance))
        except torch.OutOfMemoryError:
            raise InputError(f"the GPU ran out of memory sampling Wan VACE with memory={plan.setting} and "
                             f"{plan.batch} trajectories per call; use a lower memory setting "
                             "(model_offload, group_offload) or trajectory_batch=1") from None
        return torch.cat(out).permute(0, 2, 1, 3, 4).float().contiguous()

    def _denoise(self, latents: Tensor, cond: Tensor, pos: Tensor, neg: Tensor | None, scale: Tensor, steps: int,
                 guidance: float) -> Tensor:
        """``WanVACEPipeline.__call__``'s denoising loop (Wan 2.1: one transformer) over a batch of videos."""
        pipe, tr = self.pipe, self.pipe.transformer
        b = latents.shape[0]
        pos, neg = pos.expand(b, -1, -1), None if neg is None else neg.expand(b, -1, -1)
        pipe.scheduler.set_timesteps(steps, device=self._device)
        for t in pipe.scheduler.timesteps:
            x = latents.to(self.dtype)
            ts = t.expand(b)
            with tr.cache_context("cond"):
                pred = tr(hidden_states=x, timestep=ts, encoder_hidden_states=pos, control_hidden_states=cond,
                          control_hidden_states_scale=scale, return_dict=False)[0]
            if guidance > 1:
                with tr.cache_context("uncond"):
                    uncond = tr(hidden_states=x, timestep=ts, encoder_hidden_states=neg, control_hidden_states=cond,
                                control_hidden_states_scale=scale, return_dict=False)[0]
                pred = uncond + guidance * (pred - uncond)
            latents = pipe.scheduler.step(pred, t, latents, return_dict=False)[0]
        return latents

    @torch.no_grad()
    def generate(self, cache_rgb: Tensor, cache_mask: Tensor, first: Tensor, steps: int, guidance: float,
                 seed: int = 0, prompt: str = "") -> Tensor:
        """The whole step: :func:`vace_control`, :meth:`condition`, :meth:`sample` → latents ``(V, T', C, h, w)``."""
        video, mask = vace_control(cache_rgb, cache_mask, first)
        return self.sample(self.condition(video, mask), steps, guidance, seed, prompt)
