"""``lyra3d convert``: other projects' checkpoints into lyra3d model folders (:mod:`lyra3d.models.lyra1_convert`)."""

from __future__ import annotations

from pathlib import Path

import typer

from lyra3d.cli.app import Typer, app, err

convert_app = Typer(help="Convert other projects' released checkpoints into lyra3d model folders.")
app.add_typer(convert_app, name="convert")


@convert_app.command("lyra1-decoder")
def lyra1_decoder(
    checkpoint: Path = typer.Argument(..., help="NVIDIA's lyra_static.pt or lyra_dynamic.pt (Lyra-1)."),
    out: Path = typer.Argument(..., help="The lyra3d model folder to write (config.json + model.safetensors)."),
    variant: str = typer.Option("auto", help="static, dynamic, or auto (dynamic when the file name says so): "
                                "both have the same tensors; the dynamic one reads the time embeddings."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder that lyra3d wrote."),
) -> None:
    """Convert Lyra-1's official 3DGS decoder checkpoint into a lyra3d model folder, key for key
    (read with weights_only: no code in the file runs; every tensor name and shape is checked first)."""
    from lyra3d.models.lyra1_convert import convert_lyra1_decoder

    folder, kind = convert_lyra1_decoder(checkpoint, out, None if variant == "auto" else variant, force)
    err.print(f"wrote {folder} (Lyra-1 {kind} decoder)", highlight=False)


from lyra3d.cli.convert_gen3c import gen3c  # noqa: E402  (the GEN3C-Cosmos converter, its own module)

convert_app.command("gen3c")(gen3c)
