//! Leader election on the `coordination.k8s.io/v1` Lease `weft-operator-leader` in the
//! operator's namespace, with the `kube-lease-manager` crate (server-side apply on the Lease,
//! renewal before expiry, release when the watch channel closes).
//!
//! Only the leader writes (Citadel, webhook configurations, later status); every replica
//! serves webhooks and discovery. [`supervise`] runs the leader's work while a leadership
//! signal is `true` and cancels it as soon as it turns `false` or the process shuts down.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The Lease's name (install contract).
pub const LEASE_NAME: &str = "weft-operator-leader";

/// How long a lease stays valid after its last renewal, seconds (Kubernetes controllers'
/// `--leader-elect-lease-duration` default, 15 s).
pub const LEASE_DURATION_SECONDS: u64 = 15;

/// How long before expiry the holder renews, seconds: renewal 10 s after the last one, as the
/// controllers' `--leader-elect-renew-deadline` default.
pub const LEASE_GRACE_SECONDS: u64 = 5;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// Whether this replica leads, as controller-runtime's `leader_election_master_status{name}`
/// gauge (1 while leading, 0 otherwise), so that dashboards made for Kubernetes controllers
/// work unchanged.
#[derive(Clone, Debug)]
pub struct LeaderMetrics {
    status: Family<LeaseLabels, Gauge>,
}

impl LeaderMetrics {
    /// The gauge registered in `registry` as `leader_election_master_status{name=
    /// "weft-operator-leader"}`, starting at 0.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = LeaderMetrics {
            status: Family::default(),
        };
        registry.register(
            "leader_election_master_status",
            "1 while this replica holds the leader lease, 0 otherwise",
            metrics.status.clone(),
        );
        metrics.set_leader(false);
        metrics
    }

    /// Sets the gauge to 1 (`true`) or 0.
    pub fn set_leader(&self, leader: bool) {
        self.status
            .get_or_create(&LeaseLabels {
                name: LEASE_NAME.to_string(),
            })
            .set(i64::from(leader));
    }
}

/// Runs `work` (given a token cancelled when leadership ends) each time `leader` turns `true`,
/// cancels it and waits for it to finish when `leader` turns `false`, and returns once
/// `shutdown` is cancelled (after the running work finished) or the signal's sender is gone.
/// Returns how many terms of leadership started.
pub async fn supervise<F, Fut>(
    mut leader: watch::Receiver<bool>,
    shutdown: CancellationToken,
    mut work: F,
) -> usize
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut terms = 0;
    loop {
        // Wait to become leader.
        loop {
            if *leader.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = leader.changed() => if changed.is_err() { return terms },
                _ = shutdown.cancelled() => return terms,
            }
        }
        terms += 1;
        tracing::info!(lease = LEASE_NAME, "became the leader");
        let term = shutdown.child_token();
        let task = tokio::spawn(work(term.clone()));
        let lost = loop {
            tokio::select! {
                changed = leader.changed() => match changed {
                    Err(_) => break true,
                    Ok(()) if !*leader.borrow_and_update() => break false,
                    Ok(()) => {}
                },
                _ = shutdown.cancelled() => break true,
            }
        };
        term.cancel();
        if let Err(error) = task.await {
            tracing::error!(%error, "leader work ended abnormally");
        }
        if lost {
            return terms;
        }
        tracing::warn!(
            lease = LEASE_NAME,
            "lost the leadership; leader work stopped"
        );
    }
}

/// Joins the election as `identity` (the pod name) and returns the leadership signal plus the
/// task that renews the lease; the lease is released when every receiver is dropped (await the
/// task after dropping them so that the release happens before exit). Needs RBAC get, create
/// and patch on Leases in `namespace`. Errors: the crate's, when the Lease cannot be read or
/// created.
pub async fn elect(
    client: Client,
    namespace: &str,
    identity: &str,
) -> Result<
    (
        watch::Receiver<bool>,
        tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    ),
    LeaseManagerError,
> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .build()
        .await?;
    Ok(manager.watch().await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A work function counting starts and finishes (a finish is only reached on cancel).
    fn counting(
        started: Arc<AtomicUsize>,
        finished: Arc<AtomicUsize>,
    ) -> impl FnMut(CancellationToken) -> futures::future::BoxFuture<'static, ()> {
        move |token| {
            let (started, finished) = (started.clone(), finished.clone());
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                token.cancelled().await;
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }
    }

    #[tokio::test]
    async fn work_runs_only_while_leader_and_stops_on_loss_and_shutdown() {
        let (tx, rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let supervisor = tokio::spawn(supervise(
            rx,
            shutdown.clone(),
            counting(started.clone(), finished.clone()),
        ));
        tokio::task::yield_now().await;
        assert_eq!(started.load(Ordering::SeqCst), 0, "not leader yet");

        // Term 1, lost; term 2, ended by shutdown.
        for (term, end) in [(1, "lose"), (2, "shutdown")] {
            tx.send(true).unwrap();
            while started.load(Ordering::SeqCst) < term {
                tokio::task::yield_now().await;
            }
            assert_eq!(
                finished.load(Ordering::SeqCst),
                term - 1,
                "term {term} running"
            );
            if end == "lose" {
                tx.send(false).unwrap();
                while finished.load(Ordering::SeqCst) < term {
                    tokio::task::yield_now().await;
                }
            } else {
                shutdown.cancel();
            }
        }
        assert_eq!(supervisor.await.unwrap(), 2);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            2,
            "the work was cancelled and awaited"
        );
    }

    #[tokio::test]
    async fn a_closed_signal_ends_supervision() {
        let (tx, rx) = watch::channel(false);
        drop(tx);
        let terms = supervise(rx, CancellationToken::new(), |_| async {}).await;
        assert_eq!(terms, 0);
    }
}
