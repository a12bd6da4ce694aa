"""Benchmarks of antiphon, runnable as ``python -m benches <scenario> [--json]``."""
