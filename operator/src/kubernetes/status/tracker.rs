//! Which discovery builder first held each object's generation: the reference point of the
//! `Reconciled` condition.

use std::collections::HashMap;

use kube::core::ObjectMeta;
use weft_crds::MeshObject;

use super::ObjectKey;

/// The object's identity in time: its `metadata.uid` (a deleted and re-created object starts
/// again at generation 1) and `metadata.generation`.
type Version = (Option<String>, Option<i64>);

/// For each mesh object: the sequence number of the first discovery builder
/// (`DiscoveryServer::update`) whose view held its current uid and generation.
#[derive(Debug, Default)]
pub struct FirstSeen {
    seen: HashMap<ObjectKey, (Version, u64)>,
}

impl FirstSeen {
    /// Records that builder `seq` was built from `objects` (the kind and metadata of every
    /// mesh object of its view, see [`super::facts::mesh_metas`]): an object whose uid or
    /// generation is new gets `seq`; objects no longer in the view are forgotten. Call with
    /// increasing `seq`.
    pub fn record<'a>(
        &mut self,
        objects: impl IntoIterator<Item = (&'static str, &'a ObjectMeta)>,
        seq: u64,
    ) {
        let mut next = HashMap::with_capacity(self.seen.len());
        for (kind, meta) in objects {
            let key = ObjectKey::new(kind, meta);
            let version = (meta.uid.clone(), meta.generation);
            let first = match self.seen.remove(&key) {
                Some((seen, first)) if seen == version => first,
                _ => seq,
            };
            next.insert(key, (version, first));
        }
        self.seen = next;
    }

    /// The sequence number of the first builder that held `object` with its uid and
    /// generation; `None` when no recorded builder did.
    pub fn built_in(&self, object: &MeshObject) -> Option<u64> {
        let meta = object.meta();
        self.seen
            .get(&ObjectKey::of(object))
            .filter(|(version, _)| version.0 == meta.uid && version.1 == meta.generation)
            .map(|(_, seq)| *seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metas<'a>(
        objects: impl IntoIterator<Item = &'a MeshObject>,
    ) -> impl Iterator<Item = (&'static str, &'a ObjectMeta)> {
        objects.into_iter().map(|o| (o.kind(), o.meta()))
    }

    fn vs(name: &str, uid: &str, generation: i64) -> MeshObject {
        MeshObject::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "demo", "uid": uid, "generation": generation},
            "spec": {"hosts": ["reviews"]}
        }))
        .unwrap()
    }

    #[test]
    fn the_first_builder_holding_a_generation_is_kept_until_it_changes() {
        let mut seen = FirstSeen::default();
        let one = vs("reviews", "u1", 1);
        seen.record(metas([&one]), 3);
        seen.record(metas([&one]), 4);
        assert_eq!(
            seen.built_in(&one),
            Some(3),
            "still generation 1: first seen in 3"
        );

        let two = vs("reviews", "u1", 2);
        assert_eq!(seen.built_in(&two), None, "generation 2 not built yet");
        seen.record(metas([&two]), 5);
        assert_eq!(seen.built_in(&two), Some(5));
        assert_eq!(seen.built_in(&one), None, "generation 1 is gone");
    }

    #[test]
    fn a_recreated_object_and_a_deleted_one_start_over() {
        let mut seen = FirstSeen::default();
        let old = vs("reviews", "u1", 1);
        let other = vs("ratings", "u2", 1);
        seen.record(metas([&old, &other]), 1);
        let recreated = vs("reviews", "u3", 1);
        seen.record(metas([&recreated]), 2);
        assert_eq!(
            seen.built_in(&recreated),
            Some(2),
            "new uid, same generation"
        );
        assert_eq!(seen.built_in(&other), None, "deleted objects are forgotten");
        seen.record(metas([&other]), 3);
        assert_eq!(seen.built_in(&other), Some(3));
    }
}
