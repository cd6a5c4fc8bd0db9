//! Per-request latencies from oha's SQLite output (`oha --db-url FILE`), so that several
//! interleaved segments of one path merge into one latency distribution.
//!
//! oha writes one row per successful request into the table `oha`, with `start`,
//! `start_latency_correction` (the request's scheduled start, under `--latency-correction`)
//! and `end`, in seconds since the run began. A request's latency is `end −
//! start_latency_correction`, or `end − start` without correction: the figure oha's own JSON
//! percentiles are computed from.

use std::path::{Path, PathBuf};

/// Why a run's samples could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SamplesError {
    /// The file is not oha's SQLite output, or reading it failed.
    #[error("oha samples {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A row's latency is negative or not finite.
    #[error("oha samples {}: a request has latency {value} s, not a finite, non-negative number", path.display())]
    BadLatency {
        /// The database file.
        path: PathBuf,
        /// The latency, s.
        value: f64,
    },
}

/// Reads the latencies, in ms, of the requests oha stored in `path` whose (scheduled) start is
/// at or after `lead_s` seconds into the run: the requests of the lead-in, while the run's
/// connections open, are left out. Errors when the file is not oha's database or a latency is
/// negative or not finite.
pub fn read_oha_db(path: &Path, lead_s: f64) -> Result<Vec<f64>, SamplesError> {
    let sqlite = |source| SamplesError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite)?;
    let mut query = db
        .prepare(
            "SELECT end - COALESCE(start_latency_correction, start) FROM oha \
             WHERE COALESCE(start_latency_correction, start) >= ?1",
        )
        .map_err(sqlite)?;
    let rows = query
        .query_map([lead_s], |row| row.get::<_, f64>(0))
        .map_err(sqlite)?;
    let mut latencies = Vec::new();
    for row in rows {
        let seconds = row.map_err(sqlite)?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(SamplesError::BadLatency {
                path: path.to_path_buf(),
                value: seconds,
            });
        }
        latencies.push(seconds * 1000.0);
    }
    Ok(latencies)
}

/// A latency distribution: samples in ms, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    sorted: Vec<f64>,
}

impl Distribution {
    /// Sorts `samples_ms`; `None` when there are none. Samples are expected finite (as
    /// [`read_oha_db`] gives them); a NaN would sort last.
    pub fn new(mut samples_ms: Vec<f64>) -> Option<Self> {
        if samples_ms.is_empty() {
            return None;
        }
        samples_ms.sort_by(f64::total_cmp);
        Some(Self { sorted: samples_ms })
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Never true: a distribution has at least one sample.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `q`-quantile (`q` in 0..=1, clamped) by nearest rank: the smallest sample with at
    /// least `q` of the samples at or below it, ms.
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        // The rank is ⌈q·n⌉; the small offset keeps a product such as 0.9 × 100 =
        // 90.00000000000001 at rank 90.
        let rank = (q.clamp(0.0, 1.0) * n as f64 - 1e-9).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    /// The largest sample, ms.
    pub fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an oha-shaped database (the table oha 1.16 creates) with `rows` of
    /// (start, start_latency_correction, end).
    fn oha_db(dir: &Path, rows: &[(f64, Option<f64>, f64)]) -> PathBuf {
        let path = dir.join("oha.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE oha (url TEXT NOT NULL, start REAL NOT NULL, \
             start_latency_correction REAL, end REAL NOT NULL, duration REAL NOT NULL, \
             status INTEGER NOT NULL, len_bytes INTEGER NOT NULL, run INTEGER NOT NULL)",
        )
        .unwrap();
        for (start, corrected, end) in rows {
            db.execute(
                "INSERT INTO oha VALUES ('http://x/', ?1, ?2, ?3, ?3 - ?1, 200, 1024, 0)",
                rusqlite::params![start, corrected, end],
            )
            .unwrap();
        }
        path
    }

    #[test]
    fn latency_runs_from_the_scheduled_start_and_the_lead_in_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = oha_db(
            dir.path(),
            &[
                // Scheduled in the lead-in: left out.
                (0.0105, Some(0.010), 0.0150),
                // Sent 2 ms late: its latency counts from the schedule (3 ms, not 1 ms).
                (0.502, Some(0.500), 0.503),
                // No correction recorded: from its start.
                (0.600, None, 0.6005),
            ],
        );
        let latencies = read_oha_db(&path, 0.25).unwrap();
        assert_eq!(latencies.len(), 2);
        assert!((latencies[0] - 3.0).abs() < 1e-6, "{latencies:?}");
        assert!((latencies[1] - 0.5).abs() < 1e-6, "{latencies:?}");
        assert_eq!(read_oha_db(&path, 0.0).unwrap().len(), 3);
    }

    #[test]
    fn a_file_that_is_not_ohas_database_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-oha.db");
        std::fs::write(&path, "plain text, not SQLite").unwrap();
        let error = read_oha_db(&path, 0.0).unwrap_err().to_string();
        assert!(error.contains("not-oha.db"), "{error}");
    }

    #[test]
    fn a_negative_latency_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = oha_db(dir.path(), &[(1.0, Some(1.0), 0.5)]);
        let error = read_oha_db(&path, 0.0).unwrap_err();
        assert!(matches!(error, SamplesError::BadLatency { value, .. } if value < 0.0));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let d = Distribution::new((1..=100).rev().map(f64::from).collect()).unwrap();
        assert_eq!(d.len(), 100);
        assert_eq!(d.quantile(0.5), 50.0);
        assert_eq!(d.quantile(0.9), 90.0);
        assert_eq!(d.quantile(0.99), 99.0);
        assert_eq!(d.quantile(0.991), 100.0);
        assert_eq!(d.quantile(0.0), 1.0);
        assert_eq!(d.max(), 100.0);
        let one = Distribution::new(vec![7.0]).unwrap();
        assert_eq!(
            (one.quantile(0.5), one.quantile(0.99), one.max()),
            (7.0, 7.0, 7.0)
        );
        assert!(Distribution::new(Vec::new()).is_none());
    }
}
