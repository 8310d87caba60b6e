"""Benchmark a diffusers Wan 2.1 VACE model as lyra3d's teacher (:mod:`lyra3d.models.diffusers_vace`) at real size
with RANDOM weights (none can be downloaded here): seconds per text encoding, per denoising step, per trajectory and
per 6-trajectory scene, and the peak GPU memory of the whole scene run, stage by stage, for Wan2.1-VACE-1.3B and -14B
at 480×832 with 33 and 81 frames, under the memory setting lyra3d picks on this GPU (``auto``) and the lowest
(``group_offload``, one trajectory per transformer call).

    PYTHONUNBUFFERED=1 python benchmarks/vace.py --device cuda --save $OUT/vace_h200.md      # ~7-8 min on one H200
    python benchmarks/vace.py --tiny --device cpu                                         # a CPU smoke run (~1 min)
    python benchmarks/vace.py --device cuda --rows 1.3B:group_offload:81,14B:group_offload:81  # the goal rows only

Rows run in the order of ``--rows`` (default: the two goal rows first, the 1.3B with the lowest setting at 81 frames
and the 14B with group offloading at 81 frames, then the 33-frame rows, then ``auto``); one past ``--budget-s`` is
skipped, an out-of-memory row reads OOM and the next row runs. The table is rewritten after every row.

Each model's parts are built once in CPU memory, in bf16 (parameters made on the meta device, allocated in bf16 in
CPU memory and filled with random values drawn on the GPU in 512 MB chunks: never an fp32 copy of the 14B), wrapped
in diffusers' ``WanVACEPipeline`` and driven by lyra3d's backend (``VACEVideoModel``: the real placement,
conditioning and sampling code). The build's GPU peak (the random draws) is reported on its own line. A row:

1. placement: ``VACEVideoModel.place`` applies the memory setting (``none``: every part to the GPU; offloading: hooks
   installed, CPU copies pinned); its seconds and GPU peak are reported apart (``place s``, ``place GiB``);
2. then the peak counters are reset and the scene runs, stage by stage, each stage's peak recorded: ``text`` (the
   text encoder on an empty prompt and the negative prompt, 512 tokens, twice: cold, then warm), ``condition`` (VAE
   encodes of one trajectory's kept and generated halves + the mask), ``sample`` (one warm-up step, then ``--steps``
   timed steps with classifier-free guidance, 2 transformer passes per step, of as many trajectories per call as the
   plan takes: the conditioning is repeated to that batch) and ``decode`` (the VAE decode of one trajectory: the
   teacher's frames). ``peak GiB`` is the largest stage: the whole scene's peak, since the stages run one after
   the other and every trajectory's conditioning and decoding is alike. ``estimate`` is lyra3d's
   (:func:`lyra3d.models.vace_memory.stage_bytes`), the largest stage too.

Per trajectory and per scene are EXTRAPOLATED from the measured stages: trajectory = conditioning +
``--default-steps`` × step / trajectories per call; scene = warm text encoding + 6 × trajectory (``+ frames``: 6
decodes more). The UMT5-XXL-size encoder is random and its tokenizer a stand-in word-level one, so the 512 tokens are
padding: the compute is the same.
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
    ``dtype``, tied as ``from_pretrained`` ties them, and filled by :func:`fill_random`."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = factory()
    model = model.to(dtype).to_empty(device="cpu")  # the dtype on the meta device first: no fp32 copy in CPU memory
    if hasattr(model, "tie_weights"):  # to_empty unties UMT5's shared / encoder.embed_tokens (one 1B-parameter
        model.tie_weights()  # embedding, as from_pretrained loads it); untied, a second one would sit unused
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


GOAL_ROWS = ["1.3B:group_offload:81", "14B:group_offload:81"]
#: Each model's goal row first, then its other rows, the slowest (14B, auto: 6 trajectories per call) last. One model
#: is in memory at a time (the 14B's parts take ~50 GB of pinned CPU memory under group offloading, of 128 GB), so the
#: rows of a model run together: the 14B goal row starts after the 1.3B's four (~2 min in).
DEFAULT_ROWS = ["1.3B:group_offload:81", "1.3B:group_offload:33", "1.3B:auto:33", "1.3B:auto:81",
                "14B:group_offload:81", "14B:group_offload:33", "14B:auto:33", "14B:auto:81"]


def parse_rows(text: str) -> list[tuple[str, str, int]]:
    """``MODEL:MEMORY:FRAMES,...`` → rows (MEMORY: auto, none, model_offload or group_offload)."""
    from lyra3d.models.vace_memory import MEMORY_SETTINGS

    rows = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        model, memory, frames = item.split(":")
        if model not in MODELS or (memory != "auto" and memory not in MEMORY_SETTINGS):
            raise SystemExit(f"bad row {item!r}: MODEL ({', '.join(MODELS)}):MEMORY (auto, "
                             f"{', '.join(MEMORY_SETTINGS)}):FRAMES")
        rows.append((model, memory, int(frames)))
    return rows


class Stages:
    """Seconds and GPU peaks (allocated, reserved) of the stages of one scene: the counters are reset before each
    stage, so the largest stage peak is the whole run's."""

    def __init__(self, dev: torch.device):
        self.dev, self.seconds, self.peak, self.reserved, self.start = dev, {}, {}, {}, {}

    def run(self, name: str, fn):
        sync(self.dev)
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
            self.start[name] = torch.cuda.memory_allocated(self.dev) / 2**30  # what was resident as it began
        t0 = time.perf_counter()
        out = fn()
        sync(self.dev)
        self.seconds[name] = time.perf_counter() - t0
        if self.dev.type == "cuda":
            self.peak[name] = torch.cuda.max_memory_allocated(self.dev) / 2**30
            self.reserved[name] = torch.cuda.max_memory_reserved(self.dev) / 2**30
        return out


