//! Criterion benchmarks for the gm workspace live in `benches/benches/`; this library is empty on purpose.
