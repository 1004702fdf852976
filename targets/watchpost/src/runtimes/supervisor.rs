//! One task per endpoint keeps it connected: probe the engine, subscribe to its events (before
//! listing, so nothing slips between the list and the subscription), list the running
//! containers, then follow the events and list again every `resync_interval_ms`.
//!
//! When anything fails the endpoint is marked down with the reason (shown by `query health`),
//! its client is withdrawn from the workers, and the task waits `retry_initial_ms`, doubling up
//! to `retry_max_ms`, before trying again; a session that got as far as answering resets the
//! wait. A default socket that does not exist is "absent" (that runtime is not installed) until
//! it appears; a configured one, or one that existed before, is "down".

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::runtimes::docker::{DockerApi, DockerEvent, parse_event};
use crate::runtimes::enricher::{Client, Shared};
use crate::runtimes::http::{ApiError, UnixHttp};
use crate::runtimes::queue::{Job, Target};
use crate::runtimes::status::{EndpointKind, EndpointState, bump};

#[cfg(feature = "containerd")]
use crate::runtimes::containerd::{ContainerdApi, ContainerdEvent};

/// Why a session ended.
enum Ended {
    /// The daemon is stopping.
    Shutdown,
    /// The endpoint failed; whether it had been answering.
    Failed(ApiError, bool),
}

/// Keeps endpoint `index` connected until shutdown.
pub async fn supervise(shared: Arc<Shared>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let s = &shared.settings;
    let initial = Duration::from_millis(s.retry_initial_ms);
    let max = Duration::from_millis(s.retry_max_ms).max(initial);
    let mut wait = initial;
    let mut ever_up = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let ended = session(&shared, index, &mut shutdown).await;
        if let Some(e) = shared.endpoints.get(index)
            && let Ok(mut c) = e.client.write()
        {
            *c = None;
        }
        let (error, was_up) = match ended {
            Ended::Shutdown => return,
            Ended::Failed(e, was_up) => (e, was_up),
        };
        let endpoint = &shared.endpoints[index];
        let state = if error == ApiError::Absent && endpoint.optional && !ever_up {
            EndpointState::Absent
        } else {
            EndpointState::Down(error.to_string())
        };
        shared.status().set(index, state, None);
        if was_up {
            ever_up = true;
            wait = initial;
            bump(&shared.status().counters.reconnects);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        wait = (wait * 2).min(max);
    }
}

async fn session(shared: &Shared, index: usize, shutdown: &mut watch::Receiver<bool>) -> Ended {
    match shared.endpoints[index].kind {
        EndpointKind::DockerApi => docker_session(shared, index, shutdown).await,
        EndpointKind::Containerd => containerd_session(shared, index, shutdown).await,
    }
}

/// Queues a description of every listed container not yet described by this endpoint, and
/// reports the ones it described that are no longer listed as gone.
async fn reconcile(shared: &Shared, index: usize, listed: Vec<(Option<String>, String)>) {
    let ids: Vec<String> = listed.iter().map(|(_, id)| id.clone()).collect();
    for (namespace, id) in listed {
        if !shared.is_described(&id, Some(index)) {
            let job = Job {
                id,
                target: Target::Endpoint { index, namespace },
                attempt: 0,
            };
            shared.queue.push(job, shared.status()).await;
        }
    }
    for id in shared.described_but_not(index, &ids) {
        shared.gone(id, 0).await;
    }
}

