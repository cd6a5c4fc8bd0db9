//! Weft's command-line tool, like istioctl

fn main() {}
