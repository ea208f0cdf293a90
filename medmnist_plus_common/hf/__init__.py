"""The Hugging Face layer (core): the shared ``GeneratorBasedBuilder``, features, row sources, the
``load_dataset`` hook, and ``internals``: the one module that touches private ``datasets``/``huggingface_hub`` pieces.
"""
