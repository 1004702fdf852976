//! containerd's gRPC API (crate `containerd-client`): the engine version, every namespace
//! (`k8s.io`, where CRI puts Kubernetes containers, included), the running tasks, one container
//! described (image, manifest digest from the images service, labels, start time of its task's
//! process from `/proc/<pid>/stat`), and the event stream's task and container events.
//!
//! Bounds: every unary call runs under the request timeout (the gRPC deadline and a local
//! timer); decoded messages are limited to `max_response_bytes` (events to `max_event_bytes`)
//! by tonic, which refuses a larger message without buffering it. The resync lists tasks, not
//! containers: a task is a few dozen bytes, a container carries its whole OCI spec.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::events::{ContainerDelete, TaskDelete, TaskExit, TaskStart};
use containerd_client::services::v1::{
    GetContainerRequest, GetImageRequest, GetRequest, ListNamespacesRequest, ListTasksRequest,
    SubscribeRequest, containers_client::ContainersClient, events_client::EventsClient,
    images_client::ImagesClient, namespaces_client::NamespacesClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status, Streaming};
use containerd_client::types::Envelope;
use prost::Message;
use watchpost_core::container::Runtime;

use crate::procfs::ProcReader;
use crate::runtimes::describe::{Description, DigestCache, Labels};
use crate::runtimes::http::ApiError;

/// Namespace Docker keeps its own containers in: those are described through the Docker API.
const DOCKER_NAMESPACE: &str = "moby";

/// Most namespaces read.
pub const MAX_NAMESPACES: usize = 64;

/// A containerd endpoint, connected.
#[derive(Debug, Clone)]
pub struct ContainerdApi {
    channel: Channel,
    timeout: Duration,
    max_response: usize,
    max_event: usize,
}

/// A task or container event from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerdEvent {
    /// A container's task started: describe it.
    Started {
        /// Namespace.
        namespace: String,
        /// Container ID.
        id: String,
    },
    /// A container's task exited or was deleted, or the container was deleted.
    Gone {
        /// Container ID.
        id: String,
        /// When, epoch ns (0: unknown).
        at: u64,
    },
    /// Another event.
    Other,
}

/// The containerd API's error as ours.
fn from_status(s: Status) -> ApiError {
    match s.code() {
        Code::NotFound => ApiError::NotFound,
        Code::DeadlineExceeded => ApiError::Timeout(0),
        Code::ResourceExhausted | Code::OutOfRange
            if s.message().contains("message length too large")
                || s.message().contains("larger than max") =>
        {
            ApiError::TooLarge(0)
        }
        Code::Unavailable => ApiError::Connect(s.message().to_owned()),
        Code::Internal | Code::Unknown | Code::Unimplemented | Code::DataLoss => {
            ApiError::Protocol(format!("{:?}: {}", s.code(), s.message()))
        }
        other => ApiError::Garbage(format!("{other:?}: {}", s.message())),
    }
}

fn timestamp_nanos(t: Option<&prost_types::Timestamp>) -> u64 {
    t.and_then(|t| {
        let s = u64::try_from(t.seconds).ok()?;
        let n = u64::try_from(t.nanos).ok()?;
        s.checked_mul(1_000_000_000)?.checked_add(n)
    })
    .unwrap_or(0)
}

/// Decodes one envelope into the event that matters to us.
pub fn decode_event(envelope: &Envelope) -> Result<ContainerdEvent, ApiError> {
    let Some(any) = &envelope.event else {
        return Ok(ContainerdEvent::Other);
    };
    let garbage = |e: prost::DecodeError| ApiError::Garbage(e.to_string());
    let value = any.value.as_slice();
    Ok(match envelope.topic.as_str() {
        "/tasks/start" => {
            let e = TaskStart::decode(value).map_err(garbage)?;
            ContainerdEvent::Started {
                namespace: envelope.namespace.clone(),
                id: e.container_id,
            }
        }
        "/tasks/exit" => {
            let e = TaskExit::decode(value).map_err(garbage)?;
            // An exec'd process exiting is not the container's end.
            if !e.id.is_empty() && e.id != e.container_id {
                return Ok(ContainerdEvent::Other);
            }
            ContainerdEvent::Gone {
                id: e.container_id,
                at: timestamp_nanos(e.exited_at.as_ref()),
            }
        }
        "/tasks/delete" => {
            let e = TaskDelete::decode(value).map_err(garbage)?;
            if !e.id.is_empty() && e.id != e.container_id {
                return Ok(ContainerdEvent::Other);
            }
            ContainerdEvent::Gone {
                id: e.container_id,
                at: timestamp_nanos(e.exited_at.as_ref()),
            }
        }
        "/containers/delete" => {
            let e = ContainerDelete::decode(value).map_err(garbage)?;
            ContainerdEvent::Gone { id: e.id, at: 0 }
        }
        _ => ContainerdEvent::Other,
    })
}

