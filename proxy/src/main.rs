//! The Weft sidecar and gateway data plane

fn main() {}
