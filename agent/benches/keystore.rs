//! Unwraps per second through each keystore, beside the raw rate of the
//! same hardware measured in the same run:
//!
//! - soft: the `rsa` crate's OAEP decryption with the same key vs the
//!   keystore (which wraps it) — 1 and N threads; `openssl speed` (the
//!   CPU's best), printed by `scripts/bench-2-keystore.sh`, for scale.
//! - pkcs11 (SoftHSM2): a raw `C_Decrypt` loop on its own sessions vs the
//!   keystore (session pool) — 1 thread and N threads, each thread
//!   alternating one raw and one keystore unwrap.
//! - tpm (swtpm): a raw `TPM2_RSA_Decrypt` loop (same key, same HMAC
//!   session setup) vs the keystore (its owning thread) — 1 and N callers.
//!
//! Each figure is the median of `RUNS` timed runs of `RUN` seconds, after a
//! warm-up; raw and keystore runs alternate (TPM) or, where both can run in
//! one thread (PKCS#11), their operations alternate. SoftHSM2 needs `SOFTHSM2_CONF` before `C_Initialize`, so the
//! PKCS#11 part runs in a child process of this binary with it set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custody_agent::keystore::{self, KeyStore, KeyStoreConfig};
use custody_envelope::OaepHash;
use rsa::Oaep;

const WARMUP: Duration = Duration::from_millis(500);
const RUN: Duration = Duration::from_secs(2);
const RUNS: usize = 5;

fn threads() -> usize {
    std::env::var("CUSTODY_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(2)
}

/// Operations per second during `d` with `n` threads, each with state
/// from `make`, each calling `op` in a loop.
fn run_threads<S>(
    n: usize,
    d: Duration,
    make: &(impl Fn() -> S + Sync),
    op: &(impl Fn(&mut S) + Sync),
) -> f64 {
    {
        let stop = AtomicBool::new(false);
        let count = AtomicU64::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    let mut st = make();
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        op(&mut st);
                        k += 1;
                    }
                    count.fetch_add(k, Ordering::Relaxed);
                });
            }
            std::thread::sleep(d);
            stop.store(true, Ordering::Relaxed);
        });
        count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
    }
}

/// Operations per second of `op` during `d` on the calling thread (for
/// state that cannot leave it, like a TPM context).
fn run_here(d: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut k = 0u64;
    while start.elapsed() < d {
        op();
        k += 1;
    }
    k as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Raw and keystore runs **alternate** (after one warm-up each), so a
/// change in machine load hits both alike; returns their medians. Each
/// closure performs one timed run of the given duration.
fn compare(
    mut raw: impl FnMut(Duration) -> f64,
    mut ks: impl FnMut(Duration) -> f64,
) -> (f64, f64) {
    raw(WARMUP);
    ks(WARMUP);
    let (mut r, mut k) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        r.push(raw(RUN));
        k.push(ks(RUN));
    }
    (median(r), median(k))
}

/// `n` threads, each alternating one raw operation (on its own state from
/// `make`) and one keystore operation for `d`, each operation timed on its
/// own: returns (raw, keystore) operations per second, each the sum over
/// threads of that thread's operations per second of its own time.
/// Interleaving op by op puts both under the same machine state (CPU
/// placement, steal, frequency, the other threads' work), which whole-run
/// alternation on this VM did not: a rate drifted by up to ±12% between
/// two-second runs, in either direction.
fn interleaved<S>(
    n: usize,
    d: Duration,
    make: &(impl Fn() -> S + Sync),
    raw: &(impl Fn(&mut S) + Sync),
    ks: &(impl Fn() + Sync),
) -> (f64, f64) {
    let rates: Vec<(f64, f64)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let mut st = make();
                    let (mut raw_time, mut ks_time, mut k) = (Duration::ZERO, Duration::ZERO, 0u64);
                    let start = Instant::now();
                    while start.elapsed() < d {
                        let t0 = Instant::now();
                        raw(&mut st);
                        let t1 = Instant::now();
                        ks();
                        ks_time += t1.elapsed();
                        raw_time += t1 - t0;
                        k += 1;
                    }
                    (
                        k as f64 / raw_time.as_secs_f64(),
                        k as f64 / ks_time.as_secs_f64(),
                    )
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    (
        rates.iter().map(|r| r.0).sum(),
        rates.iter().map(|r| r.1).sum(),
    )
}

