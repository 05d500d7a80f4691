//! `sandbox-check` end to end: each probe is this binary re-executed as a
//! real sandboxed process (`--sandbox-probe`, calling `probe_main`, as the
//! agent's hidden subcommand will). The standard check passes for the main
//! and installer plans with every forbidden operation refused by the layer
//! expected; a must-fail operation that succeeds, and a plan the kernel
//! cannot apply, fail the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sandbox_common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use custody_agent::sandbox::check::{
    CheckReport, Expect, Operation, Outcome, Probe, ProbeLauncher, Refusal, Verdict, probe_main,
    run, run_probes,
};
use custody_agent::sandbox::{LandlockRequirement, SandboxPlan, SeccompProfile, system_exec_paths};
use sandbox_common::*;

const PROBE_ARG: &str = "--sandbox-probe";

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(PROBE_ARG) {
        std::process::exit(probe_main());
    }
    run_cases(&[
        (
            "main_plan_passes_with_every_layer_refusing",
            main_plan_passes,
        ),
        (
            "installer_plan_may_exec_but_not_connect_or_bind",
            installer_plan,
        ),
        (
            "a_must_fail_operation_that_succeeds_fails_the_check",
            must_fail_succeeds,
        ),
        (
            "a_plan_this_kernel_cannot_apply_fails_the_check",
            unapplyable,
        ),
    ])
}

fn launcher() -> ProbeLauncher {
    ProbeLauncher::current_exe([PROBE_ARG]).unwrap()
}

fn refusal(report: &CheckReport, op: &Operation) -> Outcome {
    let row = report
        .row(op)
        .unwrap_or_else(|| panic!("no row for {op}:\n{report}"));
    assert_eq!(row.verdict, Verdict::Refused, "{op}:\n{report}");
    row.outcome.clone()
}

fn main_plan_passes() {
    let d = dirs();
    let coordinator = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = coordinator.local_addr().unwrap().port();
    let plan = main_plan(&d, &[port]);
    let report = run(&plan, &launcher());
    println!("{report}");
    assert_passes_as_far_as_the_kernel_can(&report);

    let eacces = Outcome::Refused(Refusal::Errno(libc::EACCES));
    let seccomp = Outcome::Refused(Refusal::Seccomp);
    let shadow = Operation::Read {
        path: PathBuf::from("/etc/shadow"),
    };
    assert_eq!(refusal(&report, &shadow), eacces);
    if landlock_abi() == 0 {
        return;
    }
    let passwd = Operation::Read {
        path: PathBuf::from("/etc/passwd"),
    };
    assert_eq!(
        refusal(&report, &passwd),
        eacces,
        "Landlock, not file modes"
    );
    let outside = report
        .rows
        .iter()
        .find(|r| {
            matches!(&r.probe.operation, Operation::CreateFile { dir } if dir.starts_with("/tmp"))
        })
        .unwrap_or_else(|| panic!("no write-outside row:\n{report}"));
    assert_eq!(outside.outcome, eacces);
    assert_eq!(outside.probe.expect, Expect::Refused);
    let exec = report
        .rows
        .iter()
        .find(|r| matches!(r.probe.operation, Operation::Exec { .. }))
        .unwrap();
    assert_eq!(exec.outcome, seccomp);
    assert_eq!(refusal(&report, &Operation::Bind), seccomp);
    assert_eq!(refusal(&report, &Operation::SetuidRoot), seccomp);
    let ptrace = report
        .rows
        .iter()
        .find(|r| matches!(r.probe.operation, Operation::Ptrace { .. }))
        .unwrap_or_else(|| panic!("no ptrace row:\n{report}"));
    assert_eq!(ptrace.outcome, seccomp);
    let other = report
        .rows
        .iter()
        .find(|r| {
            r.probe.expect == Expect::Refused
                && matches!(r.probe.operation, Operation::Connect { .. })
        })
        .unwrap();
    if landlock_abi() >= 4 {
        assert_eq!(other.outcome, eacces);
    } else {
        assert!(
            matches!(other.verdict, Verdict::NotEnforceable(_)),
            "{report}"
        );
    }

    for op in [
        Operation::Read { path: d.config },
        Operation::CreateFile { dir: d.state },
        Operation::Connect { port },
    ] {
        let row = report.row(&op).unwrap();
        assert_eq!(row.probe.expect, Expect::Allowed);
        assert_eq!(row.verdict, Verdict::Allowed, "{op}:\n{report}");
    }
}

