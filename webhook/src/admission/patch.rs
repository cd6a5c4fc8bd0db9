//! The RFC 6902 JSON patch that turns the pod the API server sent into the injected pod.
//!
//! Injection writes a known, small set of fields: `metadata.namespace` (filled from the
//! request), `metadata.labels`, `metadata.annotations`, `spec.containers` (the proxy, and
//! rewritten probes), `spec.initContainers` and `spec.volumes`. [`pod_patch`] compares only
//! those (typed, without serializing the pod) and writes operations for what differs straight
//! into the patch's JSON text; the rest of the two pods is compared with `==`, and should
//! anything else ever differ, the patch is `json_patch::diff` of the two whole pods instead, so
//! the result is always exact.
//!
//! The operations are chosen to apply to the object *as the API server holds it*, which may
//! carry fields that k8s-openapi (Kubernetes 1.33 API) does not know, and lacks required
//! fields k8s-openapi fills with defaults:
//! - a map (labels, annotations) gets one `add` per new or changed key (`add` on an existing
//!   member replaces it) and one `remove` per dropped key; an absent or empty map is added
//!   whole;
//! - a list (containers, init containers, volumes) keeps its elements where they are: an
//!   injected element is an `add` at its index, which RFC 6902 defines as an insertion, so the
//!   elements after it shift with every field they carry; an element the injector changed
//!   (a rewritten probe) gets an `add` (or `remove`) per top-level field that differs; an
//!   absent or empty list is added whole;
//! - the namespace is an `add` (or `remove`);
//! - a pod with no metadata at all (k8s-openapi reads a missing `metadata` as empty) gets its
//!   metadata as one `add`.
//!
//! Element edits come first, at the elements' original indices, then insertions in increasing
//! final index, so every index is valid when its operation is applied.

use std::collections::BTreeMap;

use json_patch::jsonptr::{Pointer, PointerBuf};
use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

/// The fields of a pod that injection writes, taken out of the pod.
#[derive(Default)]
struct Written {
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    containers: Vec<Container>,
    init_containers: Option<Vec<Container>>,
    volumes: Option<Vec<Volume>>,
}

impl Written {
    /// Moves the written fields out of `pod`, leaving them empty.
    fn take(pod: &mut Pod) -> Self {
        let meta = &mut pod.metadata;
        let mut written = Written {
            namespace: meta.namespace.take(),
            labels: meta.labels.take(),
            annotations: meta.annotations.take(),
            ..Written::default()
        };
        if let Some(spec) = pod.spec.as_mut() {
            written.containers = std::mem::take(&mut spec.containers);
            written.init_containers = spec.init_containers.take();
            written.volumes = spec.volumes.take();
        }
        written
    }

    /// Puts the fields back into the `pod` they were taken from.
    fn restore(self, pod: &mut Pod) {
        let meta = &mut pod.metadata;
        meta.namespace = self.namespace;
        meta.labels = self.labels;
        meta.annotations = self.annotations;
        if let Some(spec) = pod.spec.as_mut() {
            spec.containers = self.containers;
            spec.init_containers = self.init_containers;
            spec.volumes = self.volumes;
        }
    }
}

/// Builds the patch from `before` (the pod as the request carried it, namespace unfilled) to
/// `after` (the injected pod).
///
/// Takes both pods by value (they are taken apart and, on the fallback, put back together).
/// Returns the patch as JSON text (an array of the operations described in the module docs).
/// Errors: a field that cannot be serialized to JSON (serde_json's error; k8s-openapi types
/// always serialize).
pub(super) fn pod_patch(mut before: Pod, mut after: Pod) -> Result<Vec<u8>, serde_json::Error> {
    let mut old = Written::take(&mut before);
    let mut new = Written::take(&mut after);
    if before == after {
        // Nothing but the written fields, all unset: `metadata` may be absent from the object.
        let metadata_unset = before.metadata == ObjectMeta::default()
            && old.namespace.is_none()
            && old.labels.is_none()
            && old.annotations.is_none();
        let mut patch = PatchWriter::new();
        if edits(&mut patch, &mut old, &mut new, metadata_unset)? {
            return Ok(patch.finish());
        }
    }
    old.restore(&mut before);
    new.restore(&mut after);
    let diff = json_patch::diff(
        &serde_json::to_value(&before)?,
        &serde_json::to_value(&after)?,
    );
    serde_json::to_vec(&diff)
}

