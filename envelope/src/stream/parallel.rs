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

impl Op {
    fn apply(
        self,
        key: &BodyKey,
        first_chunk: u64,
        input: &[u8],
        out: &mut SecretBuf,
        last: bool,
    ) -> Result<usize, EnvelopeError> {
        match self {
            Op::Seal => out.fill_verified(|o| key.seal_run(first_chunk, input, o, last)),
            Op::Open => out.fill_verified(|o| key.open_run(first_chunk, input, o, last)),
        }
    }

    fn plaintext_len(self, in_len: usize, out_len: usize) -> u64 {
        match self {
            Op::Seal => in_len as u64,
            Op::Open => out_len as u64,
        }
    }
}

impl Buffers {
    fn new(op: Op) -> Self {
        Buffers {
            input: SecretBuf::new(BATCH_CHUNKS * op.in_chunk()),
            output: SecretBuf::new(BATCH_CHUNKS * op.out_chunk()),
        }
    }
}

fn work(key: &BodyKey, op: Op, job: Job) -> Done {
    let Job {
        seq,
        first_chunk,
        len,
        last,
        mut bufs,
    } = job;
    let result = op.apply(
        key,
        first_chunk,
        bufs.input.get(len),
        &mut bufs.output,
        last,
    );
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
    let depth = 2 * threads + 2;

    // A body of at most two batches is done inline: starting threads would
    // cost more than it saves.
    let mut first = Buffers::new(op);
    let n = first.input.fill(|b| read_full(input, b))?;
    if n < in_batch {
        let w = op.apply(key, 0, first.input.get(n), &mut first.output, true)?;
        write_all(output, first.output.get(w))?;
        return Ok(op.plaintext_len(n, w));
    }
    let mut second = Buffers::new(op);
    let n2 = second.input.fill(|b| read_full(input, b))?;
    if n2 < in_batch {
        let w = op.apply(key, 0, first.input.get(n), &mut first.output, false)?;
        write_all(output, first.output.get(w))?;
        let w2 = op.apply(
            key,
            BATCH_CHUNKS as u64,
            second.input.get(n2),
            &mut second.output,
            true,
        )?;
        write_all(output, second.output.get(w2))?;
        return Ok(op.plaintext_len(n, w) + op.plaintext_len(n2, w2));
    }

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

        let send = |job: Job| {
            job_tx
                .send(job)
                .map_err(|_| EnvelopeError::Worker("worker threads exited"))
        };
        send(Job {
            seq: 0,
            first_chunk: 0,
            len: n,
            last: false,
            bufs: first,
        })?;
        send(Job {
            seq: 1,
            first_chunk: BATCH_CHUNKS as u64,
            len: n2,
            last: false,
            bufs: second,
        })?;
        let mut allocated = 2;
        let mut free: Vec<Buffers> = Vec::with_capacity(depth);
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let (mut next_read, mut next_write) = (2u64, 0u64);
        let mut chunk = 2 * BATCH_CHUNKS as u64;
        let mut eof = false;
        let mut plaintext_len = 0u64;

        let result = 'outer: loop {
            // Keep the workers fed, allocating buffers lazily up to `depth`.
            while !eof {
                let mut bufs = match free.pop() {
                    Some(b) => b,
                    None if allocated < depth => {
                        allocated += 1;
                        Buffers::new(op)
                    }
                    None => break,
                };
                let n = match bufs.input.fill(|b| read_full(input, b)) {
                    Ok(n) => n,
                    Err(e) => break 'outer Err(e),
                };
                let last = n < in_batch;
                send(Job {
                    seq: next_read,
                    first_chunk: chunk,
                    len: n,
                    last,
                    bufs,
                })?;
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
                    plaintext_len += op.plaintext_len(done.in_len, w);
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
