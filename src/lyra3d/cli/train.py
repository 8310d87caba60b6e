"""``lyra3d train depth|tokenizer|video-model|text-to-image|decoder``: one command per training config.

Each training module (:mod:`lyra3d.train.depth`, ...) has a config dataclass (a
:class:`~lyra3d.train.common.RunConfig`) and ``train(config)``; its command is made here from the config: an
option per field (``batch_size`` → ``--batch-size``, of the field's type, its comment in the class body as the
help, its default shown), ``--tiny`` (the class's ``tiny`` preset: a few CPU-sized steps) and, where the model
config has one, ``--base-channels``. Options not given keep the config's value (the preset's with ``--tiny``).
The command runs ``train(config)`` and prints its result as one JSON line (the run logs JSON lines on the way).

Several processes: ``torchrun --nproc_per_node N -m lyra3d train decoder ...`` (``python -m lyra3d`` is this
command line).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import json
import re
import tokenize
import typing

import typer
from rich.markup import escape

from lyra3d.cli.app import Typer, app, help_text

train_app = Typer(help="Train the project's models (GPU recommended; every run is resumable).")
app.add_typer(train_app, name="train")

#: command → (module, its config class, what the command does)
TRAININGS = {
    "depth": ("lyra3d.train.depth", "DepthTrainConfig", "Train the monocular depth network on procedural worlds."),
    "tokenizer": ("lyra3d.train.tokenizer", "TokenizerTrainConfig",
                  "Train the video tokenizer on procedural-world videos."),
    "video-model": ("lyra3d.train.video_model", "VideoModelTrainConfig",
                    "Train the camera-controlled video diffusion model (needs --tokenizer DIR)."),
    "text-to-image": ("lyra3d.train.text_to_image", "TextToImageTrainConfig",
                      "Train the text-to-image model and measure its prompt following (needs --tokenizer DIR)."),
    "decoder": ("lyra3d.train.decoder", "DecoderTrainConfig",
                "Train the 3DGS decoder by self-distillation on an SDG folder (needs --data DIR)."),
}

_OPTION_TYPES = (int, float, str, bool)


def field_comments(cls: type) -> dict[str, str]:
    """The trailing comment of each field in the class bodies of dataclass ``cls`` and its bases
    (``steps: int = 10  # optimiser steps``): the nearest class that comments a field wins."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        names = {f.name for f in dataclasses.fields(klass)}
        tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(klass)).readline)
        for tok in tokens:
            field = re.match(r"\s*(\w+)\s*:", tok.line)
            if tok.type == tokenize.COMMENT and field and field.group(1) in names:
                comments[field.group(1)] = tok.string.lstrip("#").strip()
    return comments


def _option_help(comment: str, value, tiny) -> str:
    """A field's comment as option help (a capital first letter, a full stop), with the --tiny preset's value
    when it differs from the default."""
    text = comment[:1].upper() + comment[1:]
    text = text if not text or text.endswith(".") else text + "."
    if tiny == value:
        return text
    return f"{text} --tiny: {tiny!r}." if isinstance(tiny, str) else f"{text} --tiny: {tiny}."


def config_parameters(cls: type) -> list[inspect.Parameter]:
    """The command's parameters for config class ``cls``: the typer context, ``--tiny``, an option per field
    (default: the field's), ``--base-channels`` when the model config has that field."""
    full, tiny = cls(), cls.tiny(cls().out)
    types, comments = typing.get_type_hints(cls), field_comments(cls)

    def option(name: str, kind: type, default, help: str) -> inspect.Parameter:
        flag = "--" + name.replace("_", "-")
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                 default=typer.Option(default, flag, help=escape(help)))

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
              option("tiny", bool, False, "A few CPU-sized steps on a handful of small worlds (tests, smoke runs); "
                                          "the options given change the preset.")]
    for f in dataclasses.fields(cls):
        if f.name == "model":
            continue
        if types[f.name] not in _OPTION_TYPES:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line option for a field of type {types[f.name]}")
        default = getattr(full, f.name)
        params.append(option(f.name, types[f.name], default,
                             _option_help(comments.get(f.name, ""), default, getattr(tiny, f.name))))
    model = getattr(full, "model", None)
    if model is not None and "base_channels" in {f.name for f in dataclasses.fields(model)}:
        params.append(option("base_channels", int, model.base_channels,
                             _option_help("the model's width (channels of its first level)", model.base_channels,
                                          tiny.model.base_channels)))
    return params


def config_from_options(cls: type, options: dict, given: set[str]):
    """The config a command's ``options`` ask for: ``cls.tiny(out)`` with ``tiny``, else ``cls()``, then the
    options ``given`` on the command line; ``base_channels`` goes to the model config."""
    changed = {k: v for k, v in options.items() if k in given and k != "tiny"}
    base_channels = changed.pop("base_channels", None)
    config = cls.tiny(changed.get("out", cls().out)) if options.get("tiny") else cls()
    for name, value in changed.items():
        setattr(config, name, value)
    if base_channels is not None:
        config.model = dataclasses.replace(config.model, base_channels=base_channels)
    return config


def _help(summary: str, module) -> str:
    """The command's help: ``summary``, then the module's docstring without its first sentence and its
    reStructuredText markup."""
    doc = inspect.cleandoc(module.__doc__ or "")
    doc = doc.split(".", 1)[1].strip() if "." in doc.split("\n\n", 1)[0] else doc
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")
    return help_text(f"{summary}\n\n{doc}" if doc else summary)


def _register(name: str, module_name: str, class_name: str, summary: str) -> None:
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)

    def command(ctx: typer.Context, **options) -> None:
        given = {name for name in options if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}
        print(json.dumps(module.train(config_from_options(cls, options, given))))

    command.__signature__ = inspect.Signature(config_parameters(cls))
    train_app.command(name, help=_help(summary, module), short_help=summary)(command)


for _name, (_module, _class, _summary) in TRAININGS.items():
    _register(_name, _module, _class, _summary)
