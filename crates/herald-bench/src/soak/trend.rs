//! The verdict of a soak: what one minute measured, and the rule that says
//! whether herald leaked or failed. After a one-minute warm-up, the last
//! third of the minutes is compared with the first third:
//! - resident memory: the median may grow by at most [`RSS_GROWTH`] or at
//!   most [`RSS_SLACK_MIB`] (more than both fails: small heaps jitter by
//!   a few MiB, large ones by a few per cent);
//! - open fds beside connections (fds minus herald's connection gauge, since
//!   the churn moves both together): the median may grow by at most
//!   [`FD_SLACK`];
//! - threads: the highest count may grow by at most [`THREAD_SLACK`];
//! - and any error at all fails the run.

use super::server::Sample;

pub const RSS_GROWTH: f64 = 0.10;
pub const RSS_SLACK_MIB: f64 = 5.0;
pub const FD_SLACK: u64 = 8;
pub const THREAD_SLACK: u64 = 2;
/// Minutes needed for a trend: the warm-up and three to split in thirds.
pub const MIN_MINUTES: usize = 4;

/// What one minute of the soak measured; `sample` is taken at its end.
#[derive(Clone, Debug, Default)]
pub struct Minute {
    pub minute: u64,
    pub sample: Sample,
    /// Herald's CPU over the minute, in cores.
    pub cpu: f64,
    /// The load generator's (this process's) CPU over the minute, in cores.
    pub bench_cpu: f64,
    /// p99 publish-to-receive latency of the minute's live deliveries.
    pub p99_ms: Option<f64>,
    pub deliveries: u64,
    pub errors: u64,
}

impl Minute {
    pub fn rss_mib(&self) -> f64 {
        self.sample.rss_kib as f64 / 1024.0
    }

    /// Fds that are not client connections.
    fn other_fds(&self) -> u64 {
        self.sample
            .fds
            .saturating_sub(self.sample.connections.unwrap_or(0))
    }
}

