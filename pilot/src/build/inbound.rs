//! Inbound: the workload's ports, their mTLS modes (PeerAuthentication), and the
//! AuthorizationPolicies and RequestAuthentications that select it.

use std::collections::BTreeMap;

use weft_crds::security::{
    Action, AuthorizationPolicy as CrdPolicy, MtlsMode as CrdMtls, PeerAuthentication,
    RequestAuthentication,
};
use weft_proxy_config::{
    AuthorizationAction, AuthorizationPolicy, AuthorizationRule, AuthzCondition, AuthzOperation,
    AuthzSource, Cidr, InboundConfig, InboundPort, InboundUpstream, JwtRule, MtlsMode, Protocol,
};

mod ingress;

use self::ingress::SidecarInbound;
use super::Context;
use crate::registry::{ServiceSource, TargetPort, named_container_port};
use crate::selector::{applicable_sidecar, selects};
use crate::unsupported::Origin;
use crate::view::{ClusterView, name_of, namespace_of};

/// The inbound side of the proxy: its ports (the applicable Sidecar's ingress listeners, else
/// those of the Services selecting it) with their mTLS modes, default endpoints and
/// connection pools, and its policies.
pub(crate) fn build(context: &mut Context<'_>) -> InboundConfig {
    let sidecar = applicable_sidecar(context.view, context.target)
        .map(|sidecar| SidecarInbound::new(context, sidecar))
        .unwrap_or_default();
    let mut ports = match sidecar.ports.clone() {
        Some(ports) => ports,
        None => workload_ports(context),
    };
    sidecar.apply_pools(&mut ports);
    let (default_mtls_mode, port_modes) = peer_authentication(context);
    for entry in ports.values_mut() {
        entry.mtls_mode = default_mtls_mode;
    }
    for (port, mode) in port_modes {
        ports
            .entry(port)
            .or_insert(InboundPort::new(port, Protocol::Unknown, mode))
            .mtls_mode = mode;
    }
    InboundConfig {
        default_mtls_mode,
        upstream: InboundUpstream::OriginalDestination,
        ports: ports.into_values().collect(),
        authorization_policies: authorization_policies(context),
        jwt_rules: jwt_rules(context),
    }
}

/// The workload's ports: the target ports of the Kubernetes Services in its namespace whose
/// selector selects it (named target ports resolved through the pod's container ports), and
/// of the ServiceEntries in its namespace whose `workloadSelector` selects it (a
/// WorkloadEntry's `ports` map overrides by port name). A declared protocol beats `Unknown`.
fn workload_ports(context: &Context<'_>) -> BTreeMap<u16, InboundPort> {
    let target = context.target;
    let view = context.view;
    let pod = (!target.is_workload_entry)
        .then(|| view.pod(&target.namespace, &target.instance_name))
        .flatten();
    let entry = target
        .is_workload_entry
        .then(|| view.workload_entry(&target.namespace, &target.instance_name))
        .flatten();
    let mut ports: BTreeMap<u16, InboundPort> = BTreeMap::new();
    for service in view.registry().services() {
        if service.namespace != target.namespace {
            continue;
        }
        let selected = match &service.source {
            ServiceSource::Kubernetes { selector } => {
                !target.is_workload_entry
                    && selector.as_ref().is_some_and(|selector| {
                        !selector.is_empty() && selects(selector, &target.labels)
                    })
            }
            ServiceSource::ServiceEntry { workload_selector } => workload_selector
                .as_ref()
                .is_some_and(|selector| selects(selector, &target.labels)),
        };
        if !selected {
            continue;
        }
        for port in &service.ports {
            let overridden = entry
                .and_then(|entry| entry.spec.ports.get(&port.name))
                .and_then(|number| u16::try_from(*number).ok());
            let number = match (&port.target_port, overridden) {
                (_, Some(number)) => Some(number),
                (TargetPort::Number(number), None) => Some(*number),
                (TargetPort::Name(name), None) => {
                    pod.and_then(|pod| named_container_port(pod, name))
                }
            };
            let Some(number) = number else { continue };
            let slot = ports.entry(number).or_insert(InboundPort::new(
                number,
                port.protocol,
                MtlsMode::Permissive,
            ));
            if slot.protocol == Protocol::Unknown {
                slot.protocol = port.protocol;
            }
        }
    }
    ports
}

