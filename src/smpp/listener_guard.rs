//! The listener's defences against misbehaving and hostile peers, as plain
//! code without sockets, so that each rule is tested on its own:
//!
//! - allow lists (`smpp.listener.allowed_ips`, and per account), read with
//!   [`client_addr::allows`](crate::client_addr::allows), the rule every port shares.
//! - [`Secret`]: system_id and password comparison in constant time, in
//!   which neither the content nor the length of the configured value shows.
//! - [`LockoutTable`]: failed binds counted per address; too many within a
//!   window lock the address out for a while. Bounded memory.
//! - [`ConnectionCaps`]: connections open at once, in all and per address
//!   (`max_connections`, `max_connections_per_ip`).
//! - [`ListenerGuard`]: all of it for one listener: which connections are
//!   admitted, which binds are authorised (holding a [`BindSlot`] of the
//!   account's `max_binds` while bound), and each account's `submit_sm` rate
//!   (`max_tps`, a GCRA limiter from the `governor` crate).
//!
//! Time is passed in: the lockout table takes `now` from its caller, and the
//! rate limiters read a `governor` clock (a fake one in tests).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::pdu::status;
use super::ListenerSettings;
use crate::client_addr::{allows, AllowedNet};

/// Bytes a [`Secret`] holds: more than a system_id (15) or a password (8).
const SECRET_LEN: usize = 16;

/// A system_id or password laid out for comparison in constant time: the
/// bytes zero-padded to a fixed size, and the length. The configured side is
/// built once at start-up, so that at bind time no work depends on its
/// length; comparing touches every byte of both, whatever they hold. A value
/// longer than 16 bytes never matches (config allows 15 and 8).
#[derive(Clone, Copy)]
pub struct Secret {
    bytes: [u8; SECRET_LEN],
    len: u64,
    fits: bool,
}

impl Secret {
    /// Lays out `text`.
    pub fn new(text: &str) -> Self {
        let raw = text.as_bytes();
        let mut bytes = [0u8; SECRET_LEN];
        for (slot, byte) in bytes.iter_mut().zip(raw) {
            *slot = *byte;
        }
        Secret {
            bytes,
            len: raw.len() as u64,
            fits: raw.len() <= SECRET_LEN,
        }
    }
}

impl ConstantTimeEq for Secret {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.bytes[..].ct_eq(&other.bytes[..])
            & self.len.ct_eq(&other.len)
            & Choice::from(u8::from(self.fits & other.fits))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How failed binds lock an address out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that start a lockout; 0: never.
    pub after_failures: u32,
    /// The window failures are counted in, from the first one.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
    /// Addresses remembered at most.
    pub max_addresses: usize,
}

