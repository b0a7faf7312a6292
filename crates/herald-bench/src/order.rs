//! The delivery check for fan-out across nodes. Each HTTP publisher numbers
//! its publications and awaits each answer before sending the next, so its
//! numbers fix an order that every subscriber must see, whichever node the
//! publisher and the subscriber are on. The payload carries `<publisher>:<seq>:`
//! right after its send-time marker; each connection checks what arrives
//! against what it last saw from that publisher, and at the end against what
//! every publisher sent. A run that lost, repeated or reordered a publication
//! must say so instead of printing a rate.

use crate::report::grouped;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Skipped numbers remembered per connection, so a late arrival can be told
/// from a duplicate; beyond this, skips are only counted (and surely lost).
const REMEMBERED_GAPS: usize = 100_000;
/// Problems spelled out in the verdict; the rest are counted.
const EXAMPLES: usize = 12;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub struct Order {
    /// Per publisher: numbers handed out (publications attempted).
    sent: Vec<AtomicU64>,
    conns: Vec<Mutex<Seen>>,
}

/// What one connection received.
pub struct Seen {
    /// Per publisher: the next number expected.
    next: Vec<u64>,
    skipped: BTreeSet<(usize, u64)>,
    /// Skips that did not fit in `skipped`.
    forgotten: u64,
    received: u64,
    late: u64,
    duplicates: u64,
    examples: Vec<String>,
    /// A hash of the whole sequence received: equal on two connections when
    /// they saw every publication in the same order.
    chain: u64,
}

impl Order {
    pub fn new(publishers: usize, connections: usize) -> Order {
        Order {
            sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            conns: (0..connections)
                .map(|_| {
                    Mutex::new(Seen {
                        next: vec![0; publishers],
                        skipped: BTreeSet::new(),
                        forgotten: 0,
                        received: 0,
                        late: 0,
                        duplicates: 0,
                        examples: Vec::new(),
                        chain: FNV_OFFSET,
                    })
                })
                .collect(),
        }
    }

    /// The next number of `publisher`, as the payload tag that follows the marker.
    pub fn tag(&self, publisher: usize) -> String {
        let p = publisher % self.sent.len();
        let seq = self.sent[p].fetch_add(1, Ordering::Relaxed);
        format!("{p}:{seq}:")
    }

    pub fn seen(&self, conn: usize) -> Option<MutexGuard<'_, Seen>> {
        self.conns
            .get(conn)
            .map(|m| m.lock().expect("not poisoned"))
    }

    /// Publications handed out, over all publishers.
    pub fn published(&self) -> u64 {
        self.sent.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    /// Deliveries so far that arrived out of place: after a later one of
    /// their publisher (counted when skipped, so once), or twice. Unlike
    /// [`Order::verify`] it does not count publications still in flight, so
    /// it can be read while traffic runs; it never decreases.
    pub fn anomalies(&self) -> u64 {
        self.conns
            .iter()
            .map(|conn| {
                let seen = conn.lock().expect("not poisoned");
                seen.skipped.len() as u64 + seen.forgotten + seen.late + seen.duplicates
            })
            .sum()
    }

    /// Compares every connection with what was published. `node_of` names a
    /// connection's node for the report.
    pub fn verify(&self, node_of: impl Fn(usize) -> usize) -> Verdict {
        let sent: Vec<u64> = self
            .sent
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        let mut v = Verdict {
            subscribers: self.conns.len(),
            publications: sent.iter().sum(),
            ..Verdict::default()
        };
        let mut orders: Vec<(u64, Vec<usize>)> = Vec::new();
        for (i, conn) in self.conns.iter().enumerate() {
            let seen = conn.lock().expect("not poisoned");
            let tail: u64 = sent
                .iter()
                .zip(&seen.next)
                .map(|(s, n)| s.saturating_sub(*n))
                .sum();
            let lost = seen.skipped.len() as u64 + seen.forgotten + tail;
            let node = node_of(i) + 1;
            if lost > 0 {
                let first = seen.skipped.first().map_or_else(
                    || {
                        let p = (0..sent.len())
                            .find(|&p| seen.next[p] < sent[p])
                            .unwrap_or(0);
                        format!("publisher {p} from #{}", seen.next[p])
                    },
                    |(p, s)| format!("publisher {p} #{s}"),
                );
                v.note(format!(
                    "subscriber {i} (node {node}): {lost} publications never arrived (first: {first}); it received {}",
                    grouped(seen.received)
                ));
            }
            v.lost += lost;
            v.late += seen.late;
            v.duplicates += seen.duplicates;
            for example in &seen.examples {
                v.note(format!("subscriber {i} (node {node}): {example}"));
            }
            if lost == 0 && seen.duplicates == 0 {
                match orders.iter_mut().find(|(chain, _)| *chain == seen.chain) {
                    Some((_, nodes)) => nodes.push(node),
                    None => orders.push((seen.chain, vec![node])),
                }
            }
        }
        v.orders = orders.len();
        if orders.len() > 1 {
            let groups: Vec<String> = orders
                .iter()
                .map(|(_, nodes)| {
                    let mut per_node: Vec<(usize, usize)> = Vec::new();
                    for &n in nodes {
                        match per_node.iter_mut().find(|(m, _)| *m == n) {
                            Some((_, c)) => *c += 1,
                            None => per_node.push((n, 1)),
                        }
                    }
                    per_node.sort_unstable();
                    let text: Vec<String> = per_node
                        .iter()
                        .map(|(n, c)| format!("{c} on node {n}"))
                        .collect();
                    text.join(", ")
                })
                .collect();
            v.note(format!(
                "complete subscribers saw {} different interleavings of the publishers: {}",
                orders.len(),
                groups.join(" | ")
            ));
        }
        v
    }
}

