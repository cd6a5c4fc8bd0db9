//! End-to-end tests: network-namespace data-path tests and cluster tests
#![warn(missing_docs)]
