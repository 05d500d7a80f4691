//! Reading a secret value without putting it on the command line (where
//! shell history and `ps` would keep it): from a file, from a pipe, or
//! typed at the terminal with echo off.

use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// Largest secret value (the key list's limit per variable).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Checks a value and drops one trailing line ending (`\n` or `\r\n`),
/// which files and `echo` add.
pub fn finish(mut bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>> {
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.len() > MAX_VALUE_LEN {
        bail!("the value is longer than {MAX_VALUE_LEN} bytes");
    }
    if bytes.is_empty() {
        bail!("the value is empty");
    }
    if bytes.contains(&0) {
        bail!("the value contains a NUL byte");
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow::anyhow!("the value is not UTF-8"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

fn read_limited(r: impl Read, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    r.take(MAX_VALUE_LEN as u64 + 3)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading the value from {what}"))?;
    Ok(buf)
}

/// Turns terminal echo off until dropped.
struct NoEcho {
    saved: Option<rustix::termios::Termios>,
}

impl NoEcho {
    fn new() -> NoEcho {
        let stdin = std::io::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return NoEcho { saved: None };
        };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let ok =
            rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &quiet)
                .is_ok();
        NoEcho {
            saved: ok.then_some(saved),
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// Reads the value: from `file` when given, else from standard input —
/// one line typed with echo off at a terminal, or everything piped in.
pub fn read(file: Option<&Path>, prompt: &str) -> Result<Zeroizing<String>> {
    if let Some(p) = file {
        let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        return finish(read_limited(f, &p.display().to_string())?);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt} (input hidden): ");
        let _ = std::io::stderr().flush();
        let mut line = Zeroizing::new(String::new());
        {
            let _quiet = NoEcho::new();
            stdin
                .read_line(&mut line)
                .context("reading the value from the terminal")?;
        }
        eprintln!();
        return finish(Zeroizing::new(line.as_bytes().to_vec()));
    }
    finish(read_limited(stdin.lock(), "standard input")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(b: &[u8]) -> Result<Zeroizing<String>> {
        finish(Zeroizing::new(b.to_vec()))
    }

    #[test]
    fn trims_one_line_ending_and_refuses_bad_values() {
        assert_eq!(f(b"s3cret\n").unwrap().as_str(), "s3cret");
        assert_eq!(f(b"s3cret\r\n").unwrap().as_str(), "s3cret");
        assert_eq!(f(b"two\nlines\n\n").unwrap().as_str(), "two\nlines\n");
        assert!(f(b"\n").is_err());
        assert!(f(b"a\0b").is_err());
        assert!(f(&[0xff, 0xfe]).is_err());
        assert!(f(&vec![b'x'; MAX_VALUE_LEN + 1]).is_err());
        assert!(f(&vec![b'x'; MAX_VALUE_LEN]).is_ok());
    }
}
