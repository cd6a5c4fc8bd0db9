use super::*;
use pretty_assertions::assert_eq;
use proptest::prelude::*;

fn sleep() -> Identity {
    Identity::Spiffe {
        trust_domain: "cluster.local".into(),
        namespace: "default".into(),
        service_account: "sleep".into(),
    }
}

#[test]
fn parses_and_prints_istio_spiffe_id() {
    let id: Identity = "spiffe://cluster.local/ns/default/sa/sleep"
        .parse()
        .unwrap();
    assert_eq!(id, sleep());
    assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/sleep");
    assert_eq!(id.trust_domain(), "cluster.local");
    assert_eq!(id.namespace(), "default");
    assert_eq!(id.service_account(), "sleep");
}

#[test]
fn principal_is_spiffe_id_without_scheme_and_parses_back() {
    let id = sleep();
    assert_eq!(id.principal(), "cluster.local/ns/default/sa/sleep");
    assert_eq!(Identity::from_principal(&id.principal()).unwrap(), id);
}

#[test]
fn service_account_may_be_a_dotted_subdomain() {
    let id: Identity = "spiffe://td_1.example-2/ns/a-1/sa/my.sa-2".parse().unwrap();
    assert_eq!(id.service_account(), "my.sa-2");
    assert_eq!(id.trust_domain(), "td_1.example-2");
}

#[test]
fn rejects_wrong_or_missing_scheme() {
    for input in [
        "cluster.local/ns/default/sa/sleep",
        "SPIFFE://cluster.local/ns/default/sa/sleep",
        "https://cluster.local/ns/default/sa/sleep",
    ] {
        assert_eq!(
            input.parse::<Identity>(),
            Err(IdentityError::MissingScheme {
                input: input.into()
            }),
            "{input}"
        );
    }
}

#[test]
fn rejects_bad_trust_domains_naming_the_character() {
    let cases = [
        ("spiffe://Cluster.local/ns/a/sa/b", 'C'),
        ("spiffe://cluster.local:8080/ns/a/sa/b", ':'),
        ("spiffe://user@cluster.local/ns/a/sa/b", '@'),
        ("spiffe://clu%20ster/ns/a/sa/b", '%'),
        ("spiffe://cluster.local?x=1", '?'),
    ];
    for (input, character) in cases {
        match input.parse::<Identity>() {
            Err(IdentityError::InvalidTrustDomain { character: c, .. }) => {
                assert_eq!(c, character, "{input}")
            }
            other => panic!("{input}: expected InvalidTrustDomain, got {other:?}"),
        }
    }
    assert_eq!(
        "spiffe:///ns/a/sa/b".parse::<Identity>(),
        Err(IdentityError::EmptyTrustDomain)
    );
    let long = format!("spiffe://{}/ns/a/sa/b", "a".repeat(256));
    assert_eq!(
        long.parse::<Identity>(),
        Err(IdentityError::TrustDomainTooLong { len: 256 })
    );
}

#[test]
fn rejects_paths_other_than_ns_sa() {
    for path in [
        "",
        "/",
        "/ns/default",
        "/ns/default/sa",
        "/ns/default/sa/sleep/extra",
        "/ns/default/sa/sleep/",
        "/sa/sleep/ns/default",
        "/namespace/default/sa/sleep",
    ] {
        let input = format!("spiffe://cluster.local{path}");
        assert_eq!(
            input.parse::<Identity>(),
            Err(IdentityError::InvalidPath { path: path.into() }),
            "{input}"
        );
    }
}

#[test]
fn rejects_bad_namespace_with_rule() {
    let cases = [
        ("", "must not be empty"),
        (
            "Default",
            "must contain only lower-case letters, digits and '-'",
        ),
        (
            "a.b",
            "must contain only lower-case letters, digits and '-'",
        ),
        ("-a", "must start and end with a letter or digit"),
        ("a-", "must start and end with a letter or digit"),
    ];
    for (namespace, rule) in cases {
        assert_eq!(
            Identity::spiffe("cluster.local", namespace, "sleep"),
            Err(IdentityError::InvalidNamespace {
                namespace: namespace.into(),
                rule
            }),
            "{namespace:?}"
        );
    }
    let long = "a".repeat(64);
    assert!(matches!(
        Identity::spiffe("cluster.local", long, "sleep"),
        Err(IdentityError::InvalidNamespace {
            rule: "must be at most 63 characters",
            ..
        })
    ));
}

#[test]
fn rejects_bad_service_account_with_rule() {
    let cases = [
        ("", "must not be empty"),
        (
            "a..b",
            "must not contain empty labels (leading, trailing or double '.')",
        ),
        (
            ".a",
            "must not contain empty labels (leading, trailing or double '.')",
        ),
        (
            "Sleep",
            "must contain only lower-case letters, digits and '-'",
        ),
        (
            "sleep_1",
            "must contain only lower-case letters, digits and '-'",
        ),
    ];
    for (service_account, rule) in cases {
        assert_eq!(
            Identity::spiffe("cluster.local", "default", service_account),
            Err(IdentityError::InvalidServiceAccount {
                service_account: service_account.into(),
                rule
            }),
            "{service_account:?}"
        );
    }
}

#[test]
fn error_messages_name_the_part() {
    let err = "spiffe://cluster.local/ns/Bad/sa/x"
        .parse::<Identity>()
        .unwrap_err();
    assert!(err.to_string().contains("namespace \"Bad\""), "{err}");
    let err = "spiffe://cluster.local/ns/ok/sa/Bad"
        .parse::<Identity>()
        .unwrap_err();
    assert!(err.to_string().contains("service account \"Bad\""), "{err}");
    let err = "spiffe://Bad/ns/ok/sa/x".parse::<Identity>().unwrap_err();
    assert!(err.to_string().contains("trust domain \"Bad\""), "{err}");
}

#[test]
fn rejects_ids_longer_than_2048_bytes() {
    let input = format!("spiffe://{}", "a".repeat(2100));
    assert_eq!(
        input.parse::<Identity>(),
        Err(IdentityError::TooLong { len: input.len() })
    );
}

#[test]
fn validate_catches_unvalidated_variant() {
    let id = Identity::Spiffe {
        trust_domain: "cluster.local".into(),
        namespace: "UPPER".into(),
        service_account: "sleep".into(),
    };
    assert!(matches!(
        id.validate(),
        Err(IdentityError::InvalidNamespace { .. })
    ));
    assert_eq!(sleep().validate(), Ok(()));
}

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

proptest! {
    #[test]
    fn spiffe_id_round_trips(
        trust_domain in "[a-z0-9._-]{1,40}",
        namespace in dns_label(),
        service_account in prop::collection::vec(dns_label(), 1..4).prop_map(|l| l.join(".")),
    ) {
        let id = Identity::spiffe(&trust_domain, &namespace, &service_account).unwrap();
        let printed = id.to_string();
        prop_assert_eq!(&printed, &format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"));
        prop_assert_eq!(printed.parse::<Identity>().unwrap(), id.clone());
        prop_assert_eq!(Identity::from_principal(&id.principal()).unwrap(), id);
    }

    #[test]
    fn parse_never_panics_and_accepted_ids_print_back(input in "spiffe://[a-zA-Z0-9./_:-]{0,60}") {
        if let Ok(id) = input.parse::<Identity>() {
            prop_assert_eq!(id.to_string(), input);
        }
    }
}
