//! What a carrier's SMSC (`tests/peers/node/carrier.js`) saw, tallied per
//! citizen from its events: the deliveries of each message and the parts
//! of each reply, so a test can tell answered citizens from unanswered ones
//! and count the copies of a reply a handset would show.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::Value;

/// What the SMSC saw for one citizen.
#[derive(Default, Debug)]
pub struct Seen {
    pub asked_at: Option<Instant>,
    /// Parts received, as (concatenation reference, total, part number);
    /// (0, 1, 1) for a single-part reply.
    pub parts: Vec<(u64, u64, u64)>,
    pub last_part_at: Option<Instant>,
    pub deliveries: usize,
}

impl Seen {
    /// Copies of a reply the handset shows: each first part (or single
    /// part) starts one.
    pub fn copies(&self) -> usize {
        self.parts.iter().filter(|(_, _, seq)| *seq == 1).count()
    }

    /// A whole reply arrived: every part of some reference.
    pub fn answered(&self) -> bool {
        let mut groups: BTreeMap<(u64, u64), BTreeSet<u64>> = BTreeMap::new();
        for (reference, total, seq) in &self.parts {
            groups.entry((*reference, *total)).or_default().insert(*seq);
        }
        groups
            .iter()
            .any(|((_, total), seqs)| (1..=*total).all(|s| seqs.contains(&s)))
    }
}

pub fn take(
    event: &Value,
    at: Instant,
    seen: &mut BTreeMap<String, Seen>,
    counts: &mut BTreeMap<String, usize>,
) {
    let kind = event["event"].as_str().unwrap_or("?").to_owned();
    *counts.entry(kind.clone()).or_default() += 1;
    match kind.as_str() {
        "part" => {
            let to = event["destination_addr"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let entry = seen.entry(to).or_default();
            let part = match &event["concat"] {
                Value::Null => (0, 1, 1),
                c => (
                    c["ref"].as_u64().unwrap(),
                    c["total"].as_u64().unwrap(),
                    c["seq"].as_u64().unwrap(),
                ),
            };
            entry.parts.push(part);
            entry.last_part_at = Some(at);
        }
        "deliver" => {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            seen.entry(id).or_default().deliveries += 1;
        }
        _ => {}
    }
}
