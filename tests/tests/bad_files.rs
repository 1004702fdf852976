//! Every kind of bad snapshot file, against the real daemon: it is moved aside as
//! `watchpost.redb.corrupt-<UTC timestamp>`, the daemon starts fresh (never refuses, never
//! crash-loops), `query health` shows `persist` degraded with the reason, and the fresh file
//! works (a restart restores from it).

use std::path::Path;

use watchpost_tests::{Site, privileged_test_may_run};

/// Runs a daemon on a fresh site until it has written a snapshot with a reputation entry whose
/// tag is a marker (so a flipped byte can be aimed at a record), then stops it.
fn site_with_a_good_file(tag: &str) -> Site {
    let mut site = Site::new(tag, "");
    let mut d = site.start(&[]);
    d.ok(r#"{"command":"reputation_write","source":"local","records":[{"ip":"203.0.113.7","status":"deny","severity":9,"tags":["MARKERTAG"]}]}"#);
    d.ok(r#"{"command":"snapshot"}"#);
    assert_eq!(d.terminate(), Some(0));
    site
}

fn check(tag: &str, damage: impl FnOnce(&Path), reason: &str) {
    let mut site = site_with_a_good_file(tag);
    damage(&site.file());
    let mut d = site.start(&[]);
    let health = d.persist_health();
    assert_eq!(health["status"], "degraded", "{tag}: {health}");
    let message = health["message"].as_str().unwrap();
    assert!(message.contains("moved aside"), "{tag}: {message}");
    assert!(
        message.contains(reason),
        "{tag}: {message:?} lacks {reason:?}"
    );
    let moved = site.moved_aside();
    assert_eq!(moved.len(), 1, "{tag}: {moved:?}");
    assert!(moved[0].ends_with('Z'), "{}", moved[0]);
    assert!(message.contains(&moved[0]), "{tag}: {message}");
    // One plain log line says why.
    let lines = d
        .stderr()
        .lines()
        .filter(|l| l.contains("was moved aside"))
        .count();
    assert_eq!(lines, 1, "{}", d.stderr());
    // Started fresh: nothing restored; the fresh file takes snapshots and restores them.
    assert_eq!(d.persistence()["restored_sequence"], 0);
    d.ok(r#"{"command":"reputation_write","source":"local","records":[{"ip":"198.51.100.1","status":"allow","severity":2}]}"#);
    d.kill9();
    let d = site.start(&[]);
    assert_eq!(d.persist_health()["status"], "healthy");
    d.ok(r#"{"command":"reputation","ip":"198.51.100.1"}"#);
}

#[test]
fn every_bad_file_is_moved_aside_and_the_daemon_starts_fresh() {
    if !privileged_test_may_run("bad snapshot files") {
        return;
    }
    check(
        "truncated",
        |p| {
            let len = std::fs::metadata(p).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len / 3)
                .unwrap();
        },
        "",
    );
    check(
        "flipped",
        |p| {
            let mut bytes = std::fs::read(p).unwrap();
            let at = bytes
                .windows(9)
                .position(|w| w == b"MARKERTAG")
                .expect("the marker is in the file");
            bytes[at + 3] ^= 0x01;
            std::fs::write(p, bytes).unwrap();
        },
        "damaged",
    );
    check("empty", |p| std::fs::write(p, b"").unwrap(), "it is empty");
    check(
        "directory",
        |p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        },
        "not a regular file",
    );
    check(
        "future",
        |p| {
            let db = redb::Database::create(p).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("meta");
                let mut t = txn.open_table(def).unwrap();
                let v = postcard::to_stdvec(&7u32).unwrap();
                t.insert(b"schema".as_slice(), v.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        },
        "schema 7",
    );
    // Held open by another process (not a watchpost daemon on this directory: its lock is free).
    let mut site = site_with_a_good_file("held");
    let held = redb::Database::create(site.file()).unwrap();
    let d = site.start(&[]);
    let health = d.persist_health();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["message"]
            .as_str()
            .unwrap()
            .contains("another process holds it open"),
        "{health}"
    );
    assert_eq!(site.moved_aside().len(), 1);
    drop(held);
}
