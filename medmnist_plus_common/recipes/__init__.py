"""The raw-source recipes (core): how each size is made from a source collection.

``base``: the recipe base, records, manifests and split rules; ``image`` + ``imageops``: the 2D pipeline;
``volumeops``: 3D operations; ``readers``: file readers (volume files, NIfTI, meshes, EM volumes, the RibFrac
collection); ``lits``: the LiTS CT collection shared by the four Organ datasets. A dataset's own recipe lives in its module in ``builders/``.
"""
