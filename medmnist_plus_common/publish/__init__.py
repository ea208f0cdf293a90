"""Publishing (application): ``push`` (export to a folder or push to the Hub, Parquet shards) and ``card``."""
