//! `sandbox-check`: builds the main process's plan from the configuration
//! (as `run` would) and proves it with probe processes
//! (`sandbox::check::run`), printing the table.

use std::io::Write;
use std::path::Path;

use crate::config::AgentConfig;
use crate::credential::Credential;
use crate::link::{self, Endpoint, Resolved};
use crate::main_plan;
use crate::sandbox::check::{ProbeLauncher, run};

/// Runs the check; returns the exit status (0 only when it passed).
pub fn sandbox_check(
    config: &AgentConfig,
    config_path: &Path,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    // The coordinator's port, when the agent knows its coordinator.
    let endpoint = match &config.coordinator {
        Some(c) => Endpoint::new(&c.url, &c.ca_fingerprint).ok(),
        None => Credential::load(&config.state.credential_path())
            .ok()
            .and_then(|c| Endpoint::new(&c.coordinator_url, &c.ca_fingerprint).ok()),
    };
    let resolved = match &endpoint {
        Some(e) => link::resolve(e).unwrap_or_else(|_| Resolved {
            hosts: Vec::new(),
            ports: vec![e.port],
        }),
        None => {
            writeln!(
                out,
                "note: no coordinator configured or enrolled; the plan allows no TCP port"
            )?;
            Resolved::default()
        }
    };
    let plan = main_plan::build(config, config_path, &resolved);
    let launcher = ProbeLauncher::current_exe(["sandbox-probe"])?;
    let report = run(&plan, &launcher);
    write!(out, "{report}")?;
    Ok(report.exit_code())
}
