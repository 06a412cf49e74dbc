//! Test helpers shared by every crate's integration tests.
//!
//! * [`NatsServer`]: starts a real `nats-server` (with JetStream) on a free loopback port for
//!   one test, and kills it on drop. It fails loudly when the binary is missing: tests never
//!   silently skip.
//! * [`repo_root`] and [`testdata`]: paths to the fixtures the repository owns.
//! * [`softflowd`]: a real NetFlow/IPFIX exporter replaying a pcap to a loopback port.

pub mod softflowd;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A path under `testdata/`.
pub fn testdata(rel: impl AsRef<Path>) -> PathBuf {
    repo_root().join("testdata").join(rel)
}

/// Where the nats-server binary is: `$NATS_SERVER`, then `.tools/venv/bin/nats-server`
/// (installed by `scripts/bootstrap --test`), then `nats-server` on `PATH`.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let local = repo_root().join(".tools/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for one test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

/// A nats-server process owned by one test.
pub struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts nats-server with JetStream on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up within 10 s.
    pub fn start() -> Self {
        // A free port can be taken by another test between our probe and the server's bind;
        // such a server exits at once, so try again on a new port.
        for _ in 0..5 {
            let store = tempfile::tempdir().expect("tempdir");
            if let Some(server) = Self::spawn(free_port(), store) {
                return server;
            }
        }
        panic!("nats-server could not bind a free loopback port in 5 attempts");
    }

    /// Starts (or restarts) a server on `port` with the JetStream store in `store`.
    ///
    /// # Panics
    /// As [`NatsServer::start`].
    pub fn start_with(port: u16, store: tempfile::TempDir) -> Self {
        Self::spawn(port, store)
            .unwrap_or_else(|| panic!("nats-server exited at start on port {port} (port taken?)"))
    }

    fn spawn(port: u16, store: tempfile::TempDir) -> Option<Self> {
        let binary = nats_server_binary();
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Run `scripts/bootstrap --test` (installs nats-server 2.15 into .tools/venv) or set NATS_SERVER",
                    binary.display()
                )
            });
        let mut server = Self { child, port, store };
        server.wait_ready(Duration::from_secs(10)).then_some(server)
    }

    /// Waits until the port accepts connections while OUR process is still running (a server
    /// that lost the port to someone else exits, and the port may answer for the other one).
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                std::thread::sleep(Duration::from_millis(150));
                return matches!(self.child.try_wait(), Ok(None));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen on {addr} within {timeout:?}");
    }

    /// The client URL (`nats://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as `kill -9`) and returns its port and store, to restart it later.
    pub fn kill(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let store = std::mem::replace(&mut self.store, tempfile::tempdir().expect("tempdir"));
        (self.port, store)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments the shipped deployment (`manifests/netwarden.yaml`, rendered from the Helm
/// chart) passes to `binary` (`netwarden-sensor`, `netwarden-engine`), so each crate can check
/// that its binary accepts them. Reads the container block whose `command` is `[binary]`.
pub fn deployment_args(binary: &str) -> Vec<String> {
    let path = repo_root().join("manifests/netwarden.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let command = format!("command: [\"{binary}\"]");
    let mut lines = text.lines().skip_while(|l| l.trim() != command);
    assert!(
        lines.next().is_some(),
        "no container runs {binary} in {}",
        path.display()
    );
    assert_eq!(
        lines.next().map(str::trim),
        Some("args:"),
        "args follow the command"
    );
    lines
        .map(str::trim)
        .take_while(|l| l.starts_with("- "))
        .map(|l| l[2..].trim_matches('"').to_owned())
        .collect()
}

/// Asserts that the binary at `exe` accepts the deployment's arguments for `binary`
/// ([`deployment_args`]), among which one starts with `must_have`: clap refuses an unknown
/// flag or a bad value before it reaches the `--help` put last.
pub fn assert_accepts_deployment_args(binary: &str, exe: &Path, must_have: &str) {
    let args = deployment_args(binary);
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    assert!(args.iter().any(|a| a.starts_with(must_have)), "{args:?}");
    let out = std::process::Command::new(exe)
        .args(&args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
