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
    use crate::roles::keymanager::keys::binding;
    use custody_envelope::OaepHash;
    use custody_envelope::jwe;
    use custody_proto::jobs::WrappedMasterKey;
    use custody_proto::servers::KeyManagerKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn soft(dir: &std::path::Path) -> SoftKeyStore {
        let cfg: SoftConfig = toml::from_str("key_bits = 2048").unwrap();
        SoftKeyStore::open(&cfg, dir).unwrap()
    }

    fn key_of(ks: &dyn KeyStore) -> KeyManagerKey {
        KeyManagerKey {
            server_id: "srv".into(),
            name: "srv".into(),
            public_key_pem: ks.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
            oaep_hashes: ks.supported_hashes().to_vec(),
            fingerprint: jwe::thumbprint(ks.public_key()),
        }
    }

    /// Jobs sent at once all come back, each with its own outcome: the
    /// right account's wrap the new master key to the key manager (a
    /// different key each time), the wrong account's are refused.
    #[tokio::test]
    async fn every_job_gets_its_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let ks: Arc<dyn KeyStore> = Arc::new(soft(dir.path()));
        let me = key_of(ks.as_ref());
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

    /// A real soft keystore that counts the unwraps in progress and makes
    /// each one last a while.
    struct Counting {
        inner: SoftKeyStore,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl KeyStore for Counting {
        fn kind(&self) -> &'static str {
            self.inner.kind()
        }
        fn public_key(&self) -> &rsa::RsaPublicKey {
            self.inner.public_key()
        }
        fn supported_hashes(&self) -> &[OaepHash] {
            self.inner.supported_hashes()
        }
        fn unwrap(
            &self,
            hash: OaepHash,
            ciphertext: &[u8],
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::keystore::KeyStoreError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            let r = self.inner.unwrap(hash, ciphertext);
            self.running.fetch_sub(1, Ordering::SeqCst);
            r
        }
    }

    /// However many jobs are queued, no more than `count` use the keystore
    /// at once (its sessions), and every queued job is run.
    #[tokio::test]
    async fn no_more_jobs_use_the_keystore_at_once_than_there_are_threads() {
        let dir = tempfile::tempdir().unwrap();
        let counting = Arc::new(Counting {
            inner: soft(dir.path()),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        });
        let newcomer = key_of(counting.as_ref());
        let mk = [7u8; 32];
        let wrapped = jwe::wrap(
            counting.public_key(),
            OaepHash::Sha256,
            &binding::master_key("acct"),
            &mk,
        )
        .unwrap();
        let ks: Arc<dyn KeyStore> = counting.clone();
        let threads = Arc::new(KeystoreThreads::start(ks, "acct", "srv", 2).unwrap());
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (threads, newcomer, jwe) = (threads.clone(), newcomer.clone(), wrapped.clone());
            set.spawn(async move {
                threads
                    .run(JobPayload::ShareMasterKey {
                        account: "acct".into(),
                        master_key: WrappedMasterKey {
                            master_key_id: "mk_1".into(),
                            jwe,
                        },
                        newcomer,
                    })
                    .await
            });
        }
        let mut done = 0;
        while let Some(r) = set.join_next().await {
            match r.unwrap().expect("a thread answered") {
                Ok(JobOutput::ShareMasterKey { .. }) => done += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(done, 8);
        let most = counting.most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} unwraps at once");
    }
}
