//! Standalone mode: the control plane without Kubernetes. Mesh config and the service registry
//! (ServiceEntry + WorkloadEntry) come from YAML files in a directory, watched for changes;
//! certificates are written to files.

pub mod citadel;
pub mod config_dir;
pub mod runner;
