//! Per-proxy bookkeeping of the discovery server: what was sent, what was acknowledged, and the
//! decision to push — only when a proxy's computed config differs from what it last received.
//!
//! Pure: no sockets. The stream handler feeds it; `weftctl proxy-status` reads [`SyncStatus`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Identifies a connected proxy: its workload's namespace and name (pod or WorkloadEntry).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ProxyKey {
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub workload: String,
}

impl std::fmt::Display for ProxyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.workload, self.namespace)
    }
}

/// What the server knows of one stream.
#[derive(Debug, Clone)]
pub struct SessionState {
    /// Which proxy.
    pub key: ProxyKey,
    /// The peer's SPIFFE ID.
    pub peer: String,
    /// The proxy's software version.
    pub proxy_version: String,
    /// The last version pushed, and its nonce.
    pub sent: Option<(String, u64)>,
    /// The last version the proxy acknowledged.
    pub acked: Option<String>,
    /// The last refusal: version and reason.
    pub nacked: Option<(String, String)>,
    /// When the change that caused the unacknowledged push happened (for convergence time).
    pending_since: Option<Instant>,
    next_nonce: u64,
    /// The sequence number of the newest builder whose config for this proxy equals the one
    /// last sent (see `DiscoveryServer::update`).
    sent_seq: u64,
    /// The sequence number of the newest builder whose config for this proxy the proxy has
    /// acknowledged; `None` until the first ACK.
    acked_seq: Option<u64>,
}

/// A push to make: version, nonce. The caller sends the config it built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The content version.
    pub version: String,
    /// The nonce for this push.
    pub nonce: u64,
}

/// What an ACK or NACK meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// The proxy applied the current push; `convergence` is the time from the triggering change
    /// to this ACK, when known.
    Applied {
        /// Time from the change to the ACK.
        convergence: Option<Duration>,
    },
    /// The proxy refused the push and keeps its previous config.
    Refused,
    /// The ACK/NACK is for an older push (its nonce is not the latest); ignored, as xDS does.
    Stale,
}

impl SessionState {
    /// A new stream from `key`, authenticated as `peer`.
    pub fn new(key: ProxyKey, peer: String, proxy_version: String) -> Self {
        Self {
            key,
            peer,
            proxy_version,
            sent: None,
            acked: None,
            nacked: None,
            pending_since: None,
            next_nonce: 1,
            sent_seq: 0,
            acked_seq: None,
        }
    }

    /// Decides whether `version`, built by the builder with sequence number `seq`, must be
    /// pushed: yes when nothing was sent yet or the last sent version differs. `changed_at` is
    /// when the triggering config event happened (for the convergence histogram); `None` for the
    /// first push of a new stream, which no config event caused. Returns the push to make, or
    /// `None` (then the proxy's config is also current as of `seq`, see
    /// [`SessionState::current_with`]).
    pub fn plan_push(
        &mut self,
        version: &str,
        seq: u64,
        changed_at: Option<Instant>,
    ) -> Option<Push> {
        if self.sent.as_ref().is_some_and(|(v, _)| v == version) {
            self.current_with(seq);
            return None;
        }
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        self.sent = Some((version.to_string(), nonce));
        self.sent_seq = seq;
        if let Some(t) = changed_at {
            self.pending_since.get_or_insert(t);
        }
        Some(Push {
            version: version.to_string(),
            nonce,
        })
    }

    /// Plans sending the version last sent again, with a new nonce: the full config after the
    /// proxy NACKed the delta push with `nonce` (see `weft_discovery::ServerMessage::Delta`).
    /// `pending_since` is when the change behind it happened (as [`SessionState::nack`] forgot
    /// it; `None` when unknown), so the convergence time covers both pushes. Returns `None`
    /// when the last push is not the one with `nonce` (a newer push replaced it).
    pub fn plan_resend(&mut self, nonce: u64, pending_since: Option<Instant>) -> Option<Push> {
        let (version, sent_nonce) = self.sent.clone()?;
        if sent_nonce != nonce {
            return None;
        }
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        self.sent = Some((version.clone(), nonce));
        self.pending_since = pending_since;
        Some(Push { version, nonce })
    }

    /// When the change behind the unacknowledged push happened, if one is pending.
    pub fn pending_since(&self) -> Option<Instant> {
        self.pending_since
    }

