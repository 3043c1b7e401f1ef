//! Client path benchmark.
fn main() {}
