//! watchpost-actors: each datastore as a ractor actor owning its core store, the registry actor,
//! typed handles for detectors, supervision and the detector engine. (being written)
