"""The ``medmnist-plus`` command line (application): one module per command group; ``output`` holds the one
place for error and progress output. ``--help``, ``list`` and ``info`` import neither ``datasets`` nor numpy-heavy code.
"""

from .main import main

__all__ = ["main"]
