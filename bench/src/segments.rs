//! Interleaved segments: the comparison measures each path in several short segments, taken
//! in turn with the other paths' (round 1: direct, Weft, HAProxy, nginx; round 2 starting from
//! Weft; …), so that a slow moment of this shared machine falls on every path alike instead of
//! on whichever one happened to be running. A path's segments then merge into one measurement:
//! counts and time summed, latency percentiles over every segment's samples, each proxy's CPU
//! summed and its peak RSS the largest.

use crate::load::LoadReport;
use crate::report::{PathKind, PathMeasurement, ProxyMeasurement};
use crate::samples::Distribution;

/// One segment of one path.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// oha's report of the segment's run.
    pub load: LoadReport,
    /// The latencies of its successful requests after the lead-in, ms.
    pub latencies_ms: Vec<f64>,
    /// Its proxies' usage during the run, by role.
    pub proxies: Vec<ProxyMeasurement>,
}

/// Why a path's segments could not be merged.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The path was not measured at all.
    #[error("{0}: no segment was measured")]
    NoSegments(&'static str),
    /// No request succeeded after the lead-in of any segment.
    #[error("{0}: no successful request after the lead-in of any segment")]
    NoSamples(&'static str),
    /// A segment watched different proxies than the first one.
    #[error("{path}: segment {segment} measured proxies {found:?}, the first one {expected:?}")]
    ProxiesDiffer {
        /// The path's label.
        path: &'static str,
        /// The segment, from 1.
        segment: usize,
        /// The first segment's roles.
        expected: Vec<String>,
        /// This segment's roles.
        found: Vec<String>,
    },
}

/// The order in which round `round` (from 0) takes `paths` paths: a rotation that starts one
/// path later each round, so that no path always follows the same one.
pub fn round_order(round: usize, paths: usize) -> impl Iterator<Item = usize> {
    (0..paths).map(move |offset| (round + offset) % paths)
}

/// Merges the segments of `path` into one measurement (see the module documentation). Errors
/// when there is no segment, no latency sample in any, or the segments watched different
/// proxies.
pub fn merge(path: PathKind, segments: Vec<Segment>) -> Result<PathMeasurement, MergeError> {
    let label = path.label();
    let Some(first) = segments.first() else {
        return Err(MergeError::NoSegments(label));
    };
    let roles = |segment: &Segment| -> Vec<String> {
        segment.proxies.iter().map(|p| p.role.clone()).collect()
    };
    let expected = roles(first);
    let mut proxies = first.proxies.clone();
    for (index, segment) in segments.iter().enumerate().skip(1) {
        let found = roles(segment);
        if found != expected {
            return Err(MergeError::ProxiesDiffer {
                path: label,
                segment: index + 1,
                expected,
                found,
            });
        }
        for (total, more) in proxies.iter_mut().zip(&segment.proxies) {
            total.usage = total.usage.and_then(&more.usage);
        }
    }
    let loads: Vec<LoadReport> = segments.iter().map(|s| s.load.clone()).collect();
    let latencies = Distribution::new(
        segments
            .into_iter()
            .flat_map(|segment| segment.latencies_ms)
            .collect(),
    )
    .ok_or(MergeError::NoSamples(label))?;
    let load = LoadReport::merged(&loads, &latencies).ok_or(MergeError::NoSegments(label))?;
    Ok(PathMeasurement {
        path,
        load,
        proxies,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::procfs::Usage;

    fn segment(ok: u64, latencies_ms: Vec<f64>, cpu_s: f64, peak: f64) -> Segment {
        Segment {
            load: LoadReport {
                ok,
                non_2xx: 0,
                errors: 0,
                duration_s: 5.0,
                rate_per_s: ok as f64 / 5.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                error_kinds: BTreeMap::new(),
            },
            latencies_ms,
            proxies: vec![ProxyMeasurement {
                role: "client-side".into(),
                usage: Usage {
                    processes: 1,
                    cpu_s,
                    peak_rss_mib: peak,
                    end_rss_mib: peak,
                },
            }],
        }
    }

    #[test]
    fn every_round_starts_one_path_later() {
        let rounds: Vec<Vec<usize>> = (0..5).map(|r| round_order(r, 4).collect()).collect();
        assert_eq!(
            rounds,
            vec![
                vec![0, 1, 2, 3],
                vec![1, 2, 3, 0],
                vec![2, 3, 0, 1],
                vec![3, 0, 1, 2],
                vec![0, 1, 2, 3],
            ]
        );
    }

    #[test]
    fn a_slow_segment_counts_for_its_share_of_the_samples() {
        // 99 fast requests in one segment, one stalled one in the other: the stall is the
        // maximum but not the p99 of the merged 100.
        let fast = segment(99, vec![0.3; 99], 0.4, 12.0);
        let stalled = segment(1, vec![9.0], 0.1, 13.0);
        let merged = merge(PathKind::Weft, vec![fast, stalled]).unwrap();
        assert_eq!(merged.path, PathKind::Weft);
        assert_eq!(merged.load.ok, 100);
        assert_eq!(merged.load.duration_s, 10.0);
        assert_eq!(merged.load.rate_per_s, 10.0);
        assert_eq!(merged.load.p99_ms, 0.3);
        assert_eq!(merged.load.max_ms, 9.0);
        let usage = merged.proxies[0].usage;
        assert!((usage.cpu_s - 0.5).abs() < 1e-9);
        assert_eq!(usage.peak_rss_mib, 13.0);
    }

    #[test]
    fn segments_without_samples_or_with_other_proxies_are_errors() {
        assert_eq!(
            merge(PathKind::Nginx, Vec::new()),
            Err(MergeError::NoSegments("nginx"))
        );
        assert_eq!(
            merge(PathKind::Weft, vec![segment(0, Vec::new(), 0.0, 1.0)]),
            Err(MergeError::NoSamples("Weft"))
        );
        let mut other = segment(1, vec![1.0], 0.1, 1.0);
        other.proxies[0].role = "server-side".into();
        let error = merge(PathKind::Weft, vec![segment(1, vec![1.0], 0.1, 1.0), other])
            .unwrap_err()
            .to_string();
        assert!(error.contains("segment 2"), "{error}");
        assert!(error.contains("server-side"), "{error}");
    }
}
