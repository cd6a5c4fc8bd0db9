//! `weftctl`: Weft's command-line tool, like istioctl.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod analyze;
mod demo;
mod manifests;
mod proxy_status;
mod validate;

/// Weft's command-line tool.
#[derive(Parser, Debug)]
#[command(
    name = "weftctl",
    version,
    about = "Weft service mesh command-line tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole mesh on this machine on the Istio YAML in demo/, and print a report
    /// (needs root, ip and iptables).
    Demo(demo::DemoArgs),
    /// Show each connected proxy's sync state (like `istioctl proxy-status`).
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// Validate mesh YAML offline, with the validating webhook's rules (like `istioctl validate`);
    /// exits non-zero when a document is rejected.
    Validate(validate::ValidateArgs),
    /// Validate and cross-check mesh YAML or a cluster's objects (like `istioctl analyze`);
    /// exits 1 when errors are found, 2 on usage or input errors.
    Analyze(analyze::AnalyzeArgs),
    /// Write the CustomResourceDefinitions Weft serves (one YAML file per kind).
    Manifests {
        /// Directory to write into.
        #[arg(long, default_value = "config/crd/bases")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args)?,
        Command::ProxyStatus(args) => proxy_status::run(args)?,
        Command::Validate(args) => {
            if !validate::run(args)? {
                std::process::exit(1);
            }
        }
        Command::Analyze(args) => std::process::exit(analyze::run(args)),
        Command::Manifests { out } => {
            let written = manifests::write_crds(&out)
                .with_context(|| format!("writing CRDs into {}", out.display()))?;
            for path in written {
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
