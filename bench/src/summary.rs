//! `make bench`'s one table: the proxy comparison's verdicts, every criterion estimate under
//! `target/criterion/**/new/estimates.json`, and every other JSON summary under
//! `target/weft-bench/` (the discovery convergence benchmark writes `discovery.json`).
//!
//! Criterion's files (criterion.rs's on-disk format): `new/benchmark.json` names the benchmark
//! (`full_id`), `new/estimates.json` holds `mean.point_estimate` and its 95 % confidence interval
//! in nanoseconds.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::report::Comparison;

/// The file name of the proxy comparison's JSON results in the summary directory.
pub const COMPARISON_JSON: &str = "proxy-comparison.json";
/// The file name the discovery convergence benchmark writes in the summary directory.
pub const DISCOVERY_JSON: &str = "discovery.json";

/// Why a benchmark output file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not the JSON expected.
    #[error("{path}: not the expected JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A criterion estimate is not a finite, non-negative number of nanoseconds.
    #[error("{path}: mean.point_estimate = {value} is not a duration in ns")]
    BadEstimate {
        /// The file.
        path: PathBuf,
        /// The value.
        value: f64,
    },
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// Where it comes from (`proxy comparison`, `criterion`, `discovery`).
    pub area: String,
    /// What is measured.
    pub measure: String,
    /// The figure(s), with units.
    pub value: String,
    /// `met`, `not met`, `not measured`, or empty when no target applies.
    pub status: String,
    /// When it was measured (UTC, to the minute).
    pub when: String,
}

#[derive(Deserialize)]
struct Estimates {
    mean: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct BenchmarkId {
    full_id: String,
}

/// A criterion mean with its 95 % confidence interval, ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CriterionMean {
    /// The mean, ns.
    pub mean_ns: f64,
    /// Lower bound of the interval, ns.
    pub lower_ns: f64,
    /// Upper bound of the interval, ns.
    pub upper_ns: f64,
}

impl CriterionMean {
    /// Parses criterion's `estimates.json` text (`path` is for errors). Errors when it is not
    /// that JSON or the mean is negative or not finite.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SummaryError> {
        let estimates: Estimates =
            serde_json::from_str(text).map_err(|source| SummaryError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let mean = estimates.mean;
        if !(mean.point_estimate.is_finite() && mean.point_estimate >= 0.0) {
            return Err(SummaryError::BadEstimate {
                path: path.to_path_buf(),
                value: mean.point_estimate,
            });
        }
        Ok(Self {
            mean_ns: mean.point_estimate,
            lower_ns: mean.confidence_interval.lower_bound,
            upper_ns: mean.confidence_interval.upper_bound,
        })
    }
}

/// A duration in ns with a unit that keeps 3–4 significant digits: `812 ns`, `91.2 µs`,
/// `2.95 ms`, `1.53 s`.
pub fn format_ns(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// A file's modification time as `YYYY-MM-DD HH:MM` UTC, or `?`.
pub fn modified_utc(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(format_utc)
        .unwrap_or_else(|_| "?".into())
}

/// `time` as `YYYY-MM-DD HH:MM` UTC.
pub fn format_utc(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Every `new/estimates.json` under `criterion_dir`, as rows named by the sibling
/// `benchmark.json`'s `full_id` (the directory path when it is missing), sorted by name. A
/// missing directory gives no rows; a file that does not parse gives a row saying so.
pub fn criterion_rows(criterion_dir: &Path) -> Vec<SummaryRow> {
    let mut files = Vec::new();
    collect_estimates(criterion_dir, &mut files);
    let mut rows: Vec<SummaryRow> = files
        .into_iter()
        .map(|path| {
            let dir = path.parent().unwrap_or(criterion_dir);
            let name = std::fs::read_to_string(dir.join("benchmark.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<BenchmarkId>(&t).ok())
                .map(|b| b.full_id)
                .unwrap_or_else(|| {
                    dir.parent()
                        .and_then(|d| d.strip_prefix(criterion_dir).ok())
                        .map_or_else(|| dir.display().to_string(), |d| d.display().to_string())
                });
            let value = match std::fs::read_to_string(&path)
                .map_err(|source| SummaryError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| CriterionMean::parse(&path, &text))
            {
                Ok(m) => format!(
                    "{} [{}, {}]",
                    format_ns(m.mean_ns),
                    format_ns(m.lower_ns),
                    format_ns(m.upper_ns)
                ),
                Err(error) => format!("unreadable: {error}"),
            };
            SummaryRow {
                area: "criterion".into(),
                measure: name,
                value,
                status: String::new(),
                when: modified_utc(&path),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.measure.cmp(&b.measure));
    rows
}

fn collect_estimates(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // `report/` holds only HTML; `base/` and `change/` are older copies.
            let name = entry.file_name();
            if name == "report" || name == "base" || name == "change" {
                continue;
            }
            collect_estimates(&path, out);
        } else if entry.file_name() == "estimates.json"
            && path.parent().and_then(Path::file_name) == Some("new".as_ref())
        {
            out.push(path);
        }
    }
}

/// The scalar fields of a JSON summary as `key = value` rows (nested objects as `a.b`,
/// arrays and nulls skipped), under `area`.
pub fn json_rows(area: &str, value: &Value, when: &str) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    flatten(area, "", value, when, &mut rows);
    rows
}

fn flatten(area: &str, prefix: &str, value: &Value, when: &str, rows: &mut Vec<SummaryRow>) {
    let row = |text: String| SummaryRow {
        area: area.to_string(),
        measure: prefix.to_string(),
        value: text,
        status: String::new(),
        when: when.to_string(),
    };
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(area, &name, inner, when, rows);
            }
        }
        Value::Number(n) => rows.push(row(match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        })),
        Value::String(s) => rows.push(row(s.clone())),
        Value::Bool(b) => rows.push(row(b.to_string())),
        Value::Null | Value::Array(_) => {}
    }
}

