//! Circuit breaking (Istio `ConnectionPoolSettings`, Envoy's cluster circuit breakers): caps on
//! concurrent requests and concurrent retries per cluster. A request over the cap fails at once
//! with 503 and flag `UO`; a retry over the retry cap is not made.
//!
//! The upstream pool (`upstream/pool.rs`) keeps no queue of its own: a request either gets a
//! ready connection or opens one. So Envoy's limits are mapped onto concurrency: an HTTP/1.1 connection carries one request at a time, so `maxConnections +
//! http1MaxPendingRequests` concurrent requests are allowed; `http2MaxRequests` caps requests
//! for every protocol; `maxConnections` caps TCP connections. Counters survive config updates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use weft_proxy_config::ConnectionPoolSettings;

/// Live counters of one cluster, shared by the snapshots that contain it.
#[derive(Debug, Default)]
pub struct Counters {
    active: AtomicU32,
    retries: AtomicU32,
}

/// A cluster's limits with its counters.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    counters: Arc<Counters>,
    max_requests: u32,
    max_connections: u32,
    max_retries: u32,
}

/// One admitted request, retry or connection; releases its slot when dropped.
#[derive(Debug)]
pub struct Permit {
    counters: Arc<Counters>,
    retry: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let counter = if self.retry {
            &self.counters.retries
        } else {
            &self.counters.active
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CircuitBreaker {
    /// The limits of `pool` over `counters` (reuse the previous snapshot's counters so that
    /// in-flight requests keep counting). `http2` selects how HTTP requests are capped.
    pub fn new(pool: &ConnectionPoolSettings, http2: bool, counters: Arc<Counters>) -> Self {
        let unlimited = u32::MAX;
        let by_connections = if http2 {
            unlimited
        } else {
            match (
                pool.tcp.max_connections,
                pool.http.http1_max_pending_requests,
            ) {
                (Some(connections), Some(pending)) => connections.saturating_add(pending),
                (Some(connections), None) => connections.saturating_add(1024),
                (None, _) => unlimited,
            }
        };
        Self {
            counters,
            max_requests: by_connections.min(pool.http.http2_max_requests.unwrap_or(unlimited)),
            max_connections: pool.tcp.max_connections.unwrap_or(unlimited),
            max_retries: pool.http.max_retries.unwrap_or(unlimited),
        }
    }

    /// The shared counters (to carry over into the next snapshot).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn acquire(&self, retry: bool, limit: u32) -> Option<Permit> {
        let counter = if retry {
            &self.counters.retries
        } else {
            &self.counters.active
        };
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                (current < limit).then_some(current + 1)
            })
            .ok()?;
        Some(Permit {
            counters: Arc::clone(&self.counters),
            retry,
        })
    }

    /// Admits one HTTP request, or `None` on overflow (503 `UO`).
    pub fn request(&self) -> Option<Permit> {
        self.acquire(false, self.max_requests)
    }

    /// Admits one TCP connection, or `None` on overflow (closed, `UO`).
    pub fn connection(&self) -> Option<Permit> {
        self.acquire(false, self.max_connections)
    }

    /// Admits one retry, or `None` when `maxRetries` retries are already in flight.
    pub fn retry(&self) -> Option<Permit> {
        self.acquire(true, self.max_retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(
        connections: Option<u32>,
        pending: Option<u32>,
        retries: Option<u32>,
    ) -> ConnectionPoolSettings {
        let mut pool = ConnectionPoolSettings::default();
        pool.tcp.max_connections = connections;
        pool.http.http1_max_pending_requests = pending;
        pool.http.max_retries = retries;
        pool
    }

    #[test]
    fn http1_requests_are_capped_at_connections_plus_pending() {
        let breaker = CircuitBreaker::new(&pool(Some(1), Some(1), None), false, Arc::default());
        let first = breaker.request().unwrap();
        let _second = breaker.request().unwrap();
        assert!(breaker.request().is_none());
        drop(first);
        assert!(breaker.request().is_some());
    }

    #[test]
    fn retries_have_their_own_cap() {
        let breaker = CircuitBreaker::new(&pool(None, None, Some(1)), false, Arc::default());
        let _retry = breaker.retry().unwrap();
        assert!(breaker.retry().is_none());
        assert!(breaker.request().is_some());
    }

    #[test]
    fn counters_are_shared_through_new_limits() {
        let old = CircuitBreaker::new(&pool(Some(5), Some(0), None), false, Arc::default());
        let _held = old.request().unwrap();
        let new = CircuitBreaker::new(
            &pool(Some(1), Some(0), None),
            false,
            Arc::clone(old.counters()),
        );
        assert!(new.request().is_none());
        assert!(new.connection().is_none());
    }
}