/// An RFC 6902 patch written as JSON text, one operation at a time: the values go from their
/// typed form straight to text, never through a `serde_json::Value`.
struct PatchWriter {
    json: Vec<u8>,
}

/// One operation as written by [`PatchWriter`].
#[derive(Serialize)]
struct Operation<'a, T> {
    op: &'static str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a T>,
}

impl PatchWriter {
    fn new() -> Self {
        let mut json = Vec::with_capacity(8 * 1024);
        json.push(b'[');
        PatchWriter { json }
    }

    fn write<T: Serialize>(
        &mut self,
        op: &'static str,
        path: &Pointer,
        value: Option<&T>,
    ) -> Result<(), serde_json::Error> {
        if self.json.len() > 1 {
            self.json.push(b',');
        }
        let path = path.as_str();
        serde_json::to_writer(&mut self.json, &Operation { op, path, value })
    }

    /// Writes an `add` of `value` at `path`.
    fn add<T: Serialize>(&mut self, path: &Pointer, value: &T) -> Result<(), serde_json::Error> {
        self.write("add", path, Some(value))
    }

    /// Writes a `replace` of the value at `path` by `value`.
    fn replace<T: Serialize>(
        &mut self,
        path: &Pointer,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.write("replace", path, Some(value))
    }

    /// Writes a `remove` of the value at `path`.
    fn remove(&mut self, path: &Pointer) -> Result<(), serde_json::Error> {
        self.write::<()>("remove", path, None)
    }

    /// The patch's JSON text.
    fn finish(mut self) -> Vec<u8> {
        self.json.push(b']');
        self.json
    }
}

/// Writes the operations for the written fields. Returns false when a list changed in a way
/// other than insertions and element edits (an element removed or moved), which the caller
/// then diffs whole.
fn edits(
    patch: &mut PatchWriter,
    old: &mut Written,
    new: &mut Written,
    metadata_unset: bool,
) -> Result<bool, serde_json::Error> {
    let at = |tokens: [&str; 2]| PointerBuf::from_tokens(tokens);
    metadata(patch, old, new, metadata_unset)?;
    Ok(list(
        patch,
        at(["spec", "containers"]),
        Some(&mut old.containers),
        Some(&mut new.containers),
    )? && list(
        patch,
        at(["spec", "initContainers"]),
        old.init_containers.as_mut(),
        new.init_containers.as_mut(),
    )? && list(
        patch,
        at(["spec", "volumes"]),
        old.volumes.as_mut(),
        new.volumes.as_mut(),
    )?)
}

/// Operations for the namespace, labels and annotations. `unset` says the pod's metadata held
/// nothing else and none of them: k8s-openapi reads a pod without `metadata` that way, so the
/// object sent may have no `/metadata` to add members to, and the metadata is added whole.
fn metadata(
    patch: &mut PatchWriter,
    old: &Written,
    new: &Written,
    unset: bool,
) -> Result<(), serde_json::Error> {
    let at = |field: &str| PointerBuf::from_tokens(["metadata", field]);
    if unset {
        if new.namespace.is_some() || new.labels.is_some() || new.annotations.is_some() {
            let metadata = ObjectMeta {
                namespace: new.namespace.clone(),
                labels: new.labels.clone(),
                annotations: new.annotations.clone(),
                ..ObjectMeta::default()
            };
            patch.add(&PointerBuf::from_tokens(["metadata"]), &metadata)?;
        }
        return Ok(());
    }
    if old.namespace != new.namespace {
        match &new.namespace {
            Some(namespace) => patch.add(&at("namespace"), namespace)?,
            None => patch.remove(&at("namespace"))?,
        }
    }
    map(patch, at("labels"), &old.labels, &new.labels)?;
    map(patch, at("annotations"), &old.annotations, &new.annotations)
}

