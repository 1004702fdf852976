//! What a runtime said about one container, in one shape for every runtime, and how it becomes a
//! store update: labels read within fixed bounds, the Kubernetes pod taken from the standard
//! labels, and every field cut to the store's byte bounds — counted, never silently, and never
//! refused whole (a 300-byte name still leaves the image and pod usable).
//!
//! Kubernetes labels (set by the kubelet through CRI, by dockershim, or by hand):
//! `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`;
//! `io.kubernetes.container.name` names a CRI container that has no name of its own; the sandbox
//! (pause) container is `io.cri-containerd.kind=sandbox` (CRI) or
//! `io.kubernetes.docker.type=podsandbox` (dockershim).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use watchpost_actors::stores::container::{ContainerEnrichment, PodInfo};
use watchpost_core::EpochNanos;
use watchpost_core::container::id::check_identifier;
use watchpost_core::container::{
    CONTAINER_NAME_MAX_LEN, IMAGE_DIGEST_MAX_LEN, IMAGE_MAX_LEN, POD_NAME_MAX_LEN,
    POD_NAMESPACE_MAX_LEN, POD_UID_MAX_LEN, Runtime,
};

use crate::runtimes::status::{EnrichmentCounters, bump};

/// Most labels read per container.
pub const MAX_LABELS: usize = 64;
/// Longest label key read (a Kubernetes qualified name: 253-byte prefix, `/`, 63-byte name).
pub const MAX_LABEL_KEY: usize = 317;
/// Longest label value read.
pub const MAX_LABEL_VALUE: usize = 1_024;

/// Labels kept within [`MAX_LABELS`], [`MAX_LABEL_KEY`] and [`MAX_LABEL_VALUE`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    entries: BTreeMap<String, String>,
    /// Labels left out for being beyond a bound.
    pub cut: u64,
}

impl Labels {
    /// The labels of `all` that fit, the rest counted in `cut`. Kubernetes' own labels are
    /// kept first, so a container with hundreds of labels still has its pod.
    pub fn bounded(all: impl IntoIterator<Item = (String, String)>) -> Labels {
        let mut kubernetes = Vec::new();
        let mut others = Vec::new();
        let mut cut = 0u64;
        for (k, v) in all {
            if k.len() > MAX_LABEL_KEY || v.len() > MAX_LABEL_VALUE {
                cut += 1;
            } else if k.starts_with("io.kubernetes.") || k.starts_with("io.cri-containerd.") {
                kubernetes.push((k, v));
            } else {
                others.push((k, v));
            }
        }
        let mut entries = BTreeMap::new();
        for (k, v) in kubernetes.into_iter().chain(others) {
            if entries.len() < MAX_LABELS {
                entries.insert(k, v);
            } else {
                cut += 1;
            }
        }
        Labels { entries, cut }
    }

    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Labels kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none was kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Image → manifest digest answers, so that a hundred containers of one image cost one image
/// lookup. Bounded: emptied when full (a digest is one call away).
#[derive(Debug)]
pub struct DigestCache {
    entries: Mutex<HashMap<String, Option<String>>>,
    capacity: usize,
}

impl DigestCache {
    /// A cache of at most `capacity` images.
    pub fn new(capacity: usize) -> Self {
        DigestCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The digest known for `image` (`Some(None)`: known to have none).
    pub fn get(&self, image: &str) -> Option<Option<String>> {
        self.entries.lock().ok()?.get(image).cloned()
    }

    /// Remembers `image`'s digest.
    pub fn insert(&self, image: String, digest: Option<String>) {
        if let Ok(mut e) = self.entries.lock() {
            if e.len() >= self.capacity {
                e.clear();
            }
            e.insert(image, digest);
        }
    }
}

/// One container as a runtime described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Full ID.
    pub id: String,
    /// Runtime that runs it.
    pub runtime: Runtime,
    /// Name (empty: the runtime gives none).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Manifest digest of the image (`sha256:…`), when the runtime knows it.
    pub image_digest: Option<String>,
    /// Start time, epoch ns.
    pub start_time: Option<EpochNanos>,
    /// Labels.
    pub labels: Labels,
    /// Whether its processes run (running, paused, or created and about to start).
    pub running: bool,
}

/// `s` cut to at most `max` bytes at a character boundary; `true` if it was cut.
fn cut_to(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// Whether `digest` looks like `algorithm:hex` within the store's bound.
fn is_digest(digest: &str) -> bool {
    digest.len() <= IMAGE_DIGEST_MAX_LEN
        && digest.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'+'
                        || b == b'.'
                        || b == b'_'
                        || b == b'-'
                })
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

impl Description {
    /// Whether the container is a Kubernetes pod's sandbox.
    pub fn is_sandbox(&self) -> bool {
        self.labels.get("io.cri-containerd.kind") == Some("sandbox")
            || self.labels.get("io.kubernetes.docker.type") == Some("podsandbox")
    }

    /// The pod, from the standard labels (none without a pod name or UID).
    pub fn pod(&self) -> Option<PodInfo> {
        let name = self.labels.get("io.kubernetes.pod.name").unwrap_or("");
        let uid = self.labels.get("io.kubernetes.pod.uid").unwrap_or("");
        if name.is_empty() && uid.is_empty() {
            return None;
        }
        Some(PodInfo {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: self
                .labels
                .get("io.kubernetes.pod.namespace")
                .unwrap_or("")
                .to_owned(),
            sandbox: self.is_sandbox(),
        })
    }

