//! Label selection (Istio `WorkloadSelector.matchLabels`, Kubernetes Service `selector`).

use std::collections::BTreeMap;

/// Whether `labels` carry every key/value of `selector`. An empty selector selects everything,
/// as Istio's `matchLabels` does.
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_of_labels_is_selected() {
        let labels = BTreeMap::from([
            ("app".to_owned(), "reviews".to_owned()),
            ("version".to_owned(), "v1".to_owned()),
        ]);
        assert!(selects(&BTreeMap::new(), &labels));
        assert!(selects(
            &BTreeMap::from([("app".to_owned(), "reviews".to_owned())]),
            &labels
        ));
        assert!(!selects(
            &BTreeMap::from([("version".to_owned(), "v2".to_owned())]),
            &labels
        ));
    }
}
