//! The `weft-proxy` binary.

fn main() {}
