//! CPU time of processes, from `/proc/PID/stat`.

/// `/proc` reports times in USER_HZ ticks, which is 100 on every Linux
/// architecture this project builds for (x86-64, arm64).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system time of `pid`, plus that of its children it has waited
/// for, in seconds; `None` when the process is gone.
pub fn seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: parse after its ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) … cstime (17) are 11..=14.
    let ticks: u64 = fields
        .get(11..=14)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// The sum of [`seconds`] over `pids` (a process that is gone counts 0).
pub fn total(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| seconds(*p)).sum()
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn own_process_has_a_cpu_time_and_a_missing_one_has_none() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(seconds(std::process::id()).is_some());
        assert!(seconds(u32::MAX).is_none());
    }
}
