"""Time and memory of real-size models from local folders, with random weights (nothing is downloaded): Depth
Anything V2 Small and Large (transformers) as the depth part, and a Stable Diffusion 1.5-size pipeline (diffusers)
as the text-to-image part, each built from its published configuration, saved with ``save_pretrained`` and loaded
through lyra3d's real loading code; then one image → 3D and one text → 3D generation with them.

    python benchmarks/real_models.py [--device cuda] [--work /tmp/real_models] [--repeats 3]

Prints a table (part, size, load seconds, seconds per call (median), peak GPU memory). Random weights: the times and
memory are those of the real models; the pictures and depths mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def depth_anything_v2(folder: Path, size: str) -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    small = size == "small"
    backbone = Dinov2Config(hidden_size=384 if small else 1024, num_hidden_layers=12 if small else 24,
                            num_attention_heads=6 if small else 16, image_size=518, patch_size=14,
                            out_features=["stage3", "stage6", "stage9", "stage12"] if small else
                            ["stage5", "stage12", "stage18", "stage24"], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=backbone.hidden_size,
                                 neck_hidden_sizes=[48, 96, 192, 384] if small else [256, 512, 1024, 1024],
                                 fusion_hidden_size=64 if small else 256, head_hidden_size=32,
                                 reassemble_factors=[4, 2, 1, 0.5])
    model = DepthAnythingForDepthEstimation(config)
    with torch.no_grad():
        model.head.conv3.bias.fill_(0.5)  # positive disparity from random weights
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)
    return folder


def sd15(folder: Path) -> Path:
    """SD 1.5's UNet (860M), VAE (84M) and CLIP ViT-L text encoder (123M) configs; a tokenizer of letters."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = 49406, 49407
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=768))
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                        sample_size=512)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=EulerDiscreteScheduler(steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    for f in ("vocab.json", "merges.txt"):
        (folder / f).unlink()
    pipe.save_pretrained(folder)
    return folder


def timed(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--work", default="/tmp/real_models")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from lyra3d.core.cameras import default_camera
    from lyra3d.data import worlds
    from lyra3d.models.diffusers_text_to_image import DiffusersTextToImage
    from lyra3d.models.hf_depth import load_depth
    from lyra3d.pipelines import ImageTo3DPipeline, TextTo3DPipeline

    dev, work = args.device, Path(args.work)
    gpu = dev.startswith("cuda")
    image = worlds.render(worlds.make_world(1_000_000), default_camera()).rgb  # (1, 3, 176, 320)
    rows = []

    def peak() -> str:
        return f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MB" if gpu else "-"

    for size in ("small", "large"):
        folder = work / f"depth_anything_v2_{size}"
        if not folder.is_dir():
            depth_anything_v2(folder, size)
        torch.cuda.reset_peak_memory_stats() if gpu else None
        t0 = time.perf_counter()
        est = load_depth(folder, dev)
        load = time.perf_counter() - t0
        params = sum(p.numel() for p in est.model.parameters()) / 1e6
        est(image.to(dev))
        s = timed(lambda e=est: e(image.to(dev)), args.repeats, dev)
        rows.append((f"depth: Depth Anything V2 {size}", f"{params:.1f}M", f"{load:.1f}", f"{s:.3f}", peak()))
        if size == "small":
            pipe = ImageTo3DPipeline.from_pretrained(device=dev, depth=folder)
            pipe(image[0], seed=0)
            s = timed(lambda: pipe(image[0], seed=0), 1, dev)
            rows.append(("image -> 3D, 6 trajectories × 17 frames, DA-V2 small depth", "-",
                         f"{pipe.load_seconds:.1f}", f"{s:.2f}", peak()))
            del pipe
        del est
    folder = work / "sd15"
    if not folder.is_dir():
        sd15(folder)
    torch.cuda.reset_peak_memory_stats() if gpu else None
    t0 = time.perf_counter()
    t2i = DiffusersTextToImage.from_pretrained(folder, dev)
    load = time.perf_counter() - t0
    params = sum(p.numel() for name in ("unet", "vae", "text_encoder")
                 for p in getattr(t2i.pipeline, name).parameters()) / 1e6
    w, h = t2i.size_for(320 / 176)
    for steps in (8, 30):
        s = timed(lambda t=t2i, n=steps: t.generate("a red sphere", steps=n, guidance=3.0, aspect=320 / 176), args.repeats,
                  dev)
        rows.append((f"text-to-image: SD 1.5 size, {w}x{h}, {steps} steps", f"{params:.0f}M", f"{load:.1f}",
                     f"{s:.2f}", peak()))
    del t2i
    pipe = TextTo3DPipeline.from_pretrained(device=dev, text_to_image=folder)
    pipe("a red sphere on a wooden floor", seed=0)
    s = timed(lambda: pipe("a red sphere on a wooden floor", seed=0), 1, dev)
    rows.append(("text -> 3D (SD 1.5 size, 8 steps) -> 6 trajectories × 17 frames", "-", f"{pipe.load_seconds:.1f}",
                 f"{s:.2f}", peak()))
    name = torch.cuda.get_device_name() if gpu else "CPU"
    print(f"\nreal-size models, random weights, {name}, torch {torch.__version__}\n")
    print("| part | params | load s | s per call | peak GPU memory |\n|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
