//! The table of open USSD dialogues, bounded in size and in time: a
//! dialogue idle past its deadline is expired (and released by the
//! caller), and when the table is full the dialogue closest to its deadline
//! is evicted to make room. Abandoned dialogues (citizens who hang up
//! without a word, floods of dials) can never grow it past its capacity.
//! Each dialogue also has owners (its phone number, the address that
//! called) with a limit each: a new dialogue past an owner's limit evicts
//! that owner's oldest, so one number or one caller cannot push everyone
//! else's dialogues out. Pure: the caller passes the time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Open dialogues by key, each with a deadline.
#[derive(Debug)]
pub struct SessionTable<V> {
    entries: HashMap<String, Entry<V>>,
    /// (deadline, stamp) → key: expiry and eviction order.
    deadlines: BTreeMap<(Instant, u64), String>,
    /// Owner → the deadlines of its dialogues.
    owned: HashMap<String, BTreeSet<(Instant, u64)>>,
    capacity: usize,
    idle: Duration,
    stamp: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    deadline: (Instant, u64),
    owners: Vec<String>,
}

/// Someone a dialogue belongs to, and how many dialogues they may keep open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Who (`number:84912345678`, `address:203.0.113.9`).
    pub id: String,
    /// Most dialogues open at once (at least 1).
    pub limit: usize,
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
            owned: HashMap::new(),
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
        let entry = self.unlink(key)?;
        (entry.deadline.0 > now).then_some(entry.value)
    }

    /// Keeps `value` open under `key` until `now + idle`, owned by
    /// `owners`. A dialogue already under `key` is replaced. An owner at its
    /// limit loses its dialogue nearest its deadline; when the table is
    /// full, the dialogue nearest its deadline is evicted. The evicted are
    /// returned.
    pub fn put(
        &mut self,
        key: String,
        value: V,
        owners: &[Owner],
        now: Instant,
    ) -> Vec<Dropped<V>> {
        self.unlink(&key);
        let mut evicted = Vec::new();
        for owner in owners {
            while let Some(oldest) = self
                .owned
                .get(&owner.id)
                .filter(|held| held.len() >= owner.limit.max(1))
                .and_then(|held| held.first())
            {
                let Some(key) = self.deadlines.get(oldest).cloned() else {
                    break;
                };
                evicted.extend(self.drop_key(key));
            }
        }
        if self.entries.len() >= self.capacity {
            evicted.extend(self.pop_first());
        }
        self.stamp += 1;
        let deadline = (now + self.idle, self.stamp);
        self.deadlines.insert(deadline, key.clone());
        for owner in owners {
            self.owned
                .entry(owner.id.clone())
                .or_default()
                .insert(deadline);
        }
        let owners = owners.iter().map(|owner| owner.id.clone()).collect();
        self.entries.insert(
            key,
            Entry {
                value,
                deadline,
                owners,
            },
        );
        evicted
    }

    /// Removes `key` (the citizen or the network ended it).
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.unlink(key).map(|entry| entry.value)
    }

    /// Dialogues `owner` holds open now.
    pub fn held_by(&self, owner: &str) -> usize {
        self.owned.get(owner).map_or(0, BTreeSet::len)
    }

    /// Takes `key`'s entry out of every index.
    fn unlink(&mut self, key: &str) -> Option<Entry<V>> {
        let entry = self.entries.remove(key)?;
        self.deadlines.remove(&entry.deadline);
        for owner in &entry.owners {
            if let Some(held) = self.owned.get_mut(owner) {
                held.remove(&entry.deadline);
                if held.is_empty() {
                    self.owned.remove(owner);
                }
            }
        }
        Some(entry)
    }

    fn drop_key(&mut self, key: String) -> Option<Dropped<V>> {
        let entry = self.unlink(&key)?;
        Some(Dropped {
            key,
            value: entry.value,
        })
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
        let key = self.deadlines.first_key_value()?.1.clone();
        self.drop_key(key)
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
        assert_eq!(table.put("a".into(), 1, &[], start), []);
        assert_eq!(table.take("a", start + Duration::from_secs(59)), Some(1));
        assert!(table.is_empty(), "taken out while its turn is served");
        table.put("a".into(), 2, &[], start);
        assert_eq!(table.take("a", start + IDLE), None, "expired");
        assert!(table.is_empty());
    }

    #[test]
    fn expiry_returns_the_idle_dialogues_oldest_first() {
        let start = Instant::now();
        let mut table = SessionTable::new(10, IDLE);
        table.put("a".into(), 1, &[], start);
        table.put("b".into(), 2, &[], start + Duration::from_secs(10));
        table.put("c".into(), 3, &[], start + Duration::from_secs(20));
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
        table.put("a".into(), 1, &[], start);
        table.put("b".into(), 2, &[], start + Duration::from_secs(1));
        let evicted = table.put("c".into(), 3, &[], start + Duration::from_secs(2));
        assert_eq!(
            evicted,
            [Dropped {
                key: "a".into(),
                value: 1
            }]
        );
        // Replacing a key does not evict.
        assert_eq!(
            table.put("b".into(), 4, &[], start + Duration::from_secs(3)),
            []
        );
        assert_eq!(table.len(), 2);
        assert_eq!(table.remove("b"), Some(4));
        assert_eq!(table.remove("b"), None);
    }

    fn owners(number: &str, address: &str) -> Vec<Owner> {
        vec![
            Owner {
                id: format!("number:{number}"),
                limit: 2,
            },
            Owner {
                id: format!("address:{address}"),
                limit: 3,
            },
        ]
    }

    #[test]
    fn an_owner_at_its_limit_loses_its_own_oldest_dialogue_not_anyone_elses() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut table = SessionTable::new(100, IDLE);
        table.put("other".into(), 0, &owners("2", "10.0.0.2"), at(0));
        table.put("a".into(), 1, &owners("1", "10.0.0.1"), at(1));
        table.put("b".into(), 2, &owners("1", "10.0.0.1"), at(2));
        // The number's third: its oldest goes.
        let evicted = table.put("c".into(), 3, &owners("1", "10.0.0.1"), at(3));
        assert_eq!(
            evicted.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(table.held_by("number:1"), 2);
        // Other numbers from the same address: past its limit, the
        // address's oldest goes.
        assert_eq!(
            table.put("d".into(), 4, &owners("3", "10.0.0.1"), at(4)),
            []
        );
        let evicted = table.put("e".into(), 5, &owners("4", "10.0.0.1"), at(5));
        assert_eq!(
            evicted.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(table.held_by("address:10.0.0.1"), 3);
        // The other caller's dialogue was never touched.
        assert_eq!(table.take("other", at(6)), Some(0));
        // A dialogue put back under its key is not counted twice.
        assert_eq!(
            table.put("d".into(), 6, &owners("3", "10.0.0.1"), at(7)),
            []
        );
        assert_eq!(table.held_by("address:10.0.0.1"), 3);
        for key in ["c", "d", "e"] {
            table.remove(key);
        }
        assert_eq!(table.held_by("number:1"), 0);
        assert!(table.owned.is_empty(), "{:?}", table.owned);
    }

    proptest! {
        #[test]
        fn the_table_never_exceeds_its_capacity_and_its_indexes_agree(
            ops in proptest::collection::vec((0u8..4, 0u16..64, 0u64..200, 0u8..4), 1..400),
            capacity in 1usize..16,
        ) {
            let start = Instant::now();
            let mut table = SessionTable::new(capacity, Duration::from_secs(30));
            let mut clock = 0u64;
            for (op, key, step, who) in ops {
                clock += step;
                let now = start + Duration::from_secs(clock);
                let key = key.to_string();
                match op {
                    0 | 1 => {
                        let owners = owners(&who.to_string(), &(who % 2).to_string());
                        table.put(key, clock, &owners, now);
                    }
                    2 => { table.take(&key, now); }
                    _ => {
                        for dropped in table.expire(now) {
                            prop_assert!(dropped.value + 30 <= clock);
                        }
                    }
                }
                prop_assert!(table.len() <= capacity);
                prop_assert_eq!(table.entries.len(), table.deadlines.len());
                for who in 0u8..4 {
                    let held = table.held_by(&format!("number:{who}"));
                    prop_assert!(held <= 2);
                }
                for address in 0u8..2 {
                    let held = table.held_by(&format!("address:{address}"));
                    prop_assert!(held <= 3);
                }
                let held: usize = table.owned.values().map(BTreeSet::len).sum();
                prop_assert_eq!(held, 2 * table.entries.len());
            }
        }
    }
}
