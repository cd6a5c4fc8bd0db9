//! Which proxies a change affects.

use crate::build::build_proxy_config;
use crate::proxy::ProxyTarget;
use crate::view::ClusterView;

/// The proxies of `after` (see [`ProxyTarget::all`]) whose configuration differs between
/// `before` and `after`, by content hash; a proxy new in `after` counts as affected. Costs two
/// builds per proxy: the discovery server may prefer comparing hashes it already holds.
pub fn affected_proxies(before: &ClusterView, after: &ClusterView) -> Vec<ProxyTarget> {
    ProxyTarget::all(after)
        .into_iter()
        .filter(|target| {
            let new = build_proxy_config(after, target).config.version;
            let old = build_proxy_config(before, target).config.version;
            new != old
        })
        .collect()
}
