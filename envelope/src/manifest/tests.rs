use super::*;

const FULL: &str = r#"
version = 1
destination = "/srv//apps/./securekeys/"
include = ["secret.cred.*", "bin/*", "docs/**", "README.md"]
exclude = ["docs/private"]
file_mode = "0640"
dir_mode = 0o750
env = ["STAGE", "_X1"]

[[files]]
pattern = "secret.cred.*"
secret = true

[[files]]
pattern = "bin/*"
mode = 0o755

[[files]]
pattern = "bin/tool"
mode = "0700"

[hooks.pre_install]
command = ["/bin/sh", "hooks/check.sh"]
timeout_secs = 30

[hooks.post_install]
command = ["sh", "-c", "echo done"]
working_dir = "./bin/"
"#;

fn parse(s: &str) -> Result<Manifest, ManifestError> {
    Manifest::from_bytes(s.as_bytes())
}

fn minimal(extra: &str) -> String {
    format!("version = 1\ndestination = \"/srv/app\"\ninclude = [\"**\"]\n{extra}")
}

#[test]
fn full_manifest_parses_and_normalises() {
    let m = parse(FULL).unwrap();
    assert_eq!(m.destination, Path::new("/srv/apps/securekeys"));
    assert_eq!(m.file_mode, 0o640);
    assert_eq!(m.dir_mode, 0o750);
    assert_eq!(m.env, ["STAGE", "_X1"]);
    let pre = m.pre_install.as_ref().unwrap();
    assert_eq!(pre.command, ["/bin/sh", "hooks/check.sh"]);
    assert_eq!(pre.working_dir, Path::new("."));
    assert_eq!(pre.timeout, Some(Duration::from_secs(30)));
    let post = m.post_install.as_ref().unwrap();
    assert_eq!(post.working_dir, Path::new("bin"));
    assert_eq!(post.timeout, None);
}

#[test]
fn defaults_apply() {
    let m = parse(&minimal("")).unwrap();
    assert_eq!(m.file_mode, DEFAULT_FILE_MODE);
    assert_eq!(m.dir_mode, DEFAULT_DIR_MODE);
    assert!(m.pre_install.is_none() && m.post_install.is_none());
    assert!(m.env.is_empty());
}

#[test]
fn selection_and_policies() {
    let m = parse(FULL).unwrap();
    assert!(m.selects("secret.cred.dev"));
    assert!(m.selects("bin/tool"));
    assert!(!m.selects("bin/sub/tool"), "`*` does not cross `/`");
    assert!(m.selects("docs/a/b/c.md"), "`**` does");
    assert!(!m.selects("docs/private/key.md"), "excluded directory");
    assert!(!m.selects("custody.toml"));
    assert!(!m.selects("other"));

    assert_eq!(
        m.file_policy("secret.cred.prod"),
        FilePolicy {
            mode: 0o600,
            secret: true
        }
    );
    assert_eq!(m.file_policy("bin/run").mode, 0o755);
    assert_eq!(m.file_policy("bin/tool").mode, 0o700, "the last rule wins");
    assert_eq!(
        m.file_policy("README.md"),
        FilePolicy {
            mode: 0o640,
            secret: false
        }
    );
}

#[test]
fn secret_wins_over_an_earlier_or_later_mode() {
    let m = parse(&minimal(
        "[[files]]\npattern = \"*\"\nmode = \"0755\"\n[[files]]\npattern = \"key\"\nsecret = true\n\
         [[files]]\npattern = \"k*\"\nmode = \"0644\"\n",
    ))
    .unwrap();
    assert_eq!(
        m.file_policy("key"),
        FilePolicy {
            mode: 0o600,
            secret: true
        }
    );
}

#[test]
fn version_is_checked_first() {
    assert!(matches!(
        parse("destination = \"/srv/app\"\ninclude = [\"*\"]"),
        Err(ManifestError::MissingVersion)
    ));
    assert!(matches!(
        parse("version = \"1\"\ndestination = \"/srv/app\"\ninclude = [\"*\"]"),
        Err(ManifestError::MissingVersion)
    ));
    // A future version may have fields this reader does not know: the
    // version error, not a schema error.
    assert!(matches!(
        parse("version = 2\nnew_field = true"),
        Err(ManifestError::UnsupportedVersion(2))
    ));
}

#[test]
fn unknown_fields_are_refused() {
    for extra in [
        "colour = \"red\"\n",
        "[hooks.pre_install]\ncommand = [\"true\"]\nshell = true\n",
        "[hooks.reinstall]\ncommand = [\"true\"]\n",
        "[[files]]\npattern = \"*\"\nowner = \"root\"\n",
    ] {
        assert!(
            matches!(parse(&minimal(extra)), Err(ManifestError::Schema(_))),
            "{extra}"
        );
    }
    assert!(matches!(
        parse("version = 1\ninclude = [\"*\"]"),
        Err(ManifestError::Schema(_))
    ));
    assert!(matches!(
        parse("version = 1\ndestination = \"/srv/a\"\ninclude = []"),
        Err(ManifestError::Schema(_))
    ));
}

