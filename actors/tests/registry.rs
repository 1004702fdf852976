//! The registry against the reference's registry tests: registration (success, duplicate, bad
//! names, reserved names), typed accessors (found, not found, wrong type), get_custom, list,
//! is_available, metadata, metrics, and many concurrent callers. Real core stores (syscall,
//! system) and a real writable store.

mod support;

use std::time::Duration;

use support::{
    Counter, Gate, Notes, NotesRead, NotesWrite, eventually, notes_factory, register_syscalls,
    register_system, registry,
};
use watchpost_actors::{ErrorKind, HealthStatus, RegistrationError, StoreKind, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_store_registers_and_answers_through_its_typed_accessor() {
    let reg = registry().await;
    let syscalls = reg.syscalls(); // taken before registration: follows the store once it is up
    assert!(!reg.is_available("syscall").await);
    register_syscalls(&reg).await;
    assert!(reg.is_available("syscall").await);

    let execve = syscalls
        .get_syscall_id("execve")
        .await
        .expect("execve exists");
    assert_eq!(syscalls.get_syscall_name(execve).await.unwrap(), "execve");
    let missing = syscalls
        .get_syscall_id("no_such_syscall")
        .await
        .unwrap_err();
    assert!(missing.is(ErrorKind::NotFound), "{missing}");
    assert_eq!(missing.store, "syscall");
    let names = syscalls.get_syscall_names(&[execve, -1]).await.unwrap();
    assert_eq!(names[0].as_deref(), Ok("execve"));
    assert!(names[1].as_ref().unwrap_err().is(ErrorKind::NotFound));

    let m = syscalls.get_metrics().await;
    assert_eq!(m.cache_hits, 3, "{m:?}");
    assert_eq!(m.cache_misses, 2, "{m:?}");
    assert!(m.item_count > 300);
    assert!(m.last_access > 0);
    assert_eq!(syscalls.get_health().await.status, HealthStatus::Healthy);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_core_registration_is_refused_and_the_first_store_keeps_serving() {
    let reg = registry().await;
    register_system(&reg).await;
    let again = reg
        .register_system_store(
            |_: &watchpost_actors::BuildContext| {
                Ok(watchpost_actors::adapters::system::SystemFacts::new(
                    watchpost_core::system_info::SystemInfo::new(),
                ))
            },
            StoreOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(again, RegistrationError::Duplicate("system".into()));
    assert!(again.is(ErrorKind::InvalidArgument));
    let info = reg.system().get_system_info().await.unwrap();
    assert_eq!(
        info.architecture,
        std::env::consts::ARCH,
        "first store still answers"
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writable_store_names_are_validated() {
    let reg = registry().await;
    for (name, expect_whitespace) in [
        ("", false),
        (" notes", true),
        ("notes ", true),
        ("\tnotes", true),
    ] {
        let err = reg
            .register_writable_store(name, notes_factory(4), StoreOptions::default())
            .await
            .unwrap_err();
        assert!(err.is(ErrorKind::InvalidArgument), "{name:?}: {err}");
        match err {
            RegistrationError::InvalidName { reason, .. } => assert_eq!(
                reason,
                if expect_whitespace {
                    watchpost_actors::names::NameError::SurroundingWhitespace
                } else {
                    watchpost_actors::names::NameError::Empty
                }
            ),
            other => panic!("{name:?}: unexpected {other}"),
        }
    }
    let reserved = reg
        .register_writable_store("process", notes_factory(4), StoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(reserved, RegistrationError::ReservedName("process".into()));

    let _owner = reg
        .register_writable_store("notes", notes_factory(4), StoreOptions::default())
        .await
        .expect("first registration");
    let dup = reg
        .register_writable_store("notes", notes_factory(4), StoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(dup, RegistrationError::Duplicate("notes".into()));
    assert_eq!(reg.list().await.unwrap(), vec!["notes".to_string()]);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_writes_others_read_through_get_custom() {
    let reg = registry().await;
    let owner = reg
        .register_writable_store("notes", notes_factory(2), StoreOptions::default())
        .await
        .unwrap();
    owner
        .write(NotesWrite::Put("a".into(), "1".into()))
        .await
        .unwrap()
        .unwrap();

    let custom = reg.get_custom("notes").await.expect("registered");
    assert_eq!(custom.name(), "notes");
    assert_eq!(custom.metadata().kind, StoreKind::Writable);
    let reader = custom.typed::<Notes>().expect("right type");
    assert_eq!(
        reader
            .read(NotesRead::Get("a".into()))
            .await
            .unwrap()
            .unwrap(),
        "1"
    );
    let miss = reader
        .read(NotesRead::Get("zz".into()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(miss.is(ErrorKind::NotFound));

    // The store's own rules answer through the owner's handle.
    owner
        .write(NotesWrite::Put("b".into(), "2".into()))
        .await
        .unwrap()
        .unwrap();
    let full = owner
        .write(NotesWrite::Put("c".into(), "3".into()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(full.is(ErrorKind::InvalidArgument));

    // Wrong type and unknown names.
    let wrong = custom.typed::<Counter>().unwrap_err();
    assert!(wrong.is(ErrorKind::InvalidArgument));
    let unknown = reg.get_custom("nope").await.unwrap_err();
    assert!(
        unknown.is(ErrorKind::NotFound),
        "get_custom of an unknown name is NotFound"
    );
    assert!(
        reg.get_custom_typed::<Notes>("nope")
            .await
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );

    // Metrics through the registry and through the handle agree.
    let m = reg.metrics("notes").await.unwrap();
    assert_eq!(m.item_count, 2);
    assert_eq!(m.success_count, 4, "{m:?}"); // 2 puts + hit + miss
    assert_eq!(m.error_count, 1);
    assert_eq!(m.cache_hits, 1);
    assert_eq!(m.cache_misses, 1);
    assert_eq!(reader.get_metrics().await, m);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_available_metadata_and_not_found() {
    let reg = registry().await;
    assert!(reg.list().await.unwrap().is_empty());
    register_syscalls(&reg).await;
    register_system(&reg).await;
    let _owner = reg
        .register_writable_store("notes", notes_factory(4), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        reg.list().await.unwrap(),
        vec!["notes", "syscall", "system"]
    );
    assert!(reg.is_available("system").await);
    assert!(
        !reg.is_available("process").await,
        "null stores are not available"
    );
    assert!(!reg.is_available("unknown").await);

    let md = reg.metadata("syscall").await.unwrap();
    assert_eq!(md.name, "syscall");
    assert_eq!(md.kind, StoreKind::Core);
    assert!(md.description.contains("syscall"));
    assert!(md.backend.contains("SyscallStore"), "{}", md.backend);
    assert_eq!(md.call_timeout_ms, 1000);
    assert_eq!(md.restarts, 0);
    let md = reg.metadata("notes").await.unwrap();
    assert_eq!(md.description, "notes shared between test detectors");

    for name in ["process", "unknown"] {
        assert!(
            reg.metadata(name)
                .await
                .unwrap_err()
                .is(ErrorKind::NotFound)
        );
        assert!(reg.metrics(name).await.unwrap_err().is(ErrorKind::NotFound));
        assert!(reg.health(name).await.unwrap_err().is(ErrorKind::NotFound));
    }
    let core = reg.get_custom("syscall").await.unwrap();
    assert!(
        core.typed::<Notes>()
            .unwrap_err()
            .is(ErrorKind::InvalidArgument)
    );
    assert_eq!(core.get_health().await.status, HealthStatus::Healthy);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_all_get_answers() {
    let reg = registry().await;
    register_syscalls(&reg).await;
    let owner = reg
        .register_writable_store("notes", notes_factory(1000), StoreOptions::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..32u32 {
        let reg = reg.clone();
        let syscalls = reg.syscalls();
        let reader = owner.reader();
        tasks.push(tokio::spawn(async move {
            for i in 0..200u32 {
                let id = syscalls.get_syscall_id("read").await.unwrap();
                assert_eq!(syscalls.get_syscall_name(id).await.unwrap(), "read");
                let _ = reader
                    .read(NotesRead::Get(format!("{t}-{i}")))
                    .await
                    .unwrap();
                if i % 50 == 0 {
                    assert!(reg.is_available("syscall").await);
                }
            }
        }));
    }
    for i in 0..100 {
        owner
            .write(NotesWrite::Put(format!("k{i}"), "v".into()))
            .await
            .unwrap()
            .unwrap();
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = reg.syscalls().get_metrics().await;
    assert_eq!(m.cache_hits, 32 * 200 * 2);
    assert_eq!(m.error_count, 0);
    assert_eq!(owner.read(NotesRead::Len).await.unwrap().unwrap(), "100");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_times_out_writes_as_unhealthy_but_reads_never_wait() {
    let reg = registry().await;
    let options = StoreOptions {
        call_timeout: Some(Duration::from_millis(50)),
        ..StoreOptions::default()
    };
    let owner = reg
        .register_writable_store("notes", notes_factory(4), options)
        .await
        .unwrap();
    let reader = owner.reader();
    assert_eq!(reader.timeout(), Duration::from_millis(50));
    // A bulk write through the intake holds the store's actor (its only writer).
    let gate = Gate::new();
    owner
        .intake()
        .submit(vec![NotesWrite::Hold(gate.clone())])
        .await
        .unwrap();
    gate.entered().await;
    // Reads answer from the published copy in the reader's task: no waiting for the writer (the
    // gate stays closed until the read returns, so waiting would hang here).
    let err = reader
        .read(NotesRead::Get("a".into()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is(ErrorKind::NotFound), "{err}");
    // A write waits for the actor: the 50 ms timeout answers it `StoreUnhealthy`, counted.
    let err = owner
        .write(NotesWrite::Put("a".into(), "1".into()))
        .await
        .unwrap_err();
    gate.open();
    assert!(err.is(ErrorKind::StoreUnhealthy), "{err}");
    assert_eq!(reader.supervision().timed_out_calls, 1);
    // Once the stall is over the late write lands; the timeout is counted as an error.
    assert!(
        eventually(Duration::from_secs(10), || async {
            reader
                .read(NotesRead::Get("a".into()))
                .await
                .is_ok_and(|r| r.is_ok())
        })
        .await
    );
    let m = reader.get_metrics().await;
    assert!(m.error_count >= 1, "{m:?}");
    reg.shutdown().await;
}
