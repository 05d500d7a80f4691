//! The text of notification emails. Plain text, no secrets: ids, names,
//! states, the package digest, the exact `custody` commands and a link.

use custody_proto::apps::DeploymentState as S;

/// What an email about one deployment says.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Deployment id.
    pub deployment_id: String,
    /// App name.
    pub app: String,
    /// Release id.
    pub release: String,
    /// Package SHA-256 (hex).
    pub package_sha256: String,
    /// Environment name.
    pub environment: String,
    /// Deployer: "name (id)".
    pub deployer: String,
    /// Target servers: "name (id)".
    pub targets: Vec<String>,
    /// Approvals counted and needed.
    pub approvals: Option<(u32, u32)>,
    /// Canceled if not started by then, Unix seconds.
    pub deadline_at: Option<i64>,
    /// Link to the deployment.
    pub url: String,
}

/// An email: subject and body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// "2024-06-10 06:13:20 UTC" for Unix seconds (proleptic Gregorian).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn details(f: &Facts) -> String {
    let mut s = format!(
        "  app:          {}\n  release:      {}\n  package:      sha256:{}\n  environment:  {}\n  deployer:     {}\n  targets:      {}\n",
        f.app,
        f.release,
        f.package_sha256,
        f.environment,
        f.deployer,
        f.targets.join(", ")
    );
    if let Some((n, k)) = f.approvals {
        s.push_str(&format!("  approvals:    {n} of {k}\n"));
    }
    if let Some(t) = f.deadline_at {
        s.push_str(&format!(
            "  deadline:     {} (canceled if not started by then)\n",
            utc(t)
        ));
    }
    s
}

/// To an eligible approver when a deployment waits for approval.
pub fn approval_request(to: &str, f: &Facts) -> Mail {
    let id = &f.deployment_id;
    Mail {
        to: to.to_string(),
        subject: format!(
            "[custody] approval needed: {} {} to {}",
            f.app, f.release, f.environment
        ),
        body: format!(
            "Deployment {id} is waiting for your approval.\n\n{}\n\
             Check the release and the target servers, then run one of:\n\n\
             \x20 custody approve {id}\n\
             \x20 custody approve {id} --deploy\n\
             \x20 custody decline {id} --message \"why\"\n\n\
             Approve records your signed approval; --deploy also starts the deploy as\n\
             soon as enough approvers have approved.\n\n{}\n",
            details(f),
            f.url
        ),
    }
}

/// To the deployer on a later state change.
pub fn state_change(
    to: &str,
    f: &Facts,
    from: Option<S>,
    now: S,
    actor: &str,
    message: Option<&str>,
) -> Mail {
    let id = &f.deployment_id;
    let from_s = from.map_or("new", |s| s.as_str());
    let mut body = format!(
        "Deployment {id} is now {} (was {from_s}), by {actor}.\n\n{}",
        now.as_str(),
        details(f)
    );
    if let Some(m) = message {
        body.push_str(&format!(
            "\n  message:      {}\n",
            m.replace('\n', "\n                ")
        ));
    }
    if now == S::Approved {
        body.push_str(&format!(
            "\nIt is approved but not started. Start it with:\n\n  custody deployments start {id}\n"
        ));
    }
    body.push_str(&format!("\n{}\n", f.url));
    Mail {
        to: to.to_string(),
        subject: format!(
            "[custody] {} {} to {}: {}",
            f.app,
            f.release,
            f.environment,
            now.as_str()
        ),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            deployment_id: "dep_1".into(),
            app: "web".into(),
            release: "rel_1".into(),
            package_sha256: "ab".repeat(32),
            environment: "prod".into(),
            deployer: "dave (usr_d)".into(),
            targets: vec!["web-1 (srv_1)".into()],
            approvals: Some((0, 2)),
            deadline_at: Some(1_718_000_000),
            url: "https://c.example/deployments/dep_1".into(),
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_718_000_000), "2024-06-10 06:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn approval_request_names_the_commands_and_link() {
        let m = approval_request("a@example.com", &facts());
        assert!(m.subject.contains("approval needed: web rel_1 to prod"));
        for s in [
            "custody approve dep_1\n",
            "custody approve dep_1 --deploy",
            "custody decline dep_1 --message",
            "https://c.example/deployments/dep_1",
            "approvals:    0 of 2",
            "2024-06-10 06:13:20 UTC",
            "web-1 (srv_1)",
        ] {
            assert!(m.body.contains(s), "{s} missing in {}", m.body);
        }
    }

    #[test]
    fn state_change_mail() {
        let m = state_change(
            "d@example.com",
            &facts(),
            Some(S::PendingApproval),
            S::Declined,
            "alice",
            Some("not today\nsorry"),
        );
        assert!(m.subject.ends_with(": declined"));
        assert!(
            m.body
                .contains("now declined (was pending_approval), by alice")
        );
        assert!(m.body.contains("not today\n                sorry"));
        let a = state_change(
            "d@x",
            &facts(),
            Some(S::PendingApproval),
            S::Approved,
            "a",
            None,
        );
        assert!(a.body.contains("custody deployments start dep_1"));
    }
}