#[test]
fn bad_bytes_are_refused() {
    assert!(matches!(
        Manifest::from_bytes(&[0xff, 0xfe]),
        Err(ManifestError::NotUtf8)
    ));
    assert!(matches!(parse("version = "), Err(ManifestError::Syntax(_))));
    let big = format!("{}# {}\n", minimal(""), "x".repeat(MAX_MANIFEST_LEN));
    assert!(matches!(parse(&big), Err(ManifestError::TooLarge { .. })));
}

#[test]
fn destinations_must_be_plain_absolute_paths() {
    for d in ["srv/app", "/srv/../etc", "/", "//./", "/srv/a\nb", ""] {
        let text = format!(
            "version = 1\ndestination = {}\ninclude = [\"*\"]",
            toml::Value::String(d.into())
        );
        assert!(
            matches!(parse(&text), Err(ManifestError::Destination { .. })),
            "{d:?}"
        );
    }
}

#[test]
fn patterns_must_stay_inside_the_release() {
    for p in ["/etc/*", "../x", "a/../../b", "", "a[", "x\u{1}"] {
        let text = format!(
            "version = 1\ndestination = \"/srv/a\"\ninclude = [{}]",
            toml::Value::String(p.into())
        );
        assert!(
            matches!(parse(&text), Err(ManifestError::Pattern { .. })),
            "{p:?}"
        );
    }
    let many = (0..=MAX_PATTERNS)
        .map(|i| format!("\"f{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    let text = format!("version = 1\ndestination = \"/srv/a\"\ninclude = [{many}]");
    assert!(matches!(
        parse(&text),
        Err(ManifestError::Limit {
            field: "include",
            ..
        })
    ));
}

#[test]
fn modes_are_checked() {
    for (field, value) in [
        ("file_mode", "\"4755\""),
        ("file_mode", "0o2755"),
        ("file_mode", "0o1644"),
        ("file_mode", "644"), // decimal 644 = 0o1204: sticky
        ("file_mode", "\"0666\""),
        ("file_mode", "\"rw-r--r--\""),
        ("file_mode", "\"08\""),
        ("file_mode", "-1"),
        ("dir_mode", "\"0644\""),
    ] {
        let r = parse(&minimal(&format!("{field} = {value}\n")));
        assert!(
            matches!(r, Err(ManifestError::Mode { .. })),
            "{field} {value}"
        );
    }
    assert!(matches!(
        parse(&minimal(
            "[[files]]\npattern = \"k\"\nsecret = true\nmode = \"0600\"\n"
        )),
        Err(ManifestError::SecretWithMode { .. })
    ));
    assert!(matches!(
        parse(&minimal("[[files]]\npattern = \"k\"\nmode = \"6755\"\n")),
        Err(ManifestError::Mode {
            field: "files.mode",
            ..
        })
    ));
}

#[test]
fn hooks_are_checked() {
    for hook in [
        "command = []",
        "command = [\"./run.sh\"]",
        "command = [\"bin/run\"]",
        "command = [\"/bin/../bin/sh\"]",
        "command = [\"\"]",
        "command = [\"/bin/true\"]\nworking_dir = \"/srv\"",
        "command = [\"/bin/true\"]\nworking_dir = \"../up\"",
        "command = [\"/bin/true\"]\ntimeout_secs = 0",
        "command = [\"/bin/true\"]\ntimeout_secs = 86401",
        "command = [\"/bin/true\", \"a\\u0000b\"]",
    ] {
        let r = parse(&minimal(&format!("[hooks.post_install]\n{hook}\n")));
        assert!(
            matches!(
                r,
                Err(ManifestError::Hook {
                    hook: "post_install",
                    ..
                })
            ),
            "{hook}: {r:?}"
        );
    }
    let r = parse(&minimal("[hooks.pre_install]\ncommand = [\"true\"]\n")).unwrap();
    assert_eq!(r.pre_install.unwrap().command, ["true"]);
}

#[test]
fn env_names_are_checked() {
    for name in [
        "",
        "1X",
        "A-B",
        "PATH",
        "LD_PRELOAD",
        "CUSTODY_X",
        "BASH_ENV",
        "A B",
    ] {
        let r = parse(&minimal(&format!(
            "env = [{}]\n",
            toml::Value::String(name.into())
        )));
        assert!(
            matches!(r, Err(ManifestError::EnvName { .. })),
            "{name:?}: {r:?}"
        );
    }
    assert!(matches!(
        parse(&minimal("env = [\"A\", \"A\"]\n")),
        Err(ManifestError::EnvName {
            reason: "listed twice",
            ..
        })
    ));
}

#[test]
fn list_files_is_sorted_and_refuses_links() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in [
        "secret.cred.prod",
        "secret.cred.dev",
        "README.md",
        "bin/run",
        "docs/x/y.md",
        "docs/private/k.md",
        "custody.toml",
        "unselected",
    ] {
        let p = d.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f).unwrap();
    }
    let m = parse(FULL).unwrap();
    let files = list_files(d, &m).unwrap();
    assert_eq!(
        files,
        [
            "README.md",
            "bin/run",
            "docs/x/y.md",
            "secret.cred.dev",
            "secret.cred.prod"
        ]
    );
    std::os::unix::fs::symlink("/etc/passwd", d.join("bin/evil")).unwrap();
    assert!(matches!(
        list_files(d, &m),
        Err(ManifestError::NotRegularFile { path }) if path == "bin/evil"
    ));
}
