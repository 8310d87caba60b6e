"""Import NVIDIA's official Lyra-1 decoder (``LatentRecon``) from a checkout, for the reference key list
(tools/lyra1_reference_keys.py) and the parity benchmark (benchmarks/lyra1_decoder.py). Not part of lyra3d.

Get a checkout of the official code (github.com/nv-tlabs/lyra), e.g.::

    git clone https://github.com/nv-tlabs/lyra && REPO=lyra/Lyra-1
    # or from a bare mirror:  git -C MIRROR archive HEAD Lyra-1 | tar -x -C /tmp/lyra  (REPO=/tmp/lyra/Lyra-1)

Needs ``torch``, ``einops``, ``pyyaml`` and ``mamba-ssm`` (its pure-Python build is enough:
``MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE pip install --no-build-isolation --no-deps
mamba-ssm==2.3.2.post1``, plus ``triton``). The official module imports much that its architecture does not use;
:func:`install_stubs` puts an empty stand-in in ``sys.modules`` for each of these ONLY when it is not
importable (the architecture, the parameter names and shapes are untouched):

* ``gsplat``, ``kiui``, ``plyfile``, ``OpenEXR``, ``Imath``, ``torchvision``: the renderer, file writers and the
  data loader, imported at module level, unused by the network;
* ``cosmos_predict1`` (the tokenizer loader, used only with ``use_cosmos_decoder``, off in the released models);
* ``timm``: only ``trunc_normal_`` / ``DropPath`` / ``to_2tuple`` (initialisation; the stand-in uses PyTorch's);
* ``flash_attn``: ``flash_attn_func(q, k, v)`` for ``(B, N, heads, d)`` tensors, as PyTorch's
  ``scaled_dot_product_attention`` (the same softmax attention, default scale);
* ``selective_scan_cuda``: the compiled Mamba-1 kernel that ``mamba_ssm/__init__`` imports (Mamba2 does not use it);
* ``causal_conv1d`` (only with ``conv_shim=True``, for a GPU run without the compiled package): its forward
  ``causal_conv1d_fwd_function`` as PyTorch's depthwise ``conv1d`` (+ SiLU), which is what the CUDA kernel computes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

#: The released models' configs: training default + the variant (the demo configs name these two).
VARIANTS = {"static": "3dgs_res_704_1280_views_121_multi_6_prune.yaml",
            "dynamic": "3dgs_res_704_1280_views_121_multi_6_dynamic_prune.yaml"}


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__path__ = []  # a package, so that submodules can be stubbed under it
    sys.modules[name] = mod
    return mod


def stub_compiled_mamba1() -> bool:
    """An empty ``selective_scan_cuda`` where it is missing (a pure-Python mamba-ssm build), so that
    ``import mamba_ssm`` (whose ``__init__`` imports the Mamba-1 kernel) works and its Triton SSD kernels can be
    used; returns whether a stand-in was installed."""
    if _missing("selective_scan_cuda") and "selective_scan_cuda" not in sys.modules:
        _module("selective_scan_cuda")
        return True
    return False


def install_stubs(conv_shim: bool = False) -> list[str]:
    """Stand-ins for the unrelated imports that are not installed; returns their names."""
    import torch
    import torch.nn.functional as F

    done = []

    def stub(name, **attrs):
        top = name.split(".")[0]
        if top in done or _missing(top):
            _module(name, **attrs)
            if top not in done:
                done.append(top)

    def unused(*args, **kwargs):
        raise RuntimeError("a stand-in of tools/lyra1_official.py was called: this part is not the network")

    if conv_shim and _missing("causal_conv1d"):
        def causal_conv1d_fwd_function(x, weight, bias, seq_idx, initial_states, final_states_out, silu):
            # x (b, d, l), weight (d, w): depthwise causal convolution
            width = weight.shape[1]
            y = F.conv1d(x, weight[:, None, :].to(x.dtype), None if bias is None else bias.to(x.dtype),
                         padding=width - 1, groups=x.shape[1])[..., :x.shape[-1]]
            return F.silu(y) if silu else y

        _module("causal_conv1d", causal_conv1d_fn=None)
        _module("causal_conv1d.cpp_functions", causal_conv1d_fwd_function=causal_conv1d_fwd_function,
                causal_conv1d_bwd_function=unused, causal_conv1d_update_function=unused)
        done.append("causal_conv1d (PyTorch conv1d)")
    stub("selective_scan_cuda")
    # before the other stand-ins: it imports transformers, which must see the real torchvision or none (and after
    # the conv shim: mamba_ssm's ssd_combined binds causal_conv1d's functions when it is first imported)
    import mamba_ssm  # noqa: F401

    for name in ("kiui", "kiui.op"):
        stub(name, inverse_sigmoid=unused)
    stub("gsplat")
    stub("gsplat.rendering", rasterization=unused)
    stub("plyfile", PlyData=unused, PlyElement=unused)
    stub("OpenEXR")
    stub("Imath")
    stub("torchvision")
    stub("torchvision.transforms")
    for name in ("cosmos_predict1", "cosmos_predict1.tokenizer", "cosmos_predict1.tokenizer.inference",
                 "cosmos_predict1.tokenizer.networks"):
        stub(name)
    sys.modules["cosmos_predict1.tokenizer.inference.video_lib"] = _module(
        "cosmos_predict1.tokenizer.inference.video_lib", CausalVideoTokenizer=unused)
    sys.modules["cosmos_predict1.tokenizer.networks"].__dict__.update(TokenizerConfigs=unused,
                                                                       TokenizerModels=unused)

    class DropPath(torch.nn.Identity):
        def __init__(self, *args, **kwargs):
            super().__init__()

    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    for name in ("timm", "timm.models", "timm.models.layers"):
        stub(name, trunc_normal_=torch.nn.init.trunc_normal_, DropPath=DropPath, to_2tuple=to_2tuple)

    def flash_attn_func(q, k, v, *args, **kwargs):
        return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    stub("flash_attn", flash_attn_func=flash_attn_func)
    return done


class Options(dict):
    """The official ``opt``: attribute access and ``.get`` (an OmegaConf DictConfig's interface)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def official_options(repo: Path, variant: str) -> Options:
    """default.yaml merged with the variant's training config (later keys win), as the demo configs do."""
    import yaml

    configs = Path(repo) / "configs" / "training"
    opt = {}
    for name in ("default.yaml", VARIANTS[variant]):
        opt.update(yaml.safe_load((configs / name).read_text()) or {})
    return Options(opt)


def load_official(repo: str | Path, conv_shim: bool = False):
    """``(LatentRecon, stubs)``: the official class imported from the checkout at ``repo`` (the ``Lyra-1``
    folder), and the names of the stand-ins installed."""
    repo = Path(repo).resolve()
    if not (repo / "src" / "models" / "recon" / "model_latent_recon.py").is_file():
        raise SystemExit(f"{repo} is not Lyra-1's folder of the official code (no src/models/recon/model_latent_recon.py)")
    stubs = install_stubs(conv_shim)
    sys.path.insert(0, str(repo))
    module = importlib.import_module("src.models.recon.model_latent_recon")
    return module.LatentRecon, stubs


def build_official(repo: str | Path, variant: str, device: str = "cpu", conv_shim: bool = False, **overrides):
    """The official module of ``variant`` (``static``/``dynamic``) built with its config (plus ``overrides``),
    and the stand-ins installed."""
    import torch

    cls, stubs = load_official(repo, conv_shim)
    opt = official_options(repo, variant)
    opt.update(overrides)
    with torch.device(device):
        model = cls(opt)
    return model, opt, stubs


def key_shapes(model) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


__all__ = ["VARIANTS", "build_official", "install_stubs", "key_shapes", "load_official", "official_options"]
