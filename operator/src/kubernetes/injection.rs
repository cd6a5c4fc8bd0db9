//! The injector's settings ([`InjectionConfig`]) from the `Mesh` spec and the operator's
//! namespace.

use weft_crds::mesh::{DISCOVERY_PORT, DISCOVERY_SERVICE, MeshSpec};
use weft_webhook::{InjectionConfig, config::ProxyResources};

/// The injection settings for `mesh` with the operator in `namespace`: the mesh's trust domain,
/// proxy image (else `proxy_image`, the `--proxy-image` flag, else Weft's default image),
/// proxy resources, native sidecars and `holdApplicationUntilProxyStarts`; the discovery
/// address is the Mesh's `discoveryAddress` when set, else the operator's own Service
/// `weft-operator.<namespace>.svc:15012` (not the Mesh's `rootNamespace` default: the
/// operator's Service lives in the operator's namespace, which need not be the root
/// namespace). Other fields keep Istio's defaults.
pub fn injection_config(
    mesh: &MeshSpec,
    namespace: &str,
    proxy_image: Option<&str>,
) -> InjectionConfig {
    let defaults = InjectionConfig::default();
    let resources = mesh.proxy_resources();
    InjectionConfig {
        proxy_image: mesh
            .proxy_image()
            .or(proxy_image)
            .map_or(defaults.proxy_image.clone(), str::to_string),
        resources: ProxyResources {
            cpu_request: Some(resources.cpu_request),
            memory_request: Some(resources.memory_request),
            cpu_limit: Some(resources.cpu_limit),
            memory_limit: Some(resources.memory_limit),
        },
        native_sidecars: mesh.native_sidecars(),
        hold_application_until_proxy_starts: mesh.hold_application_until_proxy_starts(),
        discovery_address: mesh
            .discovery_address
            .clone()
            .unwrap_or_else(|| format!("{DISCOVERY_SERVICE}.{namespace}.svc:{DISCOVERY_PORT}")),
        trust_domain: mesh.trust_domain().to_string(),
        operator_namespace: namespace.to_string(),
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_crds::mesh::ProxySettings;

    #[test]
    fn defaults_point_the_proxies_at_the_operators_own_service() {
        let config = injection_config(&MeshSpec::default(), "weft-system", None);
        assert_eq!(
            config.discovery_address,
            "weft-operator.weft-system.svc:15012"
        );
        assert_eq!(config.trust_domain, "cluster.local");
        assert_eq!(config.operator_namespace, "weft-system");
        assert_eq!(config.proxy_image, InjectionConfig::default().proxy_image);
        assert_eq!(config.resources, ProxyResources::default());
    }

    #[test]
    fn mesh_fields_override_the_defaults() {
        let mesh = MeshSpec {
            trust_domain: Some("prod.example".into()),
            discovery_address: Some("weft.example:15012".into()),
            proxy: Some(ProxySettings {
                image: Some("registry.example/weft-proxy:1.2".into()),
                native_sidecars: Some(true),
                ..ProxySettings::default()
            }),
            ..MeshSpec::default()
        };
        let config = injection_config(&mesh, "mesh-ops", Some("r/flag:1"));
        assert_eq!(config.discovery_address, "weft.example:15012");
        assert_eq!(config.trust_domain, "prod.example");
        assert_eq!(config.proxy_image, "registry.example/weft-proxy:1.2");
        assert!(config.native_sidecars);
        assert_eq!(config.operator_namespace, "mesh-ops");
    }

    #[test]
    fn the_proxy_image_flag_applies_when_the_mesh_sets_none() {
        let config = injection_config(&MeshSpec::default(), "weft-system", Some("r/flag:1"));
        assert_eq!(config.proxy_image, "r/flag:1");
    }
}
