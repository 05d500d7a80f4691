//! The usual cast of a scenario: one coordinator, key managers enabled and
//! holding the master key, deploy targets pinning one publisher key — all
//! real processes, every agent sandboxed.

use crate::agent::{Agent, AgentOptions, Keystore};
use crate::coordinator::{Coordinator, CoordinatorOptions};
use crate::error::Result;
use crate::release::Publisher;

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The coordinator's timing.
    pub coordinator: CoordinatorOptions,
    /// One key manager per entry (named `km-1`, `km-2` …).
    pub key_managers: Vec<Keystore>,
    /// One target per entry (named `target-1` …).
    pub targets: Vec<Keystore>,
    /// Lines added to every target's `[target]` section.
    pub target_toml: String,
    /// Install roots granted to every target besides its own.
    pub target_install_roots: Vec<std::path::PathBuf>,
    /// The seed of the publisher key the targets pin.
    pub publisher_seed: u8,
}

impl Default for ClusterOptions {
    /// Two soft key managers and one soft target (fast: for scenarios
    /// where hardware is not the point).
    fn default() -> Self {
        ClusterOptions {
            coordinator: CoordinatorOptions::default(),
            key_managers: vec![Keystore::Soft, Keystore::Soft],
            targets: vec![Keystore::Soft],
            target_toml: String::new(),
            target_install_roots: Vec::new(),
            publisher_seed: 7,
        }
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    // Agents first: they stop before the coordinator.
    /// The key managers, enabled, each holding the master key.
    pub kms: Vec<Agent>,
    /// The targets.
    pub targets: Vec<Agent>,
    /// The coordinator.
    pub c: Coordinator,
    /// The publisher key every target pins.
    pub publisher: Publisher,
}

impl Cluster {
    /// Starts the coordinator, enrolls and starts every agent, enables the
    /// key managers (the first creates the master key, the others learn
    /// it) and waits until all of them hold it.
    pub async fn start(opts: &ClusterOptions) -> Result<Cluster> {
        let c = Coordinator::start_with(&opts.coordinator).await?;
        let publisher = Publisher::from_seed(opts.publisher_seed);
        let mut kms = Vec::new();
        for (i, ks) in opts.key_managers.iter().enumerate() {
            let mut a = Agent::new(&format!("km-{}", i + 1), &AgentOptions::key_manager(*ks))?;
            a.enroll(&c).await?;
            a.start()?;
            kms.push(a);
        }
        let mut targets = Vec::new();
        for (i, ks) in opts.targets.iter().enumerate() {
            let mut o = AgentOptions::target(*ks, &[publisher.pin()]);
            o.target_toml = opts.target_toml.clone();
            o.extra_install_roots = opts.target_install_roots.clone();
            let mut a = Agent::new(&format!("target-{}", i + 1), &o)?;
            a.enroll(&c).await?;
            a.start()?;
            targets.push(a);
        }
        for a in kms.iter_mut().chain(targets.iter_mut()) {
            a.wait_live(&c).await?;
        }
        let ids: Vec<String> = kms.iter().map(|a| a.server_id.clone()).collect();
        for id in &ids {
            c.enable_key_manager(id).await?;
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        c.wait_holders(&refs).await?;
        Ok(Cluster {
            kms,
            targets,
            c,
            publisher,
        })
    }

    /// The first target.
    pub fn target(&self) -> Result<&Agent> {
        self.targets
            .first()
            .ok_or_else(|| crate::error::E2eError::Setup("the cluster has no target".into()))
    }

    /// The key managers' keys (what a secret variable is wrapped to).
    pub async fn km_keys(&self) -> Result<Vec<custody_proto::servers::KeyManagerKey>> {
        let mut out = Vec::new();
        for a in &self.kms {
            out.push(a.key(&self.c).await?);
        }
        Ok(out)
    }
}
