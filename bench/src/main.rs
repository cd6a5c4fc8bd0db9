//! `weft-bench`: Weft's proxy comparison and `make bench`'s summary table.
//!
//! - `compare [--quick]` (root): the Weft sidecar pair against HAProxy and nginx pairs and a
//!   direct path, at a fixed rate, and one-proxy maximum throughput; see `compare.rs`.
//! - `summary`: one table from the comparison, the discovery benchmark's JSON and criterion's
//!   estimates, printed and written to `target/weft-bench/summary.md`.
//! - `responder`: the 1 KiB HTTP/1.1 server every path ends at.
//! - `floor`: a one-hop proxy of hyper and tokio alone (the stack's own cost per request).

mod compare;
mod floor;
mod responder;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use weft_bench::summary;

#[derive(Parser, Debug)]
#[command(name = "weft-bench", version, about = "Weft's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compare the Weft sidecar pair with HAProxy and nginx pairs (needs root).
    Compare(compare::CompareArgs),
    /// Print one table of every benchmark result and write it as Markdown.
    Summary(SummaryArgs),
    /// Serve 1 KiB answers over HTTP/1.1 (the comparison's server).
    Responder(responder::ResponderArgs),
    /// Proxy HTTP/1.1 to one upstream with hyper and tokio alone (the stack's floor).
    Floor(floor::FloorArgs),
}

#[derive(clap::Args, Debug)]
struct SummaryArgs {
    /// Cargo's target directory (criterion writes under `<dir>/criterion`).
    #[arg(long, default_value = "target")]
    target_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Compare(args) => compare::run(&args),
        Command::Responder(args) => responder::run(&args),
        Command::Floor(args) => floor::run(&args),
        Command::Summary(args) => {
            let dir = args.target_dir.join("weft-bench");
            let rows = summary::collect(&dir, &args.target_dir.join("criterion"));
            let table = summary::to_markdown(&rows);
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("summary.md");
            std::fs::write(&path, format!("# Weft benchmarks\n\n{table}"))?;
            println!("{table}");
            println!("Written to {}", path.display());
            Ok(())
        }
    }
}
