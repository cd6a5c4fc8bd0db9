//! The Weft control plane: reconcile loops, Citadel, Pilot, discovery, webhooks

fn main() {}
