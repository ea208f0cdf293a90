"""Logging helpers shared by the layers (foundation: imports nothing of the package)."""

from __future__ import annotations

import contextlib
import logging


class _DropMessages(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def dropping(logger: logging.Logger, text: str):
    """Within the block, ``logger`` drops its records whose message contains ``text``.

    A logger's filters see only the records logged on it, not those its children pass up: give the very logger
    that logs them (a module's ``logger`` object, not a package's name).
    """
    quiet = _DropMessages(text)
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
