"""GEN3C-Cosmos-7B as diffusers' CosmosTransformer3DModel (lyra3d.models.gen3c, gen3c_convert, gen3c_sampling):
key-for-key against the official network's parameter list, the converter, saving and loading, one step."""

from __future__ import annotations

import pytest
import torch
from gen3c_helpers import TINY, official_record, tiny_official_state

pytest.importorskip("diffusers")

from lyra3d.errors import InputError
from lyra3d.models.gen3c import (
    GEN3C_COSMOS_7B,
    Gen3CConfig,
    build_gen3c_transformer,
    gen3c_config_of,
    load_gen3c_transformer,
    read_gen3c_config,
)
from lyra3d.models.gen3c_conditioning import condition_indicator
from lyra3d.models.gen3c_convert import (
    convert_gen3c_checkpoint,
    diffusers_key,
    official_key_dropped,
    official_to_diffusers,
)
from lyra3d.models.gen3c_sampling import Gen3CCondition, denoise_step, edm_sigmas, predict


def test_official_7b_keys_map_exactly_onto_the_diffusers_model():
    """The official GEN3C network's parameter names and shapes (tests/models/data, made by
    tools/gen3c_official_keys.py from the official module definitions) become exactly the 7B diffusers model's."""
    record = official_record()
    kw = record["kwargs"]
    assert (kw["in_channels"], kw["model_channels"], kw["num_blocks"], kw["num_heads"], record["frame_buffer_max"]) \
        == (81, 4096, 28, 32, 2)
    cfg = GEN3C_COSMOS_7B
    assert (cfg.in_channels, cfg.hidden_size, cfg.num_layers, cfg.num_attention_heads, cfg.frame_buffer_max) \
        == (81, 4096, 28, 32, 2)
    assert cfg.rope_scale == (kw["rope_t_extrapolation_ratio"], kw["rope_h_extrapolation_ratio"],
                              kw["rope_w_extrapolation_ratio"])
    assert cfg.max_size == (kw["max_frames"], kw["max_img_h"], kw["max_img_w"])
    official = {k: torch.empty(s, device="meta") for k, s in record["keys"].items()}
    mapped = official_to_diffusers(official)
    want = {k: tuple(v.shape) for k, v in build_gen3c_transformer(cfg, device="meta").state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == want
    assert sum(v.numel() for v in mapped.values()) == record["net_parameters"] == 7_237_257_216
    dropped = {k for k in official if official_key_dropped(k)}
    assert dropped == {"net.pos_embedder.seq", "logvar.0.freqs", "logvar.0.phases", "logvar.1.weight"}
    assert len(mapped) == len(official) - len(dropped)


def test_key_rules_name_what_they_refuse():
    assert diffusers_key("blocks.block3.blocks.2.block.layer1.weight") == "transformer_blocks.3.ff.net.0.proj.weight"
    assert diffusers_key("blocks.block0.blocks.1.block.attn.to_k.1.weight") == \
        "transformer_blocks.0.attn2.norm_k.weight"
    assert diffusers_key("blocks.block0.blocks.0.block.attn.to_q.0._extra_state") is None
    with pytest.raises(InputError, match="net.blocks.block0.blocks.0.block.attn.to_v.1.weight"):
        diffusers_key("blocks.block0.blocks.0.block.attn.to_v.1.weight")  # RRI: v has no norm
    with pytest.raises(InputError, match="net.foo"):
        official_to_diffusers({"net.foo": torch.zeros(1)})


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_gen3c_transformer(TINY)


def test_tiny_model_saves_and_loads(tmp_path):
    model = _tiny_model()
    assert gen3c_config_of(model) == TINY
    model.save_pretrained(tmp_path / "g")
    assert read_gen3c_config(tmp_path / "g") == TINY
    loaded = load_gen3c_transformer(tmp_path / "g", dtype=torch.float32)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(1, TINY.in_channels, 2, 4, 6)
    text = torch.randn(1, 5, TINY.text_embed_dim)
    with torch.no_grad():
        assert torch.allclose(predict(model, x, 3.0, text), predict(loaded, x, 3.0, text))


def test_loading_refuses_other_folders(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_gen3c_config(tmp_path / "nope")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "config.json").write_text('{"_class_name": "AutoencoderKLCosmos"}')
    with pytest.raises(InputError, match="AutoencoderKLCosmos, not a diffusers CosmosTransformer3DModel"):
        read_gen3c_config(tmp_path / "v")
    with pytest.raises(InputError, match="in_channels=17 is not a GEN3C network"):
        Gen3CConfig.from_diffusers(dict(in_channels=17, out_channels=16, num_attention_heads=2))


def test_converter_round_trips_a_tiny_official_checkpoint(tmp_path):
    state = tiny_official_state()
    state["net.blocks.block0.blocks.0.block.attn.attn_op._extra_state"] = torch.zeros(0)  # TE FP8 metadata
    torch.save({"model": state}, tmp_path / "model.pt")
    summary = convert_gen3c_checkpoint(tmp_path / "model.pt", tmp_path / "out", dtype="fp32")
    assert not summary["is_gen3c_cosmos_7b"] and "logvar.1.weight" in summary["dropped"]
    model = load_gen3c_transformer(tmp_path / "out", dtype=torch.float32)
    assert gen3c_config_of(model) == TINY
    sd = model.state_dict()
    assert torch.equal(sd["patch_embed.proj.weight"], state["net.x_embedder.proj.1.weight"])
    assert torch.equal(sd["transformer_blocks.1.attn2.to_k.weight"],
                       state["net.blocks.block1.blocks.1.block.attn.to_k.0.weight"])
    assert torch.equal(sd["transformer_blocks.0.norm3.linear_2.weight"],
                       state["net.blocks.block0.blocks.2.adaLN_modulation.2.weight"])
    assert torch.equal(sd["time_embed.norm.weight"], state["net.affline_norm.weight"])
    assert torch.equal(sd["proj_out.weight"], state["net.final_layer.linear.weight"])
    n_net = sum(1 for k in state if k.startswith("net.") and not k.endswith(("_extra_state", "pos_embedder.seq")))
    assert len(sd) == n_net


@pytest.mark.parametrize("break_it, fragment", [
    (lambda s: s.pop("net.blocks.block1.blocks.2.block.layer2.weight"),
     "missing keys (1): transformer_blocks.1.ff.net.2"),
    (lambda s: s.__setitem__("net.blocks.block0.blocks.2.block.layer3.weight", torch.zeros(1)),
     "unexpected key net.blocks.block0.blocks.2.block.layer3.weight"),
    (lambda s: s.__setitem__("net.blocks.block1.blocks.0.block.attn.to_q.0.weight", torch.zeros(32, 31)),
     "shape mismatch (1 tensors): transformer_blocks.1.attn1.to_q.weight is (32, 31)"),
    (lambda s: s.__setitem__("decoder.weight", torch.zeros(1)), "unexpected key decoder.weight"),
])
def test_converter_refuses_broken_checkpoints(tmp_path, break_it, fragment):
    state = tiny_official_state()
    break_it(state)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(InputError) as e:
        convert_gen3c_checkpoint(tmp_path / "model.pt", tmp_path / "out")
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_converter_refuses_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a PyTorch checkpoint"):
        convert_gen3c_checkpoint(tmp_path / "notes.txt", tmp_path / "out")
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "vae.pt")
    with pytest.raises(InputError, match="no GEN3C network weights"):
        convert_gen3c_checkpoint(tmp_path / "vae.pt", tmp_path / "out")
    with pytest.raises(InputError, match="checkpoint not found"):
        convert_gen3c_checkpoint(tmp_path / "missing.pt", tmp_path / "out")


