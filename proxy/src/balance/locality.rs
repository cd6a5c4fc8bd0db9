//! Locality load balancing (Istio `LocalityLoadBalancerSetting`, applied by the proxy against
//! its own locality and labels the way Istio's Pilot applies it per proxy when building
//! endpoints) and Envoy's priority and locality-weight arithmetic:
//!
//! - [`plan`]: each endpoint's priority (Istio `applyLocalityFailover`,
//!   `applyFailoverPriorities`) or, with `distribute`, its locality's weight (Istio
//!   `applyLocalityWeights`), or its removal.
//! - [`priority_loads`]: how traffic splits over priority levels by their health, with
//!   Envoy's overprovisioning factor 1.4 (Envoy "Priority levels").
//! - [`availability`]: how much of a locality's weight stays usable with some of its
//!   endpoints ejected (Envoy "Locality weighted load balancing").

use std::collections::BTreeMap;

use weft_proxy_config::{Endpoint, Locality, LocalityLbSetting};

/// Envoy's default overprovisioning factor (1.4), which Istio keeps: a level (or locality)
/// with at least 1/1.4 ≈ 71 % of its endpoints healthy still takes its full share.
pub const OVERPROVISIONING_FACTOR: f64 = 1.4;

/// Where the proxy runs and what it is, as locality load balancing reads it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The proxy's locality (Envoy's node locality).
    pub locality: &'a Locality,
    /// The proxy's workload labels (for `failoverPriority`).
    pub labels: &'a BTreeMap<String, String>,
}

/// Where one endpoint goes in the balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The priority level, 0 best, consecutive from 0.
    pub priority: u32,
    /// With `distribute`: the endpoint's locality and that locality's weight (Envoy's
    /// `LocalityLbEndpoints.load_balancing_weight`); `None` without locality weights.
    pub locality_weight: Option<(Locality, u64)>,
}

/// The placement of each of `endpoints` (in order; `None`: the endpoint gets no traffic,
/// as Istio empties localities a matching `distribute` rule does not name) for a proxy at
/// `origin` under `setting` (`None`: the mesh default, enabled with no rules), when outlier
/// detection is `failover_enabled` (Istio applies failover priorities only then: "failover
/// needs outlier detection").
///
/// Without a known proxy region, or with `enabled: false`, every endpoint is priority 0.
pub fn plan(
    origin: Origin<'_>,
    setting: Option<&LocalityLbSetting>,
    endpoints: &[Endpoint],
    failover_enabled: bool,
) -> Vec<Option<Placement>> {
    let flat = || {
        endpoints
            .iter()
            .map(|_| {
                Some(Placement {
                    priority: 0,
                    locality_weight: None,
                })
            })
            .collect()
    };
    let default_setting = LocalityLbSetting::default();
    let setting = setting.unwrap_or(&default_setting);
    if !setting.enabled {
        return flat();
    }
    if !setting.distribute.is_empty() {
        return distribute(origin.locality, setting, endpoints).unwrap_or_else(flat);
    }
    if !failover_enabled {
        return flat();
    }
    let raw: Vec<u32> = if !setting.failover_priority.is_empty() {
        let by_labels = endpoints
            .iter()
            .map(|endpoint| label_priority(origin, &setting.failover_priority, endpoint));
        if setting.failover.is_empty() {
            by_labels.collect()
        } else {
            // Istio: a level of the label order, then the locality order within it (at most
            // five locality priorities, hence the factor).
            by_labels
                .zip(endpoints)
                .map(|(priority, endpoint)| {
                    priority * 5 + locality_priority(origin.locality, setting, &endpoint.locality)
                })
                .collect()
        }
    } else if origin.locality.region.is_empty() {
        return flat();
    } else {
        endpoints
            .iter()
            .map(|endpoint| locality_priority(origin.locality, setting, &endpoint.locality))
            .collect()
    };
    // Priorities must run from 0 without gaps (Envoy's rule; Istio renumbers the same way).
    let mut used: Vec<u32> = raw.clone();
    used.sort_unstable();
    used.dedup();
    raw.iter()
        .map(|priority| {
            Some(Placement {
                priority: used.partition_point(|used| used < priority) as u32,
                locality_weight: None,
            })
        })
        .collect()
}

/// Istio's `LbPriority` with `failover`: 0 same region, zone and sub-zone; 1 same region and
/// zone; 2 same region; 3 another region (or the `failover` target of the proxy's region,
/// when a rule names it); 4 a region the proxy's `failover` rule does not name.
fn locality_priority(own: &Locality, setting: &LocalityLbSetting, endpoint: &Locality) -> u32 {
    if endpoint.region == own.region {
        if endpoint.zone != own.zone {
            2
        } else if endpoint.sub_zone != own.sub_zone {
            1
        } else {
            0
        }
    } else {
        match setting.failover.iter().find(|rule| rule.from == own.region) {
            Some(rule) if rule.to != endpoint.region => 4,
            _ => 3,
        }
    }
}