/// The workload's mTLS mode and port-level overrides, by Istio's precedence: the oldest
/// policy in the workload's namespace whose selector selects it, over the oldest
/// namespace-wide policy, over the oldest mesh-wide policy (root namespace, no selector), over
/// `PERMISSIVE`; `UNSET` inherits from the next level. Selector policies in the root namespace
/// are ignored, as Istio documents. Port-level modes (`portLevelMtls`,
/// keyed by workload port) come from the workload policy only, as in Istio; `UNSET` there
/// inherits the workload's mode.
fn peer_authentication(context: &Context<'_>) -> (MtlsMode, Vec<(u16, MtlsMode)>) {
    let target = context.target;
    let view = context.view;
    let policies = &view.objects().peer_authentications;
    // Istio ignores selector policies in the root namespace.
    let in_root = target.namespace == view.mesh().root_namespace;
    let workload = policies.iter().find(|policy| {
        !in_root
            && namespace_of(&policy.metadata) == target.namespace
            && policy.spec.selector.as_ref().is_some_and(|selector| {
                !selector.match_labels.is_empty() && selects(&selector.match_labels, &target.labels)
            })
    });
    let inherited = inferred_service_mtls(view, &target.namespace);
    let mode = workload.and_then(mode_of).unwrap_or(inherited);
    let port_modes = workload
        .map(|policy| {
            policy
                .spec
                .port_level_mtls
                .iter()
                .filter_map(|(port, setting)| {
                    let port = u16::try_from(*port).ok()?;
                    let port_mode = setting.mode.and_then(convert).unwrap_or(mode);
                    Some((port, port_mode))
                })
                .collect()
        })
        .unwrap_or_default();
    (mode, port_modes)
}

/// The mTLS mode of `namespace` without workload policies: the namespace-wide
/// PeerAuthentication, else the mesh-wide one in the root namespace, else `PERMISSIVE`
/// (`UNSET` inherits). Used for inbound inheritance and for auto mTLS towards a service.
pub(crate) fn inferred_service_mtls(view: &ClusterView, namespace: &str) -> MtlsMode {
    let policies = &view.objects().peer_authentications;
    let wide = |ns: &str| {
        policies.iter().find(|policy| {
            namespace_of(&policy.metadata) == ns
                && policy
                    .spec
                    .selector
                    .as_ref()
                    .is_none_or(|selector| selector.match_labels.is_empty())
        })
    };
    wide(namespace)
        .and_then(mode_of)
        .or_else(|| wide(&view.mesh().root_namespace).and_then(mode_of))
        .unwrap_or(MtlsMode::Permissive)
}

fn mode_of(policy: &PeerAuthentication) -> Option<MtlsMode> {
    policy
        .spec
        .mtls
        .as_ref()
        .and_then(|mtls| mtls.mode)
        .and_then(convert)
}

fn convert(mode: CrdMtls) -> Option<MtlsMode> {
    match mode {
        CrdMtls::Unset => None,
        CrdMtls::Disable => Some(MtlsMode::Disable),
        CrdMtls::Permissive => Some(MtlsMode::Permissive),
        CrdMtls::Strict => Some(MtlsMode::Strict),
    }
}

/// Whether a policy with `selector` in `namespace` applies to the target: policies of the
/// workload's namespace, and of the root namespace (mesh-wide), without selector or whose
/// selector selects the workload.
fn applies(
    context: &Context<'_>,
    namespace: &str,
    selector: Option<&BTreeMap<String, String>>,
) -> bool {
    let target = context.target;
    (namespace == target.namespace || namespace == context.view.mesh().root_namespace)
        && selector.is_none_or(|selector| selects(selector, &target.labels))
}