def test_edm_schedule_is_diffusers_edm_euler_with_the_official_settings():
    from diffusers import EDMEulerScheduler

    s = EDMEulerScheduler(sigma_max=80, sigma_min=0.0002, sigma_data=0.5)
    s.set_timesteps(35)
    assert torch.allclose(edm_sigmas(35), s.sigmas.float(), rtol=1e-5)
    assert torch.allclose(torch.log(edm_sigmas(35)[:-1]) / 4, s.timesteps.float(), rtol=1e-5)


def _condition(latents=(3, 4, 6), seed=1, buffers=None):
    g = torch.Generator().manual_seed(seed)
    t, h, w = latents
    return Gen3CCondition(gt_latent=torch.randn(1, 16, t, h, w, generator=g), indicator=condition_indicator(t, 1),
                          buffers=torch.randn(1, TINY.buffer_channels, t, h, w, generator=g) if buffers is None
                          else buffers, text=torch.randn(1, 5, TINY.text_embed_dim, generator=g),
                          negative_text=torch.randn(1, 5, TINY.text_embed_dim, generator=g))


def test_one_step_runs_and_depends_on_the_cache_buffers():
    model = _tiny_model()
    cond = _condition()
    sig = edm_sigmas(35).tolist()
    xt = torch.randn(cond.gt_latent.shape, generator=torch.Generator().manual_seed(2)) * sig[3]
    with torch.no_grad():
        a = denoise_step(model, xt, sig[3], sig[4], cond)
        cond.buffers = cond.buffers + 1.0
        b = denoise_step(model, xt, sig[3], sig[4], cond)
        cond.buffers = torch.zeros_like(cond.buffers)
        c = denoise_step(model, xt, sig[3], sig[4], cond, guidance=0.0)
    assert a.shape == xt.shape and torch.isfinite(a).all()
    gen = (slice(None), slice(None), slice(1, None))  # the generated frames (frame 0 is the condition)
    assert (a[gen] - b[gen]).abs().mean() > 1e-3
    assert (a[gen] - c[gen]).abs().mean() > 1e-3
    # the condition frame ends where the official step puts it: the Euler step towards the clean latent
    s, s1 = torch.tensor(sig[3]), torch.tensor(sig[4])
    aug = cond.gt_latent * (1 / (0.001 ** 2 + 0.25) ** 0.5) * (s ** 2 + 0.25) ** 0.5  # augment, noise 0
    want = aug + (aug - cond.gt_latent) / s * (s1 - s)
    assert torch.allclose(a[:, :, :1], want[:, :, :1], rtol=1e-4, atol=1e-4)


