//! A network-namespace lab: each "host" (a pod, a VM) is a Linux network namespace with one
//! address from `198.18.0.0/15` (RFC 2544's benchmarking range), joined to the others by veth pairs
//! on a bridge that lives in a hub namespace of its own. Nothing is added to the machine's own
//! network namespace unless [`Lab::attach_root`] is called, and even then only a link-local
//! route to the lab's /24: no packet of a lab can leave the machine.
//!
//! Everything a lab creates — namespaces, links, processes — is removed when the [`Lab`] is
//! dropped, on success, on error and on panic (unwinding). Removing a namespace removes its
//! iptables rules with it.
#![warn(missing_docs)]

pub mod client;
mod command;
pub mod dns;
pub mod jwt;
mod lab;
pub mod mesh;
pub mod pki;
mod process;

pub use command::{CommandError, run_checked};
pub use lab::{Host, Lab, LabError, preflight};
pub use process::LabProcess;
