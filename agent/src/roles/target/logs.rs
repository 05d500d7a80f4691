//! Streaming a deploy's log to the coordinator (`POST /v1/agent/jobs/{id}/log`):
//! status lines from the agent, hook output from the installer. Lines are
//! batched (up to 1000, or what arrived within 200 ms) and every secret
//! value still in them is replaced by `***` before they leave the process
//! (the installer already redacts hook output; this is the second net).

use std::time::Duration;

use custody_client::Client;
use custody_proto::jobs::{Job, LogLine, LogStream};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// Most lines per batch (the coordinator's default limit).
const MAX_BATCH: usize = 1000;
/// Longest line sent (the coordinator keeps 8 KiB).
const MAX_LINE: usize = 8 * 1024;

/// Replaces every occurrence of the secret values in a line by `***`.
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored; longest first,
    /// so a secret containing another is replaced whole).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<Zeroizing<String>> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| Zeroizing::new(v.to_owned()))
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// The line with secrets replaced.
    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// A running log stream for one deploy job.
pub struct LogSink {
    tx: mpsc::UnboundedSender<LogLine>,
    task: tokio::task::JoinHandle<()>,
    redactor: std::sync::Arc<Redactor>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink").finish_non_exhaustive()
    }
}

/// A cheap handle to add lines from another thread (the installer's
/// callback runs on the blocking pool).
#[derive(Clone)]
pub struct LogSender(mpsc::UnboundedSender<LogLine>);

impl LogSender {
    /// Queues a line (already redacted by the caller).
    pub fn send(&self, stream: LogStream, line: String) {
        let mut line = line;
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        let _ = self.0.send(LogLine { stream, line });
    }
}

impl LogSink {
    /// Starts streaming for `job`.
    pub fn start(client: Client, job: &Job) -> LogSink {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
        let job = job.clone();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::sleep(Duration::from_millis(200));
                tokio::pin!(deadline);
                while batch.len() < MAX_BATCH {
                    tokio::select! {
                        l = rx.recv() => match l {
                            Some(l) => batch.push(l),
                            None => break,
                        },
                        _ = &mut deadline => break,
                    }
                }
                let mut sent = false;
                for _ in 0..3 {
                    match client.job_log(&job, batch.clone()).await {
                        Ok(()) => {
                            sent = true;
                            break;
                        }
                        Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
                if !sent {
                    tracing::warn!(job = %job.id, lines = batch.len(), "deploy log lines could not be sent");
                }
            }
        });
        LogSink {
            tx,
            task,
            redactor: std::sync::Arc::new(Redactor::default()),
        }
    }

    /// From now on, also redact these values.
    pub fn set_secrets<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        self.redactor = std::sync::Arc::new(Redactor::new(values));
    }

    /// A status line from the agent (also logged locally).
    pub fn status(&self, line: &str) {
        let line = self.redactor.redact(line);
        tracing::info!(deploy = %line);
        LogSender(self.tx.clone()).send(LogStream::Status, line);
    }

    /// A line of another stream, redacted.
    pub fn line(&self, stream: LogStream, line: &str) {
        LogSender(self.tx.clone()).send(stream, self.redactor.redact(line));
    }

    /// A redacting sender for another thread.
    pub fn sender(&self) -> (LogSender, std::sync::Arc<Redactor>) {
        (LogSender(self.tx.clone()), self.redactor.clone())
    }

    /// Sends what is queued and stops.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first_and_ignores_empty_values() {
        let r = Redactor::new(["pass", "password123", ""]);
        assert_eq!(r.redact("x=password123 y=pass"), "x=*** y=***");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert!(!format!("{r:?}").contains("pass"));
    }
}
