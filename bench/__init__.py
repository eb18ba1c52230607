"""Benchmarks of starchat-lsp against the baselines a user would otherwise run, side by side.

`python -m bench` (or `make bench`) runs every section on one model and writes a markdown table
and a PNG chart under bench/results/. Absolute times on a shared machine are noise; each figure
that matters is a ratio against a baseline measured in the same run.
"""
