"""Benchmark grid runner (resumable, one JSON per cell) and BENCHMARKS.md generator."""
