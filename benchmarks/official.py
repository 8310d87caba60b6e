"""The whole official-size Lyra run in lyra3d (issue 24) with RANDOM weights: GEN3C-Cosmos-7B teacher + the Cosmos
8x8x8 tokenizer (AutoencoderKLCosmos, CV8x8x8 config) + the Lyra-1 3DGS decoder + rendering one view, at 704x1280,
121 frames per trajectory, six trajectories; seconds and the peak GPU memory of the whole run at each memory setting.

    PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:src python benchmarks/official.py --device cuda --save $OUT/official.md
    PYTHONPATH=src python benchmarks/official.py --tiny          # a seconds-long CPU smoke run of the same code

What runs, per row (memory setting), with the pipeline's own parts (:mod:`lyra3d.pipelines.gen3c_teacher`,
:mod:`lyra3d.pipelines.lyra1_reconstructor`, :class:`lyra3d.models.vae_tiling.TiledTokenizer`,
:mod:`lyra3d.models.offload`):

1. the teacher on ONE trajectory, fully except the number of steps: the shipped depth network, the 3D cache warped
   into its 121 cameras, GEN3C's conditioning (the tokenizer encodes the condition video, the warped rgb and the
   mask: three 121-frame 704x1280 encodes), then 3 denoising steps (official step: two network passes); the first
   step is a warm-up, the next 2 are timed; the trajectory's time = cache + encode + overhead (the first step's
   excess over a timed one: the weights' transfer for model offload, warm-up) + 35 × step
   (EXTRAPOLATED from the 2 timed steps);
2. the Lyra-1 decoder on SIX trajectories (the one trajectory's latents repeated, the six trajectories' real
   cameras): 12 Plücker encodes by the tokenizer (o×d and d of each trajectory), the forward (16 blocks, head in
   chunks), the official pruning (20 % kept);
3. rendering the Gaussians at the input camera (lyra3d's rasterizer, backend auto).

Scene time = depth + 6 × trajectory + decoder + render. Peak = torch.cuda.max_memory_allocated over the whole
row (teacher, tokenizer, decoder, rendering). Rows: ``model`` (GEN3C whole on the GPU for sampling, moved back to
pinned CPU memory after), ``group`` (the preset: diffusers group offloading, tokenizer in spatial tiles of 48
latent px, decoder head 16 frames per chunk), ``group_whole_vae`` (as ``group``, the tokenizer on whole frames).
Each row catches out-of-memory and goes on. The weights are random: time and memory are real, the output is not.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lyra3d.core.cameras import Cameras, default_camera  # noqa: E402
from lyra3d.core.progress import StageClock  # noqa: E402
from lyra3d.core.trajectories import LYRA_TRAJECTORIES, lyra_trajectories  # noqa: E402
from lyra3d.models.configs import Lyra1DecoderConfig  # noqa: E402
from lyra3d.models.gen3c import GEN3C_COSMOS_7B, Gen3CConfig, build_gen3c_transformer  # noqa: E402
from lyra3d.models.gen3c_conditioning import NUM_STEPS  # noqa: E402
from lyra3d.models.gen3c_text import zero_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen3c import is_oom, peak_gib, reset_peak, sync  # noqa: E402  (benchmarks/gen3c.py: the same GPU helpers)

OFFICIAL = "official code (nv-tlabs/lyra issues #4, #15, #30): ~43 GB peak with full offloading; ~14 min per " \
           "trajectory on an A100"
COSMOS_VAE = dict(latent_channels=16, encoder_block_out_channels=(128, 256, 512, 512),
                  decode_block_out_channels=(256, 512, 512, 512), attention_resolutions=(32,), resolution=1024,
                  num_layers=2, patch_size=4, spatial_compression_ratio=8, temporal_compression_ratio=8)
TINY_GEN3C = Gen3CConfig(num_attention_heads=2, attention_head_dim=16, num_layers=2, text_embed_dim=32,
                         adaln_lora_dim=8, max_size=(16, 32, 32))
TINY_VAE = dict(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8),
                attention_resolutions=(), resolution=64, num_layers=1)
TINY_DECODER = Lyra1DecoderConfig(dim=32, depth=2, heads=4, transformer_every=2, mamba_d_state=8, mamba_headdim=16)
#: row → (GEN3C offload, tokenizer tile in latent px (0: whole), decoder head frames per chunk)
ROWS = {"model": ("model", 48, 16), "group": ("group", 48, 16), "group_whole_vae": ("group", 0, 16)}
TIMED_STEPS = 2


def build_vae(cfg: dict, device, dtype):
    from diffusers import AutoencoderKLCosmos

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return AutoencoderKLCosmos(**cfg).to(device).eval()  # its wavelet buffer is cloned on the CPU
    finally:
        torch.set_default_dtype(previous)


def world_image(width: int, height: int) -> torch.Tensor:
    """A smooth synthetic picture (the content does not matter for time or memory)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([x, y, 0.5 + 0.5 * torch.sin(8 * x * y)]).clamp(0, 1)