/// The AuthorizationPolicies that select the workload, translated. Policies with
/// `targetRef`/`targetRefs` attach to gateways and waypoints, not sidecars, and are skipped.
fn authorization_policies(context: &mut Context<'_>) -> Vec<AuthorizationPolicy> {
    let view = context.view;
    let mut out = Vec::new();
    for policy in &view.objects().authorization_policies {
        let namespace = namespace_of(&policy.metadata);
        let spec = &policy.spec;
        if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
            continue;
        }
        let selector = spec
            .selector
            .as_ref()
            .map(|selector| &selector.match_labels);
        if !applies(context, namespace, selector) {
            continue;
        }
        out.push(translate_policy(context, policy));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn translate_policy(context: &mut Context<'_>, policy: &CrdPolicy) -> AuthorizationPolicy {
    let namespace = namespace_of(&policy.metadata);
    let name = name_of(&policy.metadata);
    let origin = Origin {
        kind: "AuthorizationPolicy",
        namespace,
        name,
    };
    let spec = &policy.spec;
    if spec.provider.is_some() {
        context.warn(origin.unsupported(
            "spec.provider",
            "extension providers are not expressible; the CUSTOM policy's rules deny the requests \
             they match, as istiod does for a provider it cannot use",
        ));
    }
    let trust_domain = context.view.mesh().trust_domain.clone();
    let action = match spec.effective_action() {
        Action::Allow => AuthorizationAction::Allow,
        Action::Deny => AuthorizationAction::Deny,
        Action::Audit => AuthorizationAction::Audit,
        Action::Custom => AuthorizationAction::Custom,
    };
    let mut rules = Vec::new();
    for (rule_index, rule) in spec.rules.iter().enumerate() {
        let before = context.warnings.len();
        let rule_path = format!("spec.rules[{rule_index}]");
        let from = rule
            .from
            .iter()
            .enumerate()
            .filter_map(|(index, from)| {
                let source = from.source.as_ref()?;
                let path = format!("{rule_path}.from[{index}].source");
                let mut principals = source.principals.clone();
                let mut not_principals = source.not_principals.clone();
                // `serviceAccounts` (`<ns>/<sa>`) are principals of the mesh's trust domain.
                let as_principal = |account: &String| match account.split_once('/') {
                    Some((ns, sa)) => format!("{trust_domain}/ns/{ns}/sa/{sa}"),
                    None => format!("{trust_domain}/ns/{namespace}/sa/{account}"),
                };
                if !source.service_accounts.is_empty() {
                    if principals.is_empty() {
                        principals = source.service_accounts.iter().map(as_principal).collect();
                    } else {
                        context.warn(origin.unsupported(
                            format!("{path}.serviceAccounts"),
                            "serviceAccounts together with principals is not expressible \
                                 (both must match); only principals apply",
                        ));
                    }
                }
                not_principals.extend(source.not_service_accounts.iter().map(as_principal));
                let mut cidrs = |blocks: &[String], field: &str| -> Vec<Cidr> {
                    parse_each(
                        context,
                        &origin,
                        blocks,
                        &format!("{path}.{field}"),
                        "an IP block",
                    )
                };
                let ip_blocks = cidrs(&source.ip_blocks, "ipBlocks");
                let not_ip_blocks = cidrs(&source.not_ip_blocks, "notIpBlocks");
                let remote_ip_blocks = cidrs(&source.remote_ip_blocks, "remoteIpBlocks");
                let not_remote_ip_blocks = cidrs(&source.not_remote_ip_blocks, "notRemoteIpBlocks");
                Some(AuthzSource {
                    principals,
                    not_principals,
                    request_principals: source.request_principals.clone(),
                    not_request_principals: source.not_request_principals.clone(),
                    namespaces: source.namespaces.clone(),
                    not_namespaces: source.not_namespaces.clone(),
                    ip_blocks,
                    not_ip_blocks,
                    remote_ip_blocks,
                    not_remote_ip_blocks,
                })
            })
            .collect();
        let to = rule
            .to
            .iter()
            .enumerate()
            .filter_map(|(index, to)| {
                let operation = to.operation.as_ref()?;
                let path = format!("{rule_path}.to[{index}].operation");
                let mut numbers = |ports: &[String], field: &str| -> Vec<u16> {
                    parse_each(
                        context,
                        &origin,
                        ports,
                        &format!("{path}.{field}"),
                        "a port number",
                    )
                };
                let ports = numbers(&operation.ports, "ports");
                let not_ports = numbers(&operation.not_ports, "notPorts");
                Some(AuthzOperation {
                    hosts: operation.hosts.clone(),
                    not_hosts: operation.not_hosts.clone(),
                    ports,
                    not_ports,
                    methods: operation.methods.clone(),
                    not_methods: operation.not_methods.clone(),
                    paths: operation.paths.clone(),
                    not_paths: operation.not_paths.clone(),
                })
            })
            .collect();
        let when = rule
            .when
            .iter()
            .map(|condition| AuthzCondition {
                key: condition.key.clone(),
                values: condition.values.clone(),
                not_values: condition.not_values.clone(),
            })
            .collect();
        // Ignoring a condition widens a rule: harmless for DENY (it denies more), unsafe
        // for ALLOW, whose rule is then left out so the policy fails closed.
        if context.warnings.len() > before && action != AuthorizationAction::Deny {
            context.warn(origin.unsupported(
                rule_path,
                "the rule uses fields that are not expressible; it is left out of this \
                     non-DENY policy so that it cannot allow more than written",
            ));
            continue;
        }
        rules.push(AuthorizationRule { from, to, when });
    }
    AuthorizationPolicy {
        name: format!("{namespace}/{name}"),
        action,
        rules,
    }
}

/// Parses every entry of `values` as a `T`. An entry that does not parse is reported as
/// unsupported at `<path>[<index>]` (`"<value>" is not <what>; ignored`) and left out, so a
/// policy never silently carries a value the proxy cannot evaluate.
fn parse_each<T: std::str::FromStr>(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    values: &[String],
    path: &str,
    what: &str,
) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| match value.parse() {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                context.warn(origin.unsupported(
                    format!("{path}[{index}]"),
                    format!("{value:?} is not {what}; ignored"),
                ));
                None
            }
        })
        .collect()
}

