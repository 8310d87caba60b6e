"""The ``lyra3d`` typer app and what every command shares.

* :class:`Typer`: the app and its command groups. Every command it registers reports a
  :class:`~lyra3d.errors.LyraError` as one line on stderr and exits with code 2 (:func:`user_errors`), and so
  are usage errors (an unknown option, a bad value, a missing option): one line naming the problem and
  ``--help``, exit code 2, instead of click's boxed usage text.
* :func:`progress_bar` and :class:`StageBars`: the progress rows of long commands, drawn from the one
  progress protocol of the package (:class:`lyra3d.core.progress.Progress`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Iterable, Iterator

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as Bar

from lyra3d.errors import LyraError

err = Console(stderr=True)

# click's UsageError as typer uses it (typer >= 0.2x ships its own copy of click): the base of typer.BadParameter
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def error_line(message: str) -> None:
    """``error: MESSAGE`` on stderr, one line (``message`` is printed as is, not read as markup)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warning_line(message: str) -> None:
    """``warning: MESSAGE`` on stderr, one line."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def user_errors(fn):
    """Report a LyraError as one line and exit 2 (Ctrl-C: ``interrupted``, exit 130), instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LyraError as e:
            error_line(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    try:
        yield
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # no arguments: click prints the help
            raise
        where = e.ctx.command_path if e.ctx is not None else "lyra3d"
        error_line(f"{e.format_message().rstrip('.')}; see `{where} --help`")
        raise typer.Exit(e.exit_code) from None


class OneLineCommand(typer.core.TyperCommand):
    """A command whose usage errors are one line (:func:`_usage_errors_in_one_line`)."""

    def make_context(self, *args, **kwargs):
        with _usage_errors_in_one_line():
            return super().make_context(*args, **kwargs)


class OneLineGroup(typer.core.TyperGroup):
    """A command group whose usage errors (an unknown command included) are one line."""

    def make_context(self, *args, **kwargs):
        with _usage_errors_in_one_line():
            return super().make_context(*args, **kwargs)

    def resolve_command(self, *args, **kwargs):
        with _usage_errors_in_one_line():
            return super().resolve_command(*args, **kwargs)


def help_text(doc: str) -> str:
    """A docstring as command help: the lines of each paragraph joined (the terminal wraps them again), rich
    markup escaped."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return escape("\n\n".join(" ".join(line.rstrip() for line in p.splitlines()) for p in paragraphs))


class Typer(typer.Typer):
    """``typer.Typer`` for lyra3d's app and command groups: help when called without arguments, one-line usage
    errors, every command wrapped in :func:`user_errors`, its docstring as help (:func:`help_text`)."""

    def __init__(self, **kwargs):
        self.loader = None  # called once before typer first reads the commands (lazy registration)
        super().__init__(cls=OneLineGroup, no_args_is_help=True, add_completion=False,
                         pretty_exceptions_enable=False, **kwargs)

    def _load(self) -> None:
        loader, self.loader = self.__dict__.get("loader"), None
        if loader is not None:
            loader()

    # typer reads these two lists when it builds the click command: the command modules are imported then
    # (``lyra3d generate`` imports only generate's module, so a refusal needs no torch import)
    @property
    def registered_commands(self):
        self._load()
        return self._commands

    @registered_commands.setter
    def registered_commands(self, value):
        self._commands = value

    @property
    def registered_groups(self):
        self._load()
        return self._groups

    @registered_groups.setter
    def registered_groups(self, value):
        self._groups = value

    def command(self, *args, help: str | None = None, cls=OneLineCommand, **kwargs):
        def register(fn):
            text = help or help_text(fn.__doc__ or "")
            return typer.Typer.command(self, *args, help=text, cls=cls, **kwargs)(user_errors(fn))

        return register


app = Typer(name="lyra3d", help="Generative 3D scene reconstruction by video-diffusion self-distillation (Lyra).")


@contextlib.contextmanager
def progress_bar(quiet: bool, remaining: bool = False) -> Iterator[Bar]:
    """The progress display of a command on stderr (nothing with ``quiet``): a row per task with its bar,
    ``done/total``, the elapsed time and, with ``remaining``, an estimate of the time left. It shows once
    :class:`StageBars` adds a row (an error before that is the only line on stderr)."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    bar = Bar(*columns, *([TimeRemainingColumn()] if remaining else []), console=err, disable=quiet,
              transient=False)
    try:
        yield bar
    finally:
        bar.stop()


class StageBars:
    """A :class:`~lyra3d.core.progress.Progress` that draws one row per stage on ``bar``.

    A stage's row appears as soon as the stage before it ends when it is one of ``upcoming`` (the stage names
    in the order they will run, e.g. a pipeline's ``stages()``), else at its first report; it follows the
    stage's counts and is full when ``done == total``. ``labels`` name stages on screen (default: the stage
    name, ``_`` as spaces)."""

    def __init__(self, bar: Bar, upcoming: Iterable[str] = (), labels: dict[str, str] | None = None):
        self.bar, self.upcoming, self.labels = bar, list(upcoming), labels or {}
        self.task = self.stage = None
        self._next()

    def _row(self, stage: str, total: int = 1):
        self.bar.start()  # the display shows from the first row on (starting twice does nothing)
        return self.bar.add_task(self.labels.get(stage, stage.replace("_", " ")), total=max(total, 1))

    def _next(self) -> None:
        self.task = self.stage = None
        if self.upcoming:
            self.stage = self.upcoming.pop(0)
            self.task = self._row(self.stage)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.task is None:
            self.task = self._row(stage, total)
        elif stage != self.stage:  # not the stage announced: the row is this one's
            self.bar.update(self.task, description=self.labels.get(stage, stage.replace("_", " ")))
        self.stage = stage
        if total <= 0:
            done = total = 1
        self.bar.update(self.task, completed=done, total=total)
        if done >= total:
            self._next()
