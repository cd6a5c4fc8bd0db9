//! `weftctl proxy-status`: each connected proxy's sync state, like `istioctl proxy-status`.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail};

/// Arguments of `weftctl proxy-status`.
#[derive(clap::Args, Debug)]
pub struct ProxyStatusArgs {
    /// The control plane's monitoring address (`host:port`, port 15014).
    #[arg(long, default_value = "127.0.0.1:15014")]
    address: String,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Fetches `/debug/syncz` and prints one row per proxy: NAME, STATE (SYNCED, STALE, NOT SENT,
/// NACKED), SENT and ACKED versions (first 12 characters), and the NACK reason when there is one.
/// Errors when the address does not resolve, the endpoint does not answer 200, or the answer is
/// not the expected JSON.
pub fn run(args: ProxyStatusArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .address
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", args.address))?
        .next()
        .with_context(|| format!("{} resolves to no address", args.address))?;
    let (status, body) = weft_lab::mesh::http_get(addr, "/debug/syncz")
        .with_context(|| format!("GET http://{addr}/debug/syncz"))?;
    if status != 200 {
        bail!("http://{addr}/debug/syncz answered {status}: {body}");
    }
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&body).context("reading /debug/syncz")?;
    let short = |v: &serde_json::Value| {
        v.as_str()
            .map_or("-".to_string(), |s| s.chars().take(12).collect())
    };
    println!(
        "{:<40} {:<9} {:<13} {:<13} PEER",
        "NAME", "STATE", "SENT", "ACKED"
    );
    for row in rows {
        println!(
            "{:<40} {:<9} {:<13} {:<13} {}{}",
            row["proxy"].as_str().unwrap_or("-"),
            row["state"].as_str().unwrap_or("-"),
            short(&row["sent"]),
            short(&row["acked"]),
            row["peer"].as_str().unwrap_or("-"),
            row["nack_reason"]
                .as_str()
                .map(|r| format!("  NACK: {r}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}
