"""The official GEN3C-Cosmos-7B checkpoint's parameter names and shapes, from the official module definitions.

Instantiates NVIDIA's own ``VideoExtendGeneralDIT`` (``Lyra-1/cosmos_predict1/diffusion/networks/``) on the meta
device with the GEN3C experiment's settings, read from the official config files themselves
(``config/base/net.py`` ``FADITV2Config`` overridden by ``config/inference/cosmos-1-diffusion-gen3c.py``), and
writes its ``state_dict`` names and shapes, prefixed ``net.`` as in the released ``model.pt``, plus the model's
``logvar`` keys (``Sequential(FourierFeatures(128, normalize=True), Linear(128, 1, bias=False))``: the official
``FourierFeatures`` class instantiated, the ``Sequential`` written from ``model_t2w.build_model``).

    python tools/gen3c_official_keys.py --git /work/.mirror/nv-tlabs+lyra/repo \
        --out tests/models/data/gen3c_official_keys.json
    python tools/gen3c_official_keys.py --lyra /path/to/lyra-checkout --out keys.json

Needs ``einops`` (the patch embedding's ``Rearrange`` layer is real). Stubbed, because a CPU machine cannot
import them: ``transformer_engine`` (its ``RMSNorm`` replaced by a module with one ``weight`` of the normalised
size, the parameter Transformer Engine's RMSNorm holds, and its formula; its ``DotProductAttention`` by
parameterless softmax attention — Transformer Engine adds ``_extra_state`` entries for FP8 metadata, which the
converter drops; ``apply_rotary_pos_emb`` by the non-interleaved rotation: these forwards serve
``tools/gen3c_parity.py``), ``megatron.core.parallel_state``, ``hydra``'s ConfigStore, lyra's
``cosmos_predict1.utils.{log,distributed,lazy_config}`` (logging, process groups, the LazyCall config system),
and ``torchvision`` where it is not installed (only used in the forward pass). ``Tensor.cuda`` is made a no-op
while the network is built (its RoPE puts two non-persistent buffers on the GPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lyra1_official import Options  # noqa: E402  (a dict whose items are also attributes)

STUBBED = ["transformer_engine (RMSNorm -> module with `weight` and TE's RMSNorm formula; DotProductAttention -> "
           "parameterless softmax attention; apply_rotary_pos_emb -> the non-interleaved rotation)",
           "megatron.core.parallel_state", "hydra.core.config_store", "cosmos_predict1.utils.log",
           "cosmos_predict1.utils.distributed", "cosmos_predict1.utils.lazy_config (LazyCall records kwargs)",
           "torchvision (only if not installed)", "torch.Tensor.cuda (no-op while building)"]


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__path__ = []  # a package, so submodules can be stubbed too
    sys.modules[name] = mod
    return mod


class _RMSNorm(nn.Module):
    """Stand-in for ``transformer_engine.pytorch.RMSNorm``: its one parameter, ``weight`` (hidden,), and its
    documented operation ``x / sqrt(mean(x²) + eps) · weight`` (zero_centered_gamma off), computed in float32."""

    def __init__(self, hidden_size, eps=1e-5, **_):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()).to(x.dtype)


class _DotProductAttention(nn.Module):
    """Stand-in for ``transformer_engine.pytorch.attention.DotProductAttention`` with ``qkv_format="sbhd"`` and no
    mask: softmax attention scaled by 1/sqrt(head dim); ``(s, b, h, d)`` in, ``(s, b, h·d)`` out. No parameters."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, q, k, v, **_):
        out = nn.functional.scaled_dot_product_attention(*(t.permute(1, 2, 0, 3) for t in (q, k, v)))
        return out.permute(2, 0, 1, 3).flatten(2)


def _apply_rotary_pos_emb(t, freqs, tensor_format="sbhd", fused=True):
    """Stand-in for Transformer Engine's ``apply_rotary_pos_emb`` (``sbhd``): the non-interleaved rotation
    ``t·cos + rotate_half(t)·sin`` on the first ``freqs.shape[-1]`` channels, ``rotate_half([a, b]) = [-b, a]``."""
    assert tensor_format == "sbhd"
    rot = freqs.shape[-1]
    x, rest = t[..., :rot], t[..., rot:]
    a, b = x.float().chunk(2, dim=-1)
    cos, sin = freqs.cos(), freqs.sin()
    out = x.float() * cos + torch.cat([-b, a], dim=-1) * sin
    return torch.cat([out.to(t.dtype), rest], dim=-1)


_AttrDict = Options  # the config system's LazyDict stand-in: a dict whose items are also attributes


