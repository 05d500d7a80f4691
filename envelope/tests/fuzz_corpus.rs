//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same entry points the fuzz targets call: `ok-*` inputs must parse,
//! `bad-*` inputs must be refused with a typed error, and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::fuzz;
use std::path::PathBuf;

/// Accepts or refuses one input; a refusal carries the typed error's text.
type Target = fn(&[u8]) -> Result<(), String>;

fn typed<E: std::fmt::Debug>(r: Result<(), E>) -> Result<(), String> {
    r.map_err(|e| format!("{e:?}"))
}

#[test]
fn corpus_replays() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let targets: [(&str, Target); 5] = [
        ("package_header", |d| typed(fuzz::package_header(d))),
        ("jwe", |d| typed(fuzz::jwe(d))),
        ("descriptor", |d| typed(fuzz::descriptor(d))),
        ("keylist", |d| typed(fuzz::keylist(d))),
        ("manifest", |d| typed(fuzz::manifest(d))),
    ];
    for (name, target) in targets {
        let (mut ok, mut bad, mut other) = (0, 0, 0);
        for entry in std::fs::read_dir(root.join(name)).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let r = target(&data);
            if file.starts_with("ok-") {
                assert!(r.is_ok(), "{name}/{file}: {r:?}");
                ok += 1;
            } else if file.starts_with("bad-") {
                assert!(r.is_err(), "{name}/{file} accepted");
                bad += 1;
            } else {
                other += 1; // inputs found by fuzzing: only "no panic"
            }
        }
        println!("{name}: {ok} ok, {bad} bad, {other} other");
        assert!(ok > 0 && bad > 0, "{name}: corpus missing");
    }
}