def encode_text(vm, pipe, dev, guidance: float) -> None:
    vm._embeds.clear()
    if HAVE_FTFY:
        vm.prompt_embeds("", guidance)  # the pipeline's encode_prompt (its prompt cleaning needs ftfy)
        return
    at = next(pipe.text_encoder.parameters()).device  # the GPU, or the CPU under group offloading
    ids = torch.zeros((1, 512), dtype=torch.long, device=at)  # the same encoder passes, outside encode_prompt
    with torch.no_grad():
        emb = pipe.text_encoder(ids, torch.ones_like(ids)).last_hidden_state.to(dev, vm.dtype)
        neg = (pipe.text_encoder(ids, torch.ones_like(ids)).last_hidden_state.to(dev, vm.dtype) if guidance > 1
               else None)
    vm._embeds[("", guidance > 1)] = (emb, neg)


def run_row(vm, pipe, dev, frames: int, height: int, width: int, steps: int, default_steps: int,
            guidance: float, trajectories: int = 6) -> dict:
    """One scene's stages with ``vm`` (a ``VACEVideoModel``, placed here at its first row)."""
    from lyra3d.models.diffusers_vace import vace_control
    from lyra3d.models.vace_memory import stage_bytes

    g = torch.Generator().manual_seed(0)
    rgb = torch.rand((1, frames, 3, height, width), generator=g)
    mask = torch.ones((1, frames, 1, height, width))
    mask[..., :, width // 2:] = 0  # the right half is a hole in every frame: VACE generates it
    video, vmask = vace_control(rgb * mask, mask, rgb[0, 0])
    del rgb, mask
    st = Stages(dev)
    plan = st.run("place", lambda: vm.place(trajectories, frames, height, width))
    st.run("text_cold", lambda: encode_text(vm, pipe, dev, guidance))
    st.run("text", lambda: encode_text(vm, pipe, dev, guidance))
    cond = st.run("condition", lambda: vm.condition(video, vmask))
    plan = vm.place(trajectories, frames, height, width)  # condition() planned for its one trajectory
    cond = cond.expand(plan.batch, -1, -1, -1, -1).contiguous()
    st.run("warmup", lambda: vm.sample(cond, 1, guidance, seed=0))  # kernels, offload hooks' tracing, streams
    lat = st.run("sample", lambda: vm.sample(cond, steps, guidance, seed=0))
    st.run("decode", lambda: vm.tokenizer.decode(lat[:1]))
    step_s = st.seconds["sample"] / steps
    calls = -(-trajectories // plan.batch)
    per_traj = st.seconds["condition"] + default_steps * step_s / plan.batch
    scene = st.seconds["text"] + trajectories * st.seconds["condition"] + calls * default_steps * step_s
    est = stage_bytes(vm.sizes, plan.setting, plan.batch, frames, height, width, vm.dtype.itemsize,
                      bool(pipe.vae.use_tiling))
    row = {"memory": plan.setting, "trajectories_per_call": plan.batch, "place_s": round(st.seconds["place"], 1),
           "text_encoder_cold_s": round(st.seconds["text_cold"], 3), "text_encoder_s": round(st.seconds["text"], 3),
           "condition_s_per_traj": round(st.seconds["condition"], 3), "step_s": round(step_s, 3),
           "step_s_per_traj": round(step_s / plan.batch, 3), "traj_s": round(per_traj, 1),
           "decode_s_per_traj": round(st.seconds["decode"], 3), "scene_s": round(scene, 1),
           "scene_with_frames_s": round(scene + trajectories * st.seconds["decode"], 1),
           "vae_tiled": bool(pipe.vae.use_tiling),
           "estimate_gib": round(plan.estimate / 2**30, 2),
           "estimate_stages_gib": {k: round(v / 2**30, 2) for k, v in est.items()}}
    if dev.type == "cuda":
        scene_stages = ("text_cold", "text", "condition", "warmup", "sample", "decode")
        row["place_peak_gib"] = round(st.peak["place"], 2)
        row["peak_alloc_gib"] = round(max(st.peak[k] for k in scene_stages), 2)
        row["peak_reserved_gib"] = round(max(st.reserved[k] for k in scene_stages), 2)
        row["peak_stages_gib"] = {k: round(st.peak[k], 2) for k in scene_stages}
        row["resident_at_stage_start_gib"] = {k: round(st.start[k], 2) for k in scene_stages}
        row["resident_after_gib"] = round(torch.cuda.memory_allocated(dev) / 2**30, 2)
    return row


def table(rows: list[dict], info: list[dict], gpu: str, dtype: torch.dtype, a) -> str:
    lines = [f"# Wan 2.1 VACE as the lyra3d teacher: random weights at real size, {gpu}, "
             f"{'bf16' if dtype == torch.bfloat16 else 'fp32'}", "",
             f"{a.width}x{a.height}; guidance {a.guidance} (2 transformer passes per step); {a.steps} timed steps "
             f"after 1 warm-up; trajectory = conditioning + {a.default_steps} steps (extrapolated); scene = warm text "
             "encoder + 6 trajectories. Peak = the whole scene after placement (peak counters reset after the "
             "memory setting is applied); stages: text / condition / sample (warm-up included) / decode.", ""]
    for i in info:
        lines.append(f"- {i['model']}: transformer {i['transformer_b']}B, text encoder {i['text_encoder_b']}B "
                     f"parameters, built in {i['build_s']} s (GPU peak of the build {i.get('build_peak_gib', '-')} "
                     "GiB, all freed)")
    lines += ["", "| model | frames | memory | traj/call | place s | place GiB | text enc s (cold) | s/step | "
              "s/step/traj | s/traj | s/scene | s/scene + frames | peak alloc GiB | peak reserved GiB | "
              "stage peaks GiB (text/cond/sample/decode) | estimate GiB (text/cond/sample/decode) |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['frames']} | {r.get('memory', r['asked'])} | | {r['error']} "
                         "| | | | | | | | | | | |")
            continue
        p = r.get("peak_stages_gib")
        sp = "-" if p is None else f"{max(p['text_cold'], p['text'])} / {p['condition']} / " \
                                   f"{max(p['warmup'], p['sample'])} / {p['decode']}"
        e = r["estimate_stages_gib"]
        lines.append(f"| {r['model']} | {r['frames']} | {r['memory']}{' (auto)' if r['asked'] == 'auto' else ''} | "
                     f"{r['trajectories_per_call']} | {r['place_s']} | {r.get('place_peak_gib', '-')} | "
                     f"{r['text_encoder_s']} ({r['text_encoder_cold_s']}) | {r['step_s']} | {r['step_s_per_traj']} | "
                     f"{r['traj_s']} | {r['scene_s']} | {r['scene_with_frames_s']} | {r.get('peak_alloc_gib', '-')} | "
                     f"{r.get('peak_reserved_gib', '-')} | {sp} | {e['text']} / {e['condition']} / {e['sample']} / "
                     f"{e['decode']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from lyra3d.models.diffusers_vace import VACEConfig, VACEVideoModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="MODEL:MEMORY:FRAMES,... in the order to run")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--steps", type=int, default=2, help="timed denoising steps per row (after one warm-up step)")
    ap.add_argument("--default-steps", type=int, default=30, help="steps per trajectory to extrapolate to")
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--budget-s", type=float, default=400.0, help="skip rows once this many seconds have passed")
    ap.add_argument("--tiny", action="store_true", help="tiny configs at 64x32: a smoke run of the script")
    ap.add_argument("--save", type=Path, default=None, help="markdown table (a .json with the rows beside it)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if a.tiny:
        a.height, a.width = 32, 64
    plan = parse_rows(a.rows)
    start = time.perf_counter()
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    import diffusers

    cudnn = torch.backends.cudnn.version() if dev.type == "cuda" else None  # conv3d's memory depends on it
    print(json.dumps({"torch": torch.__version__, "cudnn": cudnn, "diffusers": diffusers.__version__, "gpu": gpu}),
          flush=True)
    pipes, models, info, rows = {}, {}, [], []  # model → pipeline; model → (setting asked, VACEVideoModel)
    for model, memory, frames in plan:
        row = {"model": model, "asked": memory, "frames": frames, "size": f"{a.width}x{a.height}"}
        if time.perf_counter() - start > a.budget_s:
            row["error"] = "skipped (time budget)"
        else:
            try:
                for other in [m for m in pipes if m != model]:  # one model in memory at a time (CPU and GPU)
                    if other in models:
                        models.pop(other)[1].release()
                    del pipes[other]
                    gc.collect()
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                        if hasattr(torch._C, "_host_emptyCache"):  # freed pinned CPU blocks back to the system
                            torch._C._host_emptyCache()
                if model not in pipes:
                    if dev.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(dev)
                    t0 = time.perf_counter()
                    pipes[model] = build_pipeline(model, a.tiny, dtype)
                    i = {"model": model, "transformer_b": round(params(pipes[model].transformer), 3),
                         "text_encoder_b": round(params(pipes[model].text_encoder), 3),
                         "build_s": round(time.perf_counter() - t0, 1), "ftfy": HAVE_FTFY}
                    if dev.type == "cuda":
                        i["build_peak_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
                        torch.cuda.empty_cache()
                    info.append(i)
                    print(json.dumps(i), flush=True)
                if model in models and models[model][0] != memory:
                    models[model][1].release()
                    del models[model]
                if model not in models:
                    batch = 1 if memory != "auto" else 0  # a setting asked: its lowest memory, one per call
                    models[model] = (memory, VACEVideoModel(pipes[model], dev, VACEConfig(
                        memory=memory, trajectory_batch=batch, max_sequence_length=512)))
                row.update(run_row(models[model][1], pipes[model], dev, frames, a.height, a.width, a.steps,
                                   a.default_steps, a.guidance))
            except Exception as e:  # noqa: BLE001 - one bad row (OOM, ...) must not end the table
                row["error"] = "OOM" if "out of memory" in str(e).lower() else f"{type(e).__name__}: {e}"[:200]
                gc.collect()
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
        row["elapsed_s"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
        text = table(rows, info, gpu, dtype, a)
        if a.save:  # after every row: a run cut short keeps what it measured
            a.save.parent.mkdir(parents=True, exist_ok=True)
            a.save.write_text(text)
            a.save.with_suffix(".json").write_text(json.dumps({"models": info, "rows": rows}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
