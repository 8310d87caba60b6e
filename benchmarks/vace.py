"""Benchmark a diffusers Wan 2.1 VACE model as lyra3d's teacher (:mod:`lyra3d.models.diffusers_vace`) at real size
with RANDOM weights (none can be downloaded here): seconds per denoising step, per trajectory and per 6-trajectory
scene, and peak GPU memory, for Wan2.1-VACE-1.3B and -14B at 480×832 with 33 and 81 frames, under the memory
setting lyra3d picks on this GPU (``auto``) and the lowest (``group_offload``).

    PYTHONUNBUFFERED=1 python benchmarks/vace.py --device cuda --save $OUT/vace_h200.md      # ~6-8 min on one H200
    python benchmarks/vace.py --tiny --device cpu                                         # a CPU smoke run (~1 min)

Each row builds nothing new: the model's parts are made once per model in CPU memory (bf16; random values drawn on
the GPU and copied, so a 14B model takes seconds, never an fp32 CPU init), wrapped in diffusers' ``WanVACEPipeline``
and driven by lyra3d's backend (``VACEVideoModel``: the real placement, conditioning and sampling code). A row:
the text encoder on an empty prompt (512 tokens, as Wan's default ``max_sequence_length``; the UMT5-XXL-size encoder
is random and its tokenizer a stand-in word-level one, so the 512 tokens are padding: the compute is the same),
the conditioning of one trajectory (VAE encodes of the control video's kept and generated halves + the mask), then
``--steps`` denoising steps of one trajectory with classifier-free guidance (2 transformer passes per step; one
warm-up step first, not timed), then the VAE decode of that trajectory's latents (the teacher's frames). Per
trajectory and per scene are EXTRAPOLATED from the measured step: trajectory = conditioning + ``--default-steps`` ×
step (+ decode in the "with frames" column); scene = the text encoder once + 6 × trajectory (trajectories run one per
transformer call in these rows; a batched row, 6 per call, is measured for the 1.3B at 33 frames). Peak memory is
``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the whole row (text encoder included). An
out-of-memory row reads OOM; a row past ``--budget-s`` is skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch

# Architecture configs, copied as data from the public config.json values of the diffusers checkpoints
# (Wan-AI/Wan2.1-VACE-1.3B-diffusers and Wan-AI/Wan2.1-VACE-14B-diffusers, transformer/config.json, as diffusers'
# scripts/convert_wan_to_diffusers.py writes them). Wan 2.1 VAE = AutoencoderKLWan's defaults (base_dim 96, z_dim 16,
# dim_mult 1,2,4,4, 2 res blocks). Text encoder = google/umt5-xxl's config.json (the encoder Wan uses).
VACE_1_3B = dict(patch_size=[1, 2, 2], num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                 text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
                 rope_max_seq_len=1024, vace_layers=[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28],
                 vace_in_channels=96)
VACE_14B = dict(patch_size=[1, 2, 2], num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16,
                text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
                rope_max_seq_len=1024, vace_layers=[0, 5, 10, 15, 20, 25, 30, 35], vace_in_channels=96)
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                decoder_start_token_id=0)
MODELS = {"1.3B": VACE_1_3B, "14B": VACE_14B}

TINY_TRANSFORMER = dict(patch_size=[1, 2, 2], num_attention_heads=2, attention_head_dim=16, in_channels=16,
                        out_channels=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, vace_layers=[0],
                        vace_in_channels=96, rope_max_seq_len=64)
TINY_UMT5 = dict(vocab_size=64, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2, pad_token_id=0,
                 eos_token_id=1, decoder_start_token_id=0)
TINY_VAE = dict(base_dim=8, num_res_blocks=1)


try:
    import ftfy  # noqa: F401 - diffusers' Wan prompt cleaning needs it

    HAVE_FTFY = True
except ImportError:
    HAVE_FTFY = False


def fill_random(module: torch.nn.Module, std: float = 0.02) -> None:
    """Give every parameter a value in place: norm weights 1, biases 0, the rest normal(0, std), drawn on the GPU
    where there is one (fast at 14B) and copied to where the parameter lives."""
    rng = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and ("norm" in name or name.endswith(".weight")):
                p.fill_(1.0)
            elif p.ndim == 1:
                p.zero_()
            else:
                for rows in torch.split(torch.arange(p.shape[0]), max(1, (1 << 28) // max(1, p[0].numel()))):
                    part = torch.randn((len(rows), *p.shape[1:]), device=rng, dtype=p.dtype).mul_(std)
                    p[rows[0]:rows[-1] + 1].copy_(part)


def build_empty(factory, dtype: torch.dtype) -> torch.nn.Module:
    """``factory()`` with its parameters made on the meta device, then allocated (uninitialised) in CPU memory in
    ``dtype`` and filled by :func:`fill_random`."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = factory()
    model = model.to(dtype).to_empty(device="cpu")  # the dtype on the meta device first: no fp32 copy in CPU memory
    fill_random(model)
    keep = getattr(model, "_keep_in_fp32_modules", None) or []  # as from_pretrained(torch_dtype=bf16) keeps them
    for name, sub in model.named_modules():
        if name and any(k in name.split(".") for k in keep):
            sub.float()
    return model.eval()


