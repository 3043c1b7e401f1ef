//! Development tasks for the gm workspace.
fn main() {}