def test_denoise_step_is_diffusers_edm_euler_step():
    """The hand-written update equals EDMEulerScheduler.step on the generated frames (as the official loop calls
    it: scheduler.step(output, t, new_xt))."""
    from diffusers import EDMEulerScheduler

    model = _tiny_model()
    cond = _condition()
    cond.indicator = torch.zeros_like(cond.indicator)  # no condition frame: the pure scheduler step
    s = EDMEulerScheduler(sigma_max=80, sigma_min=0.0002, sigma_data=0.5)
    s.set_timesteps(35)
    xt = torch.randn(cond.gt_latent.shape, generator=torch.Generator().manual_seed(3)) * float(s.sigmas[5])
    with torch.no_grad():
        ours = denoise_step(model, xt, float(s.sigmas[5]), float(s.sigmas[6]), cond)
        scaled = xt * (1 / (s.sigmas[5] ** 2 + 0.25) ** 0.5)
        from lyra3d.models.gen3c_conditioning import condition_input_mask, network_input

        mask = condition_input_mask(cond.indicator, 1, 4, 6)
        oc = predict(model, network_input(scaled, mask, cond.buffers), float(s.sigmas[5]), cond.text)
        ou = predict(model, network_input(scaled, mask, cond.buffers, True), float(s.sigmas[5]), cond.negative_text)
        s._step_index = 5
        ref = s.step(oc + (oc - ou), s.timesteps[5], xt).prev_sample
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_padding_mask_resize_without_torchvision_is_nearest():
    from lyra3d.models.gen3c import _nearest_resize

    m = torch.arange(16.0).view(1, 1, 4, 4)
    assert _nearest_resize(m, [2, 2]).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]  # torchvision NEAREST picks these


def test_sample_runs_the_whole_loop_reproducibly():
    from lyra3d.models.gen3c_sampling import sample

    model = _tiny_model()
    cond = _condition()
    seen = []
    a = sample(model, cond, num_steps=3, seed=5, callback=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and a.shape == cond.gt_latent.shape and torch.isfinite(a).all()
    assert torch.equal(a, sample(model, cond, num_steps=3, seed=5))
    assert not torch.allclose(a, sample(model, cond, num_steps=3, seed=6))
