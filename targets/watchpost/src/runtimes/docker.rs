//! The Docker Engine API, as Docker and podman's `system service` both serve it: which engine is
//! behind the socket, the running containers, one container described (name, image, digest from
//! the image's `RepoDigests`, start time, labels), and the event stream's container events.
//!
//! Paths are pinned to API version 1.41 (Docker 20.10; podman 4 serves it too). Answers are
//! parsed into typed structs naming only the fields used; anything else in them is ignored, a
//! missing field is empty, a field of the wrong type is an error (counted as garbage).

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use watchpost_core::container::Runtime;

use crate::runtimes::describe::{Description, DigestCache, Labels};
use crate::runtimes::http::{ApiError, LineStream, UnixHttp};
use crate::runtimes::timestamp::parse_rfc3339;

const API: &str = "/v1.41";

/// A Docker Engine API endpoint.
#[derive(Debug, Clone)]
pub struct DockerApi {
    http: UnixHttp,
    /// Docker or podman, once [`DockerApi::engine`] found out.
    runtime: Runtime,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Version", default)]
    version: String,
}

#[derive(Deserialize)]
struct Version {
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Components", default)]
    components: Option<Vec<Component>>,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize, Default)]
struct State {
    #[serde(rename = "Running", default)]
    running: bool,
    #[serde(rename = "Paused", default)]
    paused: bool,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "StartedAt", default)]
    started_at: String,
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Inspected {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    /// The image ID (`sha256:…`).
    #[serde(rename = "Image", default)]
    image_id: String,
    #[serde(rename = "State", default)]
    state: Option<State>,
    #[serde(rename = "Config", default)]
    config: Option<Config>,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "RepoDigests", default)]
    repo_digests: Option<Vec<String>>,
}

/// A container event from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEvent {
    /// The container's processes started (or resumed): describe it.
    Started(String),
    /// The container's processes are gone (it died, stopped or was removed), at epoch ns.
    Gone(String, u64),
    /// Another event.
    Other,
}

#[derive(Deserialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "status", default)]
    status: String,
    #[serde(rename = "id", default)]
    id: String,
    #[serde(rename = "Actor", default)]
    actor: Option<Actor>,
    #[serde(rename = "timeNano", default)]
    time_nano: u64,
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Garbage(e.to_string()))
}

/// The digest in `repo@sha256:…` entries: the one for `image`'s repository, else the first.
pub fn pick_digest(repo_digests: &[String], image: &str) -> Option<String> {
    let repo_of = |reference: &str| -> String {
        let without_digest = reference.split('@').next().unwrap_or(reference);
        // A tag is a `:` after the last `/` (a registry may have a `host:port`).
        let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
        match without_digest[last_slash..].rfind(':') {
            Some(colon) => without_digest[..last_slash + colon].to_owned(),
            None => without_digest.to_owned(),
        }
    };
    let wanted = repo_of(image);
    let digest_of = |entry: &String| entry.split_once('@').map(|(_, d)| d.to_owned());
    repo_digests
        .iter()
        .find(|e| repo_of(e) == wanted)
        .or_else(|| repo_digests.first())
        .and_then(digest_of)
}

/// Parses one event line. Only container events matter; `die`/`died`, `stop`, `destroy` and
/// `remove` end the container's life as far as the store is concerned.
pub fn parse_event(line: &[u8]) -> Result<DockerEvent, ApiError> {
    let e: RawEvent = parse(line)?;
    let kind = if e.kind.is_empty() {
        "container"
    } else {
        &e.kind
    };
    if kind != "container" {
        return Ok(DockerEvent::Other);
    }
    let action = if e.action.is_empty() {
        &e.status
    } else {
        &e.action
    };
    let id = e
        .actor
        .map(|a| a.id)
        .filter(|id| !id.is_empty())
        .unwrap_or(e.id);
    if id.is_empty() {
        return Ok(DockerEvent::Other);
    }
    Ok(match action.as_str() {
        "start" | "restart" | "unpause" => DockerEvent::Started(id),
        "die" | "died" | "stop" | "destroy" | "remove" => DockerEvent::Gone(id, e.time_nano),
        _ => DockerEvent::Other,
    })
}

impl DockerApi {
    /// A client for the API at `http`'s socket.
    pub fn new(http: UnixHttp) -> Self {
        DockerApi {
            http,
            runtime: Runtime::Docker,
        }
    }

