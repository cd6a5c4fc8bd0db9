//! Locality from Node topology labels and the pod's `istio-locality` label.

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::*;
use crate::build::build_proxy_config;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn locality(region: &str, zone: &str, sub_zone: &str) -> Locality {
    Locality {
        region: region.to_owned(),
        zone: zone.to_owned(),
        sub_zone: sub_zone.to_owned(),
    }
}

#[test]
fn node_labels_give_the_locality_and_the_pod_label_overrides_them() {
    let node = labels(&[
        (REGION_LABEL, "us-east1"),
        (ZONE_LABEL, "us-east1-b"),
        (SUBZONE_LABEL, "rack3"),
    ]);
    let pod = labels(&[("app", "web")]);
    assert_eq!(
        pod_locality(&pod, Some(&node)),
        locality("us-east1", "us-east1-b", "rack3")
    );
    let overridden = labels(&[(LOCALITY_LABEL, "eu-west1.eu-west1-a.row7")]);
    assert_eq!(
        pod_locality(&overridden, Some(&node)),
        locality("eu-west1", "eu-west1-a", "row7"),
        "istio-locality wins, dots for slashes"
    );
    let beta = labels(&[(BETA_REGION_LABEL, "r-old"), (BETA_ZONE_LABEL, "z-old")]);
    assert_eq!(
        pod_locality(&pod, Some(&beta)),
        locality("r-old", "z-old", ""),
        "the deprecated labels when the GA ones are absent"
    );
    let both = labels(&[(REGION_LABEL, "r-ga"), (BETA_REGION_LABEL, "r-old")]);
    assert_eq!(pod_locality(&pod, Some(&both)).region, "r-ga");
    // A Node without topology labels, or none known: the pod's own topology labels.
    let on_pod = labels(&[(ZONE_LABEL, "z-pod")]);
    assert_eq!(
        pod_locality(&on_pod, Some(&labels(&[("kubernetes.io/os", "linux")]))),
        locality("", "z-pod", "")
    );
    assert_eq!(pod_locality(&pod, None), Locality::default());
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn node(name: &str, zone: &str) -> Node {
    object(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {REGION_LABEL: "us-east1", ZONE_LABEL: zone}}}))
}

/// A client pod and a server pod (with sidecars) on Nodes `n1` and `n2`, the server's Service
/// and EndpointSlice; `n2` is in zone `server_zone`.
fn objects(server_zone: &str) -> ClusterObjects {
    let pod = |name: &str, app: &str, node: &str, ip: &str| -> Pod {
        object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "team", "labels": {"app": app},
                         "annotations": {"sidecar.istio.io/status": "{}"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app"}]},
            "status": {"podIP": ip}}))
    };
    ClusterObjects {
        pods: vec![
            pod("client", "client", "n1", "10.0.0.1"),
            pod("server-0", "server", "n2", "10.0.0.2"),
        ],
        services: vec![object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "server", "namespace": "team"},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "server"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))],
        endpoint_slices: vec![object(json!({"apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "server-x", "namespace": "team",
                         "labels": {"kubernetes.io/service-name": "server"}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.2"], "nodeName": "n2", "zone": "slice-zone",
                           "targetRef": {"kind": "Pod", "name": "server-0",
                                         "namespace": "team"}}]}))],
        nodes: vec![node("n1", "us-east1-a"), node("n2", server_zone)],
        ..ClusterObjects::default()
    }
}

#[test]
fn endpoints_and_the_proxy_carry_their_nodes_locality_and_a_relabel_is_a_change() {
    let before = ClusterView::new(MeshSettings::default(), objects("us-east1-b"));
    let target = ProxyTarget::for_pod(&before, "team", "client").unwrap();
    assert_eq!(target.locality, locality("us-east1", "us-east1-a", ""));
    let config = build_proxy_config(&before, &target).config;
    assert_eq!(config.node.locality, locality("us-east1", "us-east1-a", ""));
    let cluster = config
        .cluster("outbound|80||server.team.svc.cluster.local")
        .unwrap();
    assert_eq!(
        cluster.endpoints[0].locality,
        locality("us-east1", "us-east1-b", ""),
        "the Node's zone, not the slice's"
    );

    let after = ClusterView::new(MeshSettings::default(), objects("us-east1-c"));
    assert!(after.change_since(&before).may_affect(&after, &target));
    let relabelled = build_proxy_config(&after, &target).config;
    assert_eq!(
        relabelled
            .cluster("outbound|80||server.team.svc.cluster.local")
            .unwrap()
            .endpoints[0]
            .locality
            .zone,
        "us-east1-c"
    );
    assert_ne!(relabelled.version, config.version);

    // Without Nodes, the slice's zone.
    let mut without = objects("us-east1-b");
    without.nodes.clear();
    let view = ClusterView::new(MeshSettings::default(), without);
    let target = ProxyTarget::for_pod(&view, "team", "client").unwrap();
    let config = build_proxy_config(&view, &target).config;
    let endpoint = &config
        .cluster("outbound|80||server.team.svc.cluster.local")
        .unwrap()
        .endpoints[0];
    assert_eq!(endpoint.locality, locality("", "slice-zone", ""));
}