impl ContainerdApi {
    /// Connects to `socket` within `timeout`.
    pub async fn connect(
        socket: &Path,
        timeout: Duration,
        max_response: usize,
        max_event: usize,
    ) -> Result<ContainerdApi, ApiError> {
        if !socket.exists() {
            return Err(ApiError::Absent);
        }
        let path: PathBuf = socket.to_path_buf();
        let channel = tokio::time::timeout(timeout, containerd_client::connect(path))
            .await
            .map_err(|_| ApiError::Timeout(timeout.as_millis() as u64))?
            .map_err(|e| ApiError::Connect(error_chain(&e)))?;
        Ok(ContainerdApi {
            channel,
            timeout,
            max_response,
            max_event,
        })
    }

    fn request<T>(&self, message: T, namespace: Option<&str>) -> Result<Request<T>, ApiError> {
        let mut r = Request::new(message);
        r.set_timeout(self.timeout);
        if let Some(ns) = namespace {
            let value = MetadataValue::try_from(ns)
                .map_err(|_| ApiError::Garbage(format!("namespace {ns:?}")))?;
            r.metadata_mut().insert("containerd-namespace", value);
        }
        Ok(r)
    }

    /// Runs one unary call under the local timer too (a peer that never answers the HTTP/2
    /// handshake never sees the gRPC deadline).
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<containerd_client::tonic::Response<T>, Status>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(ApiError::Timeout(self.timeout.as_millis() as u64)),
            Ok(Err(s)) => Err(match from_status(s) {
                ApiError::Timeout(_) => ApiError::Timeout(self.timeout.as_millis() as u64),
                ApiError::TooLarge(_) => ApiError::TooLarge(self.max_response),
                e => e,
            }),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    /// `containerd 1.6.20`.
    pub async fn engine(&self) -> Result<String, ApiError> {
        let mut client =
            VersionClient::new(self.channel.clone()).max_decoding_message_size(self.max_response);
        let v = self
            .bounded(client.version(self.request((), None)?))
            .await?;
        Ok(format!("containerd {}", v.version))
    }

