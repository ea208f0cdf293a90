"""Errors a user can act on. Each message names the file, what is wrong and what to do."""

import re


class MedMNISTPlusError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownConfigError(MedMNISTPlusError, ValueError):
    """A dataset flag or config name that is not in the catalog."""


class ReleaseFileError(MedMNISTPlusError, ValueError):
    """A release ``.npz`` that cannot be used: missing member, corrupt zip, wrong dtype/shape/rows/labels."""


class UsageError(MedMNISTPlusError, ValueError):
    """A request that names nothing to do, or something its source does not have."""


class ChecksumError(MedMNISTPlusError):
    """A file whose MD5 differs from the one published for it."""


class DownloadError(MedMNISTPlusError, ConnectionError):
    """A download that failed after its retries."""


class RegistryIncompatibleError(MedMNISTPlusError, RuntimeError):
    """The installed ``datasets`` no longer has the private hook ``load_dataset("medmnist_plus", ...)`` uses."""


class RawSourceError(MedMNISTPlusError, ValueError):
    """A raw source collection or manifest that cannot be used: wrong folder, bad manifest, split sizes."""


class RawRecordError(RawSourceError):
    """One record of a raw collection that cannot be made: unreadable, truncated or wrongly sized file.

    Builds stop on the first one unless asked to skip bad records (``skip_bad=True``, CLI ``--skip-bad``).
    """


_SKIP_ADVICE = re.compile(r",? or pass skip_bad=True(?: \(CLI --skip-bad\))?(?: to [^.()]*(?:\([^)]*\))?)?\.")


def without_skip_advice(message: str) -> str:
    """A bad record's message as reported once it was skipped: without the advice to skip it (already on)."""
    return _SKIP_ADVICE.sub(".", message)
