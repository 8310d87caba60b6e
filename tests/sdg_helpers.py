"""Shared by test_distributed.py and test_decoder.py: small SDG folders (the layout of ``lyra3d.data.sdg``) made of
world renders and their tokenizer latents, standing in for the teacher's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lyra3d.data import worlds
from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.trajectories import trajectory


def write_sdg_folder(root: Path, seeds, frames: int = 5, width: int = 96, height: int = 48,
                     names: tuple[str, ...] = ("left", "right")) -> Path:
    """One sample per world seed in ``root``: ``len(names)`` trajectories of ``frames`` frames."""
    from safetensors.torch import save_file

    from lyra3d.models.modeling import shipped_weights
    from lyra3d.models.tokenizer import load_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(shipped_weights("tokenizer"))
    cam = default_camera(width, height)
    cams = Cameras.cat([trajectory(name, cam, frames, 5.0) for name in names])
    v = len(names)
    ids = []
    for seed in seeds:
        r = worlds.render(worlds.make_world(seed), cams, shadows=False)
        rgb = r.rgb.reshape(v, frames, 3, height, width)
        with torch.no_grad():
            latents = tok.encode(rgb)
        d = root / f"world_{seed:07d}"
        d.mkdir()
        save_file({"latents": latents.half().contiguous()}, str(d / "latents.safetensors"))
        np.save(d / "frames.npy", (rgb * 255 + 0.5).to(torch.uint8).numpy())
        np.save(d / "depth.npy", r.depth.reshape(v, frames, 1, height, width).half().numpy())
        (d / "cameras.json").write_text(json.dumps({"names": list(names), "cameras": cams.to_dict()}))
        (d / "meta.json").write_text(json.dumps({"id": d.name}))
        ids.append(d.name)
    (root / "manifest-00000.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    return root
