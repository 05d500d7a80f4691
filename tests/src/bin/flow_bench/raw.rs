//! The reference for (a): the keystore's raw unwrap rate, measured in a
//! child process (this binary again, as the agent's service user, with the
//! agent's `SOFTHSM2_CONF`) that opens the agent's own key through
//! `custody_agent::keystore` and calls `unwrap` in a loop on N threads —
//! the keystore call the agent's jobs make, without the coordinator, the
//! HTTP, the JWE parsing or the job bookkeeping around it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custody_agent::keystore::{self, KeyStore, KeyStoreConfig};
use custody_envelope::OaepHash;
use custody_envelope::jwe::{self, Binding, Purpose};

use crate::BenchResult;

/// The hidden first argument that makes this binary the measuring child.
pub const SUBCOMMAND: &str = "raw-unwraps";

/// What the child opens.
#[derive(Debug, Clone)]
pub enum Target {
    /// The agent's soft key file.
    Soft {
        /// `soft-key.pem` in the agent's state dir.
        key_file: PathBuf,
    },
    /// The agent's SoftHSM2 token.
    Pkcs11 {
        /// `SOFTHSM2_CONF` of the token.
        conf: PathBuf,
        /// The PKCS#11 module.
        module: PathBuf,
        /// The token's label.
        token_label: String,
        /// The user PIN file.
        pin_file: PathBuf,
    },
}

/// Runs the child: `threads` threads unwrapping for `seconds`; returns
/// unwraps per second.
pub fn measure(
    target: &Target,
    state_dir: &Path,
    threads: usize,
    seconds: f64,
) -> BenchResult<f64> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg(SUBCOMMAND)
        .arg(threads.to_string())
        .arg(seconds.to_string())
        .arg(state_dir);
    match target {
        Target::Soft { key_file } => {
            cmd.arg("soft").arg(key_file);
        }
        Target::Pkcs11 {
            conf,
            module,
            token_label,
            pin_file,
        } => {
            cmd.arg("pkcs11")
                .arg(module)
                .arg(token_label)
                .arg(pin_file)
                .env("SOFTHSM2_CONF", conf);
        }
    }
    // As the agent's user: SoftHSM2 rewrites its token files on login, and
    // they must stay the agent's.
    let (uid, gid) = custody_e2e::service_user::service_ids()?;
    if custody_e2e::service_user::running_as_root() {
        use std::os::unix::process::CommandExt as _;
        cmd.uid(uid).gid(gid).current_dir("/");
    }
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the raw-unwrap child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("unwraps_per_second="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("the raw-unwrap child printed no rate: {stdout}").into())
}

/// The child's side: `THREADS SECONDS STATE_DIR soft KEY_FILE` or
/// `THREADS SECONDS STATE_DIR pkcs11 MODULE TOKEN_LABEL PIN_FILE`.
pub fn child_main(args: &[String]) -> BenchResult<()> {
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| format!("missing argument {}", i + 1))
    };
    let threads: usize = arg(0)?.parse()?;
    let seconds: f64 = arg(1)?.parse()?;
    let state_dir = PathBuf::from(arg(2)?);
    let config: KeyStoreConfig = match arg(3)?.as_str() {
        "soft" => KeyStoreConfig::Soft(keystore::config::SoftConfig {
            key_file: Some(PathBuf::from(arg(4)?)),
            key_bits: 2048,
        }),
        "pkcs11" => KeyStoreConfig::Pkcs11(keystore::config::Pkcs11Config {
            module: PathBuf::from(arg(4)?),
            token_label: arg(5)?,
            key_label: "custody-server-key".into(),
            pin: keystore::config::PinSource::File(PathBuf::from(arg(6)?)),
            key_bits: 2048,
            sessions: threads,
        }),
        other => return Err(format!("unknown keystore kind {other}").into()),
    };
    let ks: Arc<dyn KeyStore> = keystore::open(&config, &state_dir)?.start()?;
    let hash = *ks
        .supported_hashes()
        .first()
        .ok_or("the keystore supports no OAEP hash")?;
    let ciphertext = encrypted_key(ks.public_key(), hash)?;
    // Warm-up, and a check that the unwrap works at all.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        ks.unwrap(hash, &ciphertext)?;
    }
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if ks.unwrap(hash, &ciphertext).is_err() {
                        failed.store(true, Ordering::Relaxed);
                        break;
                    }
                    k += 1;
                }
                count.fetch_add(k, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let rate = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) {
        return Err("an unwrap failed during the measurement".into());
    }
    println!("unwraps_per_second={rate:.1}");
    Ok(())
}

/// An RSA-OAEP ciphertext of a random 32-byte key to `pk`: the encrypted
/// key of a JWE made by `custody_envelope`, exactly what the agent unwraps.
fn encrypted_key(pk: &rsa::RsaPublicKey, hash: OaepHash) -> BenchResult<Vec<u8>> {
    let binding = Binding {
        purpose: Purpose::SecretVar,
        account: "acc_bench".into(),
        app: Some("bench".into()),
        release: None,
        deployment: None,
        name: Some("V".into()),
        environment: Some("e".into()),
    };
    let token = jwe::wrap(pk, hash, &binding, &[7u8; 32])?;
    let mut captured: Option<Vec<u8>> = None;
    // Stop the open at the keystore step, keeping what it would unwrap.
    let _ = jwe::open_wrapped(&token, pk, &binding, |_, ek| {
        captured = Some(ek.to_vec());
        Err(())
    });
    captured.ok_or_else(|| "could not read the JWE's encrypted key".into())
}
