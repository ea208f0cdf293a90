"""The tools on top of builds and releases (application): regenerate, align, calibrate, derive, verify, montage,
and ``rows``: a config's split read from a build, an export or a Hub repo.
"""
