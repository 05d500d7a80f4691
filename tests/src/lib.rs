//! Custody's end-to-end harness: real processes on loopback.
//!
//! Everything here runs the real thing: the `custody-coordinator` binary
//! (`init`, then `run`: TLS with its own CA that clients pin, a real SQLite
//! file in a temporary state dir), `custody-agent` binaries (`enroll`, then
//! `run` with the sandbox on, dropping to the `custody-test` user when the
//! tests run as root), the `custody` command line, SoftHSM2 tokens and
//! swtpm TPMs from `hsm-sim`. Each scenario gets its own coordinator,
//! tokens, TPMs, directories and ports, so scenarios run in parallel.
//! Processes are killed when their handle is dropped; their stdout and
//! stderr go to files whose last lines are printed when a test fails.
//! Readiness is polled ([`wait::eventually`]), never slept for.
//!
//! The binaries are found next to the running test executable
//! ([`bins`]); `cargo test --workspace` builds them first, otherwise run
//! `cargo build --workspace --bins`.
//!
//! ```no_run
//! # async fn demo() -> custody_e2e::Result<()> {
//! use custody_e2e::{Cluster, ClusterOptions, release};
//!
//! // A coordinator, two (soft) key managers holding the master key, a target.
//! let cl = Cluster::start(&ClusterOptions::default()).await?;
//! let t = cl.target()?;
//! cl.c.create_app("web", true).await?;
//! cl.c.environment("web", "dev", &[&t.server_id]).await?;
//! let manifest = format!(
//!     "version = 1\ndestination = \"{}\"\ninclude = [\"hello.txt\"]\n",
//!     t.install_root.join("web").display()
//! );
//! let tar = release::tar_of(&[
//!     ("custody.toml", manifest.as_bytes(), 0o644),
//!     ("hello.txt", b"hello", 0o644),
//! ])?;
//! let r = release::push(&cl.c, "web", &tar, manifest.as_bytes(), &cl.publisher).await?;
//! let d = cl.c.deploy("web", &r.release_id, "dev").await?;
//! assert!(cl.c.finished(&d.id).await?.state == custody_proto::apps::DeploymentState::Succeeded);
//! # Ok(()) }
//! ```
//!
//! API stability: the items re-exported here and the public methods of
//! [`Coordinator`], [`Agent`], [`Cli`], [`Cluster`] and [`Proc`] are what
//! the benchmarks build on; change them only compatibly.
#![forbid(unsafe_code)]

pub mod agent;
mod api;
pub mod bins;
pub mod cli;
pub mod cluster;
pub mod coordinator;
pub mod error;
pub mod files;
pub mod proc_status;
pub mod process;
pub mod release;
pub mod service_user;
pub mod wait;

pub use agent::{Agent, AgentOptions, Keystore, Role};
pub use cli::Cli;
pub use cluster::{Cluster, ClusterOptions};
pub use coordinator::{Coordinator, CoordinatorOptions};
pub use error::{E2eError, Result};
pub use process::Proc;
pub use release::{Publisher, Pushed};
pub use wait::eventually;
