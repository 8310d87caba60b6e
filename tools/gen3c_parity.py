"""Numerical parity of lyra3d's GEN3C with the official code, at a tiny size, on the CPU: the network and the sampler.

1. Network: builds NVIDIA's own ``VideoExtendGeneralDIT`` (from a lyra checkout or bare git, as
   ``tools/gen3c_official_keys.py`` does, with the GEN3C experiment's settings but a tiny width and depth), gives
   every parameter random values, runs its forward on a GEN3C input (latents, condition mask, 64 buffer channels,
   T5-size context, fps 24, zero padding mask), converts its ``state_dict`` with
   :func:`lyra3d.models.gen3c_convert.official_to_diffusers` into diffusers' ``CosmosTransformer3DModel`` and runs
   that on the same input.
2. Sampler: the official ``DiffusionGen3CModel.generate_samples_from_batch`` (the real class and methods:
   ``encode_warped_frames``, ``_get_conditions``, ``_augment_noise_with_latent``, the EDM Euler loop with diffusers'
   scheduler, guidance) around the official tiny network, against lyra3d's ``encode_buffers`` + ``denoise_step``
   loop around the converted diffusers network, from the same noise, warped buffers (one buffer: the second slot
   zero, as for a single image), condition latent and T5-size embeddings. The tokenizer is a fixed stand-in
   (8x8x8 subsampling and a fixed 3→16 channel map) on both sides: the test is of the conditioning and the loop.

Transformer Engine cannot run on a CPU: the three operations the network uses are replaced by their documented
PyTorch equivalents (RMSNorm, softmax attention, the non-interleaved rotary embedding; see
``gen3c_official_keys.install_stubs``); megatron, hydra, logging, the LoRA/PEFT helpers and ``utils.misc`` (its
``timer`` decorator and the seeded noise ``arch_invariant_rand``) are stubbed. So this checks the key mapping, the
channel order, every layer's semantics and the sampler, not Transformer Engine's kernels.

    PYTHONPATH=src:/path/with/einops python tools/gen3c_parity.py --git /work/.mirror/nv-tlabs+lyra/repo
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import diffusers.models.transformers.transformer_cosmos  # noqa: E402,F401 - before the stubs (it probes torchvision)
import gen3c_official_keys as official  # noqa: E402

from lyra3d.models.gen3c import build_gen3c_transformer  # noqa: E402
from lyra3d.models.gen3c_conditioning import condition_indicator, encode_buffers  # noqa: E402
from lyra3d.models.gen3c_convert import check_against_model, config_from_state, official_to_diffusers  # noqa: E402
from lyra3d.models.gen3c_sampling import Gen3CCondition, denoise_step, edm_sigmas, initial_latents  # noqa: E402

TINY = dict(model_channels=64, num_heads=2, num_blocks=2, adaln_lora_dim=16, max_img_h=32, max_img_w=48, max_frames=8)
B, T, H, W = 1, 3, 8, 12  # latent frames, height, width (17 frames of 64x96 pixels)


def seeded_noise(shape, dtype, device, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def install_sampler_stubs() -> None:
    def timer(*_a, **_k):
        return lambda fn: fn

    official._module("cosmos_predict1.utils.misc", timer=timer, arch_invariant_rand=seeded_noise)
    sys.modules["cosmos_predict1.utils.distributed"].get_rank = lambda: 0
    for name in ("cosmos_predict1.diffusion.training.utils.layer_control.peft_control_config_parser",
                 "cosmos_predict1.diffusion.training.utils.peft.peft"):
        official._module(name, LayerControlConfigParser=None, add_lora_layers=None, setup_lora_requires_grad=None)


def build_official_net(spec, seed):
    torch.manual_seed(seed)
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        net = spec["target"](**{**spec["kwargs"], **TINY}).eval()
    finally:
        torch.Tensor.cuda = cuda
    with torch.no_grad():  # random values everywhere (the official init zeroes the AdaLN outputs)
        for name, p in net.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if name.endswith((".1.weight", "affline_norm.weight"))
                    and p.ndim == 1 else 0.05 * torch.randn_like(p))
    return net


def converted(net):
    state = official_to_diffusers({f"net.{k}": v for k, v in net.state_dict().items()})
    config = config_from_state(state)
    check_against_model(state, config)
    model = build_gen3c_transformer(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def report(name, ref, out, tol) -> bool:
    err = (out - ref).abs().max().item()
    rel = err / ref.abs().max().item()
    ok = rel < tol
    print(f"{name}: output {tuple(ref.shape)}, max |diff| {err:.3e} (relative {rel:.2e}) {'OK' if ok else 'FAIL'}")
    return ok


def network_parity(net, model, data_type, g) -> bool:
    x = torch.randn(B, 16, T, H, W, generator=g)
    mask = torch.zeros(B, 1, T, H, W)
    mask[:, :, 0] = 1
    pose = torch.randn(B, 64, T, H, W, generator=g)
    ctx = torch.randn(B, 7, 1024, generator=g)
    ts = torch.tensor([0.25 * float(torch.log(torch.tensor(7.0)))])
    pad = torch.zeros(B, 1, H * 8, W * 8)
    with torch.no_grad():
        ref = net(x=x, timesteps=ts, crossattn_emb=ctx, fps=torch.tensor([24.0]), padding_mask=pad,
                  data_type=data_type, condition_video_input_mask=mask, condition_video_pose=pose)
        out = model(hidden_states=torch.cat([x, mask, pose], 1), timestep=ts, encoder_hidden_states=ctx, fps=24,
                    padding_mask=pad, return_dict=False)[0]
    return report(f"network: official VideoExtendGeneralDIT (tiny {TINY}) vs converted diffusers model", ref, out,
                  1e-4)


def sampler_parity(net, model, g, steps, guidance, seed) -> bool:
    from cosmos_predict1.diffusion.conditioner import VideoExtendCondition
    from cosmos_predict1.diffusion.model.model_gen3c import DiffusionGen3CModel

    mix = torch.randn(16, 3, generator=g)

    def toy_tokenizer(video):  # (B, 3, 17, 64, 96) in [-1, 1] -> (B, 16, 3, 8, 12)
        v = nn.functional.avg_pool3d(video[:, :, ::8].float(), (1, 8, 8))
        return torch.einsum("oc,bcthw->bothw", mix, v)

    text, neg = torch.randn(B, 7, 1024, generator=g), torch.randn(B, 7, 1024, generator=g)
    fps, pad = torch.tensor([24.0]), torch.zeros(B, 1, H * 8, W * 8)

    class Conditioner(nn.Module):  # the T5 embeddings, fps and padding mask the official conditioner would return
        def get_condition_with_negative_prompt(self, batch):
            def make(emb):
                return VideoExtendCondition(crossattn_emb=emb, crossattn_mask=torch.ones(B, emb.shape[1]), fps=fps,
                                            padding_mask=pad)
            return make(text), make(neg)

    config = types.SimpleNamespace(precision="float32", sigma_data=0.5, latent_shape=[16, T, H, W],
                                   input_data_key="video", input_image_key="images_1024", frame_buffer_max=2)
    gen3c = DiffusionGen3CModel(config)
    gen3c.tensor_kwargs = {"device": "cpu", "dtype": torch.float32}
    gen3c.model = nn.ModuleDict({"net": net, "conditioner": Conditioner()})
    gen3c.tokenizer = types.SimpleNamespace(encode=toy_tokenizer)

    pix = torch.rand(B, 17, 1, 3, H * 8, W * 8, generator=g) * 2 - 1  # one warped buffer, as for a single image
    msk = (torch.rand(B, 17, 1, 1, H * 8, W * 8, generator=g) > 0.4).float()
    pix = torch.where(msk > 0, pix, -torch.ones_like(pix))  # holes at -1, as forward_warp writes them
    cond_latent = torch.randn(B, 16, T, H, W, generator=g)
    torch.manual_seed(seed)
    with torch.no_grad():
        ref = gen3c.generate_samples_from_batch({"condition_state": pix, "condition_state_mask": msk},
                                                guidance=guidance, seed=seed, state_shape=[16, T, H, W], n_sample=1,
                                                is_negative_prompt=True, num_steps=steps,
                                                condition_latent=cond_latent, num_condition_t=1,
                                                condition_augment_sigma=0.001)
        torch.manual_seed(seed)
        xt = initial_latents((B, 16, T, H, W))
        cond = Gen3CCondition(gt_latent=cond_latent, indicator=condition_indicator(T, 1),
                              buffers=encode_buffers(lambda v: toy_tokenizer(v) * 0.5, pix, msk), text=text,
                              negative_text=neg)
        noise = seeded_noise(cond_latent.shape, torch.float32, "cpu", seed)
        sig = edm_sigmas(steps).tolist()
        for i in range(steps):
            xt = denoise_step(model, xt, sig[i], sig[i + 1], cond, guidance=guidance, noise=noise)
    return report(f"sampler: official DiffusionGen3CModel.generate_samples_from_batch ({steps} steps, guidance "
                  f"{guidance}) vs lyra3d encode_buffers + denoise_step", ref, xt, 1e-3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--lyra")
    src.add_argument("--git")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=4, help="sampler steps compared (the official count is 35)")
    args = ap.parse_args()
    root, commit = official.export_tree(args)
    sys.path.insert(0, str(root))
    official.install_stubs()
    install_sampler_stubs()
    spec = official.official_net_kwargs(root)
    from cosmos_predict1.diffusion.conditioner import DataType

    print(f"official code: nv-tlabs/lyra {commit[:12]}")
    net = build_official_net(spec, args.seed)
    model = converted(net)
    g = torch.Generator().manual_seed(args.seed + 1)
    ok = network_parity(net, model, DataType.VIDEO, g)
    ok &= sampler_parity(net, model, g, args.steps, 1.0, args.seed)
    ok &= sampler_parity(net, model, g, args.steps, 3.0, args.seed + 1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