/// Median (raw, keystore) rates over `RUNS` interleaved runs of `n`
/// threads, after a warm-up.
fn compare_interleaved<S>(
    n: usize,
    make: &(impl Fn() -> S + Sync),
    raw: &(impl Fn(&mut S) + Sync),
    ks: &(impl Fn() + Sync),
) -> (f64, f64) {
    interleaved(n, WARMUP, make, raw, ks);
    let runs: Vec<(f64, f64)> = (0..RUNS)
        .map(|_| interleaved(n, RUN, make, raw, ks))
        .collect();
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

/// Median rate of the keystore alone (warm-up, RUNS runs).
fn alone(mut ks: impl FnMut(Duration) -> f64) -> f64 {
    ks(WARMUP);
    median((0..RUNS).map(|_| ks(RUN)).collect())
}

fn encrypt(pk: &rsa::RsaPublicKey, hash: OaepHash) -> Vec<u8> {
    let padding = match hash {
        OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
        OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
    };
    pk.encrypt(&mut custody_agent::rng::OsRng, padding, &[0x42; 32])
        .unwrap()
}

/// One unwrap through `ks` of a wrapped 32-byte key.
fn unwrap_once(ks: &dyn KeyStore, hash: OaepHash, ct: &[u8]) {
    let pt = ks.unwrap(hash, ct).unwrap();
    assert_eq!(pt.len(), 32);
}

/// One timed run of unwraps through `ks` with `n` threads.
fn keystore_run(ks: &dyn KeyStore, n: usize, d: Duration) -> f64 {
    let hash = OaepHash::best_common(ks.supported_hashes()).unwrap();
    let ct = encrypt(ks.public_key(), hash);
    run_threads(n, d, &|| (), &|_: &mut ()| unwrap_once(ks, hash, &ct))
}

fn overhead(raw: f64, ks: f64) -> String {
    format!("{:+.1}%", (raw / ks - 1.0) * 100.0)
}

fn bits(pk: &rsa::RsaPublicKey) -> usize {
    rsa::traits::PublicKeyParts::size(pk) * 8
}

fn soft(n: usize) {
    use rsa::pkcs8::DecodePrivateKey as _;
    for bits_wanted in [2048, 3072] {
        let d = tempfile::tempdir().unwrap();
        let cfg: KeyStoreConfig =
            toml::from_str(&format!("kind = \"soft\"\nkey_bits = {bits_wanted}")).unwrap();
        let ks = keystore::open(&cfg, d.path()).unwrap().start().unwrap();
        // Raw: the `rsa` crate's own OAEP decryption with the same key —
        // what the soft keystore wraps.
        let pem = std::fs::read_to_string(d.path().join("soft-key.pem")).unwrap();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let ct = encrypt(ks.public_key(), OaepHash::Sha256);
        let raw = |_: &mut ()| {
            #[allow(clippy::disallowed_methods)] // the raw reference of the soft keystore
            let pt = key.decrypt(Oaep::new::<rsa::sha2::Sha256>(), &ct).unwrap();
            assert_eq!(pt.len(), 32);
        };
        let ks_op = || unwrap_once(ks.as_ref(), OaepHash::Sha256, &ct);
        let (raw1, ks1) = compare_interleaved(1, &|| (), &raw, &ks_op);
        let (rawn, ksn) = compare_interleaved(n, &|| (), &raw, &ks_op);
        println!(
            "soft    rsa-{bits_wanted} RSA-OAEP-256  raw rsa crate: {raw1:8.1}/s  keystore: {ks1:8.1}/s  overhead {} (1 thread) | raw: {rawn:8.1}/s  keystore: {ksn:8.1}/s  overhead {} ({n} threads)   [the CPU's best: openssl speed rsa{bits_wanted}, above]",
            overhead(raw1, ks1),
            overhead(rawn, ksn)
        );
    }
}

fn pkcs11_child(n: usize) {
    use cryptoki::session::UserType;
    let module = std::env::var("BENCH_PKCS11_MODULE").unwrap();
    let label = std::env::var("BENCH_PKCS11_TOKEN").unwrap();
    let pin = std::env::var("BENCH_PKCS11_PIN_FILE").unwrap();
    let bits_wanted: u32 = std::env::var("BENCH_PKCS11_BITS").unwrap().parse().unwrap();
    let cfg: KeyStoreConfig = toml::from_str(&format!(
        "kind = \"pkcs11\"\nmodule = \"{module}\"\ntoken_label = \"{label}\"\npin = {{ file = \"{pin}\" }}\nkey_bits = {bits_wanted}\nsessions = {n}\n"
    ))
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let opened = keystore::open(&cfg, d.path()).unwrap();
    let public = opened.public_key().clone();
    let hash = OaepHash::best_common(opened.supported_hashes()).unwrap();
    let ks = opened.start().unwrap();

    // Raw: cryptoki directly, one session per thread, the same key.
    let ctx = cryptoki::context::Pkcs11::new(&module).unwrap();
    let _ = ctx.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ));
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    let pin_value = std::fs::read_to_string(&pin).unwrap();
    let s0 = ctx.open_ro_session(slot).unwrap();
    let _ = s0.login(
        UserType::User,
        Some(&cryptoki::types::AuthPin::from(pin_value.trim().to_owned())),
    );
    let key = s0
        .find_objects(&[
            cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::PRIVATE_KEY),
            cryptoki::object::Attribute::Label(b"custody-server-key".to_vec()),
        ])
        .unwrap()[0];
    let ct = encrypt(&public, hash);
    let make = || ctx.open_ro_session(slot).unwrap();
    let op = |s: &mut cryptoki::session::Session| {
        let mech = keystore::pkcs11::oaep_mechanism(hash);
        let pt = s.decrypt(&mech, key, &ct).unwrap();
        assert_eq!(pt.len(), 32);
    };
    let ks_op = || unwrap_once(ks.as_ref(), hash, &ct);
    let (raw1, ks1) = compare_interleaved(1, &make, &op, &ks_op);
    let (rawn, ksn) = compare_interleaved(n, &make, &op, &ks_op);
    println!(
        "pkcs11  rsa-{} {:12}  raw C_Decrypt: {raw1:8.1}/s  keystore: {ks1:8.1}/s  overhead {} (1 thread) | raw: {rawn:8.1}/s  keystore: {ksn:8.1}/s  overhead {} ({n} threads)",
        bits(&public),
        hash.jwe_alg(),
        overhead(raw1, ks1),
        overhead(rawn, ksn)
    );
}

