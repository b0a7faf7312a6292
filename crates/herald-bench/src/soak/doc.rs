//! The soak's part of `docs/reliability.md`: its `## Soak` section (the
//! command, the machine, the traffic mix, a row per minute, the verdict and
//! the rule behind it) and the RSS and p99 plot in `docs/img/soak.svg`.

use super::trend::{self, Minute, Verdict};
use super::{chat, fanout, inbox, presence, recovery};
use crate::report;
use crate::svg::{self, Series};

pub const HEADING: &str = "## Soak";
/// Where the plot goes, relative to the document.
pub const PLOT: &str = "img/soak.svg";

/// What the run was, for the section's first lines.
pub struct Run<'a> {
    pub command: &'a str,
    pub storm_every: u64,
    pub version: &'a str,
    /// Idle fds before the clients connected and after they all left.
    pub idle_fds: (u64, u64),
}

/// The traffic mix, one bullet per kind, with its rates.
pub fn traffic(storm_every: u64) -> String {
    let fan_rate = fanout::RATE * fanout::CHANNELS as u64;
    [
        format!(
            "- **Fan-out**: {} WebSocket subscribers, each on all {} `bench:` channels; {} API \
             publishes/s in all ({}/s per channel), so {} deliveries/s, each checked for loss, \
             duplicates and order (`order.rs`).",
            fanout::SUBSCRIBERS,
            fanout::CHANNELS,
            fan_rate,
            fanout::RATE,
            report::grouped(fan_rate * fanout::SUBSCRIBERS as u64)
        ),
        format!(
            "- **History and recovery**: {} subscribers on {} `hist:` channels (durable history, \
             {} kept, `force_recovery`), {} publishes/s per channel. Each drops its connection \
             every 20-60 s (half politely, half abruptly) and comes back 0.5-3 s later with \
             `recover: true` and its last offset and epoch; every replayed and live offset must \
             follow the last one.",
            recovery::CLIENTS,
            recovery::CHANNELS,
            super::server::HISTORY_SIZE,
            recovery::RATE
        ),
        format!(
            "- **Reconnect storms**: every {storm_every} minutes (half a minute before a sample), every connected \
             recovering subscriber drops at once and reconnects at once, recovering."
        ),
        format!(
            "- **Presence churn**: {} clients join and leave `{}` (joins and leaves pushed to \
             all), staying 5-20 s and away 1-5 s; a `presence` API call every {} s must list \
             at most {} clients, and none once all left.",
            presence::CLIENTS,
            presence::CHANNEL,
            presence::API_EVERY.as_secs(),
            presence::CLIENTS
        ),
        format!(
            "- **Inbox**: {} `notify` calls/s round-robin over {} users; half of them stay \
             connected, must get each of their notifications once and in order on \
             `inbox:#<user>`, and mark each read with `inbox.mark_read` (answering 1 updated).",
            inbox::RATE,
            inbox::USERS
        ),
        format!(
            "- **Chat**: {} conversations of {} connected members; each member sends `chat.send` \
             every 2-4 s and `chat.read` every 5th message, the backend `chat_post`s one system \
             message a second; every member must get every message id once, in order.",
            chat::CONVERSATIONS,
            chat::MEMBERS.len()
        ),
    ]
    .join("\n")
}

pub fn table(minutes: &[Minute]) -> String {
    let mut out = String::from(
        "| minute | RSS MiB | fds | threads | connections | subscriptions | herald CPU | bench CPU | \
         deliveries | p99 ms | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let gauge = |v: Option<u64>| v.map_or_else(|| "n/a".into(), |v| v.to_string());
    for m in minutes {
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} | {:.0} % | {:.0} % | {} | {} | {} |\n",
            m.minute,
            m.rss_mib(),
            m.sample.fds,
            m.sample.threads,
            gauge(m.sample.connections),
            gauge(m.sample.subscriptions),
            m.cpu * 100.0,
            m.bench_cpu * 100.0,
            report::grouped(m.deliveries),
            m.p99_ms.map_or_else(|| "n/a".into(), |p| format!("{p:.1}")),
            m.errors
        ));
    }
    out
}

pub fn verdict_text(verdict: &Verdict) -> String {
    let mut out = if verdict.passed() {
        String::from("**Verdict: passed.** No errors, and no growth beyond the tolerances.\n")
    } else {
        String::from("**Verdict: FAILED.**\n")
    };
    for failure in &verdict.failures {
        out.push_str(&format!("- failed: {failure}\n"));
    }
    for note in &verdict.notes {
        out.push_str(&format!("- {note}\n"));
    }
    out
}

pub fn section(run: &Run, minutes: &[Minute], verdict: &Verdict, examples: &[String]) -> String {
    let mut out = format!(
        "{HEADING}\n\n\
         `{}` (`{}`), {}, on {}. Herald runs as its own release process with durable \
         SQLite storage in a temp dir, the inbox and chat on; all traffic is paced to a \
         steady, moderate load over 127.0.0.1.\n\n{}\n\n",
        run.command,
        run.version,
        report::today(),
        report::machine_facts(),
        traffic(run.storm_every)
    );
    out.push_str(
        "Each row is sampled at the end of its minute: herald's resident memory (VmRSS), open \
         fds (`/proc/PID/fd`), threads, its `herald_connections` and `herald_subscriptions` \
         gauges from `/metrics`, CPU over the minute of herald and of the load generator (1 core = 100 %), live deliveries timed \
         from the send time in their payload and their p99 (replays excluded), and errors: any \
         failed API call or rpc, reply later than 10 s, unexpected disconnect, failed \
         recovery, or delivery lost, repeated or out of order.\n\n",
    );
    out.push_str(&table(minutes));
    out.push_str(&format!("\n![RSS and p99 per minute]({PLOT})\n\n"));
    out.push_str(&verdict_text(verdict));
    out.push_str(&format!(
        "- idle fds: {} before the clients connected, {} after they all left\n",
        run.idle_fds.0, run.idle_fds.1
    ));
    if !examples.is_empty() {
        out.push_str("\nFirst errors:\n\n```\n");
        out.push_str(&examples.join("\n"));
        out.push_str("\n```\n");
    }
    out.push_str(&format!(
        "\nThe rule: minute 1 is warm-up; the last third of the other minutes is compared with \
         the first third. The run fails on any error, on a median RSS growth of more than \
         {:.0} % **and** more than {} MiB, on a median growth of fds beside connections \
         (fds minus `herald_connections`) of more than {}, on the highest thread count \
         growing by more than {}, or when, after the traffic stops, a client misses the last \
         publications, presence stays non-empty or herald's connection and subscription gauges \
         do not return to 0. Runs shorter than {} minutes check errors only. Rerun with \
         `scripts/soak.sh 30`.\n",
        trend::RSS_GROWTH * 100.0,
        trend::RSS_SLACK_MIB,
        trend::FD_SLACK,
        trend::THREAD_SLACK,
        trend::MIN_MINUTES
    ));
    out
}

pub fn plot(minutes: &[Minute]) -> String {
    let rss = Series {
        label: "RSS".into(),
        unit: "MiB".into(),
        points: minutes
            .iter()
            .map(|m| (m.minute as f64, m.rss_mib()))
            .collect(),
    };
    let p99 = Series {
        label: "p99 publish → receive".into(),
        unit: "ms".into(),
        points: minutes
            .iter()
            .filter_map(|m| Some((m.minute as f64, m.p99_ms?)))
            .collect(),
    };
    svg::line_chart(
        "Herald soak: memory and latency per minute",
        "minute",
        &[rss, p99],
    )
}
