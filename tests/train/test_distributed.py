"""Decoder training on N processes (issue 10's CPU part): ``torchrun --nproc_per_node 2 -m lyra3d train decoder
--device cpu`` runs data-parallel through accelerate with the gloo backend, both processes stop at the same step (also under a time-based
schedule, where each process measures its own time), and the run resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("accelerate")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

T, W, H = 5, 96, 48


@pytest.fixture(scope="module")
def sdg_folder(tmp_path_factory, write_sdg_folder):
    """Four samples in the SDG layout (``lyra3d.data.sdg``): world renders and their tokenizer latents."""
    return write_sdg_folder(tmp_path_factory.mktemp("sdg"), range(4), T, W, H)


def _launch(out, data, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # --standalone: a rendezvous on a free local port per launch, not the fixed 29500 that back-to-back launches
    # (and anything else on the machine) share
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lyra3d", "train", "decoder", "--tiny",
           "--out", str(out), "--data", str(data), "--device", "cpu", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_two_processes_train_stop_together_and_resume(sdg_folder, tmp_path):
    out = tmp_path / "run"
    r = _launch(out, sdg_folder, "--steps", "4", "--save-every", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    log = _log(out)
    assert log[0]["processes"] == 2
    assert any(e.get("step") == 4 and "eval" in e for e in log)  # the final evaluation, on the main process
    assert (out / "model" / "model.safetensors").is_file()
    state = torch.load(out / "trainer.pt", weights_only=False)
    assert state["step"] == 4

    # resume: the same command with more steps continues from step 4
    r = _launch(out, sdg_folder, "--steps", "6", "--save-every", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert torch.load(out / "trainer.pt", weights_only=False)["step"] == 6

    # a time-based schedule: each process measures its own time; they must agree on when to stop (else
    # DDP would wait forever and the launch would time out)
    timed = tmp_path / "timed"
    r = _launch(timed, sdg_folder, "--steps", "100000", "--train-time-s", "3", "--save-every", "100000")
    assert r.returncode == 0, r.stderr[-3000:]
    stops = [e for e in _log(timed) if "stopped" in e]
    assert len(stops) == 1 and stops[0]["step"] > 1