def install_stubs() -> None:
    te_pt = _module("transformer_engine.pytorch", RMSNorm=_RMSNorm)
    _module("transformer_engine", pytorch=te_pt)
    _module("transformer_engine.pytorch.attention", DotProductAttention=_DotProductAttention,
            apply_rotary_pos_emb=_apply_rotary_pos_emb)
    ps = _module("megatron.core.parallel_state", is_initialized=lambda: False)
    _module("megatron.core", parallel_state=ps)
    _module("megatron", core=sys.modules["megatron.core"])

    class _Store:
        @staticmethod
        def instance():
            return _Store()

        def store(self, *a, **k):
            pass

    _module("hydra")
    _module("hydra.core")
    _module("hydra.core.config_store", ConfigStore=_Store)
    quiet = lambda *a, **k: None  # noqa: E731
    _module("cosmos_predict1.utils.log", debug=quiet, info=quiet, warning=quiet, critical=quiet, error=quiet)
    _module("cosmos_predict1.utils.distributed")

    def lazy_call(target):
        return lambda **kwargs: _AttrDict(_target_=target, **kwargs)

    _module("cosmos_predict1.utils.lazy_config", LazyCall=lazy_call, LazyDict=_AttrDict, instantiate=None)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        def resize(img, size, interpolation=None, **_):
            return nn.functional.interpolate(img, size=list(size), mode="nearest")

        nearest = types.SimpleNamespace(NEAREST="nearest")
        _module("torchvision", transforms=types.SimpleNamespace(functional=types.SimpleNamespace(resize=resize),
                                                                InterpolationMode=nearest))


def export_tree(args) -> tuple[Path, str]:
    """The folder holding ``cosmos_predict1`` (a checkout's ``Lyra-1``, or exported from a bare git) and its commit."""
    if args.lyra:
        root = Path(args.lyra) / "Lyra-1"
        try:
            commit = subprocess.run(["git", "-C", str(args.lyra), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            commit = "unknown"
        return root, commit
    commit = subprocess.run(["git", "-C", args.git, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="lyra-official."))
    archive = subprocess.run(["git", "-C", args.git, "archive", "HEAD", "Lyra-1/cosmos_predict1"],
                             capture_output=True, check=True).stdout
    tar = tmp / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(tmp, filter="data")
    return tmp / "Lyra-1", commit


def load_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def official_net_kwargs(root: Path) -> dict:
    """FADITV2Config's arguments overridden by the GEN3C experiment's ``net`` (both read from the official files)."""
    cfg = root / "cosmos_predict1/diffusion/config"
    base = load_file(cfg / "base/net.py", "official_base_net").FADITV2Config
    exp = load_file(cfg / "inference/cosmos-1-diffusion-gen3c.py", "official_gen3c_cfg").GEN3C_Cosmos_7B
    net = exp["model"]["net"]
    kwargs = {k: v for k, v in base.items() if k != "_target_"}
    kwargs.update({k: v for k, v in net.items() if k != "_target_"})
    return {"target": net["_target_"], "kwargs": kwargs, "frame_buffer_max": exp["model"].get("frame_buffer_max"),
            "latent_shape": exp["model"].get("latent_shape")}


def official_keys(root: Path) -> dict:
    sys.path.insert(0, str(root))
    install_stubs()
    spec = official_net_kwargs(root)
    from cosmos_predict1.diffusion.module.blocks import FourierFeatures

    cls = spec["target"]
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        with torch.device("meta"):
            net = cls(**spec["kwargs"])
            logvar = nn.Sequential(FourierFeatures(num_channels=128, normalize=True), nn.Linear(128, 1, bias=False))
    finally:
        torch.Tensor.cuda = cuda
    keys = {f"net.{k}": list(v.shape) for k, v in net.state_dict().items()}
    keys.update({f"logvar.{k}": list(v.shape) for k, v in logvar.state_dict().items()})
    params = sum(p.numel() for p in net.parameters())
    return {"network": f"{cls.__module__}.{cls.__name__}",
            "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in spec["kwargs"].items()},
            "frame_buffer_max": spec["frame_buffer_max"], "latent_shape": spec["latent_shape"],
            "net_parameters": params, "keys": keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--lyra", help="a checkout of github.com/nv-tlabs/lyra (the folder holding Lyra-1/)")
    src.add_argument("--git", help="a bare git of nv-tlabs/lyra (HEAD is read)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    root, commit = export_tree(args)
    record = official_keys(root)
    out = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "source": {"repo": "nv-tlabs/lyra", "commit": commit},
           "how": "the official VideoExtendGeneralDIT instantiated on the meta device with the GEN3C experiment "
                  "config; unrelated imports stubbed", "stubbed": STUBBED, **record}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(record['keys'])} keys, {record['net_parameters'] / 1e9:.3f} B network parameters -> {args.out}")


if __name__ == "__main__":
    main()