fn ticker(shared: &Shared) -> tokio::time::Interval {
    let period = Duration::from_millis(shared.settings.resync_interval_ms.max(1));
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

async fn docker_session(
    shared: &Shared,
    index: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let s = &shared.settings;
    let endpoint = &shared.endpoints[index];
    let http = UnixHttp::new(
        &endpoint.socket,
        Duration::from_millis(s.request_timeout_ms),
        s.max_response_bytes,
        s.max_event_bytes,
    );
    let mut api = DockerApi::new(http);
    let engine = api.engine().await;
    shared.count(&engine);
    let engine = match engine {
        Ok(e) => e,
        Err(e) => return Ended::Failed(e, false),
    };
    let events = api.events().await;
    shared.count(&events);
    let mut events = match events {
        Ok(e) => e,
        Err(e) => return Ended::Failed(e, false),
    };
    if let Ok(mut c) = endpoint.client.write() {
        *c = Some(Client::Docker(api.clone()));
    }
    shared.status().set(index, EndpointState::Up, Some(engine));
    let mut resync = ticker(shared);
    let mut list = true;
    loop {
        if list {
            list = false;
            let running = api.running().await;
            shared.count(&running);
            match running {
                Ok(ids) => {
                    reconcile(
                        shared,
                        index,
                        ids.into_iter().map(|id| (None, id)).collect(),
                    )
                    .await
                }
                Err(e) => return Ended::Failed(e, true),
            }
        }
        tokio::select! {
            line = events.next_line() => {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        shared.count::<()>(&Err(e.clone()));
                        return Ended::Failed(e, true);
                    }
                };
                bump(&shared.status().counters.events);
                match parse_event(&line) {
                    Ok(DockerEvent::Started(id)) => {
                        let job = Job { id, target: Target::Endpoint { index, namespace: None }, attempt: 0 };
                        shared.queue.push(job, shared.status()).await;
                    }
                    Ok(DockerEvent::Gone(id, at)) => shared.gone(id, at).await,
                    Ok(DockerEvent::Other) => {}
                    Err(e) => shared.count::<()>(&Err(e)),
                }
            }
            _ = resync.tick() => list = true,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return Ended::Shutdown;
                }
            }
        }
    }
}

#[cfg(not(feature = "containerd"))]
async fn containerd_session(
    _shared: &Shared,
    _index: usize,
    _shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    Ended::Failed(
        ApiError::Connect("this build has no containerd support (feature `containerd`)".into()),
        false,
    )
}

#[cfg(feature = "containerd")]
async fn containerd_session(
    shared: &Shared,
    index: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let s = &shared.settings;
    let endpoint = &shared.endpoints[index];
    let api = ContainerdApi::connect(
        &endpoint.socket,
        Duration::from_millis(s.request_timeout_ms),
        s.max_response_bytes,
        s.max_event_bytes,
    )
    .await;
    shared.count(&api);
    let api = match api {
        Ok(a) => a,
        Err(e) => return Ended::Failed(e, false),
    };
    let engine = api.engine().await;
    shared.count(&engine);
    let engine = match engine {
        Ok(e) => e,
        Err(e) => return Ended::Failed(e, false),
    };
    let events = api.events().await;
    shared.count(&events);
    let mut events = match events {
        Ok(e) => e,
        Err(e) => return Ended::Failed(e, false),
    };
    if let Ok(mut c) = endpoint.client.write() {
        *c = Some(Client::Containerd(api.clone()));
    }
    shared.status().set(index, EndpointState::Up, Some(engine));
    let mut resync = ticker(shared);
    let mut list = true;
    loop {
        if list {
            list = false;
            match list_containerd(shared, &api).await {
                Ok(listed) => reconcile(shared, index, listed).await,
                Err(e) => return Ended::Failed(e, true),
            }
        }
        tokio::select! {
            event = api.next_event(&mut events) => {
                bump(&shared.status().counters.events);
                match event {
                    Ok(ContainerdEvent::Started { namespace, id }) => {
                        let target = Target::Endpoint { index, namespace: Some(namespace) };
                        shared.queue.push(Job { id, target, attempt: 0 }, shared.status()).await;
                    }
                    Ok(ContainerdEvent::Gone { id, at }) => shared.gone(id, at).await,
                    Ok(ContainerdEvent::Other) => {}
                    // One undecodable event does not end the stream.
                    Err(e @ ApiError::Garbage(_)) => shared.count::<()>(&Err(e)),
                    Err(e) => {
                        shared.count::<()>(&Err(e.clone()));
                        return Ended::Failed(e, true);
                    }
                }
            }
            _ = resync.tick() => list = true,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return Ended::Shutdown;
                }
            }
        }
    }
}

/// `(namespace, id)` of every running container of every namespace.
#[cfg(feature = "containerd")]
async fn list_containerd(
    shared: &Shared,
    api: &ContainerdApi,
) -> Result<Vec<(Option<String>, String)>, ApiError> {
    let namespaces = api.namespaces().await;
    shared.count(&namespaces);
    let mut listed = Vec::new();
    for ns in namespaces? {
        let running = api.running(&ns).await;
        shared.count(&running);
        listed.extend(running?.into_iter().map(|id| (Some(ns.clone()), id)));
    }
    Ok(listed)
}
