"""Reproducible benchmarks for hud-ray; `make bench` (full) or `make bench-quick` (CI)."""
