//! The p50/p99 measurement both webhook benchmarks print after criterion: the targets are p99,
//! which criterion's mean does not show.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The calling thread's CPU time: unlike wall time, it excludes the time the scheduler gives
/// other processes, which dominates the tail on a shared machine.
fn thread_cpu_time() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}

/// p50, p99 and max of `samples`, formatted.
fn percentiles(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!(
        "p50 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    )
}

/// Warms up with 1,000 calls of `call`, times `calls` single calls and prints, under `name`,
/// the wall-time and thread-CPU-time distributions.
pub fn print_distribution<T>(name: &str, calls: usize, mut call: impl FnMut() -> T) {
    for _ in 0..1_000 {
        black_box(call());
    }
    let mut wall = Vec::with_capacity(calls);
    let mut cpu = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (start, start_cpu) = (Instant::now(), thread_cpu_time());
        black_box(call());
        cpu.push(thread_cpu_time().saturating_sub(start_cpu));
        wall.push(start.elapsed());
    }
    println!("{name} over {calls} calls:");
    println!("  wall time:       {}", percentiles(&mut wall));
    println!("  thread CPU time: {}", percentiles(&mut cpu));
}