    /// The runtime whose containers this endpoint describes.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// `GET /version`: which engine answers (`podman 4.3.1`, `docker 27.3.1`); remembers
    /// whether it is podman.
    pub async fn engine(&mut self) -> Result<String, ApiError> {
        let v: Version = parse(&self.http.get(&format!("{API}/version")).await?)?;
        let podman = v
            .components
            .iter()
            .flatten()
            .find(|c| c.name.to_ascii_lowercase().contains("podman"));
        if let Some(p) = podman {
            self.runtime = Runtime::Podman;
            Ok(format!("podman {}", p.version))
        } else {
            self.runtime = Runtime::Docker;
            Ok(format!("docker {}", v.version))
        }
    }

    /// IDs of the running containers.
    pub async fn running(&self) -> Result<Vec<String>, ApiError> {
        let listed: Vec<Listed> = parse(&self.http.get(&format!("{API}/containers/json")).await?)?;
        Ok(listed.into_iter().map(|l| l.id).collect())
    }

    /// Container `id` described; `Err(NotFound)` when this runtime does not know it. The image
    /// digest costs one more call unless `digests` (image ID → digest) has it.
    pub async fn describe(&self, id: &str, digests: &DigestCache) -> Result<Description, ApiError> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(ApiError::NotFound);
        }
        let c: Inspected = parse(
            &self
                .http
                .get(&format!("{API}/containers/{id}/json"))
                .await?,
        )?;
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let image_digest = match digests.get(&c.image_id) {
            Some(known) => known,
            None if c.image_id.is_empty() => None,
            None => {
                let digest = self.image_digest(&c.image_id, &config.image).await?;
                digests.insert(c.image_id.clone(), digest.clone());
                digest
            }
        };
        let status = state.status.as_str();
        Ok(Description {
            id: c.id,
            runtime: self.runtime,
            name: c.name.trim_start_matches('/').to_owned(),
            image: config.image,
            image_digest,
            start_time: parse_rfc3339(&state.started_at),
            labels: Labels::bounded(config.labels.unwrap_or_default()),
            running: state.running
                || state.paused
                || matches!(status, "running" | "paused" | "created" | "restarting"),
        })
    }

    async fn image_digest(&self, image_id: &str, image: &str) -> Result<Option<String>, ApiError> {
        match self
            .http
            .get(&format!("{API}/images/{image_id}/json"))
            .await
        {
            Ok(body) => {
                let i: Image = parse(&body)?;
                Ok(pick_digest(&i.repo_digests.unwrap_or_default(), image))
            }
            // Removed since (or never pulled by digest): no digest, not a failure.
            Err(ApiError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The event stream (all events; container events are picked by [`parse_event`]).
    pub async fn events(&self) -> Result<LineStream, ApiError> {
        self.http.stream(&format!("{API}/events")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_the_image_repository() {
        let digests = vec![
            "docker.io/library/other@sha256:aaaa".to_owned(),
            "localhost:5000/team/app@sha256:bbbb".to_owned(),
        ];
        assert_eq!(
            pick_digest(&digests, "localhost:5000/team/app:1.2").as_deref(),
            Some("sha256:bbbb")
        );
        assert_eq!(
            pick_digest(&digests, "unrelated:latest").as_deref(),
            Some("sha256:aaaa")
        );
        assert_eq!(pick_digest(&[], "x"), None);
        assert_eq!(pick_digest(&["no-at-sign".to_owned()], "x"), None);
    }

    #[test]
    fn container_events_from_docker_and_podman() {
        let podman = br#"{"status":"start","id":"abc","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"three"}},"timeNano":17}"#;
        assert_eq!(parse_event(podman), Ok(DockerEvent::Started("abc".into())));
        let died = br#"{"Type":"container","Action":"died","Actor":{"ID":"abc"},"timeNano":18}"#;
        assert_eq!(parse_event(died), Ok(DockerEvent::Gone("abc".into(), 18)));
        let docker_destroy = br#"{"Type":"container","Action":"destroy","Actor":{"ID":"def"}}"#;
        assert_eq!(
            parse_event(docker_destroy),
            Ok(DockerEvent::Gone("def".into(), 0))
        );
        let image = br#"{"Type":"image","Action":"pull","Actor":{"ID":""}}"#;
        assert_eq!(parse_event(image), Ok(DockerEvent::Other));
        assert!(matches!(
            parse_event(b"HTTP/1.1 garbage"),
            Err(ApiError::Garbage(_))
        ));
        assert!(matches!(
            parse_event(br#"{"Type":5}"#),
            Err(ApiError::Garbage(_))
        ));
    }
}