    /// Records that the builder with sequence number `seq` gives this proxy the config it was
    /// last sent (same content, or a change that cannot affect it): if the proxy acknowledged
    /// that config, it is now current as of `seq`.
    pub fn current_with(&mut self, seq: u64) {
        if self.sent.is_none() || seq < self.sent_seq {
            return;
        }
        self.sent_seq = seq;
        let synced = matches!((&self.sent, &self.acked), (Some((s, _)), Some(a)) if s == a);
        if synced {
            self.acked_seq = Some(seq);
        }
    }

    /// The sequence number of the newest builder whose config for this proxy the proxy has
    /// acknowledged (`DiscoveryServer::update` numbers builders from 1); `None` before the
    /// first ACK.
    pub fn acked_seq(&self) -> Option<u64> {
        self.acked_seq
    }

    /// Records an ACK of (`version`, `nonce`) received at `now`.
    pub fn ack(&mut self, version: &str, nonce: u64, now: Instant) -> AckOutcome {
        match &self.sent {
            Some((v, n)) if *n == nonce && v == version => {
                self.acked = Some(version.to_string());
                self.acked_seq = Some(self.sent_seq);
                self.nacked = None;
                AckOutcome::Applied {
                    convergence: self.pending_since.take().map(|t| now.duration_since(t)),
                }
            }
            _ => AckOutcome::Stale,
        }
    }

    /// Records a NACK of (`version`, `nonce`) with the proxy's reason.
    pub fn nack(&mut self, version: &str, nonce: u64, reason: &str) -> AckOutcome {
        match &self.sent {
            Some((v, n)) if *n == nonce && v == version => {
                self.nacked = Some((version.to_string(), reason.to_string()));
                self.pending_since = None;
                AckOutcome::Refused
            }
            _ => AckOutcome::Stale,
        }
    }

    /// The sync status shown by `weftctl proxy-status`.
    pub fn status(&self) -> SyncStatus {
        let sent = self.sent.as_ref().map(|(v, _)| v.clone());
        let state = match (&sent, &self.acked, &self.nacked) {
            (None, _, _) => "NOT SENT",
            (Some(s), _, Some((n, _))) if s == n => "NACKED",
            (Some(s), Some(a), _) if s == a => "SYNCED",
            _ => "STALE",
        };
        SyncStatus {
            proxy: self.key.to_string(),
            peer: self.peer.clone(),
            proxy_version: self.proxy_version.clone(),
            sent,
            acked: self.acked.clone(),
            state: state.to_string(),
            nack_reason: self.nacked.as_ref().map(|(_, r)| r.clone()),
        }
    }
}

/// One row of `weftctl proxy-status` (Istio's `istioctl proxy-status`: SYNCED, STALE,
/// NOT SENT, plus NACKED with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncStatus {
    /// `<workload>.<namespace>`.
    pub proxy: String,
    /// The peer's SPIFFE ID.
    pub peer: String,
    /// The proxy's software version.
    pub proxy_version: String,
    /// The last version sent.
    pub sent: Option<String>,
    /// The last version acknowledged.
    pub acked: Option<String>,
    /// SYNCED, STALE, NOT SENT or NACKED.
    pub state: String,
    /// Why the proxy refused the last push, when it did.
    pub nack_reason: Option<String>,
}

/// All sessions, by stream id.
#[derive(Debug, Default)]
pub struct Sessions {
    streams: BTreeMap<u64, SessionState>,
    next_id: u64,
}

impl Sessions {
    /// Registers a stream and returns its id.
    pub fn open(&mut self, state: SessionState) -> u64 {
        self.next_id += 1;
        self.streams.insert(self.next_id, state);
        self.next_id
    }

    /// Forgets a stream.
    pub fn close(&mut self, id: u64) {
        self.streams.remove(&id);
    }

