use super::*;
use crate::dpi::DpiConfig;
use crate::dpi::tests::replay;

fn corpus(pcap: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/ndpi")
        .join(pcap)
}

/// The TLS flow of `443-curl.pcap` (SNI `www.ntop.org`) has `risky_domain` exactly when the
/// lists in force at export time list its domain.
fn risky(dpi: &Dpi) -> bool {
    let records = replay(dpi, &corpus("443-curl.pcap"));
    let rec = records
        .values()
        .find(|r| r.server_port == 443)
        .expect("the TLS flow");
    assert!(
        rec.l7
            .as_ref()
            .is_some_and(|l| l.hostname.contains("ntop.org"))
    );
    rec.has_risk(crate::dpi::rid::RISKY_DOMAIN)
}

#[test]
fn a_changed_list_changes_the_risk_of_a_later_flow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("risky_domains.txt"), ".tk\n").unwrap();
    let (mut watcher, lists) = ListWatcher::load(dir.path()).unwrap();
    let dpi = Dpi::new(DpiConfig::default()).with_lists(lists);
    assert!(!risky(&dpi));
    assert!(!watcher.poll(&dpi).unwrap(), "nothing changed yet");

    std::fs::write(dir.path().join("risky_domains.txt"), ".tk\nntop.org\n").unwrap();
    assert!(watcher.poll(&dpi).unwrap());
    assert!(risky(&dpi));

    // A removed file is a change too: its list empties.
    std::fs::remove_file(dir.path().join("risky_domains.txt")).unwrap();
    assert!(watcher.poll(&dpi).unwrap());
    assert!(!risky(&dpi));
    assert_eq!(watcher.stats().reloads.load(Ordering::Relaxed), 2);
}

#[test]
fn an_unreadable_change_keeps_the_lists_in_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("risky_domains.txt"), "ntop.org\n").unwrap();
    let (mut watcher, lists) = ListWatcher::load(dir.path()).unwrap();
    let dpi = Dpi::new(DpiConfig::default()).with_lists(lists);
    assert!(risky(&dpi));
    // A directory where a file should be cannot be read as a list.
    std::fs::create_dir(dir.path().join("categories.txt")).unwrap();
    assert!(watcher.poll(&dpi).is_err());
    assert!(risky(&dpi));
    assert_eq!(watcher.stats().failures.load(Ordering::Relaxed), 1);
    std::fs::remove_dir(dir.path().join("categories.txt")).unwrap();
    std::fs::write(dir.path().join("risky_domains.txt"), ".tk\n").unwrap();
    assert!(watcher.poll(&dpi).unwrap());
    assert!(!risky(&dpi));
}

#[test]
fn the_watch_thread_reloads_and_ends_with_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("risky_domains.txt"), ".tk\n").unwrap();
    let dpi = watch(
        Dpi::new(DpiConfig::default()),
        dir.path(),
        Duration::from_millis(10),
    )
    .unwrap();
    assert!(!risky(&dpi));
    std::fs::write(dir.path().join("risky_domains.txt"), "ntop.org\n.tk\n").unwrap();
    // Wait for the thread (a hang fails after 30 s; no timing is asserted).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !dpi.lists().risky_domain("www.ntop.org") {
        assert!(std::time::Instant::now() < deadline, "lists never reloaded");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(risky(&dpi));
    let weak = Arc::downgrade(&dpi);
    drop(dpi);
    assert!(weak.upgrade().is_none());
}

#[test]
fn oversized_or_missing_lists() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (_, lists) = ListWatcher::load(&missing).unwrap();
    assert!(lists.is_empty());
    let f = std::fs::File::create(dir.path().join("ja3_fingerprints.csv")).unwrap();
    f.set_len(lists::MAX_FILE_BYTES + 1).unwrap();
    assert!(ListWatcher::load(dir.path()).is_err());
}