/// The outcome: failures (empty when it passed) and notes on what was compared.
#[derive(Debug, Default)]
pub struct Verdict {
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Applies the rule to the minutes and to the errors found after the last one
/// (`end`: the checks once the traffic stopped).
pub fn judge(minutes: &[Minute], end: &[String]) -> Verdict {
    let mut v = Verdict::default();
    let errors: u64 = minutes.iter().map(|m| m.errors).sum();
    if errors > 0 {
        let worst = minutes.iter().filter(|m| m.errors > 0).map(|m| m.minute);
        let at: Vec<String> = worst.map(|m| m.to_string()).collect();
        v.failures.push(format!(
            "{errors} errors during the run (minutes {})",
            at.join(", ")
        ));
    }
    v.failures
        .extend(end.iter().map(|e| format!("after the run: {e}")));
    let steady = minutes.get(1..).unwrap_or_default();
    if minutes.len() < MIN_MINUTES {
        v.notes.push(format!(
            "too short for a trend ({} minutes; it needs at least {MIN_MINUTES})",
            minutes.len()
        ));
        return v;
    }
    let third = steady.len() / 3;
    let (first, last) = (&steady[..third], &steady[steady.len() - third..]);
    let span = format!(
        "minutes {}-{} against {}-{}",
        first[0].minute,
        first[third - 1].minute,
        last[0].minute,
        last[third - 1].minute
    );
    let rss = |part: &[Minute]| median(part.iter().map(Minute::rss_mib).collect());
    let (rss_first, rss_last) = (rss(first), rss(last));
    let grew = rss_last - rss_first;
    let rss_note = format!(
        "RSS median {rss_first:.1} → {rss_last:.1} MiB ({:+.1} %)",
        grew / rss_first.max(1e-9) * 100.0
    );
    if grew > RSS_SLACK_MIB && grew > rss_first * RSS_GROWTH {
        v.failures.push(format!(
            "{rss_note}, {span}: grew more than {:.0} % and {RSS_SLACK_MIB} MiB",
            RSS_GROWTH * 100.0
        ));
    } else {
        v.notes.push(rss_note);
    }
    let fds = |part: &[Minute]| median(part.iter().map(|m| m.other_fds() as f64).collect());
    let (fds_first, fds_last) = (fds(first), fds(last));
    let fds_note = format!("fds beside connections, median {fds_first:.0} → {fds_last:.0}");
    if fds_last > fds_first + FD_SLACK as f64 {
        v.failures
            .push(format!("{fds_note}, {span}: grew by more than {FD_SLACK}"));
    } else {
        v.notes.push(fds_note);
    }
    let threads = |part: &[Minute]| part.iter().map(|m| m.sample.threads).max().unwrap_or(0);
    let (threads_first, threads_last) = (threads(first), threads(last));
    let threads_note = format!("threads, highest {threads_first} → {threads_last}");
    if threads_last > threads_first + THREAD_SLACK {
        v.failures.push(format!(
            "{threads_note}, {span}: grew by more than {THREAD_SLACK}"
        ));
    } else {
        v.notes.push(threads_note);
    }
    v
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` minutes; minute m has the RSS, fds and threads `shape(m)` gives.
    fn run(count: u64, shape: impl Fn(u64) -> (f64, u64, u64)) -> Vec<Minute> {
        (1..=count)
            .map(|minute| {
                let (rss_mib, fds, threads) = shape(minute);
                Minute {
                    minute,
                    sample: Sample {
                        rss_kib: (rss_mib * 1024.0) as u64,
                        fds: fds + 500,
                        threads,
                        connections: Some(500),
                        ..Sample::default()
                    },
                    ..Minute::default()
                }
            })
            .collect()
    }

    #[test]
    fn a_flat_run_passes_even_with_a_big_warm_up() {
        let minutes = run(30, |m| {
            if m == 1 {
                (20.0, 5, 9)
            } else {
                (60.0 + (m % 3) as f64, 30 + m % 4, 12)
            }
        });
        let v = judge(&minutes, &[]);
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!(v.notes.len(), 3);
    }

    #[test]
    fn rss_growth_fails_only_beyond_both_tolerances() {
        // 60 → ~75 MiB: 25 % and 15 MiB.
        let leaking = run(30, |m| (60.0 + m as f64 * 0.6, 30, 12));
        let v = judge(&leaking, &[]);
        assert!(v.failures.iter().any(|f| f.contains("RSS")), "{v:?}");
        // 20 → 24 MiB: 20 %, but only 4 MiB.
        let small = run(30, |m| (20.0 + m as f64 * 0.16, 30, 12));
        assert!(judge(&small, &[]).passed());
        // 200 → 215 MiB: 15 MiB, but 7.5 %.
        let large = run(30, |m| (200.0 + m as f64 * 0.6, 30, 12));
        assert!(judge(&large, &[]).passed());
    }

    #[test]
    fn fd_and_thread_growth_fail() {
        let fds = run(30, |m| (60.0, 30 + m, 12));
        assert!(judge(&fds, &[]).failures.iter().any(|f| f.contains("fds")));
        let threads = run(30, |m| (60.0, 30, 12 + m / 5));
        assert!(
            judge(&threads, &[])
                .failures
                .iter()
                .any(|f| f.contains("threads"))
        );
    }

    #[test]
    fn any_error_fails_and_says_when() {
        let mut minutes = run(10, |_| (60.0, 30, 12));
        minutes[6].errors = 2;
        let v = judge(&minutes, &[]);
        assert_eq!(v.failures, ["2 errors during the run (minutes 7)"]);
        let v = judge(&run(10, |_| (60.0, 30, 12)), &["presence not empty".into()]);
        assert_eq!(v.failures, ["after the run: presence not empty"]);
    }

    #[test]
    fn a_short_run_has_no_trend_but_still_counts_errors() {
        let mut minutes = run(3, |m| (10.0 * m as f64, 30, 12));
        let v = judge(&minutes, &[]);
        assert!(v.passed() && v.notes[0].contains("too short"), "{v:?}");
        minutes[2].errors = 1;
        assert!(!judge(&minutes, &[]).passed());
    }
}
