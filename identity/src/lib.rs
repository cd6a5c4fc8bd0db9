//! SPIFFE workload identities and the mesh certificate authority (Citadel's signing logic)
#![warn(missing_docs)]
