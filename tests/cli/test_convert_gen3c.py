"""``lyra3d convert gen3c`` (lyra3d.cli.convert_gen3c.gen3c), run through a typer group as cli/convert.py
registers it: converts a tiny fake official checkpoint, refuses other files with one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from gen3c_helpers import TINY, tiny_official_state


@pytest.fixture(scope="module")
def convert():
    from typer.testing import CliRunner

    from lyra3d.cli.app import Typer
    from lyra3d.cli.convert_gen3c import gen3c

    group = Typer(help="convert")
    group.callback()(lambda: None)
    group.command("gen3c")(gen3c)
    return lambda *args: CliRunner().invoke(group, ["gen3c", *map(str, args)])


def test_convert_gen3c_writes_a_loadable_folder(tmp_path, convert):
    from lyra3d.models.gen3c import gen3c_config_of, load_gen3c_transformer

    torch.save(tiny_official_state(), tmp_path / "model.pt")
    r = convert(tmp_path / "model.pt", tmp_path / "g")
    assert r.exit_code == 0, r.stderr
    assert "a GEN3C network of other sizes" in r.stderr
    assert gen3c_config_of(load_gen3c_transformer(tmp_path / "g")) == TINY
    r = convert(tmp_path / "model.pt", tmp_path / "g")  # exists
    assert r.exit_code == 2 and "pass --force" in r.stderr
    assert convert(tmp_path / "model.pt", tmp_path / "g", "--force", "--dtype", "fp32").exit_code == 0


def test_convert_gen3c_refuses_with_one_line(tmp_path, convert, assert_one_line_error):
    (tmp_path / "x.pt").write_text("not a checkpoint")
    r = convert(tmp_path / "x.pt", tmp_path / "out")
    assert_one_line_error(r.exit_code, r.stderr, "is not a PyTorch checkpoint")
    state = tiny_official_state()
    del state["net.final_layer.linear.weight"]
    torch.save(state, tmp_path / "m.pt")
    r = convert(tmp_path / "m.pt", tmp_path / "out")
    assert_one_line_error(r.exit_code, r.stderr, "missing key proj_out.weight")
    r = convert(tmp_path / "m.pt", tmp_path / "out", "--dtype", "int8")
    assert_one_line_error(r.exit_code, r.stderr, "dtype must be one of")
    assert not (tmp_path / "out").exists()
