//! The sandbox applied in real child processes (this binary re-executed):
//! every thread ends up as the test user with no capability, no_new_privs
//! and seccomp; forbidden operations fail while allowed ones work, under a
//! tokio runtime; no core file on SIGSEGV; key pages locked and not dumped;
//! typed refusals (Landlock ABI too old, threads already running, bounding
//! set left, unknown user); the installer profile runs hooks that the main
//! profile cannot start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sandbox_common;

use std::io::{BufReader, Read as _, Write as _};
use std::net::{TcpListener, ToSocketAddrs as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use custody_agent::sandbox::proc_status::all_tasks;
use custody_agent::sandbox::secure_mem::SecretBuffer;
use custody_agent::sandbox::{
    LandlockRequirement, SandboxError, SandboxPlan, SeccompProfile, apply, name_resolution_paths,
    system_exec_paths,
};
use sandbox_common::*;

fn main() -> ExitCode {
    if let Ok(case) = std::env::var(CHILD_ENV) {
        return child(&case);
    }
    run_cases(&[
        (
            "every_thread_is_sandboxed_and_the_runtime_works",
            every_thread,
        ),
        ("key_pages_are_locked_and_not_dumped", key_pages),
        ("sigsegv_leaves_no_core_file", no_core),
        ("landlock_abi_above_the_kernel_is_refused", abi_too_old),
        ("require_false_applies_what_the_kernel_has", abi_relaxed),
        ("threads_started_before_apply_are_refused", threads_first),
        (
            "started_as_the_service_user_by_systemd_style_setpriv",
            already_user,
        ),
        (
            "a_bounding_set_that_cannot_be_cleared_is_refused",
            bounding_left,
        ),
        ("unknown_user_is_refused", unknown_user),
        ("main_profile_cannot_start_a_process", main_cannot_spawn),
        ("installer_runs_hooks_confined", installer_hooks),
        ("name_resolution_works_under_the_sandbox", resolves_names),
    ])
}

// ---------------------------------------------------------------- children

fn child(case: &str) -> ExitCode {
    let (plan, arg) = child_plan();
    match case {
        "runtime" => return child_runtime(&plan, &arg),
        "segv" => return child_segv(Some(&plan), &arg),
        "segv_control" => return child_segv(None, &arg),
        "apply_then_wait" => {
            report_apply(apply(&plan));
            wait_for_eof();
        }
        "apply_error" => report_apply(apply(&plan)),
        "threads_first" => {
            let _t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(30)));
            report_apply(apply(&plan));
        }
        "spawn" => {
            apply(&plan).unwrap();
            let status = Command::new("/bin/true").status();
            println!("spawn={}", outcome(status));
        }
        "hooks" => return child_hooks(&plan, &arg),
        "resolve" => {
            apply(&plan).unwrap();
            let addrs = ("localhost", 443).to_socket_addrs().map(Iterator::count);
            println!(
                "resolved={}",
                addrs.map_or_else(|e| format!("{e}"), |n| n.to_string())
            );
        }
        other => panic!("unknown child case {other}"),
    }
    println!("READY");
    ExitCode::SUCCESS
}

