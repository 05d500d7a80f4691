#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `Tx`, the one way to change a coordinator's state, on a real SQLite
//! file: savepoints inside one transaction undo exactly their own part —
//! audit entries included — and the chain stays whole and checkpointed.

mod common;

use common::Harness;
use custody_coordinator::audit;
use custody_proto::audit::{AuditEntry, GENESIS_HASH, verify_chain};
use serde_json::json;

async fn entries(h: &Harness) -> Vec<AuditEntry> {
    let state = &h.running.as_ref().unwrap().state;
    audit::entries(&state.store.read, 0, 10_000).await.unwrap()
}

#[tokio::test]
async fn a_rolled_back_savepoint_leaves_no_entry_and_no_gap() {
    let h = Harness::start().await;
    let state = h.running.as_ref().unwrap().state.clone();
    let before = entries(&h).await.len();

    let mut tx = state.begin().await.unwrap();
    for (part, keep) in [("a", true), ("b", false), ("c", true), ("d", false)] {
        tx.savepoint().await.unwrap();
        tx.audit("test", "part", part, "ok", json!({}))
            .await
            .unwrap();
        if keep {
            tx.keep_savepoint();
        } else {
            tx.rollback_to_savepoint().await.unwrap();
        }
    }
    tx.commit().await.unwrap();

    let all = entries(&h).await;
    let objects: Vec<&str> = all[before..].iter().map(|e| e.object.as_str()).collect();
    assert_eq!(objects, ["a", "c"], "the rolled-back parts left nothing");
    // Consecutive numbers, each entry chained to the one before it.
    verify_chain(&all, 1, GENESIS_HASH).unwrap();
    let key = state.audit_key.verifying_key();
    let checkpoint = audit::latest_checkpoint(&state.store.read, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.count, all.len() as u64);
    assert_eq!(checkpoint.head_hash, all.last().unwrap().hash);
}

#[tokio::test]
async fn rolling_back_the_only_entries_signs_no_checkpoint_for_them() {
    let h = Harness::start().await;
    let state = h.running.as_ref().unwrap().state.clone();
    let key = state.audit_key.verifying_key();
    let first = audit::latest_checkpoint(&state.store.read, &key)
        .await
        .unwrap()
        .unwrap();

    let mut tx = state.begin().await.unwrap();
    tx.savepoint().await.unwrap();
    tx.audit("test", "part", "x", "ok", json!({}))
        .await
        .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    tx.commit().await.unwrap();

    let all = entries(&h).await;
    assert!(all.iter().all(|e| e.object != "x"));
    let now = audit::latest_checkpoint(&state.store.read, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (now.count, now.at_ms),
        (first.count, first.at_ms),
        "nothing was added, so no new checkpoint"
    );

    // The next transaction continues the chain from the real head.
    let mut tx = state.begin().await.unwrap();
    tx.audit("test", "part", "y", "ok", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let all = entries(&h).await;
    verify_chain(&all, 1, GENESIS_HASH).unwrap();
    assert_eq!(all.last().unwrap().object, "y");
}
