"""The benchmark suite and micro-benchmarks; never collected by pytest (README "Benchmarks")."""
