//! Per-process CPU time and memory from Linux's `/proc` (proc(5)): `utime` and `stime` from
//! `/proc/PID/stat` (fields 14 and 15, in clock ticks), the parent from field 4, and the
//! resident set from `/proc/PID/status` (`VmRSS`, now; `VmHWM`, its peak, in KiB).
//!
//! A proxy may be several processes (nginx's master and workers): a [`ProcessGroup`] is a root
//! process and its descendants, and its figures are the sums over them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why `/proc` could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A `/proc` file could not be read (the process is gone, or no permission).
    #[error("cannot read {path}: {source} (has the process exited?)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `/proc/PID/stat` is not in proc(5)'s format.
    #[error("/proc/PID/stat: {0} (expected `pid (comm) state ppid ...` with at least 15 fields)")]
    Stat(&'static str),
    /// `/proc/PID/status` lacks a memory line.
    #[error("/proc/PID/status: no `{0}:` line in kB (kernel threads and zombies have none)")]
    Status(&'static str),
}

/// The fields of `/proc/PID/stat` the benchmark uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The process id (field 1).
    pub pid: u32,
    /// The command name without the parentheses (field 2; may contain spaces and parentheses).
    pub comm: String,
    /// The parent's process id (field 4).
    pub ppid: u32,
    /// User-mode CPU time, clock ticks (field 14).
    pub utime_ticks: u64,
    /// Kernel-mode CPU time, clock ticks (field 15).
    pub stime_ticks: u64,
}

impl Stat {
    /// Parses one `/proc/PID/stat` line. The command name is everything between the first `(`
    /// and the last `)`, as proc(5) advises. Errors when a field is missing or not a number.
    pub fn parse(text: &str) -> Result<Self, ProcError> {
        let open = text
            .find('(')
            .ok_or(ProcError::Stat("no `(` before the command name"))?;
        let close = text
            .rfind(')')
            .ok_or(ProcError::Stat("no `)` after the command name"))?;
        if close < open {
            return Err(ProcError::Stat("`)` before `(`"));
        }
        let pid = text[..open]
            .trim()
            .parse()
            .map_err(|_| ProcError::Stat("field 1 (pid) is not a number"))?;
        let comm = text[open + 1..close].to_string();
        // Fields from 3 (state) on; index 0 here is field 3.
        let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
        let field = |n: usize, what: &'static str| -> Result<u64, ProcError> {
            rest.get(n - 3)
                .ok_or(ProcError::Stat(what))?
                .parse()
                .map_err(|_| ProcError::Stat(what))
        };
        let ppid = field(4, "field 4 (ppid) is missing or not a number")?;
        Ok(Self {
            pid,
            comm,
            ppid: u32::try_from(ppid).map_err(|_| ProcError::Stat("field 4 (ppid) too large"))?,
            utime_ticks: field(14, "field 14 (utime) is missing or not a number")?,
            stime_ticks: field(15, "field 15 (stime) is missing or not a number")?,
        })
    }
}

/// Resident memory from `/proc/PID/status`, KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak since start or since the last reset (see [`reset_peak_rss`]).
    pub hwm_kib: u64,
}

impl Memory {
    /// Parses `VmRSS` and `VmHWM` (`VmRSS: 12345 kB`). Errors when either is missing.
    pub fn parse_status(text: &str) -> Result<Self, ProcError> {
        let kib = |name: &'static str| -> Result<u64, ProcError> {
            text.lines()
                .find_map(|line| {
                    let value = line.strip_prefix(name)?.strip_prefix(':')?;
                    value.trim().strip_suffix("kB")?.trim().parse().ok()
                })
                .ok_or(ProcError::Status(name))
        };
        Ok(Self {
            rss_kib: kib("VmRSS")?,
            hwm_kib: kib("VmHWM")?,
        })
    }
}

