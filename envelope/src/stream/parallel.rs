//! The parallel driver: the calling thread reads batches and writes
//! results in order; `threads` scoped std threads encrypt or decrypt whole
//! batches in place between reused buffers. Chunks are independent (the
//! nonce is the base nonce XOR the chunk number), so batches can be
//! processed in any order; output order is restored before writing.
//!
//! Memory is bounded: `2 × threads + 2` batch buffer pairs (≈ 2 MiB each).

use super::buf::SecretBuf;
use super::{BATCH_CHUNKS, read_full, write_all};
use crate::EnvelopeError;
use crate::chunked::{BodyKey, CHUNK_LEN, SEALED_CHUNK_LEN};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Mutex, mpsc};

/// Which direction the driver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Seal,
    Open,
}

impl Op {
    /// Bytes of input per chunk and per batch.
    fn in_chunk(self) -> usize {
        match self {
            Op::Seal => CHUNK_LEN,
            Op::Open => SEALED_CHUNK_LEN,
        }
    }
    fn out_chunk(self) -> usize {
        match self {
            Op::Seal => SEALED_CHUNK_LEN,
            Op::Open => CHUNK_LEN,
        }
    }
}

/// The machine's available parallelism (at least 1).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A pair of reusable buffers; both zeroized on drop (one of them always
/// holds plaintext).
struct Buffers {
    input: SecretBuf,
    output: SecretBuf,
}

struct Job {
    seq: u64,
    first_chunk: u64,
    len: usize,
    last: bool,
    bufs: Buffers,
}

struct Done {
    seq: u64,
    in_len: usize,
    result: Result<usize, EnvelopeError>,
    bufs: Buffers,
}

fn work(key: &BodyKey, op: Op, job: Job) -> Done {
    let Job {
        seq,
        first_chunk,
        len,
        last,
        mut bufs,
    } = job;
    let input = bufs.input.get(len);
    let result = match op {
        Op::Seal => bufs
            .output
            .fill_verified(|out| key.seal_run(first_chunk, input, out, last)),
        Op::Open => bufs
            .output
            .fill_verified(|out| key.open_run(first_chunk, input, out, last)),
    };
    Done {
        seq,
        in_len: len,
        result,
        bufs,
    }
}

/// Runs the body after its prefix. Returns the plaintext length.
pub(super) fn run<R: Read, W: Write>(
    key: &BodyKey,
    input: &mut R,
    output: &mut W,
    threads: usize,
    op: Op,
) -> Result<u64, EnvelopeError> {
    let threads = threads.max(1);
    let in_batch = BATCH_CHUNKS * op.in_chunk();
    let out_batch = BATCH_CHUNKS * op.out_chunk();
    let depth = 2 * threads + 2;

    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            std::thread::Builder::new()
                .name("custody-crypt".into())
                .spawn_scoped(scope, move || {
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => match rx.recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            },
                            Err(_) => return,
                        };
                        if done_tx.send(work(key, op, job)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|_| EnvelopeError::Worker("could not start a worker thread"))?;
        }
        drop(done_tx);

        let mut free: Vec<Buffers> = (0..depth)
            .map(|_| Buffers {
                input: SecretBuf::new(in_batch),
                output: SecretBuf::new(out_batch),
            })
            .collect();
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let (mut next_read, mut next_write) = (0u64, 0u64);
        let mut chunk = 0u64;
        let mut eof = false;
        let mut plaintext_len = 0u64;

        let result = 'outer: loop {
            // Keep the workers fed.
            while !eof {
                let Some(mut bufs) = free.pop() else { break };
                let n = match bufs.input.fill(|b| read_full(input, b)) {
                    Ok(n) => n,
                    Err(e) => break 'outer Err(e),
                };
                let last = n < in_batch;
                let job = Job {
                    seq: next_read,
                    first_chunk: chunk,
                    len: n,
                    last,
                    bufs,
                };
                if job_tx.send(job).is_err() {
                    return Err(EnvelopeError::Worker("worker threads exited"));
                }
                chunk += (n / op.in_chunk()) as u64;
                next_read += 1;
                eof = last;
            }
            if next_write == next_read {
                break Ok(plaintext_len);
            }
            // Write the next batch in order, once it is done.
            let done = loop {
                if let Some(d) = pending.remove(&next_write) {
                    break d;
                }
                match done_rx.recv() {
                    Ok(d) => {
                        pending.insert(d.seq, d);
                    }
                    Err(_) => return Err(EnvelopeError::Worker("worker threads died")),
                }
            };
            match done.result {
                Ok(w) => {
                    if let Err(e) = write_all(output, done.bufs.output.get(w)) {
                        break Err(e);
                    }
                    plaintext_len += match op {
                        Op::Seal => done.in_len,
                        Op::Open => w,
                    } as u64;
                }
                Err(e) => break Err(e),
            }
            free.push(done.bufs);
            next_write += 1;
        };
        drop(job_tx);
        result
    })
}
