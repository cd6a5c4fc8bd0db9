//! Fixtures shared by the unit tests: a fixed clock, identities and plug-in CA material built
//! directly with rcgen (the way an operator's offline root would produce it).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::clock::TestClock;
use crate::spiffe::Identity;

/// 2027-01-15T08:00:00Z, a whole second.
pub(crate) fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub(crate) const HOUR: Duration = Duration::from_secs(3600);
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn clock() -> Arc<TestClock> {
    Arc::new(TestClock::new(start()))
}

pub(crate) fn sleep() -> Identity {
    Identity::spiffe("cluster.local", "default", "sleep").unwrap()
}

pub(crate) fn datetime(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// A CA certificate and its key, made with rcgen.
pub(crate) struct TestCa {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub cert_pem: String,
}

impl TestCa {
    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    pub(crate) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

pub(crate) fn ca_params(name: &str, valid_for: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cluster.local");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = datetime(start() - HOUR);
    params.not_after = datetime(start() + valid_for);
    params
}

/// An offline root, self-signed.
pub(crate) fn root(name: &str) -> TestCa {
    let params = ca_params(name, 3650 * DAY);
    let key = KeyPair::generate().unwrap();
    let cert_pem = params.self_signed(&key).unwrap().pem();
    TestCa {
        params,
        key,
        cert_pem,
    }
}

/// A certificate signed by `parent` with the given parameters and a fresh key.
pub(crate) fn signed(params: CertificateParams, parent: &TestCa) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let cert_pem = params.signed_by(&key, &parent.issuer()).unwrap().pem();
    TestCa {
        params,
        key,
        cert_pem,
    }
}

/// An intermediate CA for the mesh, signed by `root`.
pub(crate) fn intermediate(name: &str, root: &TestCa) -> TestCa {
    signed(ca_params(name, 365 * DAY), root)
}
