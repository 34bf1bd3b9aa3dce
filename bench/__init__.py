"""Benchmarks (issue 5): runnable scripts, not tests. See bench/README.md."""
