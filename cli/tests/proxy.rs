#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The client honours HTTPS_PROXY (a CONNECT tunnel, TLS and the CA pin
//! still end-to-end) and NO_PROXY.

#[path = "../../coordinator/tests/common/mod.rs"]
mod common;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal CONNECT proxy on loopback that counts tunnels.
async fn proxy() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let target = text
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap()
                    .to_string();
                let mut up = tokio::net::TcpStream::connect(&target).await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                c.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
            });
        }
    });
    (format!("http://{addr}"), n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_and_no_proxy_are_honoured() {
    let h = common::Harness::start().await;
    let (proxy_url, tunnels) = proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let run = move |extra: Vec<(&'static str, String)>, args: Vec<String>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_custody"));
        c.arg("--config").arg(&cfg).args(args);
        for k in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "NO_PROXY",
            "no_proxy",
        ] {
            c.env_remove(k);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let login = vec![
        "login".into(),
        "--url".into(),
        h.url.clone(),
        "--ca-fingerprint".into(),
        h.ca_fingerprint.clone(),
        "--token".into(),
        h.owner_token.clone(),
    ];
    let p = proxy_url.clone();
    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(vec![("HTTPS_PROXY", p)], login))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tunnels.load(Ordering::SeqCst) >= 1,
        "login went through the proxy"
    );

    let before = tunnels.load(Ordering::SeqCst);
    let p = proxy_url.clone();
    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || {
        r(
            vec![("HTTPS_PROXY", p), ("NO_PROXY", "127.0.0.1".into())],
            vec!["users".into(), "list".into()],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tunnels.load(Ordering::SeqCst),
        before,
        "NO_PROXY bypasses the proxy"
    );
}