impl Seen {
    /// Checks the tag that follows a delivery's send-time marker (the bytes
    /// after its closing `@@`).
    pub fn check(&mut self, after_marker: &[u8]) {
        let Some((p, seq)) = parse_tag(after_marker) else {
            return;
        };
        self.received += 1;
        self.chain = (self.chain ^ ((p as u64) << 48 | seq)).wrapping_mul(FNV_PRIME);
        if p >= self.next.len() {
            self.next.resize(p + 1, 0);
        }
        let next = self.next[p];
        if seq == next {
            self.next[p] = seq + 1;
        } else if seq > next {
            let gap = seq - next;
            let room = REMEMBERED_GAPS.saturating_sub(self.skipped.len()) as u64;
            self.skipped
                .extend((next..next + gap.min(room)).map(|s| (p, s)));
            self.forgotten += gap.saturating_sub(room);
            self.example(format!(
                "publisher {p}: #{seq} arrived while #{next} was expected"
            ));
            self.next[p] = seq + 1;
        } else if self.skipped.remove(&(p, seq)) {
            self.late += 1;
            self.example(format!(
                "publisher {p}: #{seq} arrived late, after #{}",
                next - 1
            ));
        } else {
            self.duplicates += 1;
            self.example(format!("publisher {p}: #{seq} arrived twice"));
        }
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 3 {
            self.examples.push(text);
        }
    }
}

/// `<publisher>:<seq>:` at the start of `bytes`.
fn parse_tag(bytes: &[u8]) -> Option<(usize, u64)> {
    let mut fields = bytes.splitn(3, |&b| b == b':');
    let number = |f: Option<&[u8]>| -> Option<u64> {
        let f = f?;
        if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(f).ok()?.parse().ok()
    };
    let p = number(fields.next())?;
    let seq = number(fields.next())?;
    fields.next()?;
    Some((p as usize, seq))
}

/// The outcome of [`Order::verify`].
#[derive(Default)]
pub struct Verdict {
    pub subscribers: usize,
    pub publications: u64,
    /// Deliveries that never arrived (subscriber × publication).
    pub lost: u64,
    /// Deliveries that arrived after a later one of the same publisher.
    pub late: u64,
    pub duplicates: u64,
    /// Distinct interleavings seen by complete subscribers (1 = all the same).
    pub orders: usize,
    pub examples: Vec<String>,
    pub more: usize,
}

impl Verdict {
    fn note(&mut self, text: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(text);
        } else {
            self.more += 1;
        }
    }

    /// Every subscriber got every publication once, each publisher's in order.
    pub fn complete(&self) -> bool {
        self.lost == 0 && self.late == 0 && self.duplicates == 0
    }

    /// A short cell for the table.
    pub fn summary(&self) -> String {
        let checked = format!(
            "{} × {}",
            grouped(self.subscribers as u64),
            grouped(self.publications)
        );
        if self.complete() {
            let interleaving = match self.orders {
                1 => "one interleaving".to_string(),
                n => format!("{n} interleavings"),
            };
            format!("all, in order ({checked}; {interleaving})")
        } else {
            format!(
                "**FAILED** ({checked}: {} lost, {} late, {} twice)",
                grouped(self.lost),
                grouped(self.late),
                grouped(self.duplicates)
            )
        }
    }

    /// Every problem, one per line.
    pub fn details(&self) -> String {
        let mut out = self.examples.join("\n");
        if self.more > 0 {
            out.push_str(&format!("\n... and {} more", self.more));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(order: &Order, conn: usize, tags: &[(usize, u64)]) {
        let mut seen = order.seen(conn).unwrap();
        for (p, s) in tags {
            seen.check(format!("{p}:{s}:xxxx").as_bytes());
        }
    }

    #[test]
    fn complete_in_order_passes_and_interleavings_are_compared() {
        let order = Order::new(2, 3);
        for _ in 0..2 {
            order.tag(0);
            order.tag(1);
        }
        deliver(&order, 0, &[(0, 0), (1, 0), (0, 1), (1, 1)]);
        deliver(&order, 1, &[(0, 0), (1, 0), (0, 1), (1, 1)]);
        deliver(&order, 2, &[(1, 0), (1, 1), (0, 0), (0, 1)]);
        let v = order.verify(|i| i);
        assert!(v.complete(), "{}", v.details());
        assert_eq!(v.publications, 4);
        assert_eq!(v.orders, 2);
    }

    #[test]
    fn loss_lateness_and_duplicates_are_told_apart() {
        let order = Order::new(1, 1);
        for _ in 0..5 {
            order.tag(0);
        }
        deliver(&order, 0, &[(0, 0), (0, 2), (0, 1), (0, 2), (0, 3)]);
        // #1 skipped then late counts once; #2 twice counts once.
        assert_eq!(order.anomalies(), 2);
        let v = order.verify(|_| 0);
        assert!(!v.complete());
        assert_eq!((v.lost, v.late, v.duplicates), (1, 1, 1));
        assert!(v.details().contains("#1 arrived late"), "{}", v.details());
        assert!(v.details().contains("never arrived"), "{}", v.details());
    }

    #[test]
    fn tags_parse() {
        assert_eq!(parse_tag(b"3:17:xx"), Some((3, 17)));
        assert_eq!(parse_tag(b"xxxx"), None);
        assert_eq!(parse_tag(b"3:17"), None);
    }
}