fn wait_for_eof() {
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// Prints the result of `apply` as `result=ok` or `error=<variant> …`, plus
/// what the process looks like afterwards.
fn report_apply(r: Result<custody_agent::sandbox::SandboxReport, SandboxError>) {
    match r {
        Ok(report) => {
            println!("result=ok");
            println!("enforced_abi={}", report.landlock.enforced_abi);
            println!(
                "not_enforceable={}",
                report.landlock.not_enforceable.join(",")
            );
        }
        Err(SandboxError::LandlockAbiTooOld {
            required,
            available,
        }) => {
            println!("error=LandlockAbiTooOld");
            println!("required={required}");
            println!("available={available}");
        }
        Err(SandboxError::ThreadsRunning { threads }) => {
            println!("error=ThreadsRunning");
            println!("threads={threads}");
        }
        Err(SandboxError::BoundingSetNotEmpty) => println!("error=BoundingSetNotEmpty"),
        Err(SandboxError::LandlockUnavailable) => println!("error=LandlockUnavailable"),
        Err(SandboxError::NoSuchIdentity { kind, .. }) => println!("error=NoSuchIdentity:{kind}"),
        Err(other) => println!("error=other:{other}"),
    }
    println!("euid={}", rustix::process::geteuid().as_raw());
    println!(
        "nnp={}",
        u8::from(rustix::thread::no_new_privs().unwrap_or(false))
    );
}

fn child_runtime(plan: &SandboxPlan, arg: &str) -> ExitCode {
    let parts: Vec<&str> = arg.split('|').collect();
    let (config_file, state, other_port) = (parts[0].to_owned(), parts[1].to_owned(), parts[2]);
    let other_port: u16 = other_port.parse().unwrap();
    let allowed_port = plan.tcp_connect[0];

    let report = apply(plan).unwrap();
    println!("kernel_abi={}", report.landlock.kernel_abi.unwrap_or(0));
    println!(
        "dumpable={:?}",
        rustix::process::dumpable_behavior().unwrap()
    );

    // Threads started after apply inherit everything.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    let parked: Vec<_> = (0..2)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
            })
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async move {
        let loopback = std::net::Ipv4Addr::LOCALHOST;
        let allowed = tokio::net::TcpStream::connect((loopback, allowed_port)).await;
        let other = tokio::net::TcpStream::connect((loopback, other_port)).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let state_write = tokio::fs::write(format!("{state}/written"), b"state").await;
        let config_read = tokio::fs::read(&config_file).await;
        let passwd_read = tokio::fs::read("/etc/passwd").await;
        let tmp_write = tokio::fs::write(ESCAPE, b"x").await;
        let blocking = tokio::task::spawn_blocking(|| 7).await.unwrap();
        vec![
            ("allowed_connect", outcome(allowed)),
            ("other_connect", outcome(other)),
            ("state_write", outcome(state_write)),
            ("config_read", outcome(config_read)),
            ("passwd_read", outcome(passwd_read)),
            ("tmp_write", outcome(tmp_write)),
            ("blocking", blocking.to_string()),
        ]
    });
    for (k, v) in results {
        println!("{k}={v}");
    }
    let key = SecretBuffer::copy_from(&[0x42; 32]).unwrap();
    println!("key_addr={:x}", key.address());
    wait_for_eof();
    barrier.wait();
    for t in parked {
        t.join().unwrap();
    }
    drop(key);
    drop(rt);
    ExitCode::SUCCESS
}

fn child_segv(plan: Option<&SandboxPlan>, dir: &str) -> ExitCode {
    std::env::set_current_dir(dir).unwrap();
    match plan {
        Some(plan) => {
            apply(plan).unwrap();
        }
        None => {
            // The control: cores allowed, and small (no memory contents).
            let unlimited = rustix::process::Rlimit {
                current: None,
                maximum: None,
            };
            rustix::process::setrlimit(rustix::process::Resource::Core, unlimited).unwrap();
            std::fs::write("/proc/self/coredump_filter", "0").unwrap();
        }
    }
    // Rust's runtime catches the first SIGSEGV (its stack-overflow handler),
    // restores the default action and returns; the second one is fatal.
    let me = rustix::process::getpid();
    for _ in 0..2 {
        rustix::process::kill_process(me, rustix::process::Signal::SEGV).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(5));
    ExitCode::FAILURE
}

