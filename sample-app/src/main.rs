//! `weft-sample-app`: the small services of Weft's demo and data-path tests, and a load client.
//!
//! - `serve`: an HTTP/1.1 service answering JSON `{service, version, path, upstreams, ...}`,
//!   optionally calling upstream services first (bookinfo's productpage → reviews → ratings);
//!   request headers make it misbehave on demand (`x-weft-status`, `x-weft-delay-ms`,
//!   `x-weft-fail-every`, `x-weft-fail-version`: only that version answers 500), for the fault,
//!   retry and outlier-detection scenarios; `x-weft-echo: a,b` echoes request headers `a` and
//!   `b` under `headers` (what the proxy let through or wrote).
//! - `load`: sends a fixed number of requests with a fixed concurrency and prints a JSON report
//!   (status codes, the `version` field of answers, echoed headers, `Set-Cookie` values,
//!   latency percentiles in ms).

mod load;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "weft-sample-app",
    version,
    about = "Weft's sample services and load client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a sample service.
    Serve(serve::ServeArgs),
    /// Send load and print a JSON report.
    Load(load::LoadArgs),
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args).await,
        Command::Load(args) => {
            let report = load::run(args).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

/// `HOST=IP` pairs, as curl's `--resolve`: connect to IP but send `Host: HOST`.
pub(crate) fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}