fn pkcs11(n: usize) {
    let hsm = hsm_sim::SoftHsm::start().unwrap();
    for bits_wanted in [2048, 3072] {
        // One token per key size (the key label is the same).
        let token = if bits_wanted == 2048 {
            hsm.token().clone()
        } else {
            hsm.add_token(&format!("bench-{bits_wanted}")).unwrap()
        };
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--pkcs11-child")
            .env("SOFTHSM2_CONF", hsm.conf())
            .env("BENCH_PKCS11_MODULE", hsm.module())
            .env("BENCH_PKCS11_TOKEN", &token.label)
            .env("BENCH_PKCS11_PIN_FILE", &token.pin_file)
            .env("BENCH_PKCS11_BITS", bits_wanted.to_string())
            .env("CUSTODY_BENCH_THREADS", n.to_string())
            .status()
            .unwrap();
        assert!(out.success());
    }
}

fn tpm(n: usize) {
    use custody_agent::keystore::tpm::{OpenedTpm, blobs::KeyFiles, context};
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;
    use tss_esapi::structures::{Data, HashScheme, PublicKeyRsa, RsaDecryptionScheme};
    for bits_wanted in [2048, 3072] {
        let sim = hsm_sim::Swtpm::start().unwrap();
        let state = tempfile::tempdir().unwrap();
        let cfg: custody_agent::config::TpmConfig = toml::from_str(&format!(
            "tcti = \"{}\"\nkey_bits = {bits_wanted}",
            sim.tcti()
        ))
        .unwrap();
        let opened = OpenedTpm::open(&cfg, state.path()).unwrap();
        let public = opened.public_key().clone();
        let ct = encrypt(&public, OaepHash::Sha256);

        // swtpm serves one connection at a time: each raw run opens its own
        // ESAPI context (same key, same HMAC session setup), each keystore
        // run starts the keystore (its worker connects); set-up is outside
        // the timed part.
        let blobs = KeyFiles::new(state.path(), "server-key");
        let raw_run = |d: Duration| -> f64 {
            let mut c = context::connect(&sim.tcti()).unwrap();
            let s = context::start_session(&mut c).unwrap();
            let primary = context::create_primary(&mut c, s).unwrap();
            let key = context::load_key(&mut c, s, primary, &blobs.read().unwrap()).unwrap();
            let r = run_here(d, || {
                let ct = PublicKeyRsa::try_from(ct.clone()).unwrap();
                let scheme = RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256));
                let pt = c
                    .execute_with_session(Some(s), |c| {
                        c.rsa_decrypt(key, ct, scheme, Data::default())
                    })
                    .unwrap();
                assert_eq!(pt.value().len(), 32);
            });
            c.flush_context(key.into()).unwrap();
            c.flush_context(primary.into()).unwrap();
            c.flush_context(tss_esapi::handles::SessionHandle::from(s).into())
                .unwrap();
            r
        };
        let ks_config = KeyStoreConfig::Tpm(cfg.clone());
        let ks_run = |threads: usize| {
            let (ks_config, state) = (&ks_config, state.path());
            move |d: Duration| -> f64 {
                let ks = keystore::open(ks_config, state).unwrap().start().unwrap();
                keystore_run(ks.as_ref(), threads, d)
            }
        };
        drop(opened);
        let (raw1, ks1) = compare(raw_run, ks_run(1));
        let ksn = alone(ks_run(n));
        println!(
            "tpm     rsa-{} RSA-OAEP-256  raw TPM2_RSA_Decrypt: {raw1:8.1}/s  keystore: {ks1:8.1}/s  overhead {} (1 thread) | keystore: {ksn:8.1}/s ({n} callers, one TPM)",
            bits(&public),
            overhead(raw1, ks1)
        );
    }
}

fn main() {
    let n = threads();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--pkcs11-child") {
        pkcs11_child(n);
        return;
    }
    // `cargo bench` passes `--bench`; a filter word selects one backend.
    let only: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |k: &str| only.is_empty() || only.contains(&k);
    println!(
        "keystore unwraps/s: median of {RUNS} runs of {} s after {} ms warm-up; N = {n}",
        RUN.as_secs(),
        WARMUP.as_millis()
    );
    if want("soft") {
        soft(n);
    }
    if want("pkcs11") {
        pkcs11(n);
    }
    if want("tpm") {
        tpm(n);
    }
}
