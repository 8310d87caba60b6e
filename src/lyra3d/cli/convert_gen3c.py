"""``lyra3d convert gen3c CKPT OUT_DIR``: GEN3C's released checkpoint (``Gen3C-Cosmos-7B/model.pt``) → a diffusers
``CosmosTransformer3DModel`` folder (:func:`lyra3d.models.gen3c_convert.convert_gen3c_checkpoint`).

The command function :func:`gen3c` is registered on the ``convert`` command group (``cli/convert.py``)."""

from __future__ import annotations

from pathlib import Path

import typer

from lyra3d.cli.app import err


def gen3c(
    checkpoint: Path = typer.Argument(..., help="The official GEN3C checkpoint: Gen3C-Cosmos-7B/model.pt."),
    out_dir: Path = typer.Argument(..., help="Output folder (diffusers CosmosTransformer3DModel: config.json + "
                                   "safetensors shards)."),
    dtype: str = typer.Option("bf16", "--dtype", help="Weights on disk: bf16 (14 GB for the 7B), fp16 or fp32."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder written by lyra3d."),
) -> None:
    """Convert GEN3C's released checkpoint to a diffusers CosmosTransformer3DModel folder, key for key (refuses any
    other file with one line). Needs diffusers; reads the file memory-mapped (about 15 GB of memory for the 7B)."""
    from lyra3d.models.gen3c_convert import convert_gen3c_checkpoint

    summary = convert_gen3c_checkpoint(checkpoint, out_dir, dtype=dtype, force=force)
    kind = "GEN3C-Cosmos-7B" if summary["is_gen3c_cosmos_7b"] else "a GEN3C network of other sizes"
    err.print(f"wrote {out_dir}: {kind}, {summary['tensors']} tensors, {summary['parameters']:,} "
              f"parameters ({summary['dtype']}); dropped {len(summary['dropped'])} non-network keys", highlight=False,
              soft_wrap=True)
