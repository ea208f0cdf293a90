"""The one place for a command's error and progress output: one-paragraph errors (``--verbose`` adds the traceback)
and progress lines on stderr."""

from __future__ import annotations

from ..errors import MedMNISTPlusError


class CommandError(MedMNISTPlusError, RuntimeError):
    """An unexpected failure of a command, reported as one paragraph (the traceback only with --verbose)."""


def friendly_errors(run):
    """Wrap a ``cmd_*`` so that an unexpected failure (a file that cannot be written, a broken Parquet file) is
    reported by ``main`` as one clear paragraph too; ``--verbose`` adds the traceback (``main`` prints it)."""
    import functools

    @functools.wraps(run)
    def wrapper(args):
        try:
            return run(args)
        except MedMNISTPlusError:
            raise
        except Exception as err:  # noqa: BLE001 (reported, not swallowed: exit status 2)
            if _hub_explains(err):
                raise  # main() says what to do about Hub failures
            raise CommandError(
                f"`{getattr(args, 'command', 'medmnist-plus')}` failed: {type(err).__name__}: {err}. "
                "Check the paths and names given; run with --verbose for the traceback."
            ) from err

    return wrapper


def _hub_explains(err: Exception) -> bool:
    try:
        from .hub_errors import explain
    except ImportError:
        return False
    try:
        return explain(err, None) is not None
    except Exception:  # noqa: BLE001
        return False


def add_verbose_flag(command) -> None:
    """``--verbose`` after the subcommand too (the top-level ``-v`` keeps working: SUPPRESS keeps its value)."""
    import argparse

    command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show what happens in detail, and the traceback of an error")


class Progress:
    """Progress on stderr (rows, bytes, files): rewritten in place on a terminal, a line every few seconds otherwise.

    ``update`` is throttled; ``done`` shows the last state if it was not shown yet and ends the line.
    """

    def __init__(self, stream=None, every: float = 2.0):
        import sys
        import time

        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 0.2 if self.tty else every
        self._clock = time.monotonic
        self._last = None  # when a line was last shown
        self._shown = ""  # the text shown then
        self._latest = ""

    def note(self, text: str) -> None:
        self._end_line()
        print(text, file=self.stream, flush=True)

    def update(self, text: str) -> None:
        self._latest = text
        now = self._clock()
        if self._last is None or now - self._last >= self.every:
            self._show(text)
            self._last = now

    def done(self) -> None:
        if self._latest and self._latest != self._shown:
            self._show(self._latest)
        self._end_line()
        self._latest = self._shown = ""
        self._last = None

    def _show(self, text: str) -> None:
        if self.tty:
            print("\r" + text.ljust(79), end="", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)
        self._shown = text

    def _end_line(self) -> None:
        if self.tty and self._shown:
            print(file=self.stream, flush=True)
            self._shown = ""
