//! The approvals part of `custody deployments show`: who approved or
//! declined, when, until when, whether it counts, and whether each
//! signature verifies — checked here, with the key the coordinator says
//! the approver registered.

use anyhow::Result;
use custody_client::Client;
use custody_envelope::approval::{SignedApproval, parse_public_key};
use custody_proto::approvals::{ApprovalRecord, DeploymentApprovals};

/// Whether a record's statement verifies here and is about `deployment`
/// and its approver: `Some(true|false)`, `None` when unsigned.
pub fn verify_here(r: &ApprovalRecord, deployment: &str) -> Option<bool> {
    let v = r.statement.as_ref()?;
    let ok = (|| {
        let s = SignedApproval::from_value(v).ok()?;
        let key = parse_public_key(r.public_key.as_deref()?).ok()?;
        let st = s.verify(&key).ok()?;
        Some(st.deployment == deployment && st.approver == r.user_id)
    })();
    Some(ok == Some(true))
}

/// Prints the approval records of deployment `id` (nothing when it needed
/// no approval). Call after the CLI helper's summary lines.
pub async fn print_approvals(c: &Client, id: &str) -> Result<()> {
    let v: DeploymentApprovals = c.get(&format!("/v1/deployments/{id}/approvals")).await?;
    let Some(p) = &v.policy else {
        return Ok(());
    };
    println!(
        "approval: {} of {} from group {}{}",
        v.counted,
        p.quorum,
        p.group,
        v.deadline_at
            .map(|t| format!(", deadline {}", crate::output::time(t)))
            .unwrap_or_default()
    );
    if v.approvals.is_empty() {
        println!("  (no approvals yet)");
    }
    for r in &v.approvals {
        let sig = match verify_here(r, &v.deployment_id) {
            Some(true) => "signature verifies",
            Some(false) => "SIGNATURE DOES NOT VERIFY",
            None => "unsigned",
        };
        let what = match (r.decision.as_str(), r.deploy) {
            ("approve", true) => "approved and asked to deploy",
            ("approve", false) => "approved",
            _ => "declined",
        };
        let counts = if r.decision != "approve" {
            String::new()
        } else if r.counts {
            ", counts".to_string()
        } else {
            format!(
                ", does not count: {}",
                r.not_counted_because.as_deref().unwrap_or("?")
            )
        };
        let until = r
            .expires_at
            .filter(|_| r.decision == "approve")
            .map(|t| format!(", valid until {}", crate::output::time(t as i64)))
            .unwrap_or_default();
        println!(
            "  {} {what} at {}{until}; {sig} (key {}){counts}",
            r.user_name,
            crate::output::time(r.at),
            r.key_id.as_deref().unwrap_or("-")
        );
        if let Some(m) = &r.message {
            println!("    message: {m}");
        }
    }
    Ok(())
}
