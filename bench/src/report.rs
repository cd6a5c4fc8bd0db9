//! The proxy comparison's results, the targets of the proxy-performance issue judged against
//! them, and their Markdown rendering.
//!
//! The targets (issue "proxy performance", after Istio's published sidecar benchmark: HTTP/1.1
//! keep-alive, 1 KiB responses, 1,000 req/s over 16 connections):
//! - added p99 latency of the Weft pair no worse than the HAProxy pair's, same run;
//! - CPU per proxy ≤ 0.05 core per 1,000 req/s, and no more than HAProxy's for the same work;
//! - peak RSS ≤ 15 MiB per proxy under that load;
//! - maximum throughput through one proxy (plain HTTP, one hop) at least HAProxy's and nginx's.
//!
//! Every comparison is a ratio Weft ÷ peer from the same run.

use serde::{Deserialize, Serialize};

use crate::load::LoadReport;
use crate::procfs::Usage;
use crate::summary::SummaryRow;

/// CPU target: cores per 1,000 req/s per proxy.
pub const CPU_TARGET_CORES_PER_KRPS: f64 = 0.05;
/// Memory target: peak RSS per proxy under the fixed-rate load, MiB.
pub const RSS_TARGET_MIB: f64 = 15.0;

/// The four request paths of the comparison, all to the same server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Load generator straight to the server: the baseline.
    Direct,
    /// Client → outbound sidecar → mTLS → inbound sidecar → server (or one sidecar, plain, for
    /// the throughput run).
    Weft,
    /// The same hop with an HAProxy pair (or one HAProxy).
    Haproxy,
    /// The same hop with an nginx pair (or one nginx).
    Nginx,
    /// The throughput run only: `weft-bench floor`, a proxy of hyper and tokio alone (the
    /// stack Weft is built on, without Weft's own work), for reference; no target applies.
    Floor,
}

impl PathKind {
    /// The name shown in tables (`Weft`, `HAProxy`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Weft => "Weft",
            Self::Haproxy => "HAProxy",
            Self::Nginx => "nginx",
            Self::Floor => "hyper + tokio floor",
        }
    }
}

/// One proxy's usage during a path's measured run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyMeasurement {
    /// `client-side` or `server-side` (or `one hop`).
    pub role: String,
    /// CPU and memory between the start and the end of the run.
    pub usage: Usage,
}

/// One path at the fixed rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathMeasurement {
    /// Which path.
    pub path: PathKind,
    /// The load generator's report.
    pub load: LoadReport,
    /// Its proxies (none for `direct`).
    pub proxies: Vec<ProxyMeasurement>,
}

/// How the comparison was run (written next to the results).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Fixed rate, requests/s.
    pub rate_per_s: u32,
    /// Connections (HTTP/1.1 keep-alive).
    pub connections: u32,
    /// Measured duration per path, s: the sum of its segments.
    pub duration_s: u64,
    /// Segments per path at the fixed rate, interleaved with the other paths' (see
    /// `segments`); 1 in results written before segments existed.
    #[serde(default = "one")]
    pub segments: u32,
    /// The start of each segment left out of its latencies (its connections open then), ms.
    #[serde(default)]
    pub lead_in_ms: u64,
    /// Unmeasured warm-up per path before its first segment, s.
    pub warmup_s: u64,
    /// Measured duration of each maximum-throughput path, s: the sum of its segments.
    pub throughput_duration_s: u64,
    /// Segments per path of the maximum-throughput runs, interleaved like the fixed-rate ones.
    #[serde(default = "one")]
    pub throughput_segments: u32,
    /// Connections of the maximum-throughput runs.
    pub throughput_connections: u32,
    /// Response body size, bytes.
    pub body_bytes: usize,
    /// Worker threads/processes per proxy in the fixed-rate pairs.
    pub pair_workers: u32,
    /// Worker threads/processes of the one proxy in the throughput runs.
    pub throughput_workers: u32,
    /// `--quick` was given.
    pub quick: bool,
}