/// One process's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSample {
    /// From `/proc/PID/stat`.
    pub stat: Stat,
    /// From `/proc/PID/status`.
    pub memory: Memory,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` under `proc_root` (`/proc` normally).
/// Errors when the process is gone or a file does not parse.
pub fn sample(proc_root: &Path, pid: u32) -> Result<ProcessSample, ProcError> {
    let dir = proc_root.join(pid.to_string());
    Ok(ProcessSample {
        stat: Stat::parse(&read(&dir.join("stat"))?)?,
        memory: Memory::parse_status(&read(&dir.join("status"))?)?,
    })
}

fn read(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Resets the process's peak resident set (`VmHWM`) to its current size by writing `5` to
/// `/proc/PID/clear_refs` (proc(5), Linux ≥ 4.0), so that the next peak is the peak of what
/// follows. Needs the right to write that file (root, or the owner). Errors when it cannot.
pub fn reset_peak_rss(pid: u32) -> Result<(), ProcError> {
    let path = PathBuf::from(format!("/proc/{pid}/clear_refs"));
    std::fs::write(&path, "5").map_err(|source| ProcError::Read { path, source })
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux); the unit of
/// `utime`/`stime`. Falls back to 100 when sysconf does not answer.
pub fn clock_ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks.unsigned_abs(),
        _ => 100,
    }
}

/// `root` and every process descending from it, given each process's parent (`pid → ppid`),
/// sorted. `root` is included even when it is not in `parents`.
pub fn descendants(root: u32, parents: &BTreeMap<u32, u32>) -> Vec<u32> {
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        for (&pid, &ppid) in parents {
            if ppid == parent && pid != parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
        index += 1;
    }
    found.sort_unstable();
    found
}

/// Every process's parent, read from `/proc/*/stat` under `proc_root`; processes that exit
/// while being read are skipped. Errors only when `proc_root` cannot be listed.
pub fn parents(proc_root: &Path) -> Result<BTreeMap<u32, u32>, ProcError> {
    let entries = std::fs::read_dir(proc_root).map_err(|source| ProcError::Read {
        path: proc_root.to_path_buf(),
        source,
    })?;
    let mut parents = BTreeMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(entry.path().join("stat"))
            && let Ok(stat) = Stat::parse(&text)
        {
            parents.insert(pid, stat.ppid);
        }
    }
    Ok(parents)
}

/// The counters of a proxy made of one or more processes, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSample {
    /// Each process's sample, by pid.
    pub processes: BTreeMap<u32, ProcessSample>,
}

impl GroupSample {
    /// Samples each of `pids` under `proc_root`. Errors when one cannot be read.
    pub fn take(proc_root: &Path, pids: &[u32]) -> Result<Self, ProcError> {
        let mut processes = BTreeMap::new();
        for &pid in pids {
            processes.insert(pid, sample(proc_root, pid)?);
        }
        Ok(Self { processes })
    }
}

/// What a proxy used between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Processes counted (the group's size at the end).
    pub processes: usize,
    /// CPU time (user + system) between the samples, s, summed over the processes.
    pub cpu_s: f64,
    /// Peak resident set, MiB: the sum of each process's `VmHWM` at the end.
    pub peak_rss_mib: f64,
    /// Resident set at the end, MiB: the sum of `VmRSS`.
    pub end_rss_mib: f64,
}

impl Usage {
    /// The usage between `before` and `after`, with `ticks_per_s` clock ticks per second. A
    /// process present only in `after` (started in between) counts from zero; one present only
    /// in `before` (exited) is not counted. A counter that went down (a pid reused) counts from
    /// zero.
    pub fn between(before: &GroupSample, after: &GroupSample, ticks_per_s: u64) -> Self {
        let mut ticks = 0u64;
        let mut hwm = 0u64;
        let mut rss = 0u64;
        for (pid, end) in &after.processes {
            let total = |s: &ProcessSample| s.stat.utime_ticks + s.stat.stime_ticks;
            let start = before.processes.get(pid).map(total).unwrap_or(0);
            ticks += total(end).checked_sub(start).unwrap_or(total(end));
            hwm += end.memory.hwm_kib;
            rss += end.memory.rss_kib;
        }
        Self {
            processes: after.processes.len(),
            cpu_s: ticks as f64 / ticks_per_s.max(1) as f64,
            peak_rss_mib: hwm as f64 / 1024.0,
            end_rss_mib: rss as f64 / 1024.0,
        }
    }

    /// The usage over two measured windows of the same group, `self` the earlier: CPU time
    /// summed, the larger peak RSS, the process count the larger and the end RSS the later's.
    pub fn and_then(&self, later: &Usage) -> Usage {
        Usage {
            processes: self.processes.max(later.processes),
            cpu_s: self.cpu_s + later.cpu_s,
            peak_rss_mib: self.peak_rss_mib.max(later.peak_rss_mib),
            end_rss_mib: later.end_rss_mib,
        }
    }

    /// Average cores used over `wall_s` seconds; 0 for a zero or negative wall time.
    pub fn cores(&self, wall_s: f64) -> f64 {
        if wall_s > 0.0 {
            self.cpu_s / wall_s
        } else {
            0.0
        }
    }

    /// Cores per 1,000 requests/s: [`Usage::cores`] divided by the rate in thousands. `None`
    /// when the rate or the wall time is not positive.
    pub fn cores_per_krps(&self, wall_s: f64, rate_per_s: f64) -> Option<f64> {
        (wall_s > 0.0 && rate_per_s > 0.0).then(|| self.cores(wall_s) / (rate_per_s / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const STAT: &str = "4242 (weft-proxy) S 4200 4242 4100 0 -1 4194560 1234 0 0 0 \
                        350 120 0 0 20 0 3 0 98765 123456789 2345 18446744073709551615";

    #[test]
    fn stat_fields_by_position() {
        let stat = Stat::parse(STAT).unwrap();
        assert_eq!(
            stat,
            Stat {
                pid: 4242,
                comm: "weft-proxy".into(),
                ppid: 4200,
                utime_ticks: 350,
                stime_ticks: 120,
            }
        );
    }

    #[test]
    fn command_names_with_spaces_and_parentheses() {
        let text = STAT.replace("(weft-proxy)", "(nginx: worker (1))");
        let stat = Stat::parse(&text).unwrap();
        assert_eq!(stat.comm, "nginx: worker (1)");
        assert_eq!(
            (stat.ppid, stat.utime_ticks, stat.stime_ticks),
            (4200, 350, 120)
        );
    }

    #[test]
    fn truncated_or_garbled_stat_is_an_error() {
        let truncated = "4242 (weft-proxy) S 4200 4242 4100 0 -1 4194560 1234 0 0 0 350";
        let error = Stat::parse(truncated).unwrap_err().to_string();
        assert!(error.contains("field 15"), "{error}");
        assert!(Stat::parse("4242 weft-proxy S 1").is_err());
        let letters = STAT.replace(" 350 ", " x ");
        assert!(
            Stat::parse(&letters)
                .unwrap_err()
                .to_string()
                .contains("field 14")
        );
    }

    #[test]
    fn status_memory_lines() {
        let text = "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    9216 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(
            Memory::parse_status(text).unwrap(),
            Memory {
                rss_kib: 8192,
                hwm_kib: 9216
            }
        );
        let error = Memory::parse_status("Name:\tkthreadd\nState:\tS\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("VmRSS"), "{error}");
    }

    #[test]
    fn descendants_follow_the_tree_and_ignore_others() {
        // 10 → 11 → 13, 10 → 12; 20 unrelated; 30 → 31.
        let parents = BTreeMap::from([(10, 1), (11, 10), (12, 10), (13, 11), (20, 1), (31, 30)]);
        assert_eq!(descendants(10, &parents), vec![10, 11, 12, 13]);
        assert_eq!(descendants(11, &parents), vec![11, 13]);
        assert_eq!(descendants(30, &parents), vec![30, 31]);
        assert_eq!(descendants(99, &parents), vec![99]);
    }

    fn process(pid: u32, ticks: (u64, u64), rss: u64, hwm: u64) -> (u32, ProcessSample) {
        (
            pid,
            ProcessSample {
                stat: Stat {
                    pid,
                    comm: "p".into(),
                    ppid: 1,
                    utime_ticks: ticks.0,
                    stime_ticks: ticks.1,
                },
                memory: Memory {
                    rss_kib: rss,
                    hwm_kib: hwm,
                },
            },
        )
    }

    #[test]
    fn usage_sums_deltas_and_counts_new_processes_from_zero() {
        let before = GroupSample {
            processes: BTreeMap::from([
                process(1, (100, 50), 1024, 2048),
                process(2, (10, 0), 512, 512),
            ]),
        };
        let after = GroupSample {
            processes: BTreeMap::from([
                process(1, (400, 150), 2048, 4096),
                process(2, (60, 50), 1024, 1024),
                process(3, (20, 0), 1024, 1024),
            ]),
        };
        let usage = Usage::between(&before, &after, 100);
        // (550-150) + (110-10) + 20 = 520 ticks = 5.2 s.
        assert!((usage.cpu_s - 5.2).abs() < 1e-9, "{}", usage.cpu_s);
        assert_eq!(usage.processes, 3);
        assert!((usage.peak_rss_mib - 6.0).abs() < 1e-9);
        assert!((usage.end_rss_mib - 4.0).abs() < 1e-9);
        // 5.2 s over 10 s = 0.52 cores; at 2,000 req/s that is 0.26 per 1,000 req/s.
        assert!((usage.cores(10.0) - 0.52).abs() < 1e-9);
        assert!((usage.cores_per_krps(10.0, 2000.0).unwrap() - 0.26).abs() < 1e-9);
        assert_eq!(usage.cores_per_krps(10.0, 0.0), None);
        assert_eq!(usage.cores_per_krps(0.0, 1000.0), None);
    }

    #[test]
    fn a_reused_pid_counts_from_zero() {
        let before = GroupSample {
            processes: BTreeMap::from([process(7, (1000, 0), 1, 1)]),
        };
        let after = GroupSample {
            processes: BTreeMap::from([process(7, (30, 0), 1, 1)]),
        };
        assert!((Usage::between(&before, &after, 100).cpu_s - 0.3).abs() < 1e-9);
    }

    #[test]
    fn two_windows_sum_cpu_and_keep_the_larger_peak() {
        let earlier = Usage {
            processes: 1,
            cpu_s: 0.5,
            peak_rss_mib: 13.0,
            end_rss_mib: 12.0,
        };
        let later = Usage {
            processes: 2,
            cpu_s: 0.25,
            peak_rss_mib: 12.5,
            end_rss_mib: 12.25,
        };
        assert_eq!(
            earlier.and_then(&later),
            Usage {
                processes: 2,
                cpu_s: 0.75,
                peak_rss_mib: 13.0,
                end_rss_mib: 12.25,
            }
        );
    }

    #[test]
    fn sample_reads_this_process() {
        let me = std::process::id();
        let sample = sample(Path::new("/proc"), me).unwrap();
        assert_eq!(sample.stat.pid, me);
        assert!(sample.memory.rss_kib > 0);
        assert!(sample.memory.hwm_kib >= sample.memory.rss_kib);
        let parents = parents(Path::new("/proc")).unwrap();
        assert_eq!(parents.get(&me), Some(&sample.stat.ppid));
    }
}
