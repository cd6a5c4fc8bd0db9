//! `weft-bundle`: writes the generated install files — `config/rbac/role.yaml`,
//! `config/webhook/manifests.yaml` and the OLM bundle (`bundle/`, `bundle.Dockerfile`) — from
//! `config/` and the tables in `install/src`, then checks the bundle against OLM's rules.
//!
//! Usage: `weft-bundle [--root DIR] [--check]`. `make bundle` runs it; `make bundle-check`
//! runs it with `--check`, which writes nothing and fails when a checked-in file differs
//! (drift) or the bundle breaks a rule.

use std::path::PathBuf;

use clap::Parser;
use weft_install::{check, generate};

/// Generate (or check) Weft's RBAC, webhook configurations and OLM bundle.
#[derive(Parser, Debug)]
#[command(name = "weft-bundle", version, about)]
struct Args {
    /// The repository root.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Write nothing; fail when a checked-in file differs from what would be generated.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let inputs = generate::read_inputs(&args.root)?;
    let files = generate::outputs(&inputs)?;
    let violations = check::check(&files);
    if !violations.is_empty() {
        for v in &violations {
            eprintln!("bundle rule: {v}");
        }
        anyhow::bail!(
            "the generated bundle breaks {} OLM rule(s)",
            violations.len()
        );
    }
    if args.check {
        let drift = generate::drift(&args.root, &files)?;
        if !drift.is_empty() {
            for line in &drift {
                eprintln!("{line}");
            }
            anyhow::bail!("generated install files are out of date: run `make bundle` and commit");
        }
        println!("{} generated files are current", files.len());
        return Ok(());
    }
    for line in generate::write(&args.root, &files)? {
        println!("{line}");
    }
    Ok(())
}
