"""File readers for the raw collections (core), imported only by the recipes that need them (optional deps)."""
