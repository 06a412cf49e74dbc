//! The engine accepts every argument the shipped deployment (Helm chart → manifests) gives it:
//! clap refuses an unknown flag or a bad value before it reaches `--help`.
#![allow(clippy::unwrap_used)]

#[test]
fn the_deployment_args_parse() {
    let args = netwarden_testkit::deployment_args("netwarden-engine");
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    assert!(args.iter().any(|a| a.starts_with("--data=")), "{args:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
