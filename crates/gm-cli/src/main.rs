//! The gm command.
fn main() {}
