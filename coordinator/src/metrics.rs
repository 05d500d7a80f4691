//! Counters and histograms for `/metrics` (Prometheus text format), served
//! on its own listener (loopback by default).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Histogram bucket bounds, milliseconds.
const BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000];

/// A fixed-bucket histogram of milliseconds.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, ms: u64) {
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let secs = *b as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{secs}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// All metrics.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; 5],
    auth_failures: AtomicU64,
    jobs_dispatched: AtomicU64,
    jobs_completed: AtomicU64,
    jobs_failed: AtomicU64,
    jobs_reassigned: AtomicU64,
    duplicate_results: AtomicU64,
    /// Assignment → hand-out to the agent.
    pub dispatch_latency: Histogram,
    /// Creation → result.
    pub job_latency: Histogram,
}

/// Gauges read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Queued jobs (assigned or not).
    pub queued: i64,
    /// Leased jobs.
    pub leased: i64,
    /// Live agents.
    pub live_agents: usize,
}

impl Metrics {
    /// Counts a response by status class.
    pub fn request(&self, status: u16) {
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a failed authentication.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a hand-out and its latency.
    pub fn dispatched(&self, latency_ms: u64) {
        self.jobs_dispatched.fetch_add(1, Ordering::Relaxed);
        self.dispatch_latency.observe(latency_ms);
    }
    /// Counts a finished job.
    pub fn completed(&self, ok: bool, latency_ms: u64) {
        if ok {
            self.jobs_completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.jobs_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.job_latency.observe(latency_ms);
    }
    /// Counts a failover or re-issue.
    pub fn reassigned(&self) {
        self.jobs_reassigned.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts an ignored duplicate result.
    pub fn duplicate(&self) {
        self.duplicate_results.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP custody_http_requests_total HTTP responses by status class."
        );
        let _ = writeln!(out, "# TYPE custody_http_requests_total counter");
        for (i, c) in self.requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "custody_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "custody_auth_failures_total",
                "Failed authentications.",
                &self.auth_failures,
            ),
            (
                "custody_jobs_dispatched_total",
                "Jobs handed to agents.",
                &self.jobs_dispatched,
            ),
            (
                "custody_jobs_completed_total",
                "Jobs finished successfully.",
                &self.jobs_completed,
            ),
            (
                "custody_jobs_failed_total",
                "Jobs failed for good.",
                &self.jobs_failed,
            ),
            (
                "custody_jobs_reassigned_total",
                "Failovers and re-issues.",
                &self.jobs_reassigned,
            ),
            (
                "custody_duplicate_results_total",
                "Ignored duplicate job results.",
                &self.duplicate_results,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP custody_job_queue_depth Jobs not finished, by state."
        );
        let _ = writeln!(out, "# TYPE custody_job_queue_depth gauge");
        let _ = writeln!(
            out,
            "custody_job_queue_depth{{state=\"queued\"}} {}",
            g.queued
        );
        let _ = writeln!(
            out,
            "custody_job_queue_depth{{state=\"leased\"}} {}",
            g.leased
        );
        let _ = writeln!(
            out,
            "# HELP custody_live_agents Agents seen within the liveness window."
        );
        let _ = writeln!(out, "# TYPE custody_live_agents gauge");
        let _ = writeln!(out, "custody_live_agents {}", g.live_agents);
        self.dispatch_latency.render(
            &mut out,
            "custody_job_dispatch_latency_seconds",
            "Time from assignment to hand-out.",
        );
        self.job_latency.render(
            &mut out,
            "custody_job_latency_seconds",
            "Time from creation to final result.",
        );
        out
    }
}
