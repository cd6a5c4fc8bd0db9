//! A small authoritative DNS server for lab scenarios: it answers `A` queries for the names
//! a test sets (with the TTL it sets) from inside one lab host's network namespace, so that
//! proxies resolving ServiceEntry hosts (`resolution: DNS`) get answers the test controls.
//! Point a host's resolver at it with [`crate::Lab::set_resolver`].
//!
//! Messages are parsed and written with `hickory-proto`; names the server does not know get
//! `NXDOMAIN`, other query types an empty answer.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::lab::{Host, LabError};

/// The records served: lower-case name without the final dot → (addresses, TTL in s).
type Records = Arc<Mutex<BTreeMap<String, (Vec<Ipv4Addr>, u32)>>>;

/// A DNS server on UDP port 53 of a lab host, answering from a table the test edits. Stopped
/// (thread joined) when dropped.
#[derive(Debug)]
pub struct DnsServer {
    address: SocketAddr,
    records: Records,
    queries: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts the server at `host`'s address, port 53, inside its network namespace (a thread
    /// of this process that joins the namespace). Errors: [`LabError::Dns`] when the
    /// namespace cannot be joined or the port bound.
    pub fn start(host: &Host) -> Result<Self, LabError> {
        let address = SocketAddr::from((host.ip, 53));
        let records: Records = Arc::default();
        let queries = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let netns = format!("/run/netns/{}", host.netns);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (records, queries, stop) = (records.clone(), queries.clone(), stop.clone());
            std::thread::spawn(move || {
                let socket = File::open(&netns)
                    .and_then(|namespace| {
                        nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(std::io::Error::from)
                    })
                    .and_then(|()| UdpSocket::bind(address))
                    .and_then(|socket| {
                        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
                        Ok(socket)
                    });
                let socket = match socket {
                    Ok(socket) => {
                        let _ = ready_tx.send(Ok(()));
                        socket
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("{netns}: {error}")));
                        return;
                    }
                };
                serve(&socket, &records, &queries, &stop);
            })
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                address,
                records,
                queries,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(reason)) => Err(LabError::Dns(reason)),
            Err(_) => Err(LabError::Dns("the DNS server thread ended".to_owned())),
        }
    }

    /// Where the server listens (the host's address, port 53).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answers `name` (case-insensitive, with or without the final dot) with `addresses` and
    /// a TTL of `ttl_s` seconds from now on; an empty list answers `NXDOMAIN`.
    pub fn set(&self, name: &str, addresses: &[Ipv4Addr], ttl_s: u32) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if addresses.is_empty() {
            records.remove(&key(name));
        } else {
            records.insert(key(name), (addresses.to_vec(), ttl_s));
        }
    }

    /// How many queries the server has answered so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn serve(socket: &UdpSocket, records: &Records, queries: &AtomicU64, stop: &AtomicBool) {
    let mut buffer = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((length, peer)) = socket.recv_from(&mut buffer) else {
            continue; // Read timeout: check `stop` again.
        };
        let Some(request) = buffer.get(..length).and_then(|b| Message::from_vec(b).ok()) else {
            continue;
        };
        let reply = answer(&request, records);
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
            queries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The reply to `request`: the `A` records of its first question's name, `NXDOMAIN` for an
/// unknown name, no answer for other record types of a known name.
fn answer(request: &Message, records: &Records) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(query) = request.queries().first() else {
        reply.set_response_code(ResponseCode::FormErr);
        return reply;
    };
    reply.add_query(query.clone());
    let known = records
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key(&query.name().to_ascii()))
        .cloned();
    match known {
        None => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
        Some((addresses, ttl)) => {
            if query.query_type() == RecordType::A {
                for address in addresses {
                    reply.add_answer(Record::from_rdata(
                        query.name().clone(),
                        ttl,
                        RData::A(A(address)),
                    ));
                }
            }
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, kind: RecordType) -> Message {
        let mut message = Message::new();
        message
            .set_id(7)
            .add_query(Query::query(Name::from_str(name).unwrap(), kind));
        message
    }

    #[test]
    fn answers_a_records_with_the_ttl_set_and_nxdomain_for_unknown_names() {
        let records: Records = Arc::default();
        records.lock().unwrap().insert(
            "api.external.test".into(),
            (vec![Ipv4Addr::new(198, 18, 0, 1)], 3),
        );
        let reply = answer(&query("API.external.test.", RecordType::A), &records);
        assert_eq!(reply.id(), 7);
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert_eq!(reply.answers().len(), 1);
        assert_eq!(reply.answers()[0].ttl(), 3);
        assert_eq!(
            reply.answers()[0].data(),
            &RData::A(A(Ipv4Addr::new(198, 18, 0, 1)))
        );
        let aaaa = answer(&query("api.external.test.", RecordType::AAAA), &records);
        assert_eq!(aaaa.response_code(), ResponseCode::NoError);
        assert!(aaaa.answers().is_empty());
        let unknown = answer(&query("other.test.", RecordType::A), &records);
        assert_eq!(unknown.response_code(), ResponseCode::NXDomain);
    }
}