def word_tokenizer():
    """A stand-in word-level tokenizer (the real one is UMT5's sentencepiece model, which cannot be downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_pipeline(model: str, tiny: bool, dtype: torch.dtype, text_encoder=None):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline, WanVACETransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = TINY_TRANSFORMER if tiny else MODELS[model]
    if text_encoder is None:
        text_encoder = build_empty(lambda: UMT5EncoderModel(UMT5Config(**(TINY_UMT5 if tiny else UMT5_XXL))), dtype)
    transformer = build_empty(lambda: WanVACETransformer3DModel(**cfg), dtype)
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**(TINY_VAE if tiny else {})).to(dtype).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                                        num_train_timesteps=1000)
    return WanVACEPipeline(tokenizer=word_tokenizer(), text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                           transformer=transformer)


def params(m: torch.nn.Module) -> float:
    return sum(p.numel() for p in m.parameters()) / 1e9


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run_row(pipe, dev, memory: str, frames: int, height: int, width: int, steps: int, default_steps: int,
            guidance: float, batch: int, already: str | None = None) -> dict:
    """One row; ``already``: the memory setting the pipeline's parts are already placed by (reused, not re-applied)."""
    from lyra3d.models.diffusers_vace import VACEConfig, VACEVideoModel, vace_control
    from lyra3d.models.vace_memory import MemoryPlan

    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    vm = VACEVideoModel(pipe, dev, VACEConfig(memory=memory, trajectory_batch=batch, max_sequence_length=512))
    if already is not None:
        vm.plan = MemoryPlan(already, batch, 0)
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand((batch, frames, 3, height, width), generator=g)
    mask = (torch.rand((batch, frames, 1, 1, 1), generator=g) < 2).float().expand(-1, -1, 1, height, width).clone()
    mask[..., :, width // 2:] = 0  # the right half is a hole in every frame: VACE generates it
    first = rgb[0, 0]
    video, vmask = vace_control(rgb * mask, mask, first)
    vm.place(batch, frames, height, width)  # the memory setting (auto: chosen for this GPU) is applied here
    t0 = time.perf_counter()
    if HAVE_FTFY:
        vm.prompt_embeds("", guidance)  # the pipeline's encode_prompt (its prompt cleaning needs ftfy)
    else:  # the same encoder pass on 512 padding tokens, outside encode_prompt
        ids = torch.zeros((1, 512), dtype=torch.long, device=dev)
        emb = pipe.text_encoder(ids, torch.ones_like(ids)).last_hidden_state.to(vm.dtype)
        vm._embeds[("", guidance > 1)] = (emb, emb.clone() if guidance > 1 else None)
    sync(dev)
    text_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cond = vm.condition(video, vmask)
    sync(dev)
    cond_s = (time.perf_counter() - t0) / batch
    vm.sample(cond, 1, guidance, seed=0)  # warm-up step (kernels, offload hooks, streams)
    sync(dev)
    t0 = time.perf_counter()
    lat = vm.sample(cond, steps, guidance, seed=0)
    sync(dev)
    step_s = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    vm.tokenizer.decode(lat[:1])
    sync(dev)
    decode_s = time.perf_counter() - t0
    per_traj = cond_s + default_steps * step_s / batch
    row = {"memory": vm.plan.setting, "asked": memory, "trajectories_per_call": vm.plan.batch,
           "text_encoder_s": round(text_s, 3), "condition_s_per_traj": round(cond_s, 3),
           "step_s": round(step_s, 3), "step_s_per_traj": round(step_s / batch, 3),
           "traj_s": round(per_traj, 1), "decode_s_per_traj": round(decode_s, 3),
           "scene_s": round(text_s + 6 * per_traj, 1), "scene_with_frames_s": round(text_s + 6 * (per_traj + decode_s), 1),
           "estimate_gib": round(vm.plan.estimate / 2**30, 2)}
    if dev.type == "cuda":
        row["peak_alloc_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(dev) / 2**30, 2)
    del vm, cond, lat
    return row


def release(pipe, dev) -> None:
    """Model-offload hooks off and every part back in CPU memory, so the next row applies its own memory setting
    (group offloading is never undone: its rows come last for each model)."""
    pipe.remove_all_hooks()
    pipe.to("cpu")
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="1.3B,14B")
    ap.add_argument("--frames", default="81,33")
    ap.add_argument("--memory", default="auto,group_offload", help="settings per row (auto = lyra3d's default)")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--steps", type=int, default=2, help="timed denoising steps per row (after one warm-up step)")
    ap.add_argument("--default-steps", type=int, default=30, help="steps per trajectory to extrapolate to")
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--no-batched-row", action="store_true")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip rows once this many seconds have passed")
    ap.add_argument("--tiny", action="store_true", help="tiny configs at 64x32: a smoke run of the script")
    ap.add_argument("--save", type=Path, default=None, help="markdown table (a .json with the rows beside it)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if a.tiny:
        a.height, a.width = 32, 64
    start = time.perf_counter()
    rows = []
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    for model in a.models.split(","):
        t0 = time.perf_counter()
        pipe = build_pipeline(model, a.tiny, dtype)  # a fresh text encoder too: group offloading is never undone
        built = time.perf_counter() - t0
        info = {"model": model, "transformer_b": round(params(pipe.transformer), 3),
                "text_encoder_b": round(params(pipe.text_encoder), 3), "build_s": round(built, 1),
                "ftfy": HAVE_FTFY}
        print(json.dumps(info), flush=True)
        plan = [(f, m, 1) for m in a.memory.split(",") for f in map(int, a.frames.split(","))]
        if model == "1.3B" and not a.no_batched_row:  # six trajectories per transformer call, the shortest video
            plan.insert(len(a.frames.split(",")), (min(map(int, a.frames.split(","))), "auto", 6))
        applied = None  # the memory setting the parts are placed by
        for frames, memory, batch in plan:
            row = {**info, "frames": frames, "size": f"{a.width}x{a.height}", "trajectories_per_call_asked": batch}
            if time.perf_counter() - start > a.budget_s:
                row["error"] = "skipped (time budget)"
            else:
                if applied is not None and memory not in ("auto", applied):
                    if applied == "group_offload":
                        raise SystemExit("group_offload rows must come last for a model (--memory order)")
                    release(pipe, dev)
                    applied = None
                try:
                    row.update(run_row(pipe, dev, memory, frames, a.height, a.width, a.steps, a.default_steps,
                                       a.guidance, batch, applied))
                    applied = row["memory"]
                except (torch.OutOfMemoryError, Exception) as e:  # noqa: BLE001 - one bad row must not end the table
                    row["error"] = "OOM" if "out of memory" in str(e).lower() else f"{type(e).__name__}: {e}"[:200]
                    applied = applied or (memory if memory != "auto" else None)
            row["elapsed_s"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del pipe
        gc.collect()
    table = [f"# Wan 2.1 VACE as the lyra3d teacher: random weights at real size, {gpu}, "
             f"{'bf16' if dtype == torch.bfloat16 else 'fp32'}",
             "", f"{a.width}x{a.height}; guidance {a.guidance} (2 transformer passes per step); {a.steps} timed steps "
             f"after 1 warm-up; trajectory = conditioning + {a.default_steps} steps (extrapolated); scene = text "
             "encoder + 6 trajectories; peak over the whole row (text encoder included).", "",
             "| model | frames | memory | traj/call | text enc s | s/step | s/step/traj | s/traj | s/scene | "
             "s/scene + frames | peak alloc GiB | peak reserved GiB | estimate GiB |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            table.append(f"| {r['model']} | {r['frames']} | {r.get('memory', '?')} | {r['trajectories_per_call_asked']}"
                         f" | {r['error']} | | | | | | | | |")
            continue
        table.append(f"| {r['model']} | {r['frames']} | {r['memory']} | {r['trajectories_per_call']} | "
                     f"{r['text_encoder_s']} | {r['step_s']} | {r['step_s_per_traj']} | {r['traj_s']} | {r['scene_s']} | "
                     f"{r['scene_with_frames_s']} | {r.get('peak_alloc_gib', '-')} | {r.get('peak_reserved_gib', '-')} | "
                     f"{r['estimate_gib']} |")
    text = "\n".join(table) + "\n"
    print(text)
    if a.save:
        a.save.parent.mkdir(parents=True, exist_ok=True)
        a.save.write_text(text)
        a.save.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
