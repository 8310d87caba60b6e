"""Numerical parity of the converted diffusers GEN3C network with the official one, at a tiny size, on the CPU.

Builds NVIDIA's own ``VideoExtendGeneralDIT`` (from a lyra checkout or bare git, as
:mod:`tools.gen3c_official_keys` does, with the GEN3C experiment's settings but a tiny width/depth), gives every
parameter random values, runs its forward on a GEN3C input (latents, condition mask, 64 buffer channels, T5-size
context, fps 24, zero padding mask), converts its ``state_dict`` with
:func:`lyra3d.models.gen3c_convert.official_to_diffusers` into diffusers' ``CosmosTransformer3DModel`` and runs
that on the same input. Transformer Engine cannot run on a CPU: its three operations the network uses are
replaced by their documented PyTorch equivalents (RMSNorm, softmax attention, the non-interleaved rotary
embedding; see ``gen3c_official_keys.install_stubs``), so this checks the key mapping, the channel order and
every layer's semantics, not Transformer Engine's kernels.

    PYTHONPATH=src:/path/with/einops python tools/gen3c_parity.py --git /work/.mirror/nv-tlabs+lyra/repo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import diffusers.models.transformers.transformer_cosmos  # noqa: E402,F401 - before the stubs (it probes torchvision)
import gen3c_official_keys as official  # noqa: E402

from lyra3d.models.gen3c import build_gen3c_transformer  # noqa: E402
from lyra3d.models.gen3c_convert import check_against_model, config_from_state, official_to_diffusers  # noqa: E402

TINY = dict(model_channels=64, num_heads=2, num_blocks=2, adaln_lora_dim=16, max_img_h=32, max_img_w=48, max_frames=8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--lyra")
    src.add_argument("--git")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root, commit = official.export_tree(args)
    sys.path.insert(0, str(root))
    official.install_stubs()
    spec = official.official_net_kwargs(root)
    from cosmos_predict1.diffusion.conditioner import DataType

    kwargs = {**spec["kwargs"], **TINY}
    torch.manual_seed(args.seed)
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        net = spec["target"](**kwargs).eval()
    finally:
        torch.Tensor.cuda = cuda
    with torch.no_grad():  # random values everywhere (the official init zeroes the AdaLN outputs)
        for name, p in net.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if name.endswith((".1.weight", "affline_norm.weight"))
                    and p.ndim == 1 else 0.05 * torch.randn_like(p))
    g = torch.Generator().manual_seed(args.seed + 1)
    b, t, h, w = 1, 3, 8, 12
    x = torch.randn(b, 16, t, h, w, generator=g)
    mask = torch.zeros(b, 1, t, h, w)
    mask[:, :, 0] = 1
    pose = torch.randn(b, 64, t, h, w, generator=g)
    ctx = torch.randn(b, 7, 1024, generator=g)
    ts = torch.tensor([0.25 * float(torch.log(torch.tensor(7.0)))])
    fps = torch.tensor([24.0])
    pad = torch.zeros(b, 1, h * 8, w * 8)
    with torch.no_grad():
        ref = net(x=x, timesteps=ts, crossattn_emb=ctx, fps=fps, padding_mask=pad, data_type=DataType.VIDEO,
                  condition_video_input_mask=mask, condition_video_pose=pose)
    state = official_to_diffusers({f"net.{k}": v for k, v in net.state_dict().items()})
    config = config_from_state(state)
    check_against_model(state, config)
    model = build_gen3c_transformer(config)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(hidden_states=torch.cat([x, mask, pose], 1), timestep=ts, encoder_hidden_states=ctx, fps=24,
                    padding_mask=pad, return_dict=False)[0]
    err = (out - ref).abs().max().item()
    rel = err / ref.abs().max().item()
    print(f"official {commit[:12]} VideoExtendGeneralDIT (tiny: {TINY}) vs converted diffusers "
          f"CosmosTransformer3DModel: output {tuple(ref.shape)}, max |diff| {err:.3e} (relative {rel:.2e})")
    sys.exit(0 if rel < 1e-4 else 1)


if __name__ == "__main__":
    main()
