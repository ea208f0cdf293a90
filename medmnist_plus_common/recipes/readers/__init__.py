"""File readers for the raw collections (core), imported only by the recipes that need them (optional deps).

``volumes``: volume files (``.nii``/``.nii.gz``/``.npy``) as lazily sliced arrays (:func:`volumes.open_volume`);
``nifti``: NIfTI volumes with their orientation, read window by window (:func:`nifti.open_nifti`); ``meshes``: OBJ
meshes read, repaired and voxelized; ``em``: EM volumes (HDF5, TIFF stacks, section folders) and their point tables
(:func:`em.open_em_volume`); ``ribfrac``: the RibFrac collection's files, info tables and fracture centers.
"""

# the end of an error about one bad file of a collection: what to do
REPLACE_OR_SKIP = ("Replace it with the collection's original file, or pass skip_bad=True (CLI --skip-bad) to leave "
                   "it out (it is reported).")
