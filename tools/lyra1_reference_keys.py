"""Write the official Lyra-1 decoder's parameter names and shapes (static and dynamic) as JSON: the reference
list that tests/models/test_lyra1_decoder.py checks lyra3d's :class:`~lyra3d.models.lyra1_decoder.Lyra1Decoder`
against, key for key.

It builds NVIDIA's own ``LatentRecon`` (imported from a checkout of github.com/nv-tlabs/lyra, folder Lyra-1)
with the released models' configs (configs/training/default.yaml + ..._multi_6_prune.yaml, resp.
..._multi_6_dynamic_prune.yaml, as configs/demo/lyra_{static,dynamic}.yaml name them) on the CPU and dumps its
``state_dict()`` names and shapes. Imports unrelated to the network that are not installed (renderer, tokenizer
loader, flash-attn, timm, ...) are replaced by stand-ins (tools/lyra1_official.py says which and why); the
architecture is the official one, untouched.

    git -C MIRROR archive HEAD Lyra-1 | tar -x -C /tmp/lyra     # or: git clone https://github.com/nv-tlabs/lyra
    pip install einops pyyaml triton
    MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE pip install --no-build-isolation --no-deps mamba-ssm==2.3.2.post1
    python tools/lyra1_reference_keys.py --repo /tmp/lyra/Lyra-1 --out src/lyra3d/models/data \\
        --commit 9fffc9adc37004091ecf26ef03abfb3abdf4d59a   # the snapshot the committed lists came from
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lyra1_official import VARIANTS, build_official, key_shapes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, type=Path, help="the official Lyra-1 folder (holds src/ and configs/)")
    ap.add_argument("--out", type=Path, default=Path("src/lyra3d/models/data"))
    ap.add_argument("--commit", help="the official commit, recorded (default: git rev-parse HEAD in --repo)")
    args = ap.parse_args()
    commit = args.commit
    try:
        commit = subprocess.run(["git", "-C", str(args.repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip() if commit is None else commit
    except (OSError, subprocess.CalledProcessError):
        pass  # an archive, not a clone: pass --commit
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        model, _, stubs = build_official(args.repo, variant)
        keys = key_shapes(model)
        record = {"source": "nv-tlabs/lyra Lyra-1/src/models/recon/model_latent_recon.py LatentRecon",
                  "commit": commit, "configs": ["configs/training/default.yaml", f"configs/training/{VARIANTS[variant]}"],
                  "stand_ins": stubs, "parameters": sum(_count(s) for s in keys.values()), "keys": keys}
        path = args.out / f"lyra1_decoder_keys_{variant}.json"
        head = json.dumps({k: v for k, v in record.items() if k != "keys"}, indent=1)[:-2]
        lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in keys.items())
        path.write_text(f'{head},\n "keys": {{\n{lines}\n }}\n}}\n')
        json.loads(path.read_text())  # well-formed
        print(f"{path}: {len(keys)} tensors, {record['parameters']:,} parameters")


def _count(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


if __name__ == "__main__":
    main()