fn one() -> u32 {
    1
}

/// Everything one comparison run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// When it started, UTC (RFC 3339).
    pub started_utc: String,
    /// `/proc/loadavg`'s 1/5/15-minute averages before the run.
    pub load_average_before: String,
    /// The same after the run.
    pub load_average_after: String,
    /// Versions of the peers and the load generator (`oha 1.16.0`, `HAProxy 2.6.12`, ...).
    pub versions: Vec<String>,
    /// How it was run.
    pub settings: Settings,
    /// The fixed-rate runs, one per path.
    pub paths: Vec<PathMeasurement>,
    /// The maximum-throughput runs (one proxy, plain HTTP, one hop).
    pub throughput: Vec<PathMeasurement>,
}

/// A target judged: the Weft figure, the peers' and whether the target is met.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What is judged, with the rule (`added p99 ≤ HAProxy pair's`).
    pub target: String,
    /// Weft's figure, formatted with unit.
    pub weft: String,
    /// HAProxy's figure.
    pub haproxy: String,
    /// nginx's figure.
    pub nginx: String,
    /// Weft ÷ HAProxy.
    pub ratio_haproxy: Option<f64>,
    /// Weft ÷ nginx.
    pub ratio_nginx: Option<f64>,
    /// Whether it is met; `None` when a figure is missing.
    pub met: Option<bool>,
}

/// `a ÷ b`, or `None` when either is not finite or `b` is not positive (a ratio against zero
/// or a negative added latency means nothing).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

/// A ratio as `1.23×`, or `n/a`.
pub fn format_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{r:.2}×"),
        None => "n/a".to_string(),
    }
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

impl Comparison {
    /// The fixed-rate run of `path`, if measured.
    pub fn path(&self, path: PathKind) -> Option<&PathMeasurement> {
        self.paths.iter().find(|p| p.path == path)
    }

    /// The throughput run of `path`, if measured.
    pub fn throughput_of(&self, path: PathKind) -> Option<&PathMeasurement> {
        self.throughput.iter().find(|p| p.path == path)
    }

    /// p99 of `path` minus p99 of the direct path, ms (may be negative within noise).
    pub fn added_p99_ms(&self, path: PathKind) -> Option<f64> {
        Some(self.path(path)?.load.p99_ms - self.path(PathKind::Direct)?.load.p99_ms)
    }

    /// A proxy's cores per 1,000 req/s in the fixed-rate run of `path`, over the run's achieved
    /// rate and wall time.
    pub fn cores_per_krps(&self, path: PathKind, role: &str) -> Option<f64> {
        let measured = self.path(path)?;
        let proxy = measured.proxies.iter().find(|p| p.role == role)?;
        proxy
            .usage
            .cores_per_krps(measured.load.duration_s, measured.load.rate_per_s)
    }

    fn peak_rss(&self, path: PathKind, role: &str) -> Option<f64> {
        let measured = self.path(path)?;
        let proxy = measured.proxies.iter().find(|p| p.role == role)?;
        Some(proxy.usage.peak_rss_mib)
    }

    fn max_rate(&self, path: PathKind) -> Option<f64> {
        self.throughput_of(path).map(|p| p.load.rate_per_s)
    }

