//! The table `sandbox-check` prints, and its verdict.

use std::fmt;

use super::super::{LANDLOCK_ABI_NETWORK, SandboxPlan, SeccompProfile};
use super::{Operation, Probe};

/// What must happen to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The sandbox must refuse it.
    Refused,
    /// The sandbox must let it work (the process needs it).
    Allowed,
}

/// How an operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// With `EACCES` or `EPERM` (Landlock, file permissions, capabilities).
    Errno(i32),
    /// The seccomp filter killed the probe (`SIGSYS`).
    Seccomp,
}

/// What the probe process reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The operation was refused.
    Refused(Refusal),
    /// The operation succeeded.
    Succeeded,
    /// The operation failed in a way that proves nothing either way
    /// (`ENOENT`, `ECONNREFUSED`, …); 0 when there was no OS error code.
    FailedOther {
        /// The error code.
        errno: i32,
    },
    /// The probe could not apply the sandbox (its message).
    SandboxFailed(String),
    /// The probe could not be run or ended oddly.
    ProbeFailed(String),
}

/// The table's verdict for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The operation was refused.
    Refused,
    /// The operation was allowed.
    Allowed,
    /// The operation was allowed because this kernel cannot enforce the rule
    /// that would refuse it (e.g. Landlock without network rules).
    NotEnforceable(String),
    /// The probe's result proves nothing either way.
    NotTested(String),
    /// The probe failed to run or to apply the sandbox.
    Error(String),
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// What was tried and what had to happen.
    pub probe: Probe,
    /// What the probe reported.
    pub outcome: Outcome,
    /// The verdict.
    pub verdict: Verdict,
}

/// Why this kernel cannot enforce a refusal of `op`, if it cannot.
fn unenforceable(op: &Operation, plan: &SandboxPlan, kernel_abi: Option<u32>) -> Option<String> {
    let abi = kernel_abi.unwrap_or(0);
    let landlock = |needed: u32, what: &str| {
        (abi < needed).then(|| match kernel_abi {
            None => format!("this kernel has no Landlock, which {what}"),
            Some(a) => format!("Landlock ABI {a} < {needed}, which {what}"),
        })
    };
    match op {
        Operation::Connect { .. } => landlock(LANDLOCK_ABI_NETWORK, "restricts TCP connect"),
        Operation::Read { .. } | Operation::CreateFile { .. } => {
            landlock(1, "restricts file access")
        }
        Operation::Exec { .. } if plan.seccomp == SeccompProfile::Installer => {
            landlock(1, "restricts execution")
        }
        _ => None,
    }
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EACCES => "EACCES".into(),
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        0 => "an error without code".into(),
        n => format!("errno {n}"),
    }
}

impl CheckRow {
    pub(crate) fn new(
        probe: Probe,
        outcome: Outcome,
        plan: &SandboxPlan,
        kernel_abi: Option<u32>,
    ) -> Self {
        let verdict = match &outcome {
            Outcome::Refused(_) => Verdict::Refused,
            Outcome::Succeeded => match (
                probe.expect,
                unenforceable(&probe.operation, plan, kernel_abi),
            ) {
                (Expect::Refused, Some(why)) => Verdict::NotEnforceable(why),
                _ => Verdict::Allowed,
            },
            Outcome::FailedOther { errno } => {
                Verdict::NotTested(format!("failed with {}", errno_name(*errno)))
            }
            Outcome::SandboxFailed(m) => Verdict::Error(format!("sandbox not applied: {m}")),
            Outcome::ProbeFailed(m) => Verdict::Error(m.clone()),
        };
        CheckRow {
            probe,
            outcome,
            verdict,
        }
    }

    /// Whether this row is as it must be: a must-fail operation did not
    /// succeed (not even for want of kernel support), a must-work operation
    /// was not refused, and the probe ran.
    pub fn ok(&self) -> bool {
        !matches!(
            (&self.probe.expect, &self.verdict),
            (_, Verdict::Error(_))
                | (
                    Expect::Refused,
                    Verdict::Allowed | Verdict::NotEnforceable(_)
                )
                | (Expect::Allowed, Verdict::Refused)
        )
    }
}

/// The result of `sandbox-check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The plan's profile.
    pub profile: SeccompProfile,
    /// The service user.
    pub user: String,
    /// The kernel's Landlock ABI (`None`: no Landlock).
    pub kernel_abi: Option<u32>,
    /// One row per probe, in order.
    pub rows: Vec<CheckRow>,
}

