//! A Pilot snapshot as the discovery server's [`ConfigBuilder`]: one immutable [`ClusterView`],
//! the identity check, and the translation. Pushes use [`weft_pilot::build_proxy_parts`]: the
//! view builds the side proxies of one scope share (outbound listeners, clusters) and its JSON
//! once, and each push copies that JSON into its frame.

use std::borrow::Cow;
use std::ops::Not;

use weft_discovery::{Hello, ProxyConfig};
use weft_pilot::{ClusterView, ProxyParts, ProxyTarget, build_proxy_config, build_proxy_parts};

use crate::discovery::server::BuiltConfig;
use crate::discovery::{BuildError, ConfigBuilder};

/// Builds proxy configs from one snapshot of the cluster view.
#[derive(Debug)]
pub struct Snapshot {
    view: ClusterView,
}

impl Snapshot {
    /// A builder over `view`.
    pub fn new(view: ClusterView) -> Self {
        Self { view }
    }

    /// The view.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// The proxy target named by `hello`: a WorkloadEntry (standalone mode, VMs) or a pod,
    /// of the proxy type the Hello declares (sidecar or gateway).
    fn target(&self, hello: &Hello) -> Result<ProxyTarget, BuildError> {
        let mut target =
            ProxyTarget::for_workload_entry(&self.view, &hello.namespace, &hello.workload)
                .or_else(|_| ProxyTarget::for_pod(&self.view, &hello.namespace, &hello.workload))
                .map_err(|e| BuildError::UnknownWorkload(e.to_string()))?;
        target.proxy_type = hello.proxy_type;
        Ok(target)
    }
}

impl Snapshot {
    /// The target named by `hello`, checked against the peer's identity: the peer must hold
    /// the workload's own identity, `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`
    /// (a proxy gets only its own config, as istiod's xDS authorization).
    fn authorized_target(&self, hello: &Hello, peer: &str) -> Result<ProxyTarget, BuildError> {
        let target = self.target(hello)?;
        let expected = self
            .view
            .mesh()
            .spiffe_id(&target.namespace, &target.service_account);
        if peer != expected {
            return Err(BuildError::Denied(format!(
                "workload {}/{} runs as {expected}, but the peer is {peer}",
                hello.namespace, hello.workload
            )));
        }
        Ok(target)
    }
}