/// Istio's `failoverPriority` order for one endpoint: 0 when it matches the proxy on every
/// label, else `N - j` where label `j` (0-based) is the first that differs. A `key=value`
/// entry compares the endpoint with `value` instead of the proxy's own label; the topology
/// labels fall back to the localities, as Istio adds them to both label sets.
fn label_priority(origin: Origin<'_>, labels: &[String], endpoint: &Endpoint) -> u32 {
    let count = labels.len() as u32;
    for (index, entry) in labels.iter().enumerate() {
        let (key, wanted) = match entry.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (entry.as_str(), None),
        };
        let proxy_value = wanted.or_else(|| {
            origin
                .labels
                .get(key)
                .map(String::as_str)
                .or_else(|| origin.locality.label(key))
        });
        let endpoint_value = endpoint
            .labels
            .get(key)
            .map(String::as_str)
            .or_else(|| endpoint.locality.label(key));
        if proxy_value.unwrap_or_default() != endpoint_value.unwrap_or_default() {
            return count - index as u32;
        }
    }
    0
}

/// Istio's `applyLocalityWeights`: the first `distribute` rule whose `from` matches the proxy
/// gives each destination locality matched by one of its `to` patterns (patterns in sorted
/// order; a locality belongs to the first that matches) the weight
/// `ceil(own weight × pattern weight / total own weight of the pattern's localities)`, where
/// a locality's own weight is the sum of its endpoints' weights; endpoints of unmatched
/// localities are removed. `None` when no rule matches the proxy (nothing changes).
fn distribute(
    own: &Locality,
    setting: &LocalityLbSetting,
    endpoints: &[Endpoint],
) -> Option<Vec<Option<Placement>>> {
    let rule = setting
        .distribute
        .iter()
        .find(|rule| own.matches(&rule.from))?;
    // The destination localities with their own weights, in first-seen order.
    let mut localities: Vec<(&Locality, u64)> = Vec::new();
    for endpoint in endpoints {
        let weight = u64::from(endpoint.weight.max(1));
        match localities
            .iter_mut()
            .find(|(locality, _)| **locality == endpoint.locality)
        {
            Some((_, total)) => *total += weight,
            None => localities.push((&endpoint.locality, weight)),
        }
    }
    let mut weights: Vec<Option<u64>> = vec![None; localities.len()];
    for (pattern, weight) in &rule.to {
        let matched: Vec<usize> = (0..localities.len())
            .filter(|index| weights[*index].is_none() && localities[*index].0.matches(pattern))
            .collect();
        let total: u64 = matched.iter().map(|index| localities[*index].1).sum();
        for index in matched {
            // A zero weight removes the locality, as Istio leaves it without weight.
            weights[index] =
                Some((localities[index].1 * u64::from(*weight)).div_ceil(total.max(1)));
        }
    }
    Some(
        endpoints
            .iter()
            .map(|endpoint| {
                let index = localities
                    .iter()
                    .position(|(locality, _)| **locality == endpoint.locality)?;
                let weight = weights[index]?;
                (weight > 0).then(|| Placement {
                    priority: 0,
                    locality_weight: Some((endpoint.locality.clone(), weight)),
                })
            })
            .collect(),
    )
}

/// Envoy's priority load: the share of traffic (percent, summing to 100) each priority level
/// gets, from `(healthy, total)` endpoint counts per level, best first. A level's health is
/// `min(100, 1.4 × 100 × healthy / total)`; levels take their health in order until 100 % is
/// given, scaled up when the levels' health sums to less than 100 (Envoy's normalized total
/// health). With no healthy endpoint anywhere, the first level takes everything.
pub fn priority_loads(levels: &[(usize, usize)]) -> Vec<f64> {
    let health: Vec<f64> = levels
        .iter()
        .map(|(healthy, total)| availability(*healthy, *total) * 100.0)
        .collect();
    let total_health: f64 = health.iter().sum::<f64>().min(100.0);
    let mut loads = vec![0.0; levels.len()];
    if total_health <= 0.0 {
        if let Some(first) = loads.first_mut() {
            *first = 100.0;
        }
        return loads;
    }
    let mut remaining = 100.0;
    for (load, health) in loads.iter_mut().zip(&health) {
        let share = (health * 100.0 / total_health).min(remaining);
        *load = share;
        remaining -= share;
    }
    loads
}

/// The usable share (0–1) of a level's or locality's weight with `healthy` of `total`
/// endpoints healthy: `min(1, 1.4 × healthy / total)` (Envoy's overprovisioning factor).
pub fn availability(healthy: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (OVERPROVISIONING_FACTOR * healthy as f64 / total as f64).min(1.0)
}

#[cfg(test)]
mod tests;
