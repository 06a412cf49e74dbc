//! `netwarden-operator`: the Kubernetes operator binary (skeleton).

use clap::{Parser, Subcommand};

/// Netwarden's Kubernetes operator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the CRD kinds this operator reconciles.
    Kinds,
    /// Runs the reconcilers against the cluster (not built yet).
    Run,
    /// Writes the generated CRD YAML to `crds/` (not built yet).
    Crdgen,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    match Cli::parse().command {
        Command::Kinds => {
            for kind in netwarden_operator::KINDS {
                println!("{kind}.{}/{}", netwarden_operator::GROUP, netwarden_operator::VERSION);
            }
            Ok(())
        }
        Command::Run => Err(netwarden_operator::Error::NotYet("the reconcilers").into()),
        Command::Crdgen => Err(netwarden_operator::Error::NotYet("crdgen").into()),
    }
}