impl LockoutPolicy {
    /// The policy of `[smpp.listener]`.
    pub fn from_settings(settings: &ListenerSettings) -> Self {
        LockoutPolicy {
            after_failures: settings.lockout_after_failures,
            window: Duration::from_secs(settings.lockout_window_secs),
            lockout: Duration::from_secs(settings.lockout_secs),
            max_addresses: settings.lockout_max_addresses,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LockoutEntry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

impl LockoutEntry {
    /// Still worth remembering: locked out, or failures inside the window.
    fn live(&self, policy: &LockoutPolicy, now: Instant) -> bool {
        match self.locked_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(self.window_start) < policy.window,
        }
    }
}

/// Failed binds per address. An IPv4 address is one entry; an IPv6 address
/// counts with its whole /64 (what one host or customer usually gets), so
/// that hopping addresses inside it does not escape the count. At most
/// `max_addresses` entries: when full, entries whose window or lockout has
/// passed are dropped, then the one not locked out with the oldest last
/// failure (when all are locked out: the one whose lockout ends first).
#[derive(Debug)]
pub struct LockoutTable {
    policy: LockoutPolicy,
    entries: HashMap<IpAddr, LockoutEntry>,
}

impl LockoutTable {
    /// An empty table.
    pub fn new(policy: LockoutPolicy) -> Self {
        LockoutTable {
            policy,
            entries: HashMap::new(),
        }
    }

    /// The address failures are counted under: the IPv4 address, or the
    /// /64 of an IPv6 one.
    pub fn key(ip: IpAddr) -> IpAddr {
        crate::client_addr::limit_key(ip)
    }

    /// Until when binds from `ip` are refused; `None` when they are not.
    pub fn locked_until(&mut self, ip: IpAddr, now: Instant) -> Option<Instant> {
        let key = Self::key(ip);
        let until = self.entries.get(&key)?.locked_until?;
        if now < until {
            Some(until)
        } else {
            self.entries.remove(&key);
            None
        }
    }

    /// Records a failed bind from `ip`. Returns when the lockout it starts
    /// ends, only for the failure that starts it (so it is logged once).
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> Option<Instant> {
        if self.policy.after_failures == 0 {
            return None;
        }
        let key = Self::key(ip);
        if !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        let policy = self.policy;
        let entry = self.entries.entry(key).or_insert(LockoutEntry {
            window_start: now,
            failures: 0,
            locked_until: None,
            last_failure: now,
        });
        if !entry.live(&policy, now) {
            *entry = LockoutEntry {
                window_start: now,
                failures: 0,
                locked_until: None,
                last_failure: now,
            };
        }
        entry.last_failure = now;
        if entry.locked_until.is_some() {
            return None;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= policy.after_failures {
            let until = now + policy.lockout;
            entry.locked_until = Some(until);
            Some(until)
        } else {
            None
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        let capacity = self.policy.max_addresses.max(1);
        if self.entries.len() < capacity {
            return;
        }
        let policy = self.policy;
        self.entries.retain(|_, entry| entry.live(&policy, now));
        while self.entries.len() >= capacity {
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, e)| match e.locked_until {
                    None => (false, e.last_failure),
                    Some(until) => (true, until),
                })
                .map(|(key, _)| *key);
            match victim {
                Some(key) => self.entries.remove(&key),
                None => break,
            };
        }
    }
}

/// Why a bind was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindRefusal {
    /// Too many failed binds from this address lately; credentials not checked.
    #[error("address locked out after repeated failed binds")]
    LockedOut,
    /// No account has this system_id.
    #[error("unknown system_id")]
    UnknownSystemId,
    /// The system_id exists; the password does not match.
    #[error("wrong password")]
    WrongPassword,
    /// The account may not bind from this address (its `allowed_ips`).
    #[error("address not in the account's allowed_ips")]
    AddressNotAllowed,
    /// The account already has `max_binds` sessions bound.
    #[error("account already has {max_binds} sessions bound (max_binds)")]
    TooManyBinds {
        /// The account's limit.
        max_binds: u32,
    },
}

impl BindRefusal {
    /// The bind_resp command_status. A disallowed address is answered as an
    /// unknown system_id, so that it tells nothing about the account.
    pub fn status(self) -> u32 {
        match self {
            BindRefusal::LockedOut | BindRefusal::TooManyBinds { .. } => status::ESME_RBINDFAIL,
            BindRefusal::UnknownSystemId | BindRefusal::AddressNotAllowed => status::ESME_RINVSYSID,
            BindRefusal::WrongPassword => status::ESME_RINVPASWD,
        }
    }

    /// Counts toward the address's lockout (bad credentials, not limits).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            BindRefusal::UnknownSystemId
                | BindRefusal::WrongPassword
                | BindRefusal::AddressNotAllowed
        )
    }
}

/// A refused bind, and whether this refusal started a lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub reason: BindRefusal,
    /// Set when this failure locked the address out (log it once), with
    /// the address counted (an IPv6 /64) and when the lockout ends.
    pub lockout_began: Option<(IpAddr, Instant)>,
}

/// One bound session's place among its account's `max_binds`; given back
/// when dropped.
#[derive(Debug)]
pub struct BindSlot {
    bound: Arc<AtomicU32>,
}

impl BindSlot {
    fn acquire(bound: &Arc<AtomicU32>, max: u32) -> Option<BindSlot> {
        bound
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| BindSlot {
                bound: bound.clone(),
            })
    }
}