    /// The targets, judged on this run (see the module documentation). A target whose
    /// figures are missing is `met: None`.
    pub fn targets(&self) -> Vec<TargetCheck> {
        let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3} ms"));
        let cores = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.4} core"));
        let mib = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} MiB"));
        let rate = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0} req/s"));
        let ratio_of = |w: Option<f64>, p: Option<f64>| ratio(w?, p?);
        let mut checks = Vec::new();

        let (w, h, n) = (
            self.added_p99_ms(PathKind::Weft),
            self.added_p99_ms(PathKind::Haproxy),
            self.added_p99_ms(PathKind::Nginx),
        );
        checks.push(TargetCheck {
            target: "added p99 of the pair ≤ HAProxy pair's".into(),
            weft: ms(w),
            haproxy: ms(h),
            nginx: ms(n),
            ratio_haproxy: ratio_of(w, h),
            ratio_nginx: ratio_of(w, n),
            met: w.zip(h).map(|(w, h)| w <= h),
        });

        for role in ["client-side", "server-side"] {
            let (w, h, n) = (
                self.cores_per_krps(PathKind::Weft, role),
                self.cores_per_krps(PathKind::Haproxy, role),
                self.cores_per_krps(PathKind::Nginx, role),
            );
            checks.push(TargetCheck {
                target: format!(
                    "{role} proxy CPU ≤ {CPU_TARGET_CORES_PER_KRPS} core per 1,000 req/s and ≤ HAProxy's"
                ),
                weft: cores(w),
                haproxy: cores(h),
                nginx: cores(n),
                ratio_haproxy: ratio_of(w, h),
                ratio_nginx: ratio_of(w, n),
                met: w
                    .zip(h)
                    .map(|(w, h)| w <= CPU_TARGET_CORES_PER_KRPS && w <= h),
            });
        }

        for role in ["client-side", "server-side"] {
            let (w, h, n) = (
                self.peak_rss(PathKind::Weft, role),
                self.peak_rss(PathKind::Haproxy, role),
                self.peak_rss(PathKind::Nginx, role),
            );
            checks.push(TargetCheck {
                target: format!("{role} proxy peak RSS ≤ {RSS_TARGET_MIB} MiB"),
                weft: mib(w),
                haproxy: mib(h),
                nginx: mib(n),
                ratio_haproxy: ratio_of(w, h),
                ratio_nginx: ratio_of(w, n),
                met: w.map(|w| w <= RSS_TARGET_MIB),
            });
        }

        let (w, h, n) = (
            self.max_rate(PathKind::Weft),
            self.max_rate(PathKind::Haproxy),
            self.max_rate(PathKind::Nginx),
        );
        checks.push(TargetCheck {
            target: "max throughput, one proxy ≥ HAProxy's and nginx's".into(),
            weft: rate(w),
            haproxy: rate(h),
            nginx: rate(n),
            ratio_haproxy: ratio_of(w, h),
            ratio_nginx: ratio_of(w, n),
            met: match (w, h, n) {
                (Some(w), Some(h), Some(n)) => Some(w >= h && w >= n),
                _ => None,
            },
        });
        checks
    }

    /// The whole comparison as Markdown: settings, the fixed-rate paths, each proxy's CPU and
    /// memory, the throughput runs and the targets with ratios.
    pub fn to_markdown(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "Proxy comparison, {} UTC{}; load average before {}, after {}.\n\
             Fixed rate: {} req/s over {} HTTP/1.1 keep-alive connections for {} s per path in \
             {} segment(s) interleaved with the other paths' (after {} s warm-up; the first {} ms \
             of each segment, while its connections open, not in the latencies), {}-byte \
             responses, {} worker(s) per proxy. Throughput: one proxy, plain HTTP, no rate limit, \
             {} connections, {} s per path in {} interleaved segment(s), {} worker(s). Tools: \
             {}.\n\n",
            self.started_utc,
            if s.quick { " (--quick)" } else { "" },
            self.load_average_before,
            self.load_average_after,
            s.rate_per_s,
            s.connections,
            s.duration_s,
            s.segments,
            s.warmup_s,
            s.lead_in_ms,
            s.body_bytes,
            s.pair_workers,
            s.throughput_connections,
            s.throughput_duration_s,
            s.throughput_segments,
            s.throughput_workers,
            self.versions.join(", "),
        );
        out.push_str(
            "| path | achieved req/s | ok / non-2xx / errors | p50 ms | p90 ms | p99 ms | max ms | added p99 ms |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for p in &self.paths {
            let added = match p.path {
                PathKind::Direct => "–".to_string(),
                kind => self
                    .added_p99_ms(kind)
                    .map_or("–".into(), |v| format!("{v:+.3}")),
            };
            let l = &p.load;
            out.push_str(&format!(
                "| {} | {:.1} | {} / {} / {} | {:.3} | {:.3} | {:.3} | {:.3} | {added} |\n",
                p.path.label(),
                l.rate_per_s,
                l.ok,
                l.non_2xx,
                l.errors,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.max_ms,
            ));
        }
        out.push_str(
            "\n| proxy | processes | CPU cores | cores per 1,000 req/s | peak RSS MiB | end RSS MiB |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for p in &self.paths {
            for proxy in &p.proxies {
                let u = &proxy.usage;
                out.push_str(&format!(
                    "| {} {} | {} | {:.4} | {} | {:.1} | {:.1} |\n",
                    p.path.label(),
                    proxy.role,
                    u.processes,
                    u.cores(p.load.duration_s),
                    u.cores_per_krps(p.load.duration_s, p.load.rate_per_s)
                        .map_or("–".into(), |v| format!("{v:.4}")),
                    u.peak_rss_mib,
                    u.end_rss_mib,
                ));
            }
        }
        if !self.throughput.is_empty() {
            out.push_str(
                "\n| maximum throughput | req/s | ok / non-2xx / errors | p50 ms | p99 ms | proxy CPU cores | proxy peak RSS MiB |\n\
                 | --- | --- | --- | --- | --- | --- | --- |\n",
            );
            for p in &self.throughput {
                let l = &p.load;
                let proxy = p.proxies.first().map(|x| x.usage);
                out.push_str(&format!(
                    "| {} | {:.0} | {} / {} / {} | {:.3} | {:.3} | {} | {} |\n",
                    p.path.label(),
                    l.rate_per_s,
                    l.ok,
                    l.non_2xx,
                    l.errors,
                    l.p50_ms,
                    l.p99_ms,
                    proxy.map_or("–".into(), |u| format!("{:.2}", u.cores(l.duration_s))),
                    proxy.map_or("–".into(), |u| format!("{:.1}", u.peak_rss_mib)),
                ));
            }
        }
        out.push_str(
            "\n| target | Weft | HAProxy | nginx | Weft ÷ HAProxy | Weft ÷ nginx | verdict |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for t in self.targets() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                t.target,
                t.weft,
                t.haproxy,
                t.nginx,
                format_ratio(t.ratio_haproxy),
                format_ratio(t.ratio_nginx),
                yes_no(t.met),
            ));
        }
        out
    }

    /// The targets as rows of `make bench`'s one table (area `proxy`).
    pub fn summary_rows(&self) -> Vec<SummaryRow> {
        self.targets()
            .into_iter()
            .map(|t| SummaryRow {
                area: "proxy comparison".into(),
                measure: t.target,
                value: format!(
                    "Weft {}; HAProxy {} ({}); nginx {} ({})",
                    t.weft,
                    t.haproxy,
                    format_ratio(t.ratio_haproxy),
                    t.nginx,
                    format_ratio(t.ratio_nginx)
                ),
                status: yes_no(t.met).replace("**", ""),
                when: self.started_utc.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn load(p99_ms: f64, rate: f64) -> LoadReport {
        LoadReport {
            ok: 1000,
            non_2xx: 0,
            errors: 0,
            duration_s: 10.0,
            rate_per_s: rate,
            p50_ms: p99_ms / 3.0,
            p90_ms: p99_ms / 2.0,
            p99_ms,
            max_ms: p99_ms * 2.0,
            error_kinds: Default::default(),
        }
    }

    fn usage(cpu_s: f64, peak: f64) -> Usage {
        Usage {
            processes: 1,
            cpu_s,
            peak_rss_mib: peak,
            end_rss_mib: peak - 1.0,
        }
    }

    fn pair(path: PathKind, p99: f64, cpu_s: f64, peak: f64) -> PathMeasurement {
        PathMeasurement {
            path,
            load: load(p99, 1000.0),
            proxies: ["client-side", "server-side"]
                .iter()
                .map(|role| ProxyMeasurement {
                    role: role.to_string(),
                    usage: usage(cpu_s, peak),
                })
                .collect(),
        }
    }

    fn comparison(weft_p99: f64, weft_cpu: f64, weft_peak: f64, weft_rate: f64) -> Comparison {
        let one = |path, rate| PathMeasurement {
            path,
            load: load(1.0, rate),
            proxies: vec![ProxyMeasurement {
                role: "one hop".into(),
                usage: usage(15.0, 10.0),
            }],
        };
        Comparison {
            started_utc: "2026-11-21T12:00:00Z".into(),
            load_average_before: "1.00 1.00 1.00".into(),
            load_average_after: "1.50 1.10 1.00".into(),
            versions: vec!["oha 1.16.0".into()],
            settings: Settings {
                rate_per_s: 1000,
                connections: 16,
                duration_s: 10,
                segments: 2,
                lead_in_ms: 250,
                warmup_s: 2,
                throughput_duration_s: 10,
                throughput_segments: 2,
                throughput_connections: 16,
                body_bytes: 1024,
                pair_workers: 1,
                throughput_workers: 2,
                quick: false,
            },
            paths: vec![
                PathMeasurement {
                    path: PathKind::Direct,
                    load: load(0.5, 1000.0),
                    proxies: vec![],
                },
                pair(PathKind::Weft, weft_p99, weft_cpu, weft_peak),
                pair(PathKind::Haproxy, 1.5, 0.4, 8.0),
                pair(PathKind::Nginx, 2.5, 0.5, 6.0),
            ],
            throughput: vec![
                one(PathKind::Direct, 30000.0),
                one(PathKind::Weft, weft_rate),
                one(PathKind::Haproxy, 10000.0),
                one(PathKind::Nginx, 12000.0),
            ],
        }
    }

    #[test]
    fn ratios_refuse_zero_negative_and_non_finite_denominators() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(3.0, -1.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(format_ratio(Some(0.5)), "0.50×");
        assert_eq!(format_ratio(None), "n/a");
    }

    #[test]
    fn weft_better_than_both_peers_meets_every_target() {
        // Weft: p99 1.0 (added 0.5 vs HAProxy 1.0), 0.3 s CPU over 10 s at 1,000 req/s = 0.03
        // core per 1,000 req/s (HAProxy 0.04), 9 MiB, 13,000 req/s.
        let c = comparison(1.0, 0.3, 9.0, 13000.0);
        let checks = c.targets();
        assert_eq!(checks.len(), 6);
        for check in &checks {
            assert_eq!(check.met, Some(true), "{check:?}");
        }
        assert_eq!(checks[0].ratio_haproxy, Some(0.5));
        assert_eq!(checks[0].ratio_nginx, Some(0.25));
        let cpu = checks[1].ratio_haproxy.unwrap();
        assert!((cpu - 0.75).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn each_target_fails_on_its_own_figure() {
        // Added p99 2.0 > HAProxy's 1.0.
        assert_eq!(
            comparison(2.5, 0.3, 9.0, 13000.0).targets()[0].met,
            Some(false)
        );
        // 0.45 s / 10 s at 1,000 req/s = 0.045 core: under 0.05 but above HAProxy's 0.04.
        assert_eq!(
            comparison(1.0, 0.45, 9.0, 13000.0).targets()[1].met,
            Some(false)
        );
        // 0.6 s: above 0.05 and above HAProxy.
        assert_eq!(
            comparison(1.0, 0.6, 9.0, 13000.0).targets()[2].met,
            Some(false)
        );
        // 16 MiB > 15 MiB.
        let rss = comparison(1.0, 0.3, 16.0, 13000.0).targets();
        assert_eq!((rss[3].met, rss[4].met), (Some(false), Some(false)));
        // Between HAProxy (10,000) and nginx (12,000).
        assert_eq!(
            comparison(1.0, 0.3, 9.0, 11000.0).targets()[5].met,
            Some(false)
        );
    }

    #[test]
    fn missing_paths_are_not_measured_rather_than_met() {
        let mut c = comparison(1.0, 0.3, 9.0, 13000.0);
        c.paths.retain(|p| p.path != PathKind::Haproxy);
        c.throughput.clear();
        let checks = c.targets();
        assert_eq!(checks[0].met, None);
        assert_eq!(checks[0].haproxy, "–");
        assert_eq!(checks[5].met, None);
        let text = c.to_markdown();
        assert!(text.contains("not measured"), "{text}");
        assert!(!text.contains("maximum throughput |"), "{text}");
    }

    #[test]
    fn markdown_holds_every_path_proxy_and_verdict() {
        let text = comparison(2.5, 0.3, 9.0, 13000.0).to_markdown();
        for needle in [
            "| direct | 1000.0 | 1000 / 0 / 0 | 0.167 | 0.250 | 0.500 | 1.000 | – |",
            "| Weft | 1000.0 | 1000 / 0 / 0 | 0.833 | 1.250 | 2.500 | 5.000 | +2.000 |",
            "| Weft client-side | 1 | 0.0300 | 0.0300 | 9.0 | 8.0 |",
            "| HAProxy server-side | 1 | 0.0400 | 0.0400 | 8.0 | 7.0 |",
            "| added p99 of the pair ≤ HAProxy pair's | 2.000 ms | 1.000 ms | 2.000 ms | 2.00× | 1.00× | **not met** |",
            "| max throughput, one proxy ≥ HAProxy's and nginx's | 13000 req/s | 10000 req/s | 12000 req/s | 1.30× | 1.08× | **met** |",
            "load average before 1.00 1.00 1.00, after 1.50 1.10 1.00",
            "for 10 s per path in 2 segment(s) interleaved with the other paths' (after 2 s \
             warm-up; the first 250 ms of each segment",
            "10 s per path in 2 interleaved segment(s)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn results_written_before_segments_read_as_one_segment() {
        let mut json = serde_json::to_value(comparison(1.0, 0.3, 9.0, 13000.0)).unwrap();
        let settings = json["settings"].as_object_mut().unwrap();
        for key in ["segments", "lead_in_ms", "throughput_segments"] {
            settings.remove(key);
        }
        let old: Comparison = serde_json::from_value(json).unwrap();
        assert_eq!(old.settings.segments, 1);
        assert_eq!(old.settings.lead_in_ms, 0);
        assert_eq!(old.settings.throughput_segments, 1);
    }

    #[test]
    fn the_floor_is_a_reference_row_and_no_peer() {
        let mut c = comparison(1.0, 0.3, 9.0, 13000.0);
        let before = c.targets();
        let mut floor = c.throughput[1].clone();
        floor.path = PathKind::Floor;
        floor.load.rate_per_s = 20000.0;
        c.throughput.push(floor);
        let text = c.to_markdown();
        assert!(
            text.contains("| hyper + tokio floor | 20000 | 1000 / 0 / 0 |"),
            "{text}"
        );
        // Faster than Weft, yet no target compares Weft with it.
        assert_eq!(c.targets(), before);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"path\":\"floor\""), "{json}");
    }

    #[test]
    fn comparison_round_trips_through_json() {
        let c = comparison(1.0, 0.3, 9.0, 13000.0);
        let json = serde_json::to_string(&c).unwrap();
        let back: Comparison = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let rows = back.summary_rows();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].status, "met");
        assert!(
            rows[0].value.contains("HAProxy 1.000 ms (0.50×)"),
            "{}",
            rows[0].value
        );
    }
}