fn child_hooks(plan: &SandboxPlan, arg: &str) -> ExitCode {
    let parts: Vec<&str> = arg.split('|').collect();
    let (install, outside, port) = (parts[0], parts[1], parts[2]);
    apply(plan).unwrap();
    let hook = |program: &str, script: &str| {
        Command::new(program)
            .args(["-c", script])
            .env("D", install)
            .env("O", outside)
            .env("P", port)
            .stdin(Stdio::null())
            .status()
            .map_or_else(
                |e| format!("spawn-error:{e}"),
                |s| s.code().unwrap_or(-1).to_string(),
            )
    };
    println!(
        "install_hook={}",
        hook("/bin/sh", r#"id -u > "$D/uid" && echo hello > "$D/out""#)
    );
    println!(
        "escape_hook={}",
        hook("/bin/sh", r#"echo x > "$O/escaped""#)
    );
    if exists(std::path::Path::new("/bin/bash")) {
        println!(
            "net_hook={}",
            hook("/bin/bash", r#"exec 3<>"/dev/tcp/127.0.0.1/$P""#)
        );
    } else {
        println!("net_hook=skipped");
    }
    ExitCode::SUCCESS
}

// ------------------------------------------------------------------- cases

/// A file the sandboxed child tries to create outside its plan.
const ESCAPE: &str = "/tmp/custody-sandbox-escape";

fn every_thread() {
    let _ = std::fs::remove_file(ESCAPE);
    let (uid, gid) = test_user();
    let d = dirs();
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let plan = main_plan(&d, &[allowed.local_addr().unwrap().port()]);
    let arg = format!(
        "{}|{}|{}",
        d.config_file.display(),
        d.state.display(),
        other.local_addr().unwrap().port()
    );
    let mut child = spawn_child("runtime", &plan, &arg).spawn().unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);

    let tasks = all_tasks(pid).unwrap();
    assert!(
        tasks.len() >= 5,
        "main + 2 workers + 2 parked threads expected, got {}",
        tasks.len()
    );
    for (tid, status) in &tasks {
        assert!(
            status.is_sandboxed_as(uid, gid),
            "thread {tid} is not sandboxed: {status:?}"
        );
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
    // Not dumpable: the kernel gives the process's /proc files to root.
    assert_eq!(value(&r, "dumpable"), "NotDumpable");
    for f in ["environ", "fd", "mem"] {
        let meta = std::fs::metadata(format!("/proc/{pid}/{f}")).unwrap();
        assert_eq!(meta.uid(), 0, "/proc/{pid}/{f}");
    }

    assert_eq!(value(&r, "kernel_abi"), landlock_abi().to_string());
    assert_eq!(value(&r, "allowed_connect"), "ok");
    assert_eq!(value(&r, "state_write"), "ok");
    assert_eq!(value(&r, "config_read"), "ok");
    assert_eq!(value(&r, "blocking"), "7");
    if landlock_abi() >= 1 {
        assert_eq!(value(&r, "passwd_read"), "EACCES", "Landlock hides /etc");
        assert_eq!(value(&r, "tmp_write"), "EACCES", "Landlock refuses /tmp");
        assert!(!exists(Path::new(ESCAPE)));
    }
    let _ = std::fs::remove_file(ESCAPE);
    if landlock_abi() >= 4 {
        assert_eq!(value(&r, "other_connect"), "EACCES");
    } else {
        assert_eq!(value(&r, "other_connect"), "ok", "not enforceable here");
    }
    let status = finish(child);
    assert!(status.success(), "{status}");
    assert_eq!(std::fs::read(d.state.join("written")).unwrap(), b"state");
}

fn key_pages() {
    let d = dirs();
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let plan = main_plan(&d, &[allowed.local_addr().unwrap().port()]);
    let arg = format!("{}|{}|1", d.config_file.display(), d.state.display());
    let mut child = spawn_child("runtime", &plan, &arg).spawn().unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);
    let addr = value(&r, "key_addr").to_owned();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut lines = smaps
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{addr}-")));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no mapping at {addr}"));
    // The mapping's fields run until the next "start-end perms …" header.
    let is_header = |l: &str| {
        l.split_whitespace().next().is_some_and(|range| {
            range.contains('-') && range.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        })
    };
    let fields: Vec<&str> = lines.take_while(|l| !is_header(l)).collect();
    let flags = fields
        .iter()
        .find_map(|l| l.strip_prefix("VmFlags:"))
        .unwrap_or_else(|| panic!("no VmFlags for {header}"));
    for flag in ["lo", "dd", "dc"] {
        assert!(
            flags.split_whitespace().any(|f| f == flag),
            "{flag} missing in {flags}"
        );
    }
    let locked_kb: u64 = fields
        .iter()
        .find_map(|l| l.strip_prefix("Locked:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(locked_kb >= 4, "Locked: {locked_kb} kB");
    assert!(finish(child).success());
}

fn no_core() {
    let (uid, gid) = test_user();
    let d = dirs();
    std::os::unix::fs::chown(d.root.path(), Some(uid), Some(gid)).unwrap();
    let cwd = d.root.path().to_str().unwrap().to_owned();
    let plan = main_plan(&d, &[]).read_write(d.root.path());
    let cores = || {
        std::fs::read_dir(&cwd)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("core")
            })
            .count()
    };

    let status = spawn_child("segv", &plan, &cwd).status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status}");
    assert!(!status.core_dumped(), "the sandboxed child dumped core");
    assert_eq!(cores(), 0);

    // The control shows this machine would write a core without the sandbox.
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    if pattern.starts_with('|') {
        eprintln!(
            "  (control skipped: core_pattern pipes to {})",
            pattern.trim()
        );
        return;
    }
    let status = spawn_child("segv_control", &plan, &cwd).status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    assert!(status.core_dumped(), "control: expected a core dump");
    assert!(cores() >= 1, "control: no core file in {cwd}");
}

fn run_apply_child(case: &str, plan: &SandboxPlan) -> Vec<(String, String)> {
    let mut child = spawn_child(case, plan, "").spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);
    let status = finish(child);
    assert!(status.success(), "{case}: {status}");
    r
}

