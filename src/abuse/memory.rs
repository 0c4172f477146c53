//! The guard's in-memory, per-process state: GCRA states of the in-process
//! limiter, recent texts for loop detection, per-sender lookup history for
//! scanner detection, and per-code sender sets for code flags.
//!
//! Memory stays bounded: every entry knows when it stops mattering (its
//! window has passed), a sweep drops those entries at most once a minute of
//! guard time, and each map has a hard cap past which the entries closest to
//! expiry are dropped first. Per-entry collections are capped by their
//! thresholds. Message texts are kept only as hashes.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use super::gcra::{self, Decision, TIERS};
use super::settings::Limits;

/// How often, in guard time, expired entries are swept.
const SWEEP_EVERY_MS: i64 = 60_000;
/// Default hard cap on the entries of each map.
pub(crate) const MAX_KEYS: usize = 100_000;

/// Why a sender was caught scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trip {
    /// This many unknown codes within the window.
    Misses(usize),
    /// This many distinct codes within the window.
    Distinct(usize),
}

#[derive(Debug, Default)]
struct LoopState {
    /// (hash of the normalised text, time), oldest first.
    recent: VecDeque<(u64, i64)>,
    /// Silenced as a loop until then.
    silenced_until: i64,
}

#[derive(Debug, Default)]
struct ScanState {
    /// Times of unknown-code lookups, oldest first, at most the threshold.
    misses: VecDeque<i64>,
    /// Code looked up → last time, at most the threshold.
    codes: HashMap<String, i64>,
    last_ms: i64,
}

#[derive(Debug, Default)]
struct CodeState {
    /// Sender → last time, at most the threshold.
    senders: HashMap<String, i64>,
    /// No new flag for this code before then.
    flagged_until: i64,
    last_ms: i64,
}

/// Entry counts of the maps, for tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub rates: usize,
    pub loops: usize,
    pub scans: usize,
    pub codes: usize,
}

