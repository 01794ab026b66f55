"""What every command shares: exit codes, one-line error reporting, the group that turns every usage error
and interrupt into one stderr line, and the options naming a model."""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

F = TypeVar("F", bound=Callable[..., Any])


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


def setting_options(*groups: str, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """The command-line options of every setting of ``groups`` (``"detection"``, ``"model"``, ``"runtime"``)
    but ``exclude``, generated from the settings' declarations (:data:`fcndetect.config.SETTINGS`): flags,
    type (choices for a ``Literal``, ``--x/--no-x`` for a bool, comma-separated or repeated values for a
    list), help. Each defaults to ``None``: "the preset's value"; the command hands them to
    :func:`fcndetect.presets.resolve_config` under the settings' names, which validates them."""
    from ..config import SETTINGS

    chosen = [s for s in SETTINGS.values() if s.group in groups and s.name not in exclude and s.flags]

    def decorate(f: F) -> F:
        for info in reversed(chosen):
            f = _setting_option(info)(f)
        return f

    return decorate


def _setting_option(info: Any) -> Callable[[F], F]:
    """One setting's click option (``info``: a :class:`fcndetect.config.Setting`)."""
    decls = list(info.flags)
    if info.kind is bool and not any("/" in d for d in decls):
        decls[-1] = f"{decls[-1]}/--no-{decls[-1].lstrip('-')}"
    kw: dict[str, Any] = {"default": None, "help": info.help}
    if info.parse is not None:
        kw.update(type=str, callback=_parsed(info.parse), metavar="TEXT")
    elif info.is_list:
        each = "NUMBER" if info.kind in (int, float) else "NAME"
        kw.update(multiple=True, callback=_list_value, metavar=f"{each}[,{each}...]",
                  help=f"{info.help} Comma-separated or repeated.")
    elif info.choices:
        kw.update(type=click.Choice(info.choices))
    elif info.kind is not bool:
        kw.update(type=info.kind)
    return click.option(*decls, info.name, **kw)


def _list_value(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...] | None:
    """A list setting's values as typed (``--rotations 0,90`` or ``--classes cat --classes dog``); ``None``
    when the option is not given."""
    return tuple(v.strip() for item in value for v in item.split(",") if v.strip()) or None


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback parsing a flag's text with the setting's own parser (one usage line naming the flag)."""
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        from ..config import ConfigError

        if value is None:
            return None
        try:
            return parse(value)
        except ConfigError as exc:
            raise click.UsageError(f"{param.opts[-1]}: {exc}", ctx) from None

    return callback


def checkpoint_options(f: F) -> F:
    """The options of the model given by name: the ``model`` group's settings but ``model`` (weights, input
    size, outputs, classes, normalisation)."""
    return setting_options("model", exclude=("model",))(f)


def model_options(f: F) -> F:
    """``-c/--config`` and :func:`checkpoint_options`."""
    return click.option("-c", "--config", default=None, help="A preset name or TOML file instead of MODEL.")(
        checkpoint_options(f))
