//! Weft's performance benchmarks, the parts that need neither root nor a network: reading the
//! load generator's report ([`load`]), per-process CPU and memory from `/proc` ([`procfs`]), the
//! peer proxies' certificates and configuration ([`peers`]), the comparison's targets, ratios
//! and tables ([`report`]), and `make bench`'s one summary table ([`summary`]).
//!
//! The `weft-bench` binary runs the proxy comparison in network namespaces (`weft-bench
//! compare`, as root), the 1 KiB responder every path ends at (`weft-bench responder`) and the
//! summary (`weft-bench summary`). See `docs/benchmarks.md`.
#![warn(missing_docs)]

pub mod load;
pub mod peers;
pub mod procfs;
pub mod report;
pub mod samples;
pub mod segments;
pub mod summary;
