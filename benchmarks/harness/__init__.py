"""The refapi benchmark harness: `benchmarks/run` (see benchmarks/README.md)."""