fn abi_too_old() {
    let d = dirs();
    let available = landlock_abi();
    let plan = main_plan(&d, &[]).landlock(LandlockRequirement {
        require: true,
        min_abi: Some(available + 1),
    });
    let r = run_apply_child("apply_error", &plan);
    if available == 0 {
        assert_eq!(value(&r, "error"), "LandlockUnavailable");
    } else {
        assert_eq!(value(&r, "error"), "LandlockAbiTooOld");
        assert_eq!(value(&r, "required"), (available + 1).to_string());
        assert_eq!(value(&r, "available"), available.to_string());
    }
    // Refused before any step: still root, no_new_privs as inherited.
    assert_eq!(value(&r, "euid"), "0");
    let inherited = rustix::thread::no_new_privs().unwrap();
    assert_eq!(value(&r, "nnp"), u8::from(inherited).to_string());
}

fn abi_relaxed() {
    let d = dirs();
    let available = landlock_abi();
    let plan = main_plan(&d, &[]).landlock(LandlockRequirement {
        require: false,
        min_abi: Some(99),
    });
    let r = run_apply_child("apply_error", &plan);
    assert_eq!(value(&r, "result"), "ok");
    assert_eq!(value(&r, "enforced_abi"), available.to_string());
    assert_ne!(value(&r, "euid"), "0");
    assert_eq!(value(&r, "nnp"), "1");
}

fn threads_first() {
    let d = dirs();
    let r = run_apply_child("threads_first", &main_plan(&d, &[]));
    assert_eq!(value(&r, "error"), "ThreadsRunning");
    assert_eq!(value(&r, "threads"), "2");
    assert_eq!(value(&r, "euid"), "0");
}

fn already_user() {
    let (uid, gid) = test_user();
    let d = dirs();
    let plan = main_plan(&d, &[]);
    let mut child = setpriv(true, "apply_then_wait", &plan, "").spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);
    assert_eq!(value(&r, "result"), "ok");
    for (tid, status) in all_tasks(child.id()).unwrap() {
        assert!(status.is_sandboxed_as(uid, gid), "{tid}: {status:?}");
    }
    assert!(finish(child).success());
}

fn bounding_left() {
    let d = dirs();
    let plan = main_plan(&d, &[]);
    let mut child = setpriv(false, "apply_error", &plan, "").spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);
    assert_eq!(value(&r, "error"), "BoundingSetNotEmpty");
    assert!(finish(child).success());
}

fn unknown_user() {
    let d = dirs();
    let mut plan = main_plan(&d, &[]);
    plan.user = "custody-no-such-user".into();
    let r = run_apply_child("apply_error", &plan);
    assert_eq!(value(&r, "error"), "NoSuchIdentity:user");
    assert_eq!(value(&r, "euid"), "0");
}

fn main_cannot_spawn() {
    let d = dirs();
    let status = spawn_child("spawn", &main_plan(&d, &[]), "")
        .status()
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGSYS),
        "seccomp must kill a main process that starts a process: {status}"
    );
}

fn installer_hooks() {
    let (uid, gid) = test_user();
    let d = dirs();
    let install = d.root.path().join("install");
    std::fs::create_dir(&install).unwrap();
    std::os::unix::fs::chown(&install, Some(uid), Some(gid)).unwrap();
    let outside = d.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(
        &outside,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut plan = SandboxPlan::new(TEST_USER, SeccompProfile::Installer)
        .read("/etc")
        .read_write(&install)
        .read_write("/dev/null")
        .landlock(requirement());
    for p in system_exec_paths() {
        plan = plan.read_exec(p);
    }
    let arg = format!(
        "{}|{}|{}",
        install.display(),
        outside.display(),
        listener.local_addr().unwrap().port()
    );
    let mut child = spawn_child("hooks", &plan, &arg).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);
    assert!(finish(child).success());
    assert_eq!(value(&r, "install_hook"), "0");
    assert_eq!(
        std::fs::read_to_string(install.join("out")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(install.join("uid")).unwrap().trim(),
        uid.to_string()
    );
    if landlock_abi() >= 1 {
        assert_ne!(value(&r, "escape_hook"), "0");
        assert!(!exists(&outside.join("escaped")));
    }
    let net = value(&r, "net_hook");
    if net != "skipped" && landlock_abi() >= 4 {
        assert_ne!(net, "0", "a hook must not connect anywhere");
    }
}

fn resolves_names() {
    let d = dirs();
    let mut plan = main_plan(&d, &[]);
    for p in name_resolution_paths() {
        plan = plan.read(p);
    }
    let r = run_apply_child("resolve", &plan);
    let n: usize = value(&r, "resolved")
        .parse()
        .unwrap_or_else(|_| panic!("resolving localhost failed: {r:?}"));
    assert!(n >= 1);
}
