"""Command line: parses options and calls the library API; one module per command.

Exit codes: 0 every input processed; 1 some input failed; 2 usage error; 130 interrupted. Every error a user
must act on is one stderr line starting ``error: ``; an interrupt (Ctrl-C), start-up included, is one line
and exit 130 (:class:`fcndetect.cli.common.OneLineGroup`, :func:`main`).
"""

from __future__ import annotations

import os
import signal
import sys

try:  # Ctrl-C while the command line itself is imported: one line and 130, no traceback
    import click

    from .._version import __version__
    from .bench import bench_cmd
    from .common import EXIT_INTERRUPTED, OneLineGroup
    from .eval import eval_cmd
    from .export import export_cmd
    from .inspect import inspect_cmd
    from .models import models_cmd
    from .run import ray_stopped_an_instance, run_cmd
    from .train import train_cmd
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

__all__ = ["cli", "main"]


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="fcndetect")
def cli() -> None:
    """Sliding-window detection with a classifier made fully convolutional.

    \b
    Exit codes: 0 all inputs processed, 1 some inputs failed, 2 usage error, 130 interrupted.
    Every error is one stderr line starting `error: `.
    """


for _command in (run_cmd, eval_cmd, bench_cmd, models_cmd, inspect_cmd, export_cmd, train_cmd):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point (``fcndetect``).

    After an interrupt, and after a run that started and stopped a local Ray instance, the process ends with
    ``os._exit`` once stdout and stderr are flushed: every output is written by then, and what is left (Ray's
    threads, a half-imported library, thread pools joined at interpreter exit) can neither print a traceback
    nor change the exit code (seen: 1 instead of 130).
    """
    try:
        cli.main(prog_name="fcndetect")
    except KeyboardInterrupt:  # between the group's handler and here
        _exit_now(EXIT_INTERRUPTED, "interrupted")
    except SystemExit as exc:
        # the command is over and its outputs written: a Ctrl-C during the interpreter's shutdown (joining
        # threads, freeing modules) must not turn a finished run into a traceback or a death by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == EXIT_INTERRUPTED or ray_stopped_an_instance():
            _exit_now(code)
        raise


def _exit_now(code: int, line: str | None = None) -> None:
    """Ignore further Ctrl-C, write ``line`` (if any) to stderr, flush both streams, and end the process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if line is not None:
        os.write(2, (line + "\n").encode())
    os._exit(code)
