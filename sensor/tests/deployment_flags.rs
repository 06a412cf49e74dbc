//! The sensor accepts every argument the shipped deployment (Helm chart → manifests) gives it.

#[test]
fn the_deployment_args_parse() {
    netwarden_testkit::assert_accepts_deployment_args(
        "netwarden-sensor",
        std::path::Path::new(env!("CARGO_BIN_EXE_netwarden-sensor")),
        "--nats=",
    );
}