    /// The store update: the fields the runtime knows, cut to the store's bounds (each cut or
    /// dropped field counted in `counters.fields_cut`, left-out labels in `labels_cut`). `None`
    /// when the ID is not a container ID (counted as garbage).
    pub fn to_enrichment(&self, counters: &EnrichmentCounters) -> Option<ContainerEnrichment> {
        if check_identifier(&self.id).is_err() {
            bump(&counters.garbage);
            return None;
        }
        counters
            .labels_cut
            .fetch_add(self.labels.cut, std::sync::atomic::Ordering::Relaxed);
        let mut cut = 0u64;
        let mut bounded = |mut s: String, max: usize| {
            if cut_to(&mut s, max) {
                cut += 1;
            }
            s
        };
        let mut name = self.name.clone();
        if name.is_empty()
            && let Some(k8s_name) = self.labels.get("io.kubernetes.container.name")
        {
            name = k8s_name.to_owned();
        }
        let name = bounded(name, CONTAINER_NAME_MAX_LEN);
        let image = bounded(self.image.clone(), IMAGE_MAX_LEN);
        let pod = self.pod().map(|p| PodInfo {
            name: bounded(p.name, POD_NAME_MAX_LEN),
            namespace: bounded(p.namespace, POD_NAMESPACE_MAX_LEN),
            uid: p.uid,
            sandbox: p.sandbox,
        });
        // A cut UID or digest would be a different, wrong value: drop it instead.
        let pod = pod.map(|mut p| {
            if p.uid.len() > POD_UID_MAX_LEN {
                p.uid.clear();
                cut += 1;
            }
            p
        });
        let digest = match &self.image_digest {
            Some(d) if is_digest(d) => Some(d.clone()),
            Some(d) if !d.is_empty() => {
                cut += 1;
                None
            }
            _ => None,
        };
        counters
            .fields_cut
            .fetch_add(cut, std::sync::atomic::Ordering::Relaxed);
        let mut e = ContainerEnrichment::new(self.id.clone()).runtime(self.runtime.as_str());
        if !name.is_empty() {
            e = e.name(name);
        }
        if !image.is_empty() {
            e = e.image(image);
        }
        if let Some(d) = digest {
            e = e.image_digest(d);
        }
        if let Some(t) = self.start_time {
            e = e.start_time(t);
        }
        if let Some(p) = pod {
            e = e.pod(p);
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::bounded(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn described(l: Labels) -> Description {
        Description {
            id: ID.into(),
            runtime: Runtime::Containerd,
            name: String::new(),
            image: "registry.example/app:1".into(),
            image_digest: Some(format!("sha256:{}", "ab".repeat(32))),
            start_time: Some(5),
            labels: l,
            running: true,
        }
    }

    #[test]
    fn pods_and_sandboxes_from_the_standard_labels() {
        let c = EnrichmentCounters::default();
        let d = described(labels(&[
            ("io.kubernetes.pod.name", "web-0"),
            ("io.kubernetes.pod.namespace", "shop"),
            (
                "io.kubernetes.pod.uid",
                "b13213a6-d47e-4bd1-bc00-f175d1ad3b6e",
            ),
            ("io.kubernetes.container.name", "nginx"),
            ("io.cri-containerd.kind", "sandbox"),
        ]));
        let e = d.to_enrichment(&c).unwrap();
        assert_eq!(e.name.as_deref(), Some("nginx"));
        assert_eq!(e.runtime.as_deref(), Some("containerd"));
        let pod = e.pod.unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str(), pod.sandbox),
            ("web-0", "shop", true)
        );
        assert_eq!(pod.uid, "b13213a6-d47e-4bd1-bc00-f175d1ad3b6e");
        assert!(described(Labels::default()).pod().is_none());
        assert_eq!(c.fields_cut.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn long_fields_are_cut_and_counted_bad_ones_dropped() {
        let c = EnrichmentCounters::default();
        let mut d = described(labels(&[
            ("io.kubernetes.pod.uid", &"u".repeat(40)),
            ("io.kubernetes.pod.name", &"p".repeat(300)),
        ]));
        d.name = "é".repeat(100); // 200 bytes, cut inside no character
        d.image_digest = Some("not a digest".into());
        let e = d.to_enrichment(&c).unwrap();
        let name = e.name.unwrap();
        assert_eq!(name.len(), 128);
        assert!(name.chars().all(|ch| ch == 'é'));
        let pod = e.pod.unwrap();
        assert_eq!(pod.name.len(), POD_NAME_MAX_LEN);
        assert_eq!(pod.uid, "");
        assert_eq!(e.image_digest, None);
        assert_eq!(c.fields_cut.load(Ordering::Relaxed), 4);

        d.id = "not an id".into();
        assert!(d.to_enrichment(&c).is_none());
        assert_eq!(c.garbage.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn labels_are_bounded_kubernetes_first() {
        let mut all: Vec<(String, String)> = (0..200)
            .map(|i| (format!("a.label.{i:03}"), "v".into()))
            .collect();
        all.push(("io.kubernetes.pod.name".into(), "kept".into()));
        all.push(("huge".into(), "x".repeat(MAX_LABEL_VALUE + 1)));
        let l = Labels::bounded(all);
        assert_eq!(l.len(), MAX_LABELS);
        assert_eq!(l.get("io.kubernetes.pod.name"), Some("kept"));
        assert_eq!(l.cut, 200 - (MAX_LABELS as u64 - 1) + 1);
    }
}
