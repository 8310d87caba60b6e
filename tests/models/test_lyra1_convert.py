"""Converting Lyra-1's official decoder checkpoints (lyra3d.models.lyra1_convert): the DeepSpeed layout
(``{"module": state_dict}``) read with weights_only, every name and shape checked, refusals in one line."""

import json
import pickle

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.configs import Lyra1DecoderConfig
from lyra3d.models.lyra1_convert import convert_lyra1_decoder, variant_of
from lyra3d.models.lyra1_decoder import Lyra1Decoder
from lyra3d.models.modeling import load_pretrained

TINY = Lyra1DecoderConfig(dim=32, depth=2, heads=4, transformer_every=2, mamba_d_state=8, mamba_headdim=16)


def official_file(path, state, layout="deepspeed"):
    data = {"module": state, "global_steps": 83000, "ds_version": "0.16.4", "dp_world_size": 8} \
        if layout == "deepspeed" else state
    torch.save(data, path)
    return path


def tiny_state(seed=0):
    torch.manual_seed(seed)
    return {k: v + 0.1 * torch.randn_like(v) for k, v in Lyra1Decoder(TINY).state_dict().items()}


@pytest.mark.parametrize("layout", ["deepspeed", "bare"])
def test_converts_key_for_key(tmp_path, layout):
    state = tiny_state()
    src = official_file(tmp_path / "lyra_dynamic.pt", {k: v.bfloat16() for k, v in state.items()}, layout)
    out, variant = convert_lyra1_decoder(src, tmp_path / "out", config=TINY)
    assert variant == "dynamic"  # from the file name
    assert json.loads((out / "config.json").read_text())["dynamic"] is True
    model = load_pretrained(out)
    assert isinstance(model, Lyra1Decoder) and model.config.dynamic
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k].bfloat16().float())
    assert (out / "SOURCE.md").is_file()


def test_variant_from_name_or_option(tmp_path):
    assert variant_of(tmp_path / "lyra_static.pt", None) == "static"
    assert variant_of(tmp_path / "Lyra_DYNAMIC.pt", "auto") == "dynamic"
    assert variant_of(tmp_path / "lyra_dynamic.pt", "static") == "static"
    with pytest.raises(InputError, match="static or dynamic"):
        variant_of(tmp_path / "x.pt", "4d")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_refusals_name_the_problem_and_write_nothing(tmp_path, capfd):
    state = tiny_state()
    cases = {}
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    cases["notes.pt"] = "not a PyTorch checkpoint"
    missing = dict(state)
    missing.pop("deconv.bias")
    cases[official_file(tmp_path / "missing.pt", missing).name] = "1 missing tensors (deconv.bias)"
    extra = {**state, "gs.extra": torch.zeros(1)}
    cases[official_file(tmp_path / "extra.pt", extra).name] = "1 unexpected (gs.extra)"
    wrong = {**state, "deconv.bias": torch.zeros(13)}
    cases[official_file(tmp_path / "wrong.pt", wrong).name] = "deconv.bias [13] (want [12])"
    nan = {**state, "enc_norm.weight": torch.full_like(state["enc_norm.weight"], float("nan"))}
    cases[official_file(tmp_path / "nan.pt", nan).name] = "NaN"
    torch.save({"module": [1, 2, 3]}, tmp_path / "list.pt")
    cases["list.pt"] = "no state dict"

    class Payload:  # a pickle that would run code: refused by weights_only, not executed
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"module": Payload()}, tmp_path / "code.pt")
    cases["code.pt"] = "more than tensors"
    with open(tmp_path / "plain.pt", "wb") as f:  # a bare pickle is no torch checkpoint either
        pickle.dump({"module": Payload()}, f)
    cases["plain.pt"] = "not a PyTorch checkpoint"
    for name, fragment in cases.items():
        with pytest.raises(InputError) as e:
            convert_lyra1_decoder(tmp_path / name, tmp_path / f"out_{name}", config=TINY)
        assert fragment in str(e.value) and "\n" not in str(e.value), (name, str(e.value))
        assert not (tmp_path / f"out_{name}").exists()
    assert "ran" not in capfd.readouterr().out  # the payload never ran
    with pytest.raises(InputError, match="not found"):
        convert_lyra1_decoder(tmp_path / "absent.pt", tmp_path / "o", config=TINY)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("x")
    src = official_file(tmp_path / "ok.pt", state)
    with pytest.raises(InputError, match="exists"):
        convert_lyra1_decoder(src, tmp_path / "taken", config=TINY)
    with pytest.raises(InputError, match="did not write"):
        convert_lyra1_decoder(src, tmp_path / "taken", force=True, config=TINY)


def test_real_size_checkpoint_converts(tmp_path, invoke):
    """The released size through the command line (bf16, as a DeepSpeed bf16 run saves it)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Lyra1Decoder(Lyra1DecoderConfig()).state_dict().items()}
    state = {k: torch.full(s, 0.01, dtype=torch.bfloat16) for k, s in shapes.items()}
    state["deconv.weight"] = torch.randn(shapes["deconv.weight"], generator=torch.Generator().manual_seed(0)).bfloat16()
    src = official_file(tmp_path / "lyra_static.pt", state)
    result = invoke("convert", "lyra1-decoder", src, tmp_path / "lyra_static")
    assert result.exit_code == 0, result.stderr
    assert "static" in result.stderr
    from safetensors import safe_open

    config = json.loads((tmp_path / "lyra_static" / "config.json").read_text())
    assert config["dynamic"] is False and config["dim"] == 512 and config["depth"] == 16
    with safe_open(str(tmp_path / "lyra_static" / "model.safetensors"), framework="pt") as f:
        assert {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict) == {k: tuple(s) for k, s in shapes.items()}
        torch.testing.assert_close(f.get_tensor("deconv.weight"), state["deconv.weight"].float())


def test_command_line_refusal_is_one_line(tmp_path, invoke, assert_one_line_error):
    (tmp_path / "x.pt").write_bytes(b"\x00\x01garbage")
    result = invoke("convert", "lyra1-decoder", tmp_path / "x.pt", tmp_path / "out")
    assert_one_line_error(result.exit_code, result.stderr, "not a PyTorch checkpoint")
    torch.save({"module": {"enc_norm.weight": torch.ones(512)}}, tmp_path / "lyra_static.pt")
    result = invoke("convert", "lyra1-decoder", tmp_path / "lyra_static.pt", tmp_path / "out")
    assert_one_line_error(result.exit_code, result.stderr, "missing tensors")
    assert not (tmp_path / "out").exists()
