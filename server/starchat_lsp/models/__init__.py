"""Model catalogue, pulling from packages, conversion and the local cache."""