    /// Every namespace but Docker's (at most [`MAX_NAMESPACES`]).
    pub async fn namespaces(&self) -> Result<Vec<String>, ApiError> {
        let mut client = NamespacesClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_response);
        let r = self
            .bounded(client.list(self.request(ListNamespacesRequest::default(), None)?))
            .await?;
        Ok(r.namespaces
            .into_iter()
            .map(|n| n.name)
            .filter(|n| n != DOCKER_NAMESPACE)
            .take(MAX_NAMESPACES)
            .collect())
    }

    /// IDs of the containers of `namespace` whose task runs (or is paused or being created).
    pub async fn running(&self, namespace: &str) -> Result<Vec<String>, ApiError> {
        let mut client =
            TasksClient::new(self.channel.clone()).max_decoding_message_size(self.max_response);
        let r = self
            .bounded(client.list(self.request(ListTasksRequest::default(), Some(namespace))?))
            .await?;
        // containerd fills `id` (the task's, which is the container's) and may leave
        // `container_id` empty; an exec'd process would have both, and differing.
        Ok(r.tasks
            .into_iter()
            .filter(|t| t.container_id.is_empty() || t.id.is_empty() || t.id == t.container_id)
            .filter(|t| is_live_status(t.status))
            .map(|t| {
                if t.id.is_empty() {
                    t.container_id
                } else {
                    t.id
                }
            })
            .collect())
    }

    /// Container `id` of `namespace` described; `Err(NotFound)` when it does not exist.
    pub async fn describe(
        &self,
        namespace: &str,
        id: &str,
        digests: &DigestCache,
        proc: &ProcReader,
    ) -> Result<Description, ApiError> {
        let mut containers = ContainersClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_response);
        let c = self
            .bounded(
                containers
                    .get(self.request(GetContainerRequest { id: id.to_owned() }, Some(namespace))?),
            )
            .await?
            .container
            .ok_or_else(|| ApiError::Garbage("no container in the answer".into()))?;
        let mut tasks =
            TasksClient::new(self.channel.clone()).max_decoding_message_size(self.max_response);
        let task = match self
            .bounded(tasks.get(self.request(
                GetRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                },
                Some(namespace),
            )?))
            .await
        {
            Ok(r) => r.process,
            Err(ApiError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let key = format!("{namespace}/{}", c.image);
        let image_digest = match digests.get(&key) {
            Some(known) => known,
            None if c.image.is_empty() => None,
            None => {
                let mut images = ImagesClient::new(self.channel.clone())
                    .max_decoding_message_size(self.max_response);
                let digest = match self
                    .bounded(images.get(self.request(
                        GetImageRequest {
                            name: c.image.clone(),
                        },
                        Some(namespace),
                    )?))
                    .await
                {
                    Ok(r) => r.image.and_then(|i| i.target).map(|t| t.digest),
                    Err(ApiError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                digests.insert(key, digest.clone());
                digest
            }
        };
        let start_time = task
            .as_ref()
            .filter(|t| t.pid != 0)
            .and_then(|t| proc.start_time(t.pid).ok());
        Ok(Description {
            id: c.id,
            runtime: Runtime::Containerd,
            name: c.labels.get("nerdctl/name").cloned().unwrap_or_default(),
            image: c.image,
            image_digest,
            start_time,
            labels: Labels::bounded(c.labels),
            running: task.is_some_and(|t| is_live_status(t.status)),
        })
    }

    /// The event stream of every namespace.
    ///
    /// containerd sends the reply's headers only with the first event, so on a quiet daemon
    /// the subscription cannot complete within the request timeout (verified with containerd
    /// 1.6). The request is polled for at most [`SUBSCRIBE_SEND_WAIT`], time to leave on the
    /// connection the version call just opened; if no headers came, the stream stays pending
    /// and [`ContainerdApi::next_event`] completes it with the first event. An error (a broken
    /// connection) still ends it there.
    pub async fn events(&self) -> Result<EventStream, ApiError> {
        let mut client =
            EventsClient::new(self.channel.clone()).max_decoding_message_size(self.max_event);
        let mut request = Request::new(SubscribeRequest::default());
        // The subscription lives on; only its start is bounded.
        request.set_timeout(Duration::from_secs(365 * 24 * 3600));
        let mut pending: PendingSubscription =
            Box::pin(async move { client.subscribe(request).await });
        match tokio::time::timeout(self.timeout.min(SUBSCRIBE_SEND_WAIT), &mut pending).await {
            Err(_) => Ok(EventStream::Pending(pending)),
            Ok(Err(s)) => Err(from_status(s)),
            Ok(Ok(r)) => Ok(EventStream::Open(r.into_inner())),
        }
    }

    /// The next envelope of `stream`, decoded.
    pub async fn next_event(&self, stream: &mut EventStream) -> Result<ContainerdEvent, ApiError> {
        if let EventStream::Pending(pending) = stream {
            match pending.await {
                Ok(r) => *stream = EventStream::Open(r.into_inner()),
                Err(s) => return Err(from_status(s)),
            }
        }
        let EventStream::Open(open) = stream else {
            return Err(ApiError::Closed);
        };
        match open.message().await {
            Ok(Some(envelope)) => decode_event(&envelope),
            Ok(None) => Err(ApiError::Closed),
            Err(s) => Err(match from_status(s) {
                ApiError::TooLarge(_) => ApiError::TooLarge(self.max_event),
                e => e,
            }),
        }
    }
}

/// How long [`ContainerdApi::events`] waits for the subscription's headers before it leaves the
/// stream pending (the request is sent by then).
pub const SUBSCRIBE_SEND_WAIT: Duration = Duration::from_millis(500);

/// A subscription whose headers have not come yet.
type PendingSubscription = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<containerd_client::tonic::Response<Streaming<Envelope>>, Status>,
            > + Send,
    >,
>;

/// containerd's event stream: open, or waiting for its first event (see
/// [`ContainerdApi::events`]).
pub enum EventStream {
    /// Subscribed; containerd has not answered yet.
    Pending(PendingSubscription),
    /// Events flow.
    Open(Streaming<Envelope>),
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventStream::Pending(_) => "EventStream::Pending",
            EventStream::Open(_) => "EventStream::Open",
        })
    }
}

/// Running (2), paused (4), pausing (5) or created (1): the container's processes exist.
fn is_live_status(status: i32) -> bool {
    matches!(status, 1 | 2 | 4 | 5)
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
