//! The threads that run key-manager jobs: `parallelism` of them, started
//! once, each blocking in the keystore for one job at a time. A thread that
//! finishes a job takes the next queued one at once, without a round trip
//! through the async runtime (a fresh blocking task and a semaphore wake-up
//! per job left the keystore idle between jobs: docs/BENCHMARKS.md).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use custody_proto::jobs::{JobOutput, JobPayload};
use tokio::sync::oneshot;

use crate::keystore::KeyStore;
use crate::roles::JobError;
use crate::roles::keymanager::KeyManager;

/// A job for the threads, and where its outcome goes.
struct Work {
    payload: JobPayload,
    done: oneshot::Sender<Result<JobOutput, JobError>>,
}

/// The running threads. Dropping this lets them finish the queued jobs
/// and end.
pub struct KeystoreThreads {
    queue: Sender<Work>,
    count: usize,
}

/// What this agent is, for every job's checks.
struct Identity {
    keystore: Arc<dyn KeyStore>,
    account: String,
    server_id: String,
}

impl KeystoreThreads {
    /// Starts `count` (at least 1) threads named `keystore-N`.
    pub fn start(
        keystore: Arc<dyn KeyStore>,
        account: &str,
        server_id: &str,
        count: usize,
    ) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        let me = Arc::new(Identity {
            keystore,
            account: account.to_owned(),
            server_id: server_id.to_owned(),
        });
        let count = count.max(1);
        for n in 0..count {
            let (rx, me) = (rx.clone(), me.clone());
            std::thread::Builder::new()
                .name(format!("keystore-{n}"))
                .spawn(move || serve(&rx, &me))?;
        }
        Ok(KeystoreThreads { queue, count })
    }

    /// How many threads there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs one job on the next free thread. `None` when the thread died
    /// with it (a panic, in a build that unwinds).
    pub async fn run(&self, payload: JobPayload) -> Option<Result<JobOutput, JobError>> {
        let (done, outcome) = oneshot::channel();
        self.queue.send(Work { payload, done }).ok()?;
        outcome.await.ok()
    }
}

/// One thread: takes jobs until the queue's sender is gone.
fn serve(rx: &Mutex<Receiver<Work>>, me: &Identity) {
    loop {
        // Hold the lock only to take a job, not to run it. A thread that
        // panicked while holding it left nothing half-done in the receiver.
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(work) = next else { return };
        let km = KeyManager {
            keystore: me.keystore.as_ref(),
            account: &me.account,
            server_id: &me.server_id,
        };
        // The job's task may be gone (the agent is stopping): nothing to do.
        let _ = work.done.send(km.run(&work.payload));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::SoftConfig;
    use crate::keystore::soft::SoftKeyStore;
    use custody_envelope::jwe;
    use custody_proto::servers::KeyManagerKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};

    /// Jobs sent at once all come back, each with its own outcome: the
    /// right account's wrap the new master key to the key manager (a
    /// different key each time), the wrong account's are refused.
    #[tokio::test]
    async fn every_job_gets_its_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: SoftConfig = toml::from_str("key_bits = 2048").unwrap();
        let ks: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open(&cfg, dir.path()).unwrap());
        let me = KeyManagerKey {
            server_id: "srv".into(),
            name: "srv".into(),
            public_key_pem: ks.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
            oaep_hashes: ks.supported_hashes().to_vec(),
            fingerprint: jwe::thumbprint(ks.public_key()),
        };
        let threads = Arc::new(KeystoreThreads::start(ks, "acct", "srv", 2).unwrap());
        assert_eq!(threads.count(), 2);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..6 {
            let (threads, me) = (threads.clone(), me.clone());
            set.spawn(async move {
                let account = if i % 2 == 0 { "acct" } else { "other" };
                let out = threads
                    .run(JobPayload::CreateMasterKey {
                        account: account.into(),
                        master_key_id: format!("mk_{i}"),
                        key_managers: vec![me],
                    })
                    .await;
                (i, out)
            });
        }
        let mut wraps = Vec::new();
        while let Some(r) = set.join_next().await {
            let (i, out) = r.unwrap();
            match out.expect("a thread answered") {
                Ok(JobOutput::CreateMasterKey {
                    master_key_id,
                    wrapped,
                }) if i % 2 == 0 => {
                    assert_eq!(master_key_id, format!("mk_{i}"));
                    assert_eq!(wrapped.len(), 1);
                    wraps.push(wrapped[0].jwe.clone());
                }
                Err(JobError::WrongAccount { got, .. }) if i % 2 == 1 => {
                    assert_eq!(got, "other");
                }
                other => panic!("job {i}: {other:?}"),
            }
        }
        wraps.sort();
        wraps.dedup();
        assert_eq!(wraps.len(), 3);
    }
}