impl Drop for BindSlot {
    fn drop(&mut self) {
        self.bound.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefusal {
    /// The address is not in the listener's `allowed_ips`.
    #[error("address not in smpp.listener.allowed_ips")]
    NotAllowed,
    /// `max_connections` are open.
    #[error("max_connections reached")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// `max_connections_per_ip` are open from this address.
    #[error("max_connections_per_ip reached")]
    TooManyFromAddress {
        /// The limit.
        limit: usize,
    },
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    /// By [`LockoutTable::key`]: an IPv4 address, or an IPv6 /64.
    by_address: HashMap<IpAddr, usize>,
}

/// Connections open now, in all and per address, against
/// `max_connections` and `max_connections_per_ip`. Each admitted
/// connection holds a [`ConnectionSlot`] until it closes.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_total: usize,
    max_per_address: usize,
    open: Arc<Mutex<OpenConnections>>,
}

/// One open connection's place under the caps; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<Mutex<OpenConnections>>,
    key: IpAddr,
}

impl ConnectionCaps {
    /// Caps of `max_total` connections, `max_per_address` from one address.
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        ConnectionCaps {
            max_total,
            max_per_address,
            open: Arc::default(),
        }
    }

    /// Takes a slot for a connection from `ip`, or says which cap is full.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, ConnectionRefusal> {
        let key = LockoutTable::key(ip);
        let mut open = lock(&self.open);
        if open.total >= self.max_total {
            return Err(ConnectionRefusal::TooMany {
                limit: self.max_total,
            });
        }
        let from = open.by_address.entry(key).or_insert(0);
        if *from >= self.max_per_address {
            return Err(ConnectionRefusal::TooManyFromAddress {
                limit: self.max_per_address,
            });
        }
        *from += 1;
        open.total += 1;
        Ok(ConnectionSlot {
            open: self.open.clone(),
            key,
        })
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        lock(&self.open).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(from) = open.by_address.get_mut(&self.key) {
            *from = from.saturating_sub(1);
            if *from == 0 {
                open.by_address.remove(&self.key);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An authorised bind: which account (its index in the settings), and the
/// slot it holds while bound.
#[derive(Debug)]
pub struct Authorized {
    /// Index into `ListenerSettings::accounts`.
    pub account: usize,
    /// Held for as long as the session is bound.
    pub slot: BindSlot,
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

struct AccountGuard<C: Clock> {
    system_id: Secret,
    password: Secret,
    allowed_ips: Vec<AllowedNet>,
    max_binds: u32,
    bound: Arc<AtomicU32>,
    tps: Option<Limiter<C>>,
}

/// The policy of one listener toward its peers. Shared by every session.
pub struct ListenerGuard<C: Clock = DefaultClock> {
    allowed_ips: Vec<AllowedNet>,
    accounts: Vec<AccountGuard<C>>,
    lockout: Mutex<LockoutTable>,
    connections: ConnectionCaps,
}

impl ListenerGuard<DefaultClock> {
    /// The guard for `settings`, on the real clock.
    pub fn new(settings: &ListenerSettings) -> Self {
        Self::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> ListenerGuard<C> {
    /// The guard for `settings`; `max_tps` limiters read `clock`.
    pub fn with_clock(settings: &ListenerSettings, clock: C) -> Self {
        let accounts = settings
            .accounts
            .iter()
            .map(|account| AccountGuard {
                system_id: Secret::new(&account.system_id),
                password: Secret::new(&account.password),
                allowed_ips: account.allowed_ips.clone(),
                max_binds: account.max_binds,
                bound: Arc::new(AtomicU32::new(0)),
                tps: account.max_tps.and_then(NonZeroU32::new).map(|rate| {
                    RateLimiter::direct_with_clock(Quota::per_second(rate), clock.clone())
                }),
            })
            .collect();
        ListenerGuard {
            allowed_ips: settings.allowed_ips.clone(),
            accounts,
            lockout: Mutex::new(LockoutTable::new(LockoutPolicy::from_settings(settings))),
            connections: ConnectionCaps::new(
                settings.max_connections,
                settings.max_connections_per_ip,
            ),
        }
    }
}

impl<C: Clock> ListenerGuard<C> {
    /// May a connection from `ip` stay open (the listener's `allowed_ips`)?
    pub fn admits(&self, ip: IpAddr) -> bool {
        allows(&self.allowed_ips, ip)
    }

    /// Admits a connection just accepted from `ip`: its address is allowed
    /// and neither cap on open connections is full. The slot is held for
    /// as long as the connection is open.
    pub fn admit_connection(&self, ip: IpAddr) -> Result<ConnectionSlot, ConnectionRefusal> {
        if !self.admits(ip) {
            return Err(ConnectionRefusal::NotAllowed);
        }
        self.connections.admit(ip)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// Decides a bind from `ip`, in this order: a locked-out address is
    /// refused without looking at the credentials; then the system_id and
    /// password (compared against every account, in constant time); then
    /// the account's `allowed_ips`; then its `max_binds`. The first three
    /// kinds of refusal count toward the address's lockout.
    pub fn authorize_bind(
        &self,
        ip: IpAddr,
        system_id: &str,
        password: &str,
        now: Instant,
    ) -> Result<Authorized, Refused> {
        let refused = |reason| Refused {
            reason,
            lockout_began: None,
        };
        if self.lock_table().locked_until(ip, now).is_some() {
            return Err(refused(BindRefusal::LockedOut));
        }
        let verdict = self.check_credentials(ip, system_id, password);
        let account = match verdict {
            Ok(account) => account,
            Err(reason) => {
                let lockout_began = self
                    .lock_table()
                    .record_failure(ip, now)
                    .map(|until| (LockoutTable::key(ip), until));
                return Err(Refused {
                    reason,
                    lockout_began,
                });
            }
        };
        let guard = &self.accounts[account];
        match BindSlot::acquire(&guard.bound, guard.max_binds) {
            Some(slot) => Ok(Authorized { account, slot }),
            None => Err(refused(BindRefusal::TooManyBinds {
                max_binds: guard.max_binds,
            })),
        }
    }

    /// The account these credentials open from `ip`, or why not. Every
    /// account's system_id and password are compared, whichever matches.
    fn check_credentials(
        &self,
        ip: IpAddr,
        system_id: &str,
        password: &str,
    ) -> Result<usize, BindRefusal> {
        let system_id = Secret::new(system_id);
        let password = Secret::new(password);
        let mut found = Choice::from(0);
        let mut password_ok = Choice::from(0);
        let mut index = 0u64;
        for (i, account) in self.accounts.iter().enumerate() {
            let this = account.system_id.ct_eq(&system_id) & !found;
            index.conditional_assign(&(i as u64), this);
            password_ok |= this & account.password.ct_eq(&password);
            found |= this;
        }
        let index = index as usize;
        // Looked at whether or not the system_id matched (index 0 then), so
        // that an unknown account and a disallowed address take as long.
        let address_ok = self
            .accounts
            .get(index)
            .is_some_and(|account| allows(&account.allowed_ips, ip));
        if !bool::from(found) {
            return Err(BindRefusal::UnknownSystemId);
        }
        if !address_ok {
            return Err(BindRefusal::AddressNotAllowed);
        }
        if !bool::from(password_ok) {
            return Err(BindRefusal::WrongPassword);
        }
        Ok(index)
    }

    /// May the account (an index from [`Authorized::account`]) submit one
    /// more message now? Always true without a `max_tps`.
    pub fn try_submit(&self, account: usize) -> bool {
        match self.accounts.get(account).and_then(|a| a.tps.as_ref()) {
            Some(limiter) => limiter.check().is_ok(),
            None => true,
        }
    }

    /// Sessions of the account bound now.
    pub fn bound_sessions(&self, account: usize) -> u32 {
        self.accounts
            .get(account)
            .map_or(0, |a| a.bound.load(Ordering::Acquire))
    }

    /// Addresses the lockout table remembers now.
    pub fn tracked_addresses(&self) -> usize {
        self.lock_table().len()
    }

    fn lock_table(&self) -> MutexGuard<'_, LockoutTable> {
        lock(&self.lockout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::ListenerAccount;
    use governor::clock::FakeRelativeClock;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn net(text: &str) -> AllowedNet {
        text.parse().unwrap()
    }

    fn account(system_id: &str, password: &str) -> ListenerAccount {
        ListenerAccount {
            system_id: system_id.into(),
            password: password.into(),
            ..ListenerAccount::default()
        }
    }

    fn settings(accounts: Vec<ListenerAccount>) -> ListenerSettings {
        ListenerSettings {
            accounts,
            lockout_after_failures: 3,
            lockout_window_secs: 60,
            lockout_secs: 120,
            ..ListenerSettings::default()
        }
    }

    #[test]
    fn allow_list_entries_are_hosts_or_networks() {
        assert_eq!(net("10.1.2.3").net().to_string(), "10.1.2.3/32");
        assert_eq!(net(" 10.1.2.0/24 ").net().to_string(), "10.1.2.0/24");
        assert_eq!(net("10.1.2.77/24").net().to_string(), "10.1.2.0/24");
        assert_eq!(net("2001:db8::1").net().to_string(), "2001:db8::1/128");
        assert_eq!(net("::ffff:10.0.0.0/104").net().to_string(), "10.0.0.0/8");
        for bad in ["", "10.1.2", "10.1.2.0/33", "localhost", "10.0.0.0/8,"] {
            let err = bad.parse::<AllowedNet>().unwrap_err();
            assert!(err.to_string().contains("not an IP address"), "{err}");
        }
    }

    #[test]
    fn allow_lists_match_addresses_and_mapped_ipv4() {
        let list = [net("127.0.0.1/32"), net("10.0.0.0/8"), net("2001:db8::/32")];
        assert!(allows(&list, ip("127.0.0.1")));
        assert!(!allows(&list, ip("127.0.0.2")));
        assert!(allows(&list, ip("10.200.3.4")));
        assert!(allows(&list, ip("::ffff:10.200.3.4")));
        assert!(allows(&list, ip("2001:db8:1::5")));
        assert!(!allows(&list, ip("2001:db9::5")));
        assert!(allows(&[], ip("192.0.2.1")), "an empty list allows all");
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        let eq = |a: &str, b: &str| bool::from(Secret::new(a).ct_eq(&Secret::new(b)));
        assert!(eq("demo", "demo"));
        assert!(!eq("demo", "demO"));
        assert!(!eq("demo", "dem"));
        assert!(!eq("demo", "demo\0"), "padding is not part of the value");
        assert!(!eq("", "x"));
        assert!(eq("", ""));
        let long = "x".repeat(SECRET_LEN + 1);
        assert!(!eq(&long, &long), "over-long values never match");
        assert!(!eq(&long[..SECRET_LEN], &long));
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
    }

    #[test]
    fn credentials_pick_the_account_or_say_what_is_wrong() {
        let guard = ListenerGuard::new(&settings(vec![
            account("alpha", "pa"),
            account("beta", "pb"),
        ]));
        let now = Instant::now();
        let bind = |sid: &str, pw: &str| guard.authorize_bind(ip("127.0.0.1"), sid, pw, now);
        assert_eq!(bind("beta", "pb").unwrap().account, 1);
        assert_eq!(bind("alpha", "pa").unwrap().account, 0);
        let refused = bind("beta", "pa").unwrap_err();
        assert_eq!(refused.reason, BindRefusal::WrongPassword);
        assert_eq!(refused.reason.status(), status::ESME_RINVPASWD);
        let refused = bind("gamma", "pb").unwrap_err();
        assert_eq!(refused.reason, BindRefusal::UnknownSystemId);
        assert_eq!(refused.reason.status(), status::ESME_RINVSYSID);
    }

    #[test]
    fn an_account_bound_to_addresses_refuses_others_like_an_unknown_one() {
        let mut limited = account("carrier", "pw");
        limited.allowed_ips = vec![net("192.0.2.0/24")];
        let guard = ListenerGuard::new(&settings(vec![limited]));
        let now = Instant::now();
        assert!(guard
            .authorize_bind(ip("192.0.2.10"), "carrier", "pw", now)
            .is_ok());
        // Outside the list even the right password is refused, and so is a
        // wrong one, with the same status as an unknown system_id.
        for password in ["pw", "nope"] {
            let refused = guard
                .authorize_bind(ip("198.51.100.1"), "carrier", password, now)
                .unwrap_err();
            assert_eq!(refused.reason, BindRefusal::AddressNotAllowed);
            assert_eq!(refused.reason.status(), status::ESME_RINVSYSID);
        }
    }

    #[test]
    fn max_binds_counts_bound_sessions_and_frees_on_drop() {
        let mut acc = account("agg", "pw");
        acc.max_binds = 2;
        let guard = ListenerGuard::new(&settings(vec![acc]));
        let now = Instant::now();
        let bind = || guard.authorize_bind(ip("127.0.0.1"), "agg", "pw", now);
        let first = bind().unwrap();
        let second = bind().unwrap();
        assert_eq!(guard.bound_sessions(0), 2);
        let refused = bind().unwrap_err();
        assert_eq!(refused.reason, BindRefusal::TooManyBinds { max_binds: 2 });
        assert_eq!(refused.reason.status(), status::ESME_RBINDFAIL);
        assert!(!refused.reason.is_failure(), "a full account is no attack");
        drop(first);
        assert_eq!(guard.bound_sessions(0), 1);
        let third = bind().unwrap();
        drop((second, third));
        assert_eq!(guard.bound_sessions(0), 0);
        assert_eq!(guard.tracked_addresses(), 0);
    }

    #[test]
    fn connections_are_capped_in_all_and_per_address_until_they_close() {
        let caps = ConnectionCaps::new(3, 2);
        let a = caps.admit(ip("192.0.2.1")).unwrap();
        let _a2 = caps.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            caps.admit(ip("192.0.2.1")).unwrap_err(),
            ConnectionRefusal::TooManyFromAddress { limit: 2 }
        );
        // An IPv6 address counts with its /64.
        let _b = caps.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            caps.admit(ip("198.51.100.7")).unwrap_err(),
            ConnectionRefusal::TooMany { limit: 3 }
        );
        assert_eq!(caps.open(), 3);
        drop(a);
        assert_eq!(caps.open(), 2);
        let _b2 = caps.admit(ip("2001:db8::ffff")).unwrap();
        assert_eq!(
            caps.admit(ip("192.0.2.1")).unwrap_err(),
            ConnectionRefusal::TooMany { limit: 3 }
        );
        let guard = ListenerGuard::new(&ListenerSettings {
            allowed_ips: vec![net("10.0.0.0/8")],
            ..ListenerSettings::default()
        });
        assert_eq!(
            guard.admit_connection(ip("192.0.2.1")).unwrap_err(),
            ConnectionRefusal::NotAllowed
        );
        let slot = guard.admit_connection(ip("10.1.2.3")).unwrap();
        assert_eq!(guard.open_connections(), 1);
        drop(slot);
        assert_eq!(guard.open_connections(), 0);
    }

    #[test]
    fn max_tps_caps_each_account_across_sessions() {
        let clock = FakeRelativeClock::default();
        let mut capped = account("capped", "pw");
        capped.max_tps = Some(3);
        let mut zero = account("zero", "pw");
        zero.max_tps = Some(0);
        let guard = ListenerGuard::with_clock(
            &settings(vec![capped, account("free", "pw"), zero]),
            clock.clone(),
        );
        let passed = (0..10).filter(|_| guard.try_submit(0)).count();
        assert_eq!(passed, 3, "a burst of max_tps, then throttled");
        clock.advance(Duration::from_millis(340));
        assert!(guard.try_submit(0), "one more every 1/max_tps second");
        assert!(!guard.try_submit(0));
        clock.advance(Duration::from_secs(1));
        assert_eq!((0..10).filter(|_| guard.try_submit(0)).count(), 3);
        assert!((0..1000).all(|_| guard.try_submit(1)), "no max_tps: no cap");
        assert!((0..1000).all(|_| guard.try_submit(2)), "max_tps 0: no cap");
        assert!(guard.try_submit(99), "unknown index: no cap");
    }

    #[test]
    fn lockout_after_failures_refuses_even_good_credentials_until_it_ends() {
        let guard = ListenerGuard::new(&settings(vec![account("demo", "demo")]));
        let t0 = Instant::now();
        let from = ip("203.0.113.9");
        let bad = |t| guard.authorize_bind(from, "demo", "nope", t).unwrap_err();
        assert_eq!(bad(t0).lockout_began, None);
        assert_eq!(bad(t0 + Duration::from_secs(1)).lockout_began, None);
        let third = bad(t0 + Duration::from_secs(2));
        assert_eq!(third.reason, BindRefusal::WrongPassword);
        assert_eq!(
            third.lockout_began,
            Some((from, t0 + Duration::from_secs(122)))
        );
        // Locked: the right password is refused without being checked, and
        // further attempts neither extend the lockout nor log it again.
        for s in [3, 50, 121] {
            let refused = guard
                .authorize_bind(from, "demo", "demo", t0 + Duration::from_secs(s))
                .unwrap_err();
            assert_eq!(refused.reason, BindRefusal::LockedOut);
            assert_eq!(refused.reason.status(), status::ESME_RBINDFAIL);
            assert_eq!(refused.lockout_began, None);
        }
        // Another address is not affected.
        assert!(guard
            .authorize_bind(
                ip("203.0.113.10"),
                "demo",
                "demo",
                t0 + Duration::from_secs(5)
            )
            .is_ok());
        // Once it ends, the right password binds again.
        assert!(guard
            .authorize_bind(from, "demo", "demo", t0 + Duration::from_secs(122))
            .is_ok());
    }

    fn policy(after: u32, max_addresses: usize) -> LockoutPolicy {
        LockoutPolicy {
            after_failures: after,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(600),
            max_addresses,
        }
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let mut table = LockoutTable::new(policy(3, 100));
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        assert!(table.record_failure(a, t0).is_none());
        assert!(table
            .record_failure(a, t0 + Duration::from_secs(30))
            .is_none());
        // The window (from the first failure) has passed: the count restarts.
        assert!(table
            .record_failure(a, t0 + Duration::from_secs(61))
            .is_none());
        assert!(table
            .record_failure(a, t0 + Duration::from_secs(62))
            .is_none());
        assert!(table
            .record_failure(a, t0 + Duration::from_secs(63))
            .is_some());
        assert!(table
            .locked_until(a, t0 + Duration::from_secs(64))
            .is_some());
        assert!(table
            .locked_until(a, t0 + Duration::from_secs(663))
            .is_none());
        assert!(table.is_empty(), "an ended lockout is forgotten");
    }

    #[test]
    fn zero_failures_means_no_lockout() {
        let mut table = LockoutTable::new(policy(0, 100));
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(table.record_failure(ip("198.51.100.7"), t0).is_none());
        }
        assert!(table.locked_until(ip("198.51.100.7"), t0).is_none());
        assert!(table.is_empty());
    }

    #[test]
    fn ipv6_addresses_count_per_slash_64() {
        let mut table = LockoutTable::new(policy(2, 100));
        let t0 = Instant::now();
        assert!(table.record_failure(ip("2001:db8:1:2::1"), t0).is_none());
        assert!(table
            .record_failure(ip("2001:db8:1:2:ffff::9"), t0)
            .is_some());
        assert!(table.locked_until(ip("2001:db8:1:2::abcd"), t0).is_some());
        assert!(table.locked_until(ip("2001:db8:1:3::1"), t0).is_none());
        assert_eq!(
            LockoutTable::key(ip("::ffff:192.0.2.1")),
            ip("192.0.2.1"),
            "mapped IPv4 counts as IPv4"
        );
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_unlocked_first() {
        let mut table = LockoutTable::new(policy(2, 3));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        // A locked address, then two with one failure each.
        table.record_failure(ip("192.0.2.1"), at(0));
        assert!(table.record_failure(ip("192.0.2.1"), at(1)).is_some());
        table.record_failure(ip("192.0.2.2"), at(2));
        table.record_failure(ip("192.0.2.3"), at(3));
        assert_eq!(table.len(), 3);
        // A flood of new addresses evicts unlocked entries, oldest first,
        // and keeps the lockout.
        for i in 10..200u8 {
            table.record_failure(ip(&format!("198.51.100.{i}")), at(4));
            assert!(table.len() <= 3);
        }
        assert!(table.locked_until(ip("192.0.2.1"), at(5)).is_some());
        // Entries whose window has passed are dropped first.
        let mut table = LockoutTable::new(policy(5, 2));
        table.record_failure(ip("192.0.2.1"), at(0));
        table.record_failure(ip("192.0.2.2"), at(100));
        table.record_failure(ip("192.0.2.3"), at(101));
        assert_eq!(table.len(), 2);
        assert!(table.entries.contains_key(&ip("192.0.2.2")));
        // When every entry is locked out, the one ending first goes.
        let mut table = LockoutTable::new(policy(1, 2));
        table.record_failure(ip("192.0.2.1"), at(0));
        table.record_failure(ip("192.0.2.2"), at(1));
        table.record_failure(ip("192.0.2.3"), at(2));
        assert!(table.locked_until(ip("192.0.2.1"), at(3)).is_none());
        assert!(table.locked_until(ip("192.0.2.2"), at(3)).is_some());
        assert!(table.locked_until(ip("192.0.2.3"), at(3)).is_some());
    }
}
