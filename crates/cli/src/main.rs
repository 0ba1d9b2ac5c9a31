//! The `gonka` binary.

fn main() {}
