//! `netwarden-operator`: the Kubernetes operator binary.
//!
//! * `run`: reconciles the four kinds into NATS KV (`nw-config`) and folds `nw-status` back into
//!   their status. Uses the in-cluster service account, or `KUBECONFIG` / `~/.kube/config`.
//! * `crdgen --out DIR`: writes the CRD YAML, one file per kind.
//! * `kinds`: lists the kinds.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use netwarden_api::bus::{NatsBus, nats::NatsOptions};
use netwarden_operator::controller::{self, Context};
use netwarden_operator::leader::LeaderLock;
use netwarden_operator::store::Stores;
use std::time::Duration;

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
    /// Runs the reconcilers against the cluster (in-cluster config, or KUBECONFIG).
    Run {
        /// NATS server URL(s), comma-separated.
        #[arg(long, env = "NW_NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Address of `/healthz`, `/readyz` and `/metrics`.
        #[arg(long, env = "NW_LISTEN", default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
        /// Namespace of the leader-election Lease (`netwarden-operator`); empty disables leader
        /// election (run a single replica then).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        lease_namespace: String,
        /// This replica's identity in the Lease.
        #[arg(long, env = "POD_NAME", default_value = "netwarden-operator")]
        identity: String,
    },
    /// Writes the generated CRD YAML, one `<kind>.yaml` per kind.
    Crdgen {
        /// Output directory.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Kinds => {
            for kind in netwarden_operator::KINDS {
                println!(
                    "{kind}.{}/{}",
                    netwarden_operator::GROUP,
                    netwarden_operator::VERSION
                );
            }
            Ok(())
        }
        Command::Crdgen { out } => {
            for name in netwarden_operator::crdgen::write_all(&out)? {
                eprintln!("wrote {}", out.join(name).display());
            }
            Ok(())
        }
        Command::Run {
            nats_url,
            listen,
            lease_namespace,
            identity,
        } => {
            let client = kube::Client::try_default()
                .await
                .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
            let mut options = NatsOptions::new(nats_url, "netwarden-operator");
            options.wait_for_connection = true;
            let bus = NatsBus::connect(options).await?;
            let stores = Stores::nats(bus.client().clone()).await?;
            let ctx = Context::new(client, stores);
            let metrics = ctx.metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = netwarden_operator::telemetry::serve(listen, metrics).await {
                    tracing::error!(%listen, error = %e, "cannot serve /healthz, /readyz, /metrics");
                }
            });
            ctx.metrics
                .ready
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if lease_namespace.is_empty() {
                tracing::info!(kinds = ?netwarden_operator::KINDS, %listen, "reconciling (no leader election)");
                controller::run(ctx).await?;
                return Ok(());
            }
            let lock = LeaderLock::new(
                ctx.client.clone(),
                &lease_namespace,
                "netwarden-operator",
                &identity,
                Duration::from_secs(15),
            );
            tracing::info!(%identity, namespace = %lease_namespace, "waiting for the leader lease");
            lock.acquire().await?;
            tracing::info!(kinds = ?netwarden_operator::KINDS, %listen, "leader; reconciling");
            tokio::select! {
                result = controller::run(ctx) => result?,
                () = lock.keep() => anyhow::bail!("lost the leader lease; exiting so a restart waits for it"),
            }
            Ok(())
        }
    }
}
