//! Package encrypt/decrypt throughput: 64 KiB, 1 MiB and 256 MiB,
//! single-threaded (`stream::*_stream`) and parallel (`stream::*_parallel`
//! on all cores). Output goes to a reused in-memory buffer.
#![allow(clippy::panic)] // a benchmark harness: failing loudly is right
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use custody_envelope::package::{self, Header};
use custody_envelope::{SymmetricKey, stream};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let key = SymmetricKey::from_bytes([7; 32]);
    let header = Header::new("bench", "app", "r1").unwrap_or_else(|e| panic!("{e}"));
    let threads = stream::default_threads();
    for (label, size) in [
        ("64KiB", 64usize << 10),
        ("1MiB", 1 << 20),
        ("256MiB", 256 << 20),
    ] {
        let plain = vec![0xa5u8; size];
        let pkg = package::encrypt(&key, &header, &plain).unwrap_or_else(|e| panic!("{e}"));
        let mut out: Vec<u8> = Vec::with_capacity(pkg.len());
        let mut g = c.benchmark_group(format!("package/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size > 16 << 20 {
            g.sample_size(10).measurement_time(Duration::from_secs(8));
        }
        g.bench_function(BenchmarkId::new("encrypt", "1-thread"), |b| {
            b.iter(|| {
                out.clear();
                stream::encrypt_stream(&key, &header, &plain[..], &mut out)
                    .unwrap_or_else(|e| panic!("{e}"));
                black_box(&out);
            })
        });
        g.bench_function(
            BenchmarkId::new("encrypt", format!("{threads}-threads")),
            |b| {
                b.iter(|| {
                    out.clear();
                    stream::encrypt_parallel(&key, &header, &plain[..], &mut out, threads)
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(&out);
                })
            },
        );
        g.bench_function(BenchmarkId::new("decrypt", "1-thread"), |b| {
            b.iter(|| {
                out.clear();
                stream::decrypt_stream(&key, &pkg[..], &mut out).unwrap_or_else(|e| panic!("{e}"));
                black_box(&out);
            })
        });
        g.bench_function(
            BenchmarkId::new("decrypt", format!("{threads}-threads")),
            |b| {
                b.iter(|| {
                    out.clear();
                    stream::decrypt_parallel(&key, &pkg[..], &mut out, threads)
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(&out);
                })
            },
        );
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