#[cfg(test)]
impl Sizes {
    /// All entries together.
    pub fn total(self) -> usize {
        self.rates + self.loops + self.scans + self.codes
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Memory {
    limits: Limits,
    max_keys: usize,
    last_sweep_ms: Option<i64>,
    rates: HashMap<String, [i64; TIERS]>,
    loops: HashMap<String, LoopState>,
    scans: HashMap<String, ScanState>,
    codes: HashMap<String, CodeState>,
    text_hasher: RandomState,
}

impl Memory {
    /// Replaces the limits; the histories are kept.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn new(limits: Limits, max_keys: usize) -> Self {
        Memory {
            limits,
            max_keys: max_keys.max(10),
            last_sweep_ms: None,
            rates: HashMap::new(),
            loops: HashMap::new(),
            scans: HashMap::new(),
            codes: HashMap::new(),
            text_hasher: RandomState::new(),
        }
    }

    /// Sweeps expired entries when the last sweep is a minute (of guard
    /// time) away, either way: a clock set back does not stop the sweeps,
    /// and the small jitter of concurrent callers does not cause extra ones.
    pub fn maintain(&mut self, now_ms: i64) {
        let due = self
            .last_sweep_ms
            .is_none_or(|last| now_ms.abs_diff(last) >= SWEEP_EVERY_MS.unsigned_abs());
        if due {
            self.sweep(now_ms);
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        self.last_sweep_ms = Some(now_ms);
        let loop_window = self.limits.loop_window_ms;
        let scan_window = self.limits.scan_window_ms;
        self.rates.retain(|_, tats| gcra::fresh_at(tats) > now_ms);
        self.loops
            .retain(|_, s| loop_expiry(s, loop_window) > now_ms);
        self.scans
            .retain(|_, s| s.last_ms.saturating_add(scan_window) > now_ms);
        self.codes
            .retain(|_, s| code_expiry(s, scan_window) > now_ms);
        shrink(&mut self.rates);
        shrink(&mut self.loops);
        shrink(&mut self.scans);
        shrink(&mut self.codes);
    }

    /// Runs the in-process limiter for `sender`.
    pub fn rate(&mut self, sender: &str, now_ms: i64) -> Decision {
        let tiers = self.limits.tiers;
        if let Some(tats) = self.rates.get_mut(sender) {
            return gcra::decide(tats, &tiers, now_ms);
        }
        let mut tats = [i64::MIN; TIERS];
        let decision = gcra::decide(&mut tats, &tiers, now_ms);
        if decision == Decision::Allow {
            self.rates.insert(sender.to_owned(), tats);
            self.enforce_cap_rates(sender);
        }
        decision
    }

    /// Records `text` from `sender` and tells whether the sender is in an
    /// auto-responder loop (and must be silenced).
    pub fn is_loop(&mut self, sender: &str, text: &str, now_ms: i64) -> bool {
        let repeats = self.limits.loop_repeats as usize;
        if repeats == 0 {
            return false;
        }
        let window = self.limits.loop_window_ms;
        let hash = self.text_hasher.hash_one(normalise(text));
        if !self.loops.contains_key(sender) {
            self.loops.insert(sender.to_owned(), LoopState::default());
            self.enforce_cap_loops(sender);
        }
        let Some(state) = self.loops.get_mut(sender) else {
            return false;
        };
        let cutoff = now_ms.saturating_sub(window);
        state.recent.retain(|&(_, t)| t > cutoff);
        state.recent.push_back((hash, now_ms));
        while state.recent.len() > 2 * repeats {
            state.recent.pop_front();
        }
        let same = state.recent.iter().filter(|&&(h, _)| h == hash).count();
        if same >= repeats {
            state.silenced_until = state.silenced_until.max(now_ms.saturating_add(window));
        }
        now_ms < state.silenced_until
    }

    /// Records a lookup of `code` by `sender` for scanner detection; returns
    /// the rule the sender just tripped, if any.
    pub fn record_scan(
        &mut self,
        sender: &str,
        code: &str,
        found: bool,
        now_ms: i64,
    ) -> Option<Trip> {
        let miss_limit = self.limits.failed_lookups_before_block as usize;
        let distinct_limit = self.limits.distinct_codes_before_block as usize;
        if miss_limit == 0 && distinct_limit == 0 {
            return None;
        }
        if !self.scans.contains_key(sender) {
            self.scans.insert(sender.to_owned(), ScanState::default());
            self.enforce_cap_scans(sender);
        }
        let state = self.scans.get_mut(sender)?;
        let cutoff = now_ms.saturating_sub(self.limits.scan_window_ms);
        state.misses.retain(|&t| t > cutoff);
        state.codes.retain(|_, t| *t > cutoff);
        state.last_ms = state.last_ms.max(now_ms);
        if miss_limit > 0 && !found {
            state.misses.push_back(now_ms);
            while state.misses.len() > miss_limit {
                state.misses.pop_front();
            }
        }
        if distinct_limit > 0 {
            state.codes.insert(code.to_owned(), now_ms);
            remove_oldest_over(&mut state.codes, distinct_limit);
        }
        if miss_limit > 0 && state.misses.len() >= miss_limit {
            Some(Trip::Misses(state.misses.len()))
        } else if distinct_limit > 0 && state.codes.len() >= distinct_limit {
            Some(Trip::Distinct(state.codes.len()))
        } else {
            None
        }
    }

    /// Records that `sender` looked `code` up; returns the number of distinct
    /// senders when the code crosses the flag threshold for the first time in
    /// the window.
    pub fn record_code(&mut self, code: &str, sender: &str, now_ms: i64) -> Option<usize> {
        let limit = self.limits.code_flag_senders as usize;
        if limit == 0 {
            return None;
        }
        if !self.codes.contains_key(code) {
            self.codes.insert(code.to_owned(), CodeState::default());
            self.enforce_cap_codes(code);
        }
        let window = self.limits.scan_window_ms;
        let state = self.codes.get_mut(code)?;
        let cutoff = now_ms.saturating_sub(window);
        state.senders.retain(|_, t| *t > cutoff);
        state.senders.insert(sender.to_owned(), now_ms);
        remove_oldest_over(&mut state.senders, limit);
        state.last_ms = state.last_ms.max(now_ms);
        if state.senders.len() >= limit && now_ms >= state.flagged_until {
            state.flagged_until = now_ms.saturating_add(window);
            Some(state.senders.len())
        } else {
            None
        }
    }

    /// Forgets the sender's scan history (after a block or an unblock).
    pub fn forget_scans(&mut self, sender: &str) {
        self.scans.remove(sender);
    }

    /// Forgets everything about the sender (an admin unblocked it).
    pub fn forget_sender(&mut self, sender: &str) {
        self.rates.remove(sender);
        self.loops.remove(sender);
        self.scans.remove(sender);
    }

    #[cfg(test)]
    pub fn sizes(&self) -> Sizes {
        Sizes {
            rates: self.rates.len(),
            loops: self.loops.len(),
            scans: self.scans.len(),
            codes: self.codes.len(),
        }
    }

    // The caps. Each runs after an insertion; `keep` is the key just
    // inserted, which is never dropped.

    fn enforce_cap_rates(&mut self, keep: &str) {
        enforce_cap(&mut self.rates, self.max_keys, Some(keep), gcra::fresh_at);
    }

    fn enforce_cap_loops(&mut self, keep: &str) {
        let window = self.limits.loop_window_ms;
        enforce_cap(&mut self.loops, self.max_keys, Some(keep), |s| {
            loop_expiry(s, window)
        });
    }

    fn enforce_cap_scans(&mut self, keep: &str) {
        let window = self.limits.scan_window_ms;
        enforce_cap(&mut self.scans, self.max_keys, Some(keep), |s| {
            s.last_ms.saturating_add(window)
        });
    }

    fn enforce_cap_codes(&mut self, keep: &str) {
        let window = self.limits.scan_window_ms;
        enforce_cap(&mut self.codes, self.max_keys, Some(keep), |s| {
            code_expiry(s, window)
        });
    }
}

/// Trimmed and lower-cased: what makes two texts "the same" for loops.
fn normalise(text: &str) -> String {
    text.trim().to_lowercase()
}

fn loop_expiry(state: &LoopState, window: i64) -> i64 {
    let last = state.recent.back().map_or(i64::MIN, |&(_, t)| t);
    state.silenced_until.max(last.saturating_add(window))
}

fn code_expiry(state: &CodeState, window: i64) -> i64 {
    state
        .flagged_until
        .max(state.last_ms.saturating_add(window))
}

/// Drops the entry with the oldest time while `map` holds more than `limit`.
fn remove_oldest_over(map: &mut HashMap<String, i64>, limit: usize) {
    while map.len() > limit {
        let Some(oldest) = map.iter().min_by_key(|&(_, &t)| t).map(|(k, _)| k.clone()) else {
            return;
        };
        map.remove(&oldest);
    }
}

/// Past `cap` entries, drops the entries that expire first (except `keep`)
/// until a tenth of the cap is free again, so that the cost of the sort is
/// shared by many insertions.
fn enforce_cap<V>(
    map: &mut HashMap<String, V>,
    cap: usize,
    keep: Option<&str>,
    expiry: impl Fn(&V) -> i64,
) {
    if map.len() <= cap {
        return;
    }
    let target = cap - cap / 10;
    let mut by_expiry: Vec<(i64, String)> = map
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != keep)
        .map(|(k, v)| (expiry(v), k.clone()))
        .collect();
    let excess = map.len().saturating_sub(target).min(by_expiry.len());
    if excess == 0 {
        return;
    }
    by_expiry.select_nth_unstable(excess - 1);
    for (_, key) in by_expiry.into_iter().take(excess) {
        map.remove(&key);
    }
    shrink(map);
}

/// Gives memory back after a map lost most of its entries.
fn shrink<V>(map: &mut HashMap<String, V>) {
    if map.capacity() > 64 && map.capacity() > 4 * map.len() {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::RateLimitSettings;

    const T0: i64 = 1_800_000_000_000;

    fn memory(settings: RateLimitSettings, cap: usize) -> Memory {
        let (limits, _) = settings.validate().unwrap();
        Memory::new(limits, cap)
    }

    #[test]
    fn the_cap_drops_the_entries_closest_to_expiry() {
        let mut m = memory(RateLimitSettings::default(), 100);
        for i in 0..1000_i64 {
            m.is_loop(&format!("84900{i:06}"), "hi", T0 + i);
        }
        let sizes = m.sizes();
        assert!(sizes.loops <= 100, "{sizes:?}");
        assert!(sizes.loops >= 90, "{sizes:?}");
        // The newest senders are the ones kept.
        assert!(m.loops.contains_key("84900000999"));
        assert!(!m.loops.contains_key("84900000000"));
    }

    #[test]
    fn per_entry_collections_are_capped_by_their_thresholds() {
        let mut m = memory(RateLimitSettings::default(), MAX_KEYS);
        for i in 0..1000_i64 {
            m.record_scan("84912345678", &format!("C{i}"), true, T0);
            m.record_code("C1", &format!("84900{i:06}"), T0);
            m.is_loop("84912345678", &format!("text {i}"), T0);
        }
        let scan = &m.scans["84912345678"];
        assert!(scan.codes.len() <= 15 && scan.misses.is_empty());
        assert!(m.codes["C1"].senders.len() <= 5);
        assert!(m.loops["84912345678"].recent.len() <= 8);
    }

    #[test]
    fn texts_are_compared_trimmed_and_lower_cased() {
        let mut m = memory(RateLimitSettings::default(), MAX_KEYS);
        assert!(!m.is_loop("84912345678", "TC 000.00.12.H58-240315-0007", T0));
        assert!(!m.is_loop("84912345678", "  tc 000.00.12.h58-240315-0007\n", T0 + 1));
        assert!(!m.is_loop("84912345678", "Tc 000.00.12.H58-240315-0007", T0 + 2));
        assert!(m.is_loop("84912345678", "TC 000.00.12.H58-240315-0007 ", T0 + 3));
        // Silenced whatever the text, for the loop window.
        assert!(m.is_loop("84912345678", "something else", T0 + 600_000));
        assert!(!m.is_loop("84912345678", "something else", T0 + 600_003));
    }
}