def run_row(name, teacher, tok, decoder_cfg, device, size, frames, steps, render_backend) -> dict:
    """One memory setting, the whole run (module docstring); returns the row."""
    from lyra3d.core.render import rasterize
    from lyra3d.models.lyra1_decoder import Lyra1Decoder
    from lyra3d.pipelines.lyra1_reconstructor import Lyra1Reconstructor

    offload, tile, chunk = ROWS[name]
    width, height = size
    reset_peak(device)
    step_ends = []
    teacher.step_callback = lambda i, n: (sync(device), step_ends.append(time.perf_counter()))
    teacher.config.trajectories, teacher.config.num_frames, teacher.config.steps = ("left",), frames, steps
    clock = StageClock(device)
    camera = default_camera(width, height, 50.0)
    image = world_image(width, height)
    t_sample0 = None

    def progress(stage, done, total):
        nonlocal t_sample0
        if stage == "encode":
            t_sample0 = time.perf_counter()

    clock.progress = progress
    gen = teacher(image, camera, seed=0, progress=clock)
    sec = clock.total()
    step = (step_ends[-1] - step_ends[-1 - TIMED_STEPS]) / TIMED_STEPS
    # the first step's excess (model offload: the weights' transfer; warm-up) and what follows the last step
    overhead = max(0.0, step_ends[0] - t_sample0 - step) + max(0.0, sec["sample"] - (step_ends[-1] - t_sample0))
    traj = sec["cache"] + sec["encode"] + overhead + NUM_STEPS * step
    teacher_peak = peak_gib(device)
    print(f"  [{name}] teacher: {sec} step {step:.2f} s, peak {teacher_peak}", flush=True)

    torch.manual_seed(0)
    with torch.device(device):
        model = Lyra1Decoder(Lyra1DecoderConfig(**{**decoder_cfg.__dict__, "head_chunk_frames": chunk})).eval()
    model = model.to(next(tok.vae.parameters()).dtype)  # bf16 on CUDA, as the pipeline loads it
    recon = Lyra1Reconstructor(model, tok)
    cams = lyra_trajectories(camera.to(device), frames, gen.center_depth)
    cameras = Cameras.cat([cams[n] for n in LYRA_TRAJECTORIES])
    latents = gen.latents.expand(len(LYRA_TRAJECTORIES), -1, -1, -1, -1).contiguous()
    del gen
    sync(device)
    t0 = time.perf_counter()
    g = recon.decode(latents, cameras, bf16=device.type == "cuda")
    sync(device)
    t_dec = time.perf_counter() - t0
    del latents, recon, model
    t0 = time.perf_counter()
    out = rasterize(g, camera.to(device), backend=render_backend).rgb
    sync(device)
    t_render = time.perf_counter() - t0
    del out
    scene = sec["depth"] + len(LYRA_TRAJECTORIES) * traj + t_dec + t_render
    return dict(setting=name, offload=offload, tile=tile or "whole", chunk=chunk, step=step, traj=traj, scene=scene,
                decoder=t_dec, render=t_render, encode=sec["encode"], cache=sec["cache"], gaussians=len(g),
                overhead=overhead,
                teacher_peak=teacher_peak, peak=peak_gib(device), note="")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny networks and a small image (CPU smoke run)")
    ap.add_argument("--rows", default="model,group,group_whole_vae", help=f"rows, of {','.join(ROWS)}")
    ap.add_argument("--render-backend", default="auto")
    ap.add_argument("--save", type=Path, help="write the table (markdown) here")
    args = ap.parse_args()
    from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer
    from lyra3d.models.hf_depth import load_depth
    from lyra3d.models.vae_tiling import TiledTokenizer
    from lyra3d.pipelines.gen3c_teacher import Gen3CSettings, Gen3CTeacher
    from lyra3d.pipelines.teacher import TeacherConfig

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen3c_cfg, vae_cfg, dec_cfg = (TINY_GEN3C, TINY_VAE, TINY_DECODER) if args.tiny else \
        (GEN3C_COSMOS_7B, COSMOS_VAE, Lyra1DecoderConfig())
    size, frames = ((128, 64), 9) if args.tiny else ((1280, 704), 121)
    tile_scale = 8 if args.tiny else 1  # tiny frames: tiles of 6 latent px so that tiling is exercised
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    net = build_gen3c_transformer(gen3c_cfg, device=device, dtype=dtype)
    vae = build_vae(vae_cfg, device, dtype)
    depth = load_depth(None, device)
    sync(device)
    print(f"built GEN3C {sum(p.numel() for p in net.parameters()) / 1e9:.2f} B + Cosmos VAE "
          f"{sum(p.numel() for p in vae.parameters()) / 1e6:.0f} M on {device} in {time.perf_counter() - t0:.1f} s",
          flush=True)
    text = zero_text(gen3c_cfg.text_embed_dim)
    rows, teacher = [], None
    for name in args.rows.split(","):
        offload, tile, _ = ROWS[name]
        base = DiffusersVideoTokenizer(vae, tiling=False)
        tok = TiledTokenizer(base, max(1, tile // tile_scale), max(0, 8 // tile_scale)) if tile else base
        try:
            if teacher is None or teacher.settings.offload != offload:
                if teacher is not None and teacher.settings.offload == "group":
                    raise RuntimeError("rows after a group-offload row must be group rows (hooks stay on)")
                teacher = Gen3CTeacher(depth, tok, net, text, device, TeacherConfig(), Gen3CSettings(offload))
            teacher.tokenizer = tok
            t0 = time.perf_counter()
            rows.append(run_row(name, teacher, tok, dec_cfg, device, size, frames, 1 + TIMED_STEPS,
                                args.render_backend))
            rows[-1]["note"] = (f"first-step overhead {rows[-1]['overhead']:.1f} s, cache {rows[-1]['cache']:.1f} s; "
                                f"row {time.perf_counter() - t0:.0f} s")
        except Exception as e:  # noqa: BLE001 - one bad row must not kill the table
            note = "out of memory" if is_oom(e) else f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            if not is_oom(e):
                traceback.print_exc()
            rows.append(dict(setting=name, offload=offload, tile=tile or "whole", chunk=ROWS[name][2], step=None,
                             traj=None, scene=None, decoder=None, render=None, encode=None, cache=None,
                             gaussians=None, teacher_peak=None, peak=peak_gib(device), note=note))
        print(rows[-1], flush=True)
        reset_peak(device)
    fmt = lambda x, d=2: "—" if x is None else f"{x:,.{d}f}" if isinstance(x, float) else f"{x:,}"  # noqa: E731
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"# Official-size Lyra in lyra3d{' (TINY configs)' if args.tiny else ''}: GEN3C-Cosmos-7B + Cosmos "
             f"8x8x8 tokenizer + Lyra-1 decoder, random weights, {str(dtype).split('.')[-1]}, {name}", "",
             f"{size[0]}x{size[1]}, {frames} frames per trajectory, 6 trajectories, {NUM_STEPS} steps "
             f"(extrapolated from {TIMED_STEPS} timed); torch {torch.__version__}; {OFFICIAL}. Total benchmark time "
             f"{time.perf_counter() - t_all:.0f} s. Peak GiB: the whole run (teacher, tokenizer, decoder, "
             "rendering one view); teacher GiB: up to the end of sampling.", "",
             "| setting | GEN3C weights | tokenizer tiles (latent px) | head chunk | s / step | encode s (3 videos) "
             "| s / trajectory | decoder s (12 ray encodes + forward) | render s | s / scene | Gaussians | teacher "
             "GiB | peak GiB | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['offload']} | {r['tile']} | {r['chunk']} | {fmt(r['step'])} | "
                     f"{fmt(r['encode'])} | {fmt(r['traj'], 0)} | {fmt(r['decoder'])} | {fmt(r['render'])} | "
                     f"{fmt(r['scene'], 0)} | {fmt(r['gaussians'])} | {fmt(r['teacher_peak'])} | {fmt(r['peak'])} | "
                     f"{r['note']} |")
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(text_out)


if __name__ == "__main__":
    main()
