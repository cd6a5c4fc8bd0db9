//! The lab builds real namespaces and removes all of them. Needs root, `ip` and `iptables`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use weft_lab::{Lab, preflight};

fn netns_list() -> String {
    String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string()
}

#[test]
fn hosts_reach_each_other_and_everything_is_removed() {
    if let Err(e) = preflight() {
        println!("SKIPPED: {e}");
        return;
    }
    let (prefix, a_ns) = {
        let mut lab = Lab::new().unwrap();
        let a = lab.add_host("a").unwrap();
        let b = lab.add_host("b").unwrap();
        assert_ne!(a.ip, b.ip);
        assert!(a.ip.octets()[0] == 198 && a.ip.octets()[1] == 18);
        let out = lab.exec(&a, "ping", &["-c", "1", "-W", "2", &b.ip.to_string()]);
        assert!(out.is_ok(), "a cannot ping b: {out:?}");
        let prefix = format!("wl{}-", lab.subnet());
        assert!(netns_list().contains(&a.netns));
        (prefix, a.netns)
    };
    let after = netns_list();
    assert!(!after.contains(&a_ns), "namespace left behind: {after}");
    assert!(
        !after.lines().any(|l| l.starts_with(&prefix)),
        "lab namespaces left: {after}"
    );
}

#[test]
fn root_attachment_reaches_a_host_and_is_removed() {
    if let Err(e) = preflight() {
        println!("SKIPPED: {e}");
        return;
    }
    let link;
    {
        let mut lab = Lab::new().unwrap();
        let a = lab.add_host("a").unwrap();
        lab.attach_root().unwrap();
        link = format!("wl{}r", lab.subnet());
        let out = std::process::Command::new("ping")
            .args(["-c", "1", "-W", "2", &a.ip.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "root cannot ping {}", a.ip);
    }
    let links = std::process::Command::new("ip")
        .args(["link", "show", &link])
        .output()
        .unwrap();
    assert!(!links.status.success(), "root link {link} left behind");
}
