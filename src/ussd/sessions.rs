//! The table of open USSD dialogues, bounded in size and in time: a
//! dialogue idle past its deadline is expired (and released by the
//! caller), and when the table is full the dialogue closest to its deadline
//! is evicted to make room. Abandoned dialogues (citizens who hang up
//! without a word, floods of dials) can never grow it past its capacity.
//! Pure: the caller passes the time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Open dialogues by key, each with a deadline.
#[derive(Debug)]
pub struct SessionTable<V> {
    entries: HashMap<String, Entry<V>>,
    /// (deadline, stamp) → key: expiry and eviction order.
    deadlines: BTreeMap<(Instant, u64), String>,
    capacity: usize,
    idle: Duration,
    stamp: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    deadline: (Instant, u64),
}

/// A dialogue that left the table without being finished.
#[derive(Debug, PartialEq, Eq)]
pub struct Dropped<V> {
    /// Its key.
    pub key: String,
    /// Its state.
    pub value: V,
}

impl<V> SessionTable<V> {
    /// A table of at most `capacity` dialogues (at least 1), each expiring
    /// `idle` after its last turn.
    pub fn new(capacity: usize, idle: Duration) -> Self {
        SessionTable {
            entries: HashMap::new(),
            deadlines: BTreeMap::new(),
            capacity: capacity.max(1),
            idle,
            stamp: 0,
        }
    }

    /// Dialogues open now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no dialogue is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most dialogues kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes the dialogue `key` out (its turn is being served), if it is
    /// open and not past its deadline at `now`.
    pub fn take(&mut self, key: &str, now: Instant) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.deadlines.remove(&entry.deadline);
        (entry.deadline.0 > now).then_some(entry.value)
    }

    /// Keeps `value` open under `key` until `now + idle`. A dialogue
    /// already under `key` is replaced. When the table is full, the
    /// dialogue nearest its deadline is evicted and returned.
    pub fn put(&mut self, key: String, value: V, now: Instant) -> Option<Dropped<V>> {
        if let Some(old) = self.entries.remove(&key) {
            self.deadlines.remove(&old.deadline);
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.pop_first()
        } else {
            None
        };
        self.stamp += 1;
        let deadline = (now + self.idle, self.stamp);
        self.deadlines.insert(deadline, key.clone());
        self.entries.insert(key, Entry { value, deadline });
        evicted
    }

    /// Removes `key` (the citizen or the network ended it).
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.deadlines.remove(&entry.deadline);
        Some(entry.value)
    }

    /// Removes and returns every dialogue whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Dropped<V>> {
        let mut expired = Vec::new();
        while let Some((&(deadline, _), _)) = self.deadlines.first_key_value() {
            if deadline > now {
                break;
            }
            if let Some(dropped) = self.pop_first() {
                expired.push(dropped);
            }
        }
        expired
    }

    /// When the next dialogue expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first_key_value().map(|(&(at, _), _)| at)
    }

    fn pop_first(&mut self) -> Option<Dropped<V>> {
        let (_, key) = self.deadlines.pop_first()?;
        let entry = self.entries.remove(&key)?;
        Some(Dropped {
            key,
            value: entry.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IDLE: Duration = Duration::from_secs(60);

    #[test]
    fn a_dialogue_is_taken_back_until_its_deadline() {
        let start = Instant::now();
        let mut table = SessionTable::new(10, IDLE);
        assert_eq!(table.put("a".into(), 1, start), None);
        assert_eq!(table.take("a", start + Duration::from_secs(59)), Some(1));
        assert!(table.is_empty(), "taken out while its turn is served");
        table.put("a".into(), 2, start);
        assert_eq!(table.take("a", start + IDLE), None, "expired");
        assert!(table.is_empty());
    }

    #[test]
    fn expiry_returns_the_idle_dialogues_oldest_first() {
        let start = Instant::now();
        let mut table = SessionTable::new(10, IDLE);
        table.put("a".into(), 1, start);
        table.put("b".into(), 2, start + Duration::from_secs(10));
        table.put("c".into(), 3, start + Duration::from_secs(20));
        let expired = table.expire(start + Duration::from_secs(70));
        let keys: Vec<&str> = expired.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(table.len(), 1);
        assert_eq!(table.next_deadline(), Some(start + Duration::from_secs(80)));
    }

    #[test]
    fn a_full_table_evicts_the_dialogue_nearest_its_deadline() {
        let start = Instant::now();
        let mut table = SessionTable::new(2, IDLE);
        table.put("a".into(), 1, start);
        table.put("b".into(), 2, start + Duration::from_secs(1));
        let evicted = table.put("c".into(), 3, start + Duration::from_secs(2));
        assert_eq!(
            evicted,
            Some(Dropped {
                key: "a".into(),
                value: 1
            })
        );
        // Replacing a key does not evict.
        assert_eq!(
            table.put("b".into(), 4, start + Duration::from_secs(3)),
            None
        );
        assert_eq!(table.len(), 2);
        assert_eq!(table.remove("b"), Some(4));
        assert_eq!(table.remove("b"), None);
    }

    proptest! {
        #[test]
        fn the_table_never_exceeds_its_capacity_and_its_indexes_agree(
            ops in proptest::collection::vec((0u8..4, 0u16..64, 0u64..200), 1..400),
            capacity in 1usize..16,
        ) {
            let start = Instant::now();
            let mut table = SessionTable::new(capacity, Duration::from_secs(30));
            let mut clock = 0u64;
            for (op, key, step) in ops {
                clock += step;
                let now = start + Duration::from_secs(clock);
                let key = key.to_string();
                match op {
                    0 | 1 => { table.put(key, clock, now); }
                    2 => { table.take(&key, now); }
                    _ => {
                        for dropped in table.expire(now) {
                            prop_assert!(dropped.value + 30 <= clock);
                        }
                    }
                }
                prop_assert!(table.len() <= capacity);
                prop_assert_eq!(table.entries.len(), table.deadlines.len());
            }
        }
    }
}