    /// The stream `id`.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut SessionState> {
        self.streams.get_mut(&id)
    }

    /// Every stream id with its proxy key.
    pub fn keys(&self) -> Vec<(u64, ProxyKey)> {
        self.streams
            .iter()
            .map(|(id, s)| (*id, s.key.clone()))
            .collect()
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Per proxy that was sent a config, the sequence number of the newest builder whose config
    /// it acknowledged (`None`: no ACK yet). Proxies that got no config (the build failed) are
    /// left out: no mesh object can reach them. Sorted by proxy.
    pub fn acked_seqs(&self) -> Vec<(ProxyKey, Option<u64>)> {
        let mut out: Vec<_> = self
            .streams
            .values()
            .filter(|s| s.sent.is_some())
            .map(|s| (s.key.clone(), s.acked_seq))
            .collect();
        out.sort();
        out
    }

    /// The status of every stream, sorted by proxy.
    pub fn statuses(&self) -> Vec<SyncStatus> {
        let mut out: Vec<_> = self.streams.values().map(SessionState::status).collect();
        out.sort_by(|a, b| a.proxy.cmp(&b.proxy));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionState {
        SessionState::new(
            ProxyKey {
                namespace: "demo".into(),
                workload: "reviews-v1".into(),
            },
            "spiffe://cluster.local/ns/demo/sa/reviews".into(),
            "0.1.0".into(),
        )
    }

    #[test]
    fn pushes_only_when_the_version_changes() {
        let mut s = session();
        let t0 = Instant::now();
        let p1 = s.plan_push("a", 1, Some(t0)).unwrap();
        assert_eq!(p1.nonce, 1);
        assert_eq!(
            s.plan_push("a", 1, Some(t0)),
            None,
            "same content is not pushed again"
        );
        let p2 = s.plan_push("b", 2, Some(t0)).unwrap();
        assert_eq!(p2.nonce, 2);
    }

    #[test]
    fn ack_of_the_latest_push_converges_and_stale_acks_are_ignored() {
        let mut s = session();
        let t0 = Instant::now();
        let p1 = s.plan_push("a", 1, Some(t0)).unwrap();
        let p2 = s.plan_push("b", 2, Some(t0)).unwrap();
        assert_eq!(s.ack("a", p1.nonce, t0), AckOutcome::Stale);
        assert_eq!(s.status().state, "STALE");
        let later = t0 + Duration::from_millis(40);
        assert_eq!(
            s.ack("b", p2.nonce, later),
            AckOutcome::Applied {
                convergence: Some(Duration::from_millis(40))
            }
        );
        assert_eq!(s.status().state, "SYNCED");
    }

    #[test]
    fn nack_is_recorded_with_its_reason() {
        let mut s = session();
        let p = s.plan_push("a", 1, Some(Instant::now())).unwrap();
        assert_eq!(
            s.nack("a", p.nonce, "cluster x missing"),
            AckOutcome::Refused
        );
        let st = s.status();
        assert_eq!(st.state, "NACKED");
        assert_eq!(st.nack_reason.as_deref(), Some("cluster x missing"));
    }

    #[test]
    fn a_resend_after_a_nack_has_a_new_nonce_and_converges_from_the_change() {
        let mut s = session();
        let t0 = Instant::now();
        assert_eq!(s.plan_resend(1, None), None, "nothing sent yet");
        let p1 = s.plan_push("a", 1, Some(t0)).unwrap();
        let since = s.pending_since();
        assert_eq!(since, Some(t0));
        assert_eq!(
            s.nack("a", p1.nonce, "delta base mismatch"),
            AckOutcome::Refused
        );
        let p2 = s.plan_resend(p1.nonce, since).unwrap();
        assert_eq!(s.plan_resend(p1.nonce, since), None, "p2 replaced p1");
        assert_eq!(p2.version, "a");
        assert!(p2.nonce > p1.nonce);
        assert_eq!(s.ack("a", p1.nonce, t0), AckOutcome::Stale, "old nonce");
        assert_eq!(
            s.ack("a", p2.nonce, t0 + Duration::from_millis(30)),
            AckOutcome::Applied {
                convergence: Some(Duration::from_millis(30))
            }
        );
        assert_eq!(s.status().state, "SYNCED");
    }

    #[test]
    fn acked_sequence_follows_acks_and_unchanged_rebuilds() {
        let mut s = session();
        let t0 = Instant::now();
        assert_eq!(s.acked_seq(), None);
        let p1 = s.plan_push("a", 1, Some(t0)).unwrap();
        s.current_with(2);
        assert_eq!(s.acked_seq(), None, "nothing acknowledged yet");
        s.ack("a", p1.nonce, t0);
        assert_eq!(
            s.acked_seq(),
            Some(2),
            "the ACK covers every builder giving `a`"
        );
        assert_eq!(s.plan_push("a", 3, Some(t0)), None);
        assert_eq!(s.acked_seq(), Some(3), "same content from builder 3");
        let p4 = s.plan_push("b", 4, Some(t0)).unwrap();
        s.current_with(5);
        assert_eq!(s.acked_seq(), Some(3), "`b` is not acknowledged yet");
        s.nack("b", p4.nonce, "bad");
        assert_eq!(
            s.acked_seq(),
            Some(3),
            "a NACK keeps the last acknowledged config"
        );
        s.current_with(1);
        assert_eq!(
            s.acked_seq(),
            Some(3),
            "an older builder never moves it back"
        );
    }
}