impl BuiltConfig for ProxyParts {
    fn version(&self) -> Cow<'_, str> {
        Cow::Borrowed(ProxyParts::version(self))
    }

    fn write_json(&self, out: &mut dyn std::io::Write) -> Result<(), serde_json::Error> {
        ProxyParts::write_json(self, out)
    }

    /// The proxy's own fields, then the JSON its scope shares (one buffer for all its pushes).
    fn write_json_chunks(
        &self,
        head: &mut Vec<u8>,
    ) -> Result<Vec<bytes::Bytes>, serde_json::Error> {
        let tail = self.write_json_head(head)?;
        Ok(vec![bytes::Bytes::from_owner(tail)])
    }

    /// The proxy's own changed fields, then the delta of its scope's shared side, computed
    /// once per pair of scopes and sent as one buffer to all their proxies; `None` when
    /// `base` is not a [`ProxyParts`].
    fn write_delta_chunks(
        &self,
        base: &dyn BuiltConfig,
        head: &mut Vec<u8>,
    ) -> Option<Result<Vec<bytes::Bytes>, serde_json::Error>> {
        let base = (base as &dyn std::any::Any).downcast_ref::<ProxyParts>()?;
        match self.write_delta_json_head(base, head) {
            Ok(Some(shared)) => Some(Ok(vec![bytes::Bytes::from_owner(shared)])),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl ConfigBuilder for Snapshot {
    /// The peer must hold the workload's own identity: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`
    /// (a proxy gets only its own config, as istiod's xDS authorization).
    fn build(&self, hello: &Hello, peer: &str) -> Result<ProxyConfig, BuildError> {
        let target = self.authorized_target(hello, peer)?;
        let output = build_proxy_config(&self.view, &target);
        for warning in &output.warnings {
            tracing::debug!(proxy = %hello.workload, ?warning, "unsupported field not applied");
        }
        Ok(output.config)
    }

    /// As [`ConfigBuilder::build`], in parts ([`weft_pilot::build_proxy_parts`]): the JSON of
    /// the side shared with the proxy's scope is built once per scope of this snapshot.
    fn build_push(&self, hello: &Hello, peer: &str) -> Result<Box<dyn BuiltConfig>, BuildError> {
        let target = self.authorized_target(hello, peer)?;
        let parts = build_proxy_parts(&self.view, &target);
        for warning in parts.warnings() {
            tracing::debug!(proxy = %hello.workload, ?warning, "unsupported field not applied");
        }
        Ok(Box::new(parts))
    }

    /// Compares the two snapshots' views once ([`weft_pilot::ClusterView::change_since`]) and
    /// answers per proxy whether the change may reach its scope; `true` for every proxy when
    /// `previous` is not a [`Snapshot`] or the workload is unknown.
    fn may_differ(&self, previous: &dyn ConfigBuilder, hellos: &[&Hello]) -> Vec<bool> {
        let previous = previous
            .as_any()
            .and_then(|previous| previous.downcast_ref::<Snapshot>());
        let Some(previous) = previous else {
            return vec![true; hellos.len()];
        };
        if std::ptr::eq(previous, self) {
            return vec![false; hellos.len()];
        }
        let change = self.view.change_since(&previous.view);
        hellos
            .iter()
            .map(|hello| {
                self.target(hello)
                    .is_ok_and(|target| !change.may_affect(&self.view, &target))
                    .not()
            })
            .collect()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_discovery::ProxyType;

    const WORKLOAD: &str = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: demo}
spec:
  address: 198.18.20.11
  serviceAccount: reviews
  labels: {app: reviews, version: v1}
"#;

    fn hello() -> Hello {
        Hello {
            namespace: "demo".into(),
            workload: "reviews-v1".into(),
            proxy_version: String::new(),
            current_version: String::new(),
            proxy_type: Default::default(),
            incremental: true,
        }
    }

    #[test]
    fn builds_for_the_right_identity_and_denies_others() {
        let snapshot = Snapshot::new(ClusterView::from_yaml(WORKLOAD).unwrap());
        let config = snapshot
            .build(&hello(), "spiffe://cluster.local/ns/demo/sa/reviews")
            .unwrap();
        assert_eq!(config.node.service_account, "reviews");
        let denied = snapshot.build(&hello(), "spiffe://cluster.local/ns/demo/sa/ratings");
        assert!(matches!(denied, Err(BuildError::Denied(_))), "{denied:?}");
        let mut unknown = hello();
        unknown.workload = "nope".into();
        assert!(matches!(
            snapshot.build(&unknown, "spiffe://cluster.local/ns/demo/sa/reviews"),
            Err(BuildError::UnknownWorkload(_))
        ));
    }

    #[test]
    fn a_push_carries_the_config_build_gives() {
        let snapshot = Snapshot::new(ClusterView::from_yaml(WORKLOAD).unwrap());
        let peer = "spiffe://cluster.local/ns/demo/sa/reviews";
        let config = snapshot.build(&hello(), peer).unwrap();
        let push = snapshot.build_push(&hello(), peer).unwrap();
        assert_eq!(push.version(), config.version);
        let mut json = Vec::new();
        push.write_json(&mut json).unwrap();
        let mut chunked = Vec::new();
        let rest = push.write_json_chunks(&mut chunked).unwrap();
        assert_eq!(rest.len(), 1, "the scope's shared JSON");
        assert_eq!([chunked, rest.concat()].concat(), json);
        assert_eq!(
            ProxyConfig::from_json(std::str::from_utf8(&json).unwrap()).unwrap(),
            config
        );
        let denied = snapshot.build_push(&hello(), "spiffe://cluster.local/ns/demo/sa/ratings");
        assert!(matches!(denied, Err(BuildError::Denied(_))));
    }

    #[test]
    fn the_hello_decides_sidecar_or_gateway() {
        let snapshot = Snapshot::new(ClusterView::from_yaml(WORKLOAD).unwrap());
        let peer = "spiffe://cluster.local/ns/demo/sa/reviews";
        let sidecar = snapshot.build(&hello(), peer).unwrap();
        assert_eq!(sidecar.node.proxy_type, ProxyType::Sidecar);
        assert!(
            sidecar.node.id.starts_with("sidecar~"),
            "{}",
            sidecar.node.id
        );
        let gateway = Hello {
            proxy_type: ProxyType::Router,
            ..hello()
        };
        let router = snapshot.build(&gateway, peer).unwrap();
        assert_eq!(router.node.proxy_type, ProxyType::Router);
        assert!(router.node.id.starts_with("router~"), "{}", router.node.id);
    }

    #[test]
    fn only_proxies_whose_scope_includes_the_change_may_differ() {
        // Namespace `b` sees only itself (a default Sidecar); the VirtualService is in `a`.
        let mesh = |weight: u32| {
            let mut text = String::from(
                "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: b}\n\
                 spec:\n  egress:\n  - hosts: ['./*']\n",
            );
            for ns in ["a", "b"] {
                text.push_str(&format!(
                    "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: web, namespace: {ns}}}\n\
                     spec: {{address: 198.18.0.1, serviceAccount: web, labels: {{app: web}}}}\n"
                ));
            }
            text.push_str(&format!(
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: a}}\n\
                 spec:\n  hosts: [web.example.com]\n  http:\n  - route:\n    - {{destination: {{host: web.example.com}}, weight: {weight}}}\n"
            ));
            Snapshot::new(ClusterView::from_yaml(&text).unwrap())
        };
        let hello = |namespace: &str| Hello {
            namespace: namespace.into(),
            workload: "web".into(),
            ..hello()
        };
        let (a, b, unknown) = (hello("a"), hello("b"), hello("nowhere"));
        let before = mesh(100);
        assert_eq!(
            mesh(100).may_differ(&before, &[&a, &b]),
            [false, false],
            "equal views"
        );
        let changed = mesh(50);
        assert_eq!(
            changed.may_differ(&before, &[&a, &b, &unknown]),
            [true, false, true]
        );
        assert_eq!(
            changed.may_differ(&changed, &[&a, &b]),
            [false, false],
            "same builder"
        );
    }

    /// A mesh for delta tests: `web` and `db` WorkloadEntries in `a`, ServiceEntries for
    /// `services`, a VirtualService on `svc0` with `weight`, the workload labels of `web`, and
    /// optionally a STRICT PeerAuthentication.
    fn delta_mesh(services: &[&str], weight: u32, web_version: &str, strict: bool) -> Snapshot {
        let mut text = format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: web, namespace: a}}\n\
             spec: {{address: 198.18.0.1, serviceAccount: web, labels: {{app: web, version: {web_version}}}}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: db, namespace: a}}\n\
             spec: {{address: 198.18.0.2, serviceAccount: db, labels: {{app: db}}}}\n"
        );
        for (index, name) in services.iter().enumerate() {
            text.push_str(&format!(
                "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: a}}\n\
                 spec:\n  hosts: [{name}.a.svc.cluster.local]\n  addresses: [198.19.0.{}]\n  location: MESH_INTERNAL\n  \
                 resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: web}}}}\n",
                index + 1
            ));
        }
        text.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc0, namespace: a}}\n\
             spec:\n  hosts: [svc0.a.svc.cluster.local]\n  http:\n  - route:\n    \
             - {{destination: {{host: svc0.a.svc.cluster.local}}, weight: {weight}}}\n    \
             - {{destination: {{host: svc1.a.svc.cluster.local}}, weight: {}}}\n",
            100 - weight
        ));
        if strict {
            text.push_str(
                "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: a}\n\
                 spec: {mtls: {mode: STRICT}}\n",
            );
        }
        Snapshot::new(ClusterView::from_yaml(&text).unwrap())
    }

    /// The delta Pilot's parts write, byte for byte, is the typed delta between the two
    /// configs, and applied to the old config it gives the new one with the new version.
    #[test]
    fn pilot_deltas_are_the_typed_deltas_and_give_the_new_config() {
        use weft_discovery::{ConfigDelta, SectionDelta};
        let services = ["svc0", "svc1", "svc2"];
        let base = delta_mesh(&services, 90, "v1", false);
        let cases = [
            ("weight", delta_mesh(&services, 50, "v1", false)),
            (
                "service added",
                delta_mesh(&["svc0", "svc1", "svc2", "svc3"], 90, "v1", false),
            ),
            (
                "service removed",
                delta_mesh(&["svc0", "svc1"], 90, "v1", false),
            ),
            ("own labels", delta_mesh(&services, 90, "v2", false)),
            ("peer authentication", delta_mesh(&services, 90, "v1", true)),
            ("nothing", delta_mesh(&services, 90, "v1", false)),
        ];
        for workload in ["web", "db"] {
            let hello = Hello {
                namespace: "a".into(),
                workload: workload.into(),
                ..hello()
            };
            let peer = format!("spiffe://cluster.local/ns/a/sa/{workload}");
            let old = base.build(&hello, &peer).unwrap();
            let old_parts = base.build_push(&hello, &peer).unwrap();
            for (case, after) in &cases {
                let new = after.build(&hello, &peer).unwrap();
                let new_parts = after.build_push(&hello, &peer).unwrap();
                let mut json = Vec::new();
                let rest = new_parts
                    .write_delta_chunks(&*old_parts, &mut json)
                    .unwrap()
                    .unwrap();
                json.extend(rest.concat());
                let typed = ConfigDelta::between(&old, &new).unwrap();
                assert_eq!(
                    String::from_utf8(json.clone()).unwrap(),
                    serde_json::to_string(&typed).unwrap(),
                    "{workload}: {case}"
                );
                let decoded: ConfigDelta = serde_json::from_slice(&json).unwrap();
                let mut applied = decoded.apply(&old).unwrap();
                applied.version.clear();
                assert_eq!(
                    applied.content_hash().unwrap(),
                    new.version,
                    "{workload}: {case}"
                );
                assert_eq!(typed.is_empty(), old == new, "{workload}: {case}");
            }
        }
        // What travels for `web` when a service is added: its listener and cluster only.
        let hello = Hello {
            namespace: "a".into(),
            workload: "web".into(),
            ..hello()
        };
        let peer = "spiffe://cluster.local/ns/a/sa/web";
        let old = base.build(&hello, peer).unwrap();
        let new = cases[1].1.build(&hello, peer).unwrap();
        let delta = ConfigDelta::between(&old, &new).unwrap();
        let Some(SectionDelta::Changed {
            resources,
            removed_resources,
        }) = &delta.outbound
        else {
            panic!("outbound changed by name: {delta:?}");
        };
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].hostname, "svc3.a.svc.cluster.local");
        assert!(removed_resources.is_empty());
        assert!(delta.node.is_none() && delta.inbound.is_none());
    }

    #[test]
    fn proxies_of_one_scope_share_the_scope_delta() {
        let before = delta_mesh(&["svc0", "svc1"], 90, "v1", false);
        let after = delta_mesh(&["svc0", "svc1"], 50, "v1", false);
        let parts = |snapshot: &Snapshot, workload: &str| {
            let hello = Hello {
                namespace: "a".into(),
                workload: workload.into(),
                ..hello()
            };
            snapshot
                .build_push(
                    &hello,
                    &format!("spiffe://cluster.local/ns/a/sa/{workload}"),
                )
                .unwrap()
        };
        let shared = |workload: &str| {
            let mut head = Vec::new();
            let rest = parts(&after, workload)
                .write_delta_chunks(&*parts(&before, workload), &mut head)
                .unwrap()
                .unwrap();
            assert_eq!(rest.len(), 1, "one shared chunk");
            rest[0].clone()
        };
        let (web, db) = (shared("web"), shared("db"));
        assert_eq!(web, db);
        assert_eq!(web.as_ptr(), db.as_ptr(), "the same buffer, computed once");
    }
}
