//! Helpers shared by the agent's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::OaepHash;
use rsa::{Oaep, RsaPublicKey};

/// RSA-OAEP encryption to `public` (public-key side only).
pub fn oaep_encrypt(public: &RsaPublicKey, hash: OaepHash, msg: &[u8]) -> Vec<u8> {
    let padding = match hash {
        OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
        OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
    };
    public
        .encrypt(&mut custody_agent::rng::OsRng, padding, msg)
        .unwrap()
}

/// Threads in this process, from /proc/self/task.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// SOFTHSM2_CONF is read once per process, at `C_Initialize`, and
/// `std::env::set_var` is unsafe: so each PKCS#11 test runs its body in a
/// child process of this same test binary, with the environment of its own
/// SoftHSM2 set on the child. The parent test starts the token and calls
/// this; the child test (`#[ignore]`d, so it never runs by itself) reads
/// its parameters with [`child_env`].
pub fn run_in_child(test: &str, hsm: &hsm_sim::SoftHsm) {
    run_child(
        test,
        &[
            ("SOFTHSM2_CONF", hsm.conf().into()),
            ("CUSTODY_TEST_PKCS11_MODULE", hsm.module().into()),
            ("CUSTODY_TEST_PKCS11_TOKEN", hsm.token_label().into()),
            ("CUSTODY_TEST_PKCS11_PIN_FILE", hsm.pin_file().into()),
            ("CUSTODY_TEST_PKCS11_DIR", hsm.dir().into()),
        ],
    );
}

/// Runs the `#[ignore]`d test `test` of this binary alone in a child
/// process with `env` set, and asserts it passed. Also used where a test
/// counts the process's threads, which other tests running in parallel
/// would disturb.
pub fn run_child(test: &str, env: &[(&str, std::ffi::OsString)]) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child {test} failed:\n{stdout}\n{stderr}"
    );
}

/// The parameters [`run_in_child`] passes: (module, token label, PIN file,
/// SoftHSM dir). `None` when the test was not started by its parent.
pub fn child_env() -> Option<(String, String, String, String)> {
    let v = |k| std::env::var(k).ok();
    Some((
        v("CUSTODY_TEST_PKCS11_MODULE")?,
        v("CUSTODY_TEST_PKCS11_TOKEN")?,
        v("CUSTODY_TEST_PKCS11_PIN_FILE")?,
        v("CUSTODY_TEST_PKCS11_DIR")?,
    ))
}

/// A `[keystore]` pkcs11 config for the child's token.
pub fn pkcs11_config(bits: u32, sessions: usize) -> custody_agent::config::Pkcs11Config {
    let (module, token, pin, _) = child_env().expect("run through its parent test");
    toml::from_str(&format!(
        "module = \"{module}\"\ntoken_label = \"{token}\"\npin = {{ file = \"{pin}\" }}\nkey_bits = {bits}\nsessions = {sessions}\n"
    ))
    .unwrap()
}

/// A `[keystore]` tpm config for `tpm`.
pub fn tpm_config(tcti: &str, bits: Option<u32>) -> custody_agent::config::TpmConfig {
    let bits = bits
        .map(|b| format!("key_bits = {b}\n"))
        .unwrap_or_default();
    toml::from_str(&format!("tcti = \"{tcti}\"\n{bits}")).unwrap()
}

/// `custody-envelope` wraps a key to the keystore's public key (strongest
/// common OAEP hash) and the keystore unwraps it through `open_wrapped`; a
/// JWE bound to something else is refused before the keystore is asked.
pub fn jwe_round_trip(ks: &dyn custody_agent::keystore::KeyStore) -> OaepHash {
    use custody_envelope::jwe::{self, Binding, OpenError, Purpose};
    let hash = OaepHash::best_common(ks.supported_hashes()).unwrap();
    let binding = Binding {
        purpose: Purpose::MasterKey,
        account: "acme".to_owned(),
        app: None,
        release: None,
        deployment: None,
        name: None,
        environment: None,
    };
    let key = custody_envelope::SymmetricKey::generate().unwrap();
    let wrapped = jwe::wrap(ks.public_key(), hash, &binding, key.as_bytes()).unwrap();
    let opened = jwe::open_wrapped(&wrapped, ks.public_key(), &binding, |h, ek| {
        ks.unwrap(h, ek)
    })
    .unwrap();
    assert_eq!(opened.as_slice(), key.as_bytes());
    let other = Binding {
        account: "other".to_owned(),
        ..binding
    };
    let refused = jwe::open_wrapped(&wrapped, ks.public_key(), &other, |_, _| {
        Err::<zeroize::Zeroizing<Vec<u8>>, _>(custody_agent::keystore::KeyStoreError::WorkerGone)
    });
    assert!(matches!(refused, Err(OpenError::Envelope(_))));
    hash
}