/// All rows of `make bench`'s table: the proxy comparison from `summary_dir`
/// ([`COMPARISON_JSON`]; a `not run` row without it), the discovery benchmark
/// ([`DISCOVERY_JSON`]; `not run` without it), any other `*.json` there, and criterion's
/// estimates under `criterion_dir`.
pub fn collect(summary_dir: &Path, criterion_dir: &Path) -> Vec<SummaryRow> {
    let not_run = |area: &str, file: &str| SummaryRow {
        area: area.to_string(),
        measure: format!("{} not found", summary_dir.join(file).display()),
        value: "not run".into(),
        status: "not measured".into(),
        when: String::new(),
    };
    let unreadable = |area: &str, error: SummaryError| SummaryRow {
        area: area.to_string(),
        measure: "results".into(),
        value: error.to_string(),
        status: "not measured".into(),
        when: String::new(),
    };
    let mut rows = Vec::new();
    let comparison_path = summary_dir.join(COMPARISON_JSON);
    match read_json::<Comparison>(&comparison_path) {
        Ok(Some(c)) => rows.extend(c.summary_rows()),
        Ok(None) => rows.push(not_run("proxy comparison", COMPARISON_JSON)),
        Err(error) => rows.push(unreadable("proxy comparison", error)),
    }
    let discovery_path = summary_dir.join(DISCOVERY_JSON);
    match read_json::<Value>(&discovery_path) {
        Ok(Some(v)) => rows.extend(json_rows("discovery", &v, &modified_utc(&discovery_path))),
        Ok(None) => rows.push(not_run("discovery", DISCOVERY_JSON)),
        Err(error) => rows.push(unreadable("discovery", error)),
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(summary_dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension() == Some("json".as_ref())
                        && p.file_name() != Some(COMPARISON_JSON.as_ref())
                        && p.file_name() != Some(DISCOVERY_JSON.as_ref())
                })
                .collect()
        })
        .unwrap_or_default();
    others.sort();
    for path in others {
        let area = path
            .file_stem()
            .map_or("?".into(), |s| s.to_string_lossy().into_owned());
        match read_json::<Value>(&path) {
            Ok(Some(v)) => rows.extend(json_rows(&area, &v, &modified_utc(&path))),
            Ok(None) => {}
            Err(error) => rows.push(unreadable(&area, error)),
        }
    }
    rows.extend(criterion_rows(criterion_dir));
    rows
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, SummaryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SummaryError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| SummaryError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// The rows as one Markdown table (`|` in cells escaped).
pub fn to_markdown(rows: &[SummaryRow]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from(
        "| area | measure | value | target | measured (UTC) |\n| --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&r.area),
            cell(&r.measure),
            cell(&r.value),
            cell(&r.status),
            cell(&r.when)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const ESTIMATES: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,
        "lower_bound":88000.5,"upper_bound":95123.0},"point_estimate":91234.0,
        "standard_error":100.0},"median":{"confidence_interval":{"confidence_level":0.95,
        "lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5,"standard_error":0.1},
        "median_abs_dev":null,"slope":null,"std_dev":null}"#;

    #[test]
    fn durations_keep_three_significant_digits() {
        assert_eq!(format_ns(812.0), "812 ns");
        assert_eq!(format_ns(91_234.0), "91.2 µs");
        assert_eq!(format_ns(2_950_000.0), "2.95 ms");
        assert_eq!(format_ns(1_530_000_000.0), "1.53 s");
        assert_eq!(format_ns(5.0), "5.00 ns");
    }

    #[test]
    fn criterion_estimates_parse_and_bad_ones_are_errors() {
        let path = Path::new("x/new/estimates.json");
        let mean = CriterionMean::parse(path, ESTIMATES).unwrap();
        assert_eq!(mean.mean_ns, 91234.0);
        assert_eq!((mean.lower_ns, mean.upper_ns), (88000.5, 95123.0));
        let negative = ESTIMATES.replace("91234.0", "-1.0");
        assert!(matches!(
            CriterionMean::parse(path, &negative),
            Err(SummaryError::BadEstimate { .. })
        ));
        assert!(matches!(
            CriterionMean::parse(path, "{}"),
            Err(SummaryError::Json { .. })
        ));
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn criterion_tree_is_walked_skipping_base_and_report() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let new = root.join("handle_inject_body/3-containers/new");
        write(&new.join("estimates.json"), ESTIMATES);
        write(
            &new.join("benchmark.json"),
            r#"{"group_id":"handle_inject_body","function_id":"3-containers","full_id":"handle_inject_body/3-containers"}"#,
        );
        write(
            &root.join("handle_inject_body/3-containers/base/estimates.json"),
            ESTIMATES,
        );
        // No benchmark.json: named by its directory.
        write(&root.join("authorize/http/new/estimates.json"), ESTIMATES);
        write(&root.join("broken/new/estimates.json"), "not json");
        let rows = criterion_rows(root);
        let names: Vec<&str> = rows.iter().map(|r| r.measure.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "authorize/http",
                "broken",
                "handle_inject_body/3-containers"
            ]
        );
        assert_eq!(rows[2].value, "91.2 µs [88.0 µs, 95.1 µs]");
        assert!(
            rows[1].value.starts_with("unreadable:"),
            "{}",
            rows[1].value
        );
        assert!(criterion_rows(&root.join("absent")).is_empty());
    }

    #[test]
    fn json_summaries_flatten_to_scalar_rows() {
        let value = json!({
            "proxies": 1000,
            "convergence_ms": {"p50": 6000.5, "p99": 7700.0},
            "target_met": false,
            "note": "one change",
            "samples": [1, 2, 3],
            "missing": null
        });
        let rows = json_rows("discovery", &value, "2026-11-21 12:00");
        let pairs: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.measure.clone(), r.value.clone()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("convergence_ms.p50".to_string(), "6000.500".to_string()),
                ("convergence_ms.p99".to_string(), "7700.000".to_string()),
                ("note".to_string(), "one change".to_string()),
                ("proxies".to_string(), "1000".to_string()),
                ("target_met".to_string(), "false".to_string()),
            ]
        );
    }

    #[test]
    fn collect_says_not_run_for_missing_results_and_reads_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("weft-bench");
        std::fs::create_dir_all(&summary).unwrap();
        write(&summary.join("policy.json"), r#"{"authorize_us": 1.99}"#);
        write(&summary.join("broken.json"), "{");
        let rows = collect(&summary, &dir.path().join("criterion"));
        assert_eq!(rows[0].area, "proxy comparison");
        assert_eq!(rows[0].value, "not run");
        assert_eq!(rows[1].area, "discovery");
        assert_eq!(rows[1].value, "not run");
        assert_eq!(rows[2].area, "broken");
        assert_eq!(rows[2].status, "not measured");
        assert_eq!(
            (
                rows[3].area.as_str(),
                rows[3].measure.as_str(),
                rows[3].value.as_str()
            ),
            ("policy", "authorize_us", "1.990")
        );
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn markdown_escapes_pipes() {
        let rows = vec![SummaryRow {
            area: "a".into(),
            measure: "x|y".into(),
            value: "1\n2".into(),
            status: "met".into(),
            when: "now".into(),
        }];
        assert_eq!(
            to_markdown(&rows),
            "| area | measure | value | target | measured (UTC) |\n| --- | --- | --- | --- | --- |\n| a | x\\|y | 1 2 | met | now |\n"
        );
    }

    #[test]
    fn utc_formatting() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(format_utc(t), "2027-01-15 08:00");
    }
}
