//! A progress bar on stderr, only when stderr is a terminal and the input
//! is large enough for it to matter.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Inputs below this size get no bar.
const MIN_LEN: u64 = 8 * 1024 * 1024;

pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(verb: &'static str, len: u64) -> Bar {
        if len < MIN_LEN || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(verb);
        Bar(Some(bar))
    }

    /// Advances by `n` input bytes (callable from worker threads).
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
