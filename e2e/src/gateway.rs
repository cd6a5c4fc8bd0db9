//! Scaffolding of the gateway scenarios (`tests/gateway*.rs`): the ingress Gateway's and its
//! VirtualServices' YAML, the reviews backend,
//! a proxy's `/config_dump`, what to print when the gateway does not answer, and curl retried
//! while the control plane pushes.

use std::time::Duration;

use weft_lab::client::HttpReply;
use weft_lab::mesh::LocalMesh;

use crate::{GATEWAY, curl, eventually, host, service, service_entry};

/// A Gateway `ingress` in istio-system selecting the ingress gateway (`istio:
/// ingressgateway`), with `servers` (YAML list items indented by 2).
pub fn gateway_yaml(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: ingress, namespace: istio-system}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}"
    )
}

/// A VirtualService `name` in `namespace` bound to the ingress gateway, sending every request
/// for `public` to service `service` on 9080.
pub fn gateway_vs(namespace: &str, name: &str, public: &str, service: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  hosts: [{public}]\n  gateways: [istio-system/ingress]\n  http:\n  - route:\n    - destination: {{host: {}, port: {{number: 9080}}}}\n",
        host(service)
    )
}

/// The backend most gateway scenarios route to: the `reviews` ServiceEntry (VIP 3 of the lab)
/// and its v1 workload `reviews1`. Panics when the workload cannot be started (a test helper).
pub fn add_reviews_v1(mesh: &mut LocalMesh) {
    mesh.write_config(
        "svc-reviews.yaml",
        &service_entry("reviews", mesh.lab().vip(3)),
    )
    .unwrap();
    mesh.add_workload(service("reviews1", "reviews", "v1", &[], &[]))
        .unwrap();
}

/// `workload`'s proxy `/config_dump` (admin on 127.0.0.1:15000 in its namespace); empty when
/// the workload or its admin port cannot be reached.
pub fn config_dump(mesh: &LocalMesh, workload: &str) -> String {
    mesh.workload(workload)
        .and_then(|w| {
            mesh.lab()
                .exec(
                    &w.host,
                    "curl",
                    &["-s", "http://127.0.0.1:15000/config_dump"],
                )
                .ok()
        })
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// What to print when the gateway does not answer: its log, its `/config_dump` and the
/// control plane's log.
pub fn gateway_diagnostics(mesh: &LocalMesh) -> String {
    format!(
        "gateway log:\n{}\ngateway config:\n{}\noperator log:\n{}",
        mesh.log(&format!("{GATEWAY}-proxy")),
        config_dump(mesh, GATEWAY),
        mesh.log("operator")
    )
}

/// Retries `curl` from `client` for up to 15 s (the control plane pushes the new config
/// meanwhile) until `done` accepts the reply; returns the last result.
pub fn curl_until(
    mesh: &LocalMesh,
    client: &weft_lab::Host,
    args: &[&str],
    done: impl Fn(&HttpReply) -> bool,
) -> Result<HttpReply, String> {
    eventually(
        Duration::from_secs(15),
        || curl(mesh, client, args),
        |reply| reply.as_ref().is_ok_and(&done),
    )
    .0
}
