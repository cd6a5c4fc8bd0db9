//! Locality from Node topology labels in Kubernetes mode, against the in-memory fake API
//! server: Nodes are watched metadata-only, a pod's endpoint and a sidecar's own locality come
//! from its Node's `topology.kubernetes.io/region`/`zone` labels (Istio's rule), and
//! relabelling a Node pushes the new locality.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/proxy_stream.rs"]
mod proxy_stream;

use std::time::Duration;

use fake_api::FakeApi;
use proxy_stream::{connect, seed_mesh, start_operator};
use serde_json::{Value, json};
use weft_proxy_config::Locality;

const CLUSTER: &str = "outbound|80||server.demo.svc.cluster.local";

fn node(name: &str, zone: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "resourceVersion": "1",
                        "labels": {"topology.kubernetes.io/region": "us-east1",
                                   "topology.kubernetes.io/zone": zone,
                                   "kubernetes.io/hostname": name}},
           "status": {"nodeInfo": {"kubeletVersion": "v1.33.0"}}})
}

fn pod(name: &str, app: &str, node: &str, ip: &str, account: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "demo", "labels": {"app": app},
                        "annotations": {"sidecar.istio.io/status": "{}"}},
           "spec": {"nodeName": node, "serviceAccountName": account,
                    "containers": [{"name": "app", "image": "app"}]},
           "status": {"podIP": ip}})
}

fn locality(zone: &str) -> Locality {
    Locality {
        region: "us-east1".into(),
        zone: zone.into(),
        sub_zone: String::new(),
    }
}

/// The client sidecar's own locality and the server endpoint's, from its Nodes' labels; a
/// relabelled Node reaches the connected sidecar; the Nodes are listed and watched
/// metadata-only (`PartialObjectMetadata`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_topology_labels_give_endpoints_and_proxies_their_locality() {
    let api = FakeApi::default();
    seed_mesh(&api, "demo", &[("client", "sa-uid-client")]);
    api.put("/api/v1/nodes/n1", node("n1", "us-east1-a"));
    api.put("/api/v1/nodes/n2", node("n2", "us-east1-b"));
    api.put(
        "/api/v1/namespaces/demo/pods/client-1",
        pod("client-1", "client", "n1", "198.18.0.20", "client"),
    );
    api.put(
        "/api/v1/namespaces/demo/pods/server-1",
        pod("server-1", "server", "n2", "198.18.0.21", "server"),
    );
    api.put(
        "/api/v1/namespaces/demo/services/server",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "server", "namespace": "demo"},
               "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "server"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    );
    api.put(
        "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices/server-x",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "addressType": "IPv4",
               "metadata": {"name": "server-x", "namespace": "demo",
                            "labels": {"kubernetes.io/service-name": "server"}},
               "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": ["198.18.0.21"], "nodeName": "n2",
                              "targetRef": {"kind": "Pod", "name": "server-1",
                                            "namespace": "demo"}}]}),
    );

    let (settings, shutdown, operator, _state_dir) = start_operator(&api);
    let (mut configs, stream) = connect(
        &api,
        &settings,
        "demo",
        "client",
        "client-1",
        weft_discovery::ProxyType::Sidecar,
    )
    .await;
    let mut next_zone = async |what: &str, zone: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let config = tokio::time::timeout_at(deadline, configs.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
            let endpoint = config
                .cluster(CLUSTER)
                .and_then(|cluster| cluster.endpoints.first())
                .map(|endpoint| endpoint.locality.clone());
            if endpoint.as_ref().is_some_and(|l| l.zone == zone) {
                return (config.node.locality.clone(), endpoint);
            }
        }
    };
    let (own, endpoint) = next_zone("the server endpoint in n2's zone", "us-east1-b").await;
    assert_eq!(own, locality("us-east1-a"), "the sidecar's own Node (n1)");
    assert_eq!(endpoint, Some(locality("us-east1-b")));

    // Relabelling the server's Node pushes the endpoint's new zone.
    api.put_and_notify("/api/v1/nodes/n2", "MODIFIED", node("n2", "us-east1-c"));
    let (_, endpoint) = next_zone("the relabelled Node's zone", "us-east1-c").await;
    assert_eq!(endpoint, Some(locality("us-east1-c")));

    // Nodes were asked for metadata only.
    let node_requests: Vec<String> = api
        .log
        .lock()
        .iter()
        .filter(|(_, uri, _)| uri.starts_with("/api/v1/nodes"))
        .map(|(_, uri, _)| uri.clone())
        .collect();
    assert!(!node_requests.is_empty());
    let accepts: Vec<String> = api
        .accept_headers
        .lock()
        .iter()
        .filter(|(uri, _)| uri.starts_with("/api/v1/nodes"))
        .map(|(_, accept)| accept.clone())
        .collect();
    assert_eq!(accepts.len(), node_requests.len(), "{node_requests:?}");
    assert!(
        accepts
            .iter()
            .all(|accept| accept.contains("as=PartialObjectMetadata")),
        "{accepts:?}"
    );

    stream.abort();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}
