"""What every command shares: exit codes, one-line error reporting, the group that turns every usage error
and interrupt into one stderr line, and the options naming a model."""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def one_line(text: str) -> str:
    """``text`` with every run of ASCII whitespace (newlines included) as one space, and any other control
    character or line separator escaped (:func:`fcndetect.io.progress.printable`)."""
    from ..io.progress import printable

    return printable(re.sub(r"[ \t\n\r\x0b\x0c]+", " ", str(text)).strip())


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` as ``PATH: reason`` (``[Errno 20] Not a directory: 'x'`` -> ``x: Not a directory``)."""
    if exc.filename is not None and exc.strerror:
        return one_line(f"{exc.filename}: {exc.strerror}")
    return one_line(str(exc))


def bounded(lo: float, hi: float) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing a number (or each of several) that is not finite or not in ``[lo, hi]``:
    one ``error:`` line naming the option (exit 2)."""
    import math

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for v in value if isinstance(value, tuple) else (value,):
            if v is not None and not (math.isfinite(v) and lo <= v <= hi):
                raise click.BadParameter(f"{v:g} is not in [{lo:g}, {hi:g}]", ctx, param)
        return value

    return check


def err(msg: str, quiet: bool = False) -> None:
    """Write ``msg`` as a line on stderr, unless ``quiet``."""
    if not quiet:
        click.echo(msg, err=True)


def fail(msg: str, code: int) -> NoReturn:
    """Report ``msg`` as one ``error: ...`` line on stderr and exit with ``code`` (never returns)."""
    err(f"error: {one_line(msg)}")
    sys.exit(code)


class OneLineGroup(click.Group):
    """A click group whose standalone ``main`` reports a usage or settings error as one ``error: ...`` line
    (exit 2, click's own hint for an unknown option kept on that line) instead of click's three-line usage
    block, and an interrupt (Ctrl-C) as one ``interrupted`` line with exit 130 instead of ``Aborted!`` and
    exit 1. Used alike by the console script and by ``click.testing.CliRunner``."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        extra.pop("windows_expand_args", None)  # click's glob expansion of Windows arguments: not used here
        args = sys.argv[1:] if args is None else list(args)
        prog_name = prog_name or "fcndetect"
        self._main_shell_completion(extra, prog_name, complete_var)
        code = EXIT_OK
        try:
            with self.make_context(prog_name, args, **extra) as ctx:
                self.invoke(ctx)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except (KeyboardInterrupt, click.Abort):
            err("interrupted")
            code = EXIT_INTERRUPTED
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: a bare group prints its help
                exc.show()
            else:
                err(f"error: {one_line(exc.format_message())}")
            code = exc.exit_code
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            _silence_stdout()
            code = EXIT_FAILED  # stdout closed early (`| head`): nothing more to say
        sys.exit(code)


def _silence_stdout() -> None:
    """After a broken pipe on stdout: point it at /dev/null, so that the flush at exit cannot fail again (and
    print Python's ``Exception ignored`` message)."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # not a file descriptor (e.g. click's test runner)
        pass


def model_config(model: str | None, config: str | None, **options: Any) -> Any:
    """The ``DetectorConfig`` a model-level command (inspect, export, bench) works on: MODEL with its own
    preset, or ``--config``; a bad setting as a usage error."""
    from ..config import ConfigError
    from ..presets import resolve_config

    if model is None and config is None:
        raise click.UsageError("give a MODEL (e.g. face, vgg16, package.module:factory) or --config PRESET")
    if options.get("classes") == ():
        options["classes"] = None
    try:
        return resolve_config(config, model=model, **options)
    except (ConfigError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None


def model_errors() -> tuple[type[Exception], ...]:
    """The errors of a model that cannot be loaded or converted (reported by :func:`model_error`)."""
    from ..config import ConfigError
    from ..convert import ConversionError
    from ..geometry import GeometryError
    from ..models.torchvision_models import ModelLoadError

    return (ConfigError, ConversionError, GeometryError, ModelLoadError, KeyError, FileNotFoundError)


def model_error(name: str, exc: Exception) -> NoReturn:
    """Report a model that cannot be loaded or converted as one line naming it, and exit 2."""
    msg = one_line(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    fail(msg if msg.startswith(name) else f"{name}: {msg}", EXIT_USAGE)


def checkpoint_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a model given by name: weights, input size, outputs, classes, normalisation."""
    for opt in reversed([
        click.option("--weights", default=None, help="Weights: DEFAULT, a weight name, a state-dict PATH, or none."),
        click.option("--input-size", type=int, default=None, help="The classifier's native input side."),
        click.option("--num-classes", type=int, default=None, help="Outputs of a custom checkpoint."),
        click.option("--classes", multiple=True, help="Classes to detect, or the name of every output."),
        click.option("--mean", default=None, help="R,G,B mean (0..1 units)."),
        click.option("--std", default=None, help="R,G,B std (0..1 units)."),
    ]):
        f = opt(f)
    return f


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``-c/--config`` and :func:`checkpoint_options`."""
    return click.option("-c", "--config", default=None, help="A preset name or TOML file instead of MODEL.")(
        checkpoint_options(f))
