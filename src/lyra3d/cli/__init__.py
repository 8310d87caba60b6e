"""The ``lyra3d`` command line: a thin layer over the Python API, one module per command or command group.

=====================================================  ==========================  ===============================
command                                                module                      Python API it runs
=====================================================  ==========================  ===============================
``lyra3d generate --image|--text|--video``             :mod:`.generate`            :mod:`lyra3d.pipelines`
``lyra3d render``                                      :mod:`.render`              :mod:`lyra3d.core.flythrough`
``lyra3d worlds``                                      :mod:`.worlds`              :mod:`lyra3d.data.datasets`
``lyra3d export``                                      :mod:`.export`              :mod:`lyra3d.io.export`, :mod:`lyra3d.simready`
``lyra3d view``                                        :mod:`.view`                :mod:`lyra3d.viewer`
``lyra3d train depth|tokenizer|video-model|...``       :mod:`.train`               :mod:`lyra3d.train`
``lyra3d sdg``                                         :mod:`.sdg`                 :mod:`lyra3d.data.sdg`
``lyra3d eval teacher|decoder|decoder4d|video-teacher``  :mod:`.eval`              :mod:`lyra3d.evaluation`
``lyra3d convert lyra1-decoder``                       :mod:`.convert`             :mod:`lyra3d.models.lyra1_convert`
=====================================================  ==========================  ===============================

:mod:`.app` holds the typer app and what every command shares: a :class:`~lyra3d.errors.LyraError` or a usage
error is one line on stderr and exit code 2; progress rows come from :class:`lyra3d.core.progress.Progress`.
``python -m lyra3d`` runs this command line (so ``torchrun ... -m lyra3d train decoder`` works).
"""

import importlib
import sys

from lyra3d.cli.app import app

#: The command modules (each registers its commands), imported when typer first reads the app's commands.
COMMANDS = ("generate", "render", "worlds", "export", "view", "train", "sdg", "eval", "convert")
__all__ = ["app", "main", "COMMANDS"]


def _register(names=COMMANDS) -> None:
    for name in names:
        importlib.import_module(f"lyra3d.cli.{name}")


app.loader = _register


@app.callback()
def _group() -> None:
    # a callback keeps `lyra3d` a command group when only one command module is loaded
    pass


def main() -> None:
    """The ``lyra3d`` command: only the module of the command asked for is imported (a fast refusal)."""
    name = sys.argv[1] if len(sys.argv) > 1 else None
    if name in COMMANDS and app.loader is _register:
        app.loader = lambda: _register([name])
    app()
