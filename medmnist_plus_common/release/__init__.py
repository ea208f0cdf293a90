"""The official release format, read and written (core).

``reader``: rows streamed out of a release ``.npz`` in chunks, with its checks; ``deflate_index``: access points
into deflated members so readers start at their own rows; ``download``: MD5-checked, resumable downloads and the
places a release file is looked for; ``synthetic``: the demo's small synthetic release (clearly labelled).
"""