/// The JWT rules of the RequestAuthentications that select the workload, in policy order
/// (Istio `JWTRule`, field for field; `jwks` from the view's fetched sets when not inline).
fn jwt_rules(context: &mut Context<'_>) -> Vec<JwtRule> {
    let view = context.view;
    let mut out = Vec::new();
    for policy in &view.objects().request_authentications {
        let namespace = namespace_of(&policy.metadata);
        let spec = &policy.spec;
        if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
            continue;
        }
        let selector = spec
            .selector
            .as_ref()
            .map(|selector| &selector.match_labels);
        if !applies(context, namespace, selector) {
            continue;
        }
        out.extend(translate_jwt(context, policy));
    }
    out
}

fn translate_jwt(context: &Context<'_>, policy: &RequestAuthentication) -> Vec<JwtRule> {
    policy
        .spec
        .jwt_rules
        .iter()
        .map(|rule| {
            JwtRule {
                issuer: rule.issuer.clone(),
                audiences: rule.audiences.clone(),
                jwks_uri: rule.jwks_uri().map(str::to_owned),
                // Inline `jwks` wins; else the set the control plane fetched from `jwksUri` or
                // the issuer's OpenID discovery (view::jwks).
                jwks: rule
                    .jwks
                    .clone()
                    .or_else(|| context.view.jwt_rule_jwks(rule).map(str::to_owned)),
                from_headers: rule
                    .from_headers
                    .iter()
                    .map(|header| {
                        (
                            header.name.clone(),
                            header.prefix.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
                from_params: rule.from_params.clone(),
                forward_original_token: rule.forward_original_token.unwrap_or(false),
                output_payload_to_header: rule.output_payload_to_header.clone(),
                from_cookies: rule.from_cookies.clone(),
                output_claim_to_headers: rule
                    .output_claim_to_headers
                    .iter()
                    .map(|mapping| (mapping.header.clone(), mapping.claim.clone()))
                    .collect(),
            }
        })
        .collect()
}