/// Operations turning the string map at `path` from `old` into `new`.
fn map(
    patch: &mut PatchWriter,
    path: PointerBuf,
    old: &Option<BTreeMap<String, String>>,
    new: &Option<BTreeMap<String, String>>,
) -> Result<(), serde_json::Error> {
    match (old, new) {
        _ if old == new => {}
        (Some(old), Some(new)) if !old.is_empty() => {
            for (key, value) in new {
                if old.get(key) != Some(value) {
                    patch.add(&path.with_trailing_token(key), value)?;
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.remove(&path.with_trailing_token(key))?;
            }
        }
        (_, Some(new)) => patch.add(&path, new)?,
        (Some(_), None) => patch.remove(&path)?,
        (None, None) => {}
    }
    Ok(())
}

/// An element of a list injection adds to: named, and edited in place.
trait Element: Serialize + PartialEq + Sized {
    /// The element's `name`, unique in its list.
    fn name(&self) -> &str;

    /// Writes the operations turning the element at `path` from `old` into `new`; by default
    /// one `add` (or `remove`) per top-level field that differs, or a `replace` of the element
    /// if either is not a JSON object. The elements are mutable only to be compared in parts;
    /// they are left as they came.
    fn edit(
        patch: &mut PatchWriter,
        path: PointerBuf,
        old: &mut Self,
        new: &mut Self,
    ) -> Result<(), serde_json::Error> {
        fields(patch, path, old, new)
    }
}

impl Element for Container {
    fn name(&self) -> &str {
        &self.name
    }

    /// Injection rewrites only probes: when nothing else differs, the probes are compared
    /// typed, without serializing the containers.
    fn edit(
        patch: &mut PatchWriter,
        path: PointerBuf,
        old: &mut Self,
        new: &mut Self,
    ) -> Result<(), serde_json::Error> {
        fn take(c: &mut Container) -> [Option<k8s_openapi::api::core::v1::Probe>; 3] {
            [
                c.liveness_probe.take(),
                c.readiness_probe.take(),
                c.startup_probe.take(),
            ]
        }
        let (old_probes, new_probes) = (take(old), take(new));
        let only_probes = old == new;
        [old.liveness_probe, old.readiness_probe, old.startup_probe] = old_probes;
        [new.liveness_probe, new.readiness_probe, new.startup_probe] = new_probes;
        if !only_probes {
            return fields(patch, path, old, new);
        }
        let probes = [
            ("livenessProbe", &old.liveness_probe, &new.liveness_probe),
            ("readinessProbe", &old.readiness_probe, &new.readiness_probe),
            ("startupProbe", &old.startup_probe, &new.startup_probe),
        ];
        for (field, old, new) in probes {
            match new {
                _ if old == new => {}
                Some(probe) => patch.add(&path.with_trailing_token(field), probe)?,
                None => patch.remove(&path.with_trailing_token(field))?,
            }
        }
        Ok(())
    }
}

impl Element for Volume {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Operations turning the list at `path` from `old` into `new`, elements matched by name.
/// Returns false (having written nothing) when `new` is not `old` with elements inserted
/// and edited.
fn list<T: Element>(
    patch: &mut PatchWriter,
    path: PointerBuf,
    old: Option<&mut Vec<T>>,
    new: Option<&mut Vec<T>>,
) -> Result<bool, serde_json::Error> {
    let (old, new) = match (old, new) {
        (old, new) if old == new => return Ok(true),
        (Some(old), Some(new)) if !old.is_empty() => (old, new),
        (_, Some(new)) => {
            patch.add(&path, new)?;
            return Ok(true);
        }
        (Some(_), None) => {
            patch.remove(&path)?;
            return Ok(true);
        }
        (None, None) => return Ok(true),
    };
    // Walk `new`: the next element of `old` must come next under its own name, anything
    // else is an insertion.
    let mut kept = Vec::with_capacity(old.len());
    let mut inserted = Vec::new();
    for (index, element) in new.iter().enumerate() {
        match old.get(kept.len()) {
            Some(next) if next.name() == element.name() => kept.push(index),
            _ => inserted.push(index),
        }
    }
    if kept.len() != old.len() {
        return Ok(false);
    }
    for (index, (old, at)) in old.iter_mut().zip(kept).enumerate() {
        let new = &mut new[at];
        if old != new {
            T::edit(patch, path.with_trailing_token(index), old, new)?;
        }
    }
    for index in inserted {
        patch.add(&path.with_trailing_token(index), &new[index])?;
    }
    Ok(true)
}

/// The default [`Element::edit`]: compares the elements' JSON fields.
fn fields<T: Serialize>(
    patch: &mut PatchWriter,
    path: PointerBuf,
    old: &T,
    new: &T,
) -> Result<(), serde_json::Error> {
    match (serde_json::to_value(old)?, serde_json::to_value(new)?) {
        (Value::Object(old), Value::Object(new)) => {
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.remove(&path.with_trailing_token(key))?;
            }
            for (key, value) in &new {
                if old.get(key) != Some(value) {
                    patch.add(&path.with_trailing_token(key), value)?;
                }
            }
            Ok(())
        }
        (_, value) => patch.replace(&path, &value),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::InjectionConfig;
    use crate::inject::inject_owned;

    /// Applies the patch `json` to `object` and returns the result.
    fn apply(mut object: Value, json: &[u8]) -> Value {
        let patch: json_patch::Patch = serde_json::from_slice(json).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
        object
    }

    /// The patch `json` as a JSON value, to compare operations.
    fn operations(json: &[u8]) -> Value {
        serde_json::from_slice(json).unwrap()
    }

    fn pod(object: &Value) -> Pod {
        serde_json::from_value(object.clone()).unwrap()
    }

    #[test]
    fn fields_unknown_to_the_api_version_survive_insertions() {
        let sent = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "web", "image": "nginx", "futureField": 1}],
                "initContainers": [{"name": "setup", "image": "busybox", "futureField": 2}],
                "volumes": [{"name": "data", "emptyDir": {}, "futureField": 3}]
            }
        });
        let config = InjectionConfig {
            hold_application_until_proxy_starts: true,
            ..InjectionConfig::default()
        };
        let before = pod(&sent);
        let injected = inject_owned(before.clone(), &config).unwrap();
        let patched = apply(sent, &pod_patch(before, injected.clone()).unwrap());
        assert_eq!(pod(&patched), injected);
        // The proxy went in front of `web` and `istio-init` in front of `setup`: the user's
        // elements moved whole, unknown fields and all.
        assert_eq!(patched["spec"]["containers"][0]["name"], "istio-proxy");
        assert_eq!(patched["spec"]["containers"][1]["futureField"], 1);
        assert_eq!(patched["spec"]["initContainers"][0]["name"], "istio-init");
        assert_eq!(patched["spec"]["initContainers"][1]["futureField"], 2);
        assert_eq!(patched["spec"]["volumes"][0]["futureField"], 3);
    }

    #[test]
    fn map_keys_are_added_changed_and_removed_one_by_one() {
        let before = json!({
            "metadata": {"labels": {"a/b": "1", "keep": "k", "gone": "x"}},
            "spec": {"containers": []}
        });
        let after = json!({
            "metadata": {"labels": {"a/b": "2", "keep": "k", "new~": "n"}, "annotations": {"x": "y"}},
            "spec": {"containers": []}
        });
        let patch = pod_patch(pod(&before), pod(&after)).unwrap();
        assert_eq!(
            operations(&patch),
            json!([
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "2"},
                {"op": "add", "path": "/metadata/labels/new~0", "value": "n"},
                {"op": "remove", "path": "/metadata/labels/gone"},
                {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}}
            ])
        );
        assert_eq!(apply(before, &patch), after);
    }

    #[test]
    fn an_edited_element_gets_one_operation_per_changed_field() {
        let before = json!({"spec": {"containers": [
            {"name": "a", "image": "1", "args": ["x"]},
            {"name": "b", "image": "2"}
        ]}});
        let after = json!({"spec": {"containers": [
            {"name": "a", "image": "1", "command": ["y"]},
            {"name": "istio-proxy"},
            {"name": "b", "image": "3"}
        ]}});
        let patch = pod_patch(pod(&before), pod(&after)).unwrap();
        assert_eq!(
            operations(&patch),
            json!([
                {"op": "remove", "path": "/spec/containers/0/args"},
                {"op": "add", "path": "/spec/containers/0/command", "value": ["y"]},
                {"op": "add", "path": "/spec/containers/1/image", "value": "3"},
                {"op": "add", "path": "/spec/containers/1", "value": {"name": "istio-proxy"}}
            ])
        );
        assert_eq!(apply(before, &patch), after);
    }

    #[test]
    fn a_removed_or_moved_element_falls_back_to_a_whole_diff() {
        let before = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        for after in [
            json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "a"}]}}),
        ] {
            let patch = pod_patch(pod(&before), pod(&after)).unwrap();
            assert_eq!(apply(before.clone(), &patch), after);
        }
    }

    #[test]
    fn a_change_outside_the_written_fields_falls_back_to_a_whole_diff() {
        let before = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web"}]}
        });
        let after = json!({
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web", "x": "y"}},
            "spec": {"hostname": "h", "containers": [{"name": "web"}, {"name": "istio-proxy"}]}
        });
        let patch = pod_patch(pod(&before), pod(&after)).unwrap();
        let operations = operations(&patch);
        let paths: Vec<&str> = operations
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/spec/hostname"), "{paths:?}");
        assert_eq!(apply(before, &patch), after);
    }

    #[test]
    fn an_absent_list_or_namespace_is_added_whole() {
        let before = json!({"metadata": {"name": "web"}, "spec": {}});
        let after = json!({
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"containers": [{"name": "istio-proxy"}], "volumes": [{"name": "v"}]}
        });
        let patch = pod_patch(pod(&before), pod(&after)).unwrap();
        assert_eq!(
            operations(&patch),
            json!([
                {"op": "add", "path": "/metadata/namespace", "value": "demo"},
                {"op": "add", "path": "/spec/containers", "value": [{"name": "istio-proxy"}]},
                {"op": "add", "path": "/spec/volumes", "value": [{"name": "v"}]}
            ])
        );
        // The API server's object may lack `containers` altogether (k8s-openapi reads it as
        // empty): the whole-list add applies either way.
        assert_eq!(
            apply(json!({"metadata": {"name": "web"}, "spec": {}}), &patch),
            after
        );
    }

    #[test]
    fn a_pod_without_metadata_gets_its_metadata_added_whole() {
        // Found by the handle_inject_body fuzz target: `/metadata/namespace` cannot be added
        // to an object that has no `/metadata`.
        let sent = json!({"spec": {"containers": [{"name": "web"}]}});
        let after = json!({
            "metadata": {"namespace": "demo", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "web"}, {"name": "istio-proxy"}]}
        });
        let patch = pod_patch(pod(&sent), pod(&after)).unwrap();
        assert_eq!(
            operations(&patch)[0],
            json!({"op": "add", "path": "/metadata", "value": after["metadata"]})
        );
        assert_eq!(apply(sent, &patch), after);
    }

    #[test]
    fn rewritten_probes_get_one_operation_each() {
        let probe = |port: i32| json!({"httpGet": {"path": "/health", "port": port}});
        let before = json!({"spec": {"containers": [{
            "name": "a",
            "livenessProbe": probe(8080),
            "readinessProbe": probe(8080),
            "startupProbe": probe(8081)
        }]}});
        let after = json!({"spec": {"containers": [{
            "name": "a",
            "livenessProbe": probe(15020),
            "startupProbe": probe(8081)
        }]}});
        let patch = pod_patch(pod(&before), pod(&after)).unwrap();
        assert_eq!(
            operations(&patch),
            json!([
                {"op": "add", "path": "/spec/containers/0/livenessProbe", "value": probe(15020)},
                {"op": "remove", "path": "/spec/containers/0/readinessProbe"}
            ])
        );
        assert_eq!(apply(before, &patch), after);
    }
}
