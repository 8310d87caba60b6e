"""GEN3C's text conditioning (lyra3d.models.gen3c_text) and the offload settings (lyra3d.models.offload)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from lyra3d.errors import InputError
from lyra3d.models.gen3c_text import load_text_embeddings
from lyra3d.models.offload import onloaded, place


def test_no_file_gives_the_official_dummy_embeddings():
    text, negative = load_text_embeddings(None)
    assert text.shape == negative.shape == (1, 512, 1024) and not text.any() and not negative.any()


def test_a_file_of_embeddings(tmp_path):
    prompt = torch.randn(7, 24)
    save_file({"prompt": prompt}, str(tmp_path / "t.safetensors"))
    text, negative = load_text_embeddings(tmp_path / "t.safetensors", dim=24)
    assert torch.equal(text, prompt[None]) and negative.shape == (1, 7, 24) and not negative.any()
    save_file({"prompt": prompt, "negative_prompt": prompt[None] * 2}, str(tmp_path / "n.safetensors"))
    assert torch.equal(load_text_embeddings(tmp_path / "n.safetensors", dim=24)[1], prompt[None] * 2)


def test_bad_embedding_files_are_one_line(tmp_path):
    (tmp_path / "x.safetensors").write_text("not tensors")
    with pytest.raises(InputError, match="cannot read the text embeddings"):
        load_text_embeddings(tmp_path / "x.safetensors")
    save_file({"other": torch.zeros(1)}, str(tmp_path / "o.safetensors"))
    with pytest.raises(InputError, match="no 'prompt' tensor"):
        load_text_embeddings(tmp_path / "o.safetensors")
    save_file({"prompt": torch.zeros(1, 3, 8)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(InputError, match=r"must be \(1, L, 1024\)"):
        load_text_embeddings(tmp_path / "w.safetensors")


def test_offload_on_a_cpu_keeps_the_model_where_it_is():
    lin = torch.nn.Linear(2, 2)
    for mode in ("none", "model", "group"):
        assert place(lin, "cpu", mode) is lin
        with onloaded(lin, "cpu", mode) as m:
            assert m.weight.device.type == "cpu"
    with pytest.raises(InputError, match="offload must be one of none, model, group"):
        place(lin, "cpu", "disk")