fn installer_plan() {
    let (uid, gid) = test_user();
    let d = dirs();
    let install = d.root.path().join("install");
    std::fs::create_dir(&install).unwrap();
    std::os::unix::fs::chown(&install, Some(uid), Some(gid)).unwrap();
    let mut plan = SandboxPlan::new(TEST_USER, SeccompProfile::Installer)
        .read(&d.config)
        .read_write(&install)
        .landlock(requirement());
    for p in system_exec_paths() {
        plan = plan.read_exec(p);
    }
    let report = run(&plan, &launcher());
    println!("{report}");
    assert_passes_as_far_as_the_kernel_can(&report);
    if landlock_abi() == 0 {
        return;
    }
    let exec = report
        .rows
        .iter()
        .find(|r| matches!(r.probe.operation, Operation::Exec { .. }))
        .unwrap();
    assert_eq!(exec.probe.expect, Expect::Allowed);
    assert_eq!(exec.verdict, Verdict::Allowed);
    assert_eq!(
        refusal(&report, &Operation::Bind),
        Outcome::Refused(Refusal::Seccomp)
    );
    if landlock_abi() >= 4 {
        let connect = report
            .rows
            .iter()
            .find(|r| matches!(r.probe.operation, Operation::Connect { .. }))
            .unwrap();
        assert_eq!(connect.verdict, Verdict::Refused);
    }
}

/// With Landlock ABI ≥ 4 the check passes; below, it fails exactly on the
/// rows this kernel cannot enforce, each marked "not enforceable".
fn assert_passes_as_far_as_the_kernel_can(report: &CheckReport) {
    if landlock_abi() >= 4 {
        assert!(report.passed(), "{report}");
        assert_eq!(report.exit_code(), 0);
        return;
    }
    assert_eq!(report.exit_code(), 1, "{report}");
    for row in report.rows.iter().filter(|r| !r.ok()) {
        assert!(
            matches!(row.verdict, Verdict::NotEnforceable(_)),
            "{}: {:?}\n{report}",
            row.probe.operation,
            row.verdict
        );
    }
}

fn must_fail_succeeds() {
    let d = dirs();
    let plan = main_plan(&d, &[]);
    // The plan allows reading its config: a check that insists this must
    // fail has to report it and fail.
    let probes = [
        Probe {
            operation: Operation::Read {
                path: d.config_file.clone(),
            },
            expect: Expect::Refused,
        },
        Probe {
            operation: Operation::Bind,
            expect: Expect::Refused,
        },
    ];
    let report = run_probes(&plan, &launcher(), &probes);
    println!("{report}");
    // (Without Landlock at all the same row reads "not enforceable".)
    if landlock_abi() >= 1 {
        assert_eq!(report.rows[0].verdict, Verdict::Allowed);
    } else {
        assert!(matches!(report.rows[0].verdict, Verdict::NotEnforceable(_)));
    }
    assert!(!report.rows[0].ok());
    assert!(report.rows[1].ok());
    assert!(!report.passed());
    assert_eq!(report.exit_code(), 1);
    assert!(report.to_string().contains("FAIL"));
}

fn unapplyable() {
    let d = dirs();
    let plan = main_plan(&d, &[]).landlock(LandlockRequirement {
        require: true,
        min_abi: Some(99),
    });
    let report = run(&plan, &launcher());
    println!("{report}");
    assert!(!report.passed());
    for row in &report.rows {
        match &row.outcome {
            Outcome::SandboxFailed(msg) => {
                let expected = if landlock_abi() >= 1 {
                    "requires Landlock ABI 99"
                } else {
                    "Landlock is not available"
                };
                assert!(msg.contains(expected), "{msg}");
            }
            other => panic!(
                "{}: expected SandboxFailed, got {other:?}",
                row.probe.operation
            ),
        }
        assert!(matches!(row.verdict, Verdict::Error(_)));
    }
}
