//! A real NetFlow/IPFIX exporter for tests: softflowd reading a pcap and exporting to a
//! loopback port, driven around its quirks (TOOLS.md quirk 1: with `-r` it may block on its
//! control socket between batches, so it is polled through `softflowctl` and shut down once
//! every packet is read, which exports every flow).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Panics with the install command when `bin` is not on `PATH`: tests never skip silently.
///
/// # Panics
/// When the binary is missing.
pub fn need(bin: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "{bin} is missing: run scripts/bootstrap --test (apt-get install -y {package})"
    );
}

/// Runs softflowd on `pcap` (which holds `packets` frames), exporting with `opts` (`-v 9`...)
/// to `127.0.0.1:port`, until every flow is exported and softflowd has exited.
///
/// # Panics
/// When softflowd is missing, gets stuck, or does not exit.
pub fn export(pcap: &std::path::Path, packets: u64, port: u16, opts: &[&str]) {
    need("softflowd", "softflowd");
    need("softflowctl", "softflowd");
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl");
    let mut child = Command::new("softflowd")
        .arg("-d")
        .arg("-r")
        .arg(pcap)
        .args(opts)
        .arg("-n")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-c")
        .arg(&ctl)
        .arg("-p")
        .arg(dir.path().join("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start softflowd");
    let count = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("softflowd status").is_none() {
        let out = Command::new("softflowctl")
            .arg("-c")
            .arg(&ctl)
            .arg("statistics")
            .stderr(Stdio::null())
            .output()
            .expect("cannot run softflowctl");
        let text = String::from_utf8_lossy(&out.stdout);
        if count(&text, "Packets processed:") + count(&text, "Ignored packets:") >= packets {
            let _ = Command::new("softflowctl")
                .arg("-c")
                .arg(&ctl)
                .arg("shutdown")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            break;
        }
        assert!(Instant::now() < deadline, "softflowd stuck: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("softflowd status").is_none() {
        assert!(Instant::now() < deadline, "softflowd did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
