"""Benchmarks, run as modules: ``python -m benchmarks.<name> --help``. They print figures; they assert nothing."""