impl CheckReport {
    /// Whether every row is as it must be.
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(CheckRow::ok)
    }

    /// The process exit status for the report: 0 only when it passed.
    pub fn exit_code(&self) -> i32 {
        if self.passed() { 0 } else { 1 }
    }

    /// The row for `operation`, if one was probed.
    pub fn row(&self, operation: &Operation) -> Option<&CheckRow> {
        self.rows.iter().find(|r| &r.probe.operation == operation)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abi = self
            .kernel_abi
            .map_or_else(|| "none".to_owned(), |a| a.to_string());
        writeln!(
            f,
            "sandbox-check: {} plan, service user {}, kernel Landlock ABI {abi}",
            self.profile.name(),
            self.user
        )?;
        if let Some(first @ Outcome::SandboxFailed(message)) = self.rows.first().map(|r| &r.outcome)
            && self.rows.iter().all(|r| &r.outcome == first)
        {
            writeln!(f, "the sandbox could not be applied: {message}")?;
            return writeln!(f, "FAIL: no operation was probed");
        }
        writeln!(f, "{:<8} {:<8} {:<24} operation", "", "must be", "result")?;
        for row in &self.rows {
            let must = match row.probe.expect {
                Expect::Refused => "refused",
                Expect::Allowed => "allowed",
            };
            let (result, detail) = match (&row.verdict, &row.outcome) {
                (Verdict::Refused, Outcome::Refused(Refusal::Seccomp)) => {
                    ("refused".to_owned(), " [seccomp: SIGSYS]".to_owned())
                }
                (Verdict::Refused, Outcome::Refused(Refusal::Errno(e))) => {
                    ("refused".to_owned(), format!(" [{}]", errno_name(*e)))
                }
                (Verdict::Allowed, _) => ("allowed".to_owned(), String::new()),
                (Verdict::NotEnforceable(why), _) => {
                    ("NOT ENFORCEABLE".to_owned(), format!(" [{why}]"))
                }
                (Verdict::NotTested(why), _) => ("not tested".to_owned(), format!(" [{why}]")),
                (Verdict::Error(why), _) => ("ERROR".to_owned(), format!(" [{why}]")),
                (Verdict::Refused, _) => ("refused".to_owned(), String::new()),
            };
            let mark = if row.ok() { "ok" } else { "FAIL" };
            writeln!(
                f,
                "{mark:<8} {must:<8} {result:<24} {}{detail}",
                row.probe.operation
            )?;
        }
        if self.passed() {
            writeln!(
                f,
                "PASS: nothing that must fail succeeded, nothing needed was refused"
            )
        } else {
            writeln!(f, "FAIL: see the rows marked FAIL")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn plan() -> SandboxPlan {
        SandboxPlan::new("custody-agent", SeccompProfile::Main).tcp_connect(8443)
    }

    fn row(op: Operation, expect: Expect, outcome: Outcome, abi: Option<u32>) -> CheckRow {
        CheckRow::new(
            Probe {
                operation: op,
                expect,
            },
            outcome,
            &plan(),
            abi,
        )
    }

    #[test]
    fn a_connect_that_succeeds_on_an_abi_2_kernel_is_not_enforceable_and_fails() {
        let r = row(
            Operation::Connect { port: 9 },
            Expect::Refused,
            Outcome::Succeeded,
            Some(2),
        );
        assert!(matches!(r.verdict, Verdict::NotEnforceable(_)));
        assert!(!r.ok());
        let r7 = row(
            Operation::Connect { port: 9 },
            Expect::Refused,
            Outcome::Succeeded,
            Some(7),
        );
        assert_eq!(r7.verdict, Verdict::Allowed);
        assert!(!r7.ok());
    }

    #[test]
    fn seccomp_kills_and_eacces_are_refusals() {
        let bind = row(
            Operation::Bind,
            Expect::Refused,
            Outcome::Refused(Refusal::Seccomp),
            Some(7),
        );
        assert_eq!(bind.verdict, Verdict::Refused);
        assert!(bind.ok());
        let needed = row(
            Operation::Read {
                path: PathBuf::from("/etc/custody"),
            },
            Expect::Allowed,
            Outcome::Refused(Refusal::Errno(libc::EACCES)),
            Some(7),
        );
        assert!(!needed.ok(), "a needed path refused must fail the check");
    }

    #[test]
    fn errors_fail_and_inconclusive_rows_do_not() {
        let broken = row(
            Operation::SetuidRoot,
            Expect::Refused,
            Outcome::SandboxFailed("no".into()),
            Some(7),
        );
        assert!(!broken.ok());
        let missing = row(
            Operation::Read {
                path: PathBuf::from("/etc/shadow"),
            },
            Expect::Refused,
            Outcome::FailedOther {
                errno: libc::ENOENT,
            },
            Some(7),
        );
        assert!(matches!(missing.verdict, Verdict::NotTested(_)));
        assert!(missing.ok());
        let report = CheckReport {
            profile: SeccompProfile::Main,
            user: "u".into(),
            kernel_abi: Some(7),
            rows: vec![missing.clone(), broken],
        };
        assert!(!report.passed());
        assert_eq!(report.exit_code(), 1);
        let text = report.to_string();
        assert!(text.contains("FAIL"), "{text}");
        let empty = CheckReport {
            rows: vec![],
            ..report
        };
        assert!(!empty.passed(), "an empty check proves nothing");
    }
}
