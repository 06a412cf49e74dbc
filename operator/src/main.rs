//! `netwarden-operator`: the Kubernetes operator binary.
//!
//! * `run`: reconciles the four kinds into NATS KV (`nw-config`), folds `nw-status` back into
//!   their status, and publishes `nw-directory` (IP → Pod/Service/Node identity). Uses the in-cluster service account, or `KUBECONFIG` / `~/.kube/config`.
//! * `crdgen --out DIR`: writes the CRD YAML, one file per kind.
//! * `kinds`: lists the kinds.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use netwarden_api::bus::{NatsBus, NatsKv, nats::NatsOptions};
use netwarden_api::names::DIRECTORY_BUCKET;
use netwarden_operator::controller::{self, Context};
use netwarden_operator::directory::{self, model::Reporters};
use netwarden_operator::leader::LeaderLock;
use netwarden_operator::store::Stores;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
        /// NATS server URL(s), comma-separated (`--nats` also works, as for the sensor and engine).
        #[arg(
            long,
            alias = "nats",
            env = "NW_NATS_URL",
            default_value = "nats://127.0.0.1:4222"
        )]
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
        /// Publishes `nw-directory` from Pod, Service, Node, ReplicaSet and Job watches
        /// (`--directory false` turns it off; `appliedNodes` then counts the reporters that reported).
        #[arg(long, env = "NW_DIRECTORY", default_value_t = true, action = clap::ArgAction::Set)]
        directory: bool,
        /// Labels of the sensor Pods (equality selector): their nodes are the reporters
        /// expected to apply an `InterfacePolicy`.
        #[arg(
            long,
            env = "NW_SENSOR_SELECTOR",
            default_value = "app.kubernetes.io/name=netwarden,app.kubernetes.io/component=sensor"
        )]
        sensor_selector: String,
        /// Labels of the engine Pods (equality selector): the reporters expected to apply the
        /// other kinds.
        #[arg(
            long,
            env = "NW_ENGINE_SELECTOR",
            default_value = "app.kubernetes.io/name=netwarden,app.kubernetes.io/component=engine"
        )]
        engine_selector: String,
        /// How often `nw-directory` is read back and repaired (seconds).
        #[arg(long, env = "NW_DIRECTORY_RESYNC", default_value_t = 600)]
        directory_resync: u64,
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
            directory,
            sensor_selector,
            engine_selector,
            directory_resync,
        } => {
            let selector = |s: &str| {
                directory::model::parse_equality_selector(s)
                    .with_context(|| format!("{s:?} is not an equality label selector (k=v,k2=v2)"))
            };
            let directory_config = directory::Config {
                sensor_selector: selector(&sensor_selector)?,
                engine_selector: selector(&engine_selector)?,
                resync: Duration::from_secs(directory_resync.max(10)),
                ..directory::Config::default()
            };
            let client = kube::Client::try_default()
                .await
                .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
            let mut options = NatsOptions::new(nats_url, "netwarden-operator");
            options.wait_for_connection = true;
            let bus = NatsBus::connect(options).await?;
            let stores = Stores::nats(bus.client().clone()).await?;
            let directory_kv = NatsKv::open(bus.client().clone(), DIRECTORY_BUCKET).await?;
            let (reporters_tx, reporters_rx) = watch::channel(Reporters::default());
            let ctx = Context::with_reporters(client, stores, reporters_rx);
            let metrics = ctx.metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = netwarden_operator::telemetry::serve(listen, metrics).await {
                    tracing::error!(%listen, error = %e, "cannot serve /healthz, /readyz, /metrics");
                }
            });
            ctx.metrics
                .ready
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // The reconcilers and, unless turned off, the directory publisher.
            let work = {
                let ctx = ctx.clone();
                async move {
                    let publisher = async {
                        if directory {
                            directory::run(
                                ctx.client.clone(),
                                Arc::new(directory_kv),
                                directory_config,
                                ctx.metrics.clone(),
                                reporters_tx,
                            )
                            .await
                        } else {
                            std::future::pending().await
                        }
                    };
                    tokio::select! {
                        result = controller::run(ctx.clone()) => result,
                        result = publisher => result,
                    }
                }
            };
            if lease_namespace.is_empty() {
                tracing::info!(kinds = ?netwarden_operator::KINDS, %listen, directory, "reconciling (no leader election)");
                work.await?;
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
            tracing::info!(kinds = ?netwarden_operator::KINDS, %listen, directory, "leader; reconciling");
            tokio::select! {
                result = work => result?,
                () = lock.keep() => anyhow::bail!("lost the leader lease; exiting so a restart waits for it"),
            }
            Ok(())
        }
    }
}
