"""The benchmark suite and micro-benchmarks; never collected by pytest (docs/benchmarks.md)."""
