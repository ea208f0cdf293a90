"""The tools on top of builds and releases (application): regenerate, align, calibrate, derive, verify, montage,
audit, and ``rows``: a config's split read from a build, an export or a Hub repo.
"""

# audit's near-duplicate threshold (see near_duplicates and the README): here so the CLI parser needs no numpy
DEFAULT_NEAR_THRESHOLD = 0.03
