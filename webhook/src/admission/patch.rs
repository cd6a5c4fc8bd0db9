//! The RFC 6902 JSON patch that turns the pod the API server sent into the injected pod.
//!
//! Injection writes a known, small set of fields: `metadata.namespace` (filled from the
//! request), `metadata.labels`, `metadata.annotations`, `spec.containers` (the proxy, and
//! rewritten probes), `spec.initContainers` and `spec.volumes`. [`pod_patch`] compares only
//! those (typed, without serializing the pod) and writes operations for what differs; the rest
//! of the two pods is compared with `==`, and should anything else ever differ, the patch is
//! `json_patch::diff` of the two whole pods instead, so the result is always exact.
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
//! - the namespace is an `add` (or `remove`).
//!
//! Element edits come first, at the elements' original indices, then insertions in increasing
//! final index, so every index is valid when its operation is applied.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Container, Pod, Volume};
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
/// Returns the operations described in the module docs. Errors: a field that cannot be
/// serialized to JSON (serde_json's error; k8s-openapi types always serialize).
pub(super) fn pod_patch(mut before: Pod, mut after: Pod) -> Result<Patch, serde_json::Error> {
    let old = Written::take(&mut before);
    let new = Written::take(&mut after);
    if before == after {
        let mut ops = Vec::new();
        if edits(&mut ops, &old, &new)? {
            return Ok(Patch(ops));
        }
    }
    old.restore(&mut before);
    new.restore(&mut after);
    Ok(json_patch::diff(
        &serde_json::to_value(&before)?,
        &serde_json::to_value(&after)?,
    ))
}

/// Appends the operations for the written fields to `ops`. Returns false when a list changed
/// in a way other than insertions and element edits (an element removed or moved), which the
/// caller then diffs whole.
fn edits(
    ops: &mut Vec<PatchOperation>,
    old: &Written,
    new: &Written,
) -> Result<bool, serde_json::Error> {
    let at = |tokens: &[&str]| PointerBuf::from_tokens(tokens.iter().copied());
    if old.namespace != new.namespace {
        match &new.namespace {
            Some(namespace) => add(
                ops,
                at(&["metadata", "namespace"]),
                Value::from(namespace.as_str()),
            ),
            None => remove(ops, at(&["metadata", "namespace"])),
        }
    }
    map(ops, at(&["metadata", "labels"]), &old.labels, &new.labels)?;
    map(
        ops,
        at(&["metadata", "annotations"]),
        &old.annotations,
        &new.annotations,
    )?;
    Ok(list(
        ops,
        at(&["spec", "containers"]),
        Some(&old.containers),
        Some(&new.containers),
        container_name,
    )? && list(
        ops,
        at(&["spec", "initContainers"]),
        old.init_containers.as_ref(),
        new.init_containers.as_ref(),
        container_name,
    )? && list(
        ops,
        at(&["spec", "volumes"]),
        old.volumes.as_ref(),
        new.volumes.as_ref(),
        volume_name,
    )?)
}

/// Operations turning the string map at `path` from `old` into `new`.
fn map(
    ops: &mut Vec<PatchOperation>,
    path: PointerBuf,
    old: &Option<BTreeMap<String, String>>,
    new: &Option<BTreeMap<String, String>>,
) -> Result<(), serde_json::Error> {
    match (old, new) {
        _ if old == new => {}
        (Some(old), Some(new)) if !old.is_empty() => {
            for (key, value) in new {
                if old.get(key) != Some(value) {
                    add(
                        ops,
                        path.with_trailing_token(key),
                        Value::from(value.as_str()),
                    );
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                remove(ops, path.with_trailing_token(key));
            }
        }
        (_, Some(new)) => add(ops, path, serde_json::to_value(new)?),
        (Some(_), None) => remove(ops, path),
        (None, None) => {}
    }
    Ok(())
}

/// Operations turning the list at `path` from `old` into `new`, elements matched by `name`.
/// Returns false (having written nothing) when `new` is not `old` with elements inserted
/// and edited.
fn list<T: Serialize + PartialEq>(
    ops: &mut Vec<PatchOperation>,
    path: PointerBuf,
    old: Option<&Vec<T>>,
    new: Option<&Vec<T>>,
    name: fn(&T) -> &str,
) -> Result<bool, serde_json::Error> {
    let (old, new) = match (old, new) {
        _ if old == new => return Ok(true),
        (Some(old), Some(new)) if !old.is_empty() => (old, new),
        (_, Some(new)) => {
            add(ops, path, serde_json::to_value(new)?);
            return Ok(true);
        }
        (Some(_), None) => {
            remove(ops, path);
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
            Some(next) if name(next) == name(element) => kept.push(element),
            _ => inserted.push(index),
        }
    }
    if kept.len() != old.len() {
        return Ok(false);
    }
    for (index, (old, new)) in old.iter().zip(kept).enumerate() {
        if old != new {
            element(ops, path.with_trailing_token(index), old, new)?;
        }
    }
    for index in inserted {
        add(
            ops,
            path.with_trailing_token(index),
            serde_json::to_value(&new[index])?,
        );
    }
    Ok(true)
}

/// Operations turning the list element at `path` from `old` into `new`: one per top-level
/// field that differs, or a `replace` of the element if either is not a JSON object.
fn element<T: Serialize>(
    ops: &mut Vec<PatchOperation>,
    path: PointerBuf,
    old: &T,
    new: &T,
) -> Result<(), serde_json::Error> {
    match (serde_json::to_value(old)?, serde_json::to_value(new)?) {
        (Value::Object(old), Value::Object(new)) => {
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                remove(ops, path.with_trailing_token(key));
            }
            for (key, value) in new {
                if old.get(&key) != Some(&value) {
                    add(ops, path.with_trailing_token(&key), value);
                }
            }
        }
        (_, value) => ops.push(PatchOperation::Replace(ReplaceOperation { path, value })),
    }
    Ok(())
}

fn container_name(container: &Container) -> &str {
    &container.name
}

fn volume_name(volume: &Volume) -> &str {
    &volume.name
}

fn add(ops: &mut Vec<PatchOperation>, path: PointerBuf, value: Value) {
    ops.push(PatchOperation::Add(AddOperation { path, value }));
}

fn remove(ops: &mut Vec<PatchOperation>, path: PointerBuf) {
    ops.push(PatchOperation::Remove(RemoveOperation { path }));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::InjectionConfig;
    use crate::inject::inject_owned;

    /// Applies `patch` to `object` and returns the result.
    fn apply(mut object: Value, patch: &Patch) -> Value {
        json_patch::patch(&mut object, patch).unwrap();
        object
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
            serde_json::to_value(&patch).unwrap(),
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
            serde_json::to_value(&patch).unwrap(),
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
        let paths: Vec<String> = patch.iter().map(|op| op.path().to_string()).collect();
        assert!(paths.contains(&"/spec/hostname".to_string()), "{paths:?}");
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
            serde_json::to_value(&patch).unwrap(),
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
}
