//! Host indexes of VirtualServices and DestinationRules, computed once per view so that
//! per-proxy lookups neither resolve short names nor scan every object.

use std::collections::HashMap;

use crate::host::{ExportTo, host_matches, resolve_host};

use super::{ClusterObjects, MeshSettings, namespace_of};

/// Objects of one kind by resolved host: exact names in a map, wildcards in a list.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostIndex {
    exact: HashMap<String, Vec<usize>>,
    wildcards: Vec<(String, usize)>,
    /// Each object's `exportTo`, by the object's index in its list.
    pub export_to: Vec<ExportTo>,
}

impl HostIndex {
    fn insert(&mut self, host: String, index: usize) {
        if host.starts_with('*') {
            self.wildcards.push((host, index));
        } else {
            self.exact.entry(host).or_default().push(index);
        }
    }

    /// The (resolved host pattern, object index) pairs whose pattern covers `hostname`
    /// (see [`host_matches`]).
    pub fn matching<'s>(&'s self, hostname: &'s str) -> impl Iterator<Item = (&'s str, usize)> {
        let exact = self
            .exact
            .get_key_value(hostname)
            .into_iter()
            .flat_map(|(host, indexes)| indexes.iter().map(move |index| (host.as_str(), *index)));
        let wildcards = self
            .wildcards
            .iter()
            .filter(move |(pattern, _)| host_matches(pattern, hostname))
            .map(|(pattern, index)| (pattern.as_str(), *index));
        exact.chain(wildcards)
    }
}

/// The VirtualService and DestinationRule host indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct MeshIndex {
    /// VirtualServices by each of their `hosts`, resolved in their namespace.
    pub virtual_services: HostIndex,
    /// DestinationRules by their `host`, resolved in their namespace.
    pub destination_rules: HostIndex,
}

impl MeshIndex {
    /// Indexes every VirtualService host and DestinationRule host of `objects`, resolved with
    /// `mesh`'s cluster domain, and their `exportTo` lists.
    pub fn build(mesh: &MeshSettings, objects: &ClusterObjects) -> Self {
        let mut index = Self::default();
        for (position, vs) in objects.virtual_services.iter().enumerate() {
            let namespace = namespace_of(&vs.metadata);
            for host in &vs.spec.hosts {
                let host = resolve_host(host, namespace, &mesh.cluster_domain);
                index.virtual_services.insert(host, position);
            }
            index
                .virtual_services
                .export_to
                .push(ExportTo::parse(&vs.spec.export_to, namespace));
        }
        for (position, rule) in objects.destination_rules.iter().enumerate() {
            let namespace = namespace_of(&rule.metadata);
            let host = resolve_host(&rule.spec.host, namespace, &mesh.cluster_domain);
            index.destination_rules.insert(host, position);
            index
                .destination_rules
                .export_to
                .push(ExportTo::parse(&rule.spec.export_to, namespace));
        }
        index
    }
}
