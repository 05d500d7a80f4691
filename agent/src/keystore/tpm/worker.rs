//! The one thread that owns the TPM context (`tss_esapi::Context` is neither
//! `Send` nor `Sync`, and the TPM runs one command at a time anyway). Callers
//! send it requests over a channel and wait for the answer.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use tss_esapi::Context;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::session_handles::AuthSession;
use zeroize::Zeroizing;

use super::blobs::KeyBlobs;
use super::{context, decrypt};
use crate::keystore::KeyStoreError;

type Reply = Result<Zeroizing<Vec<u8>>, KeyStoreError>;

/// One unwrap request.
pub struct Request {
    ciphertext: Vec<u8>,
    reply: SyncSender<Reply>,
}

/// The running worker.
pub struct Worker {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

struct Loaded {
    context: Context,
    session: AuthSession,
    key: KeyHandle,
}

fn setup(tcti: &str, blobs: &KeyBlobs) -> Result<Loaded, KeyStoreError> {
    let mut ctx = context::connect(tcti)?;
    let session = context::start_session(&mut ctx)?;
    let primary = context::create_primary(&mut ctx, session)?;
    let key = context::load_key(&mut ctx, session, primary, blobs)?;
    // The primary is only needed to load the key.
    let _ = ctx.flush_context(primary.into());
    Ok(Loaded {
        context: ctx,
        session,
        key,
    })
}

impl Worker {
    /// Starts the thread, which connects, loads the key and reports back
    /// before this returns.
    pub fn start(tcti: String, blobs: KeyBlobs, modulus_len: usize) -> Result<Self, KeyStoreError> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), KeyStoreError>>(1);
        let thread = std::thread::Builder::new()
            .name("custody-tpm".to_owned())
            .spawn(move || run(&tcti, &blobs, modulus_len, &ready_tx, inbox))
            .map_err(KeyStoreError::StartWorker)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                requests: Some(requests),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(KeyStoreError::WorkerGone)
            }
        }
    }

    /// Sends `ciphertext` to the worker and waits for the plaintext.
    pub fn unwrap(&self, ciphertext: &[u8]) -> Reply {
        let (reply, answer) = mpsc::sync_channel(1);
        let requests = self.requests.as_ref().ok_or(KeyStoreError::WorkerGone)?;
        requests
            .send(Request {
                ciphertext: ciphertext.to_vec(),
                reply,
            })
            .map_err(|_| KeyStoreError::WorkerGone)?;
        answer.recv().map_err(|_| KeyStoreError::WorkerGone)?
    }
}

fn run(
    tcti: &str,
    blobs: &KeyBlobs,
    modulus_len: usize,
    ready: &SyncSender<Result<(), KeyStoreError>>,
    inbox: Receiver<Request>,
) {
    let mut loaded = match setup(tcti, blobs) {
        Ok(l) => {
            let _ = ready.send(Ok(()));
            l
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    for request in inbox {
        let answer = decrypt::oaep_sha256_decrypt(
            &mut loaded.context,
            loaded.session,
            loaded.key,
            modulus_len,
            &request.ciphertext,
        );
        let _ = request.reply.send(answer);
    }
    let _ = loaded.context.flush_context(loaded.key.into());
    let _ = loaded
        .context
        .flush_context(tss_esapi::handles::SessionHandle::from(loaded.session).into());
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the loop; the thread flushes and exits.
        drop(self.requests.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
