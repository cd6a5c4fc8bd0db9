//! A Pilot snapshot as the discovery server's [`ConfigBuilder`]: one immutable [`ClusterView`],
//! the identity check, and the translation.

use weft_discovery::{Hello, ProxyConfig};
use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config};

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

impl ConfigBuilder for Snapshot {
    /// The peer must hold the workload's own identity: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`
    /// (a proxy gets only its own config, as istiod's xDS authorization).
    fn build(&self, hello: &Hello, peer: &str) -> Result<ProxyConfig, BuildError> {
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
        let output = build_proxy_config(&self.view, &target);
        for warning in &output.warnings {
            tracing::debug!(proxy = %hello.workload, ?warning, "unsupported field not applied");
        }
        Ok(output.config)
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
}
