//! Guard-level tests: each drives time through `now`. Those that touch the
//! database are scenarios run on both engines (`on_both_engines!`: a fresh
//! SQLite file, and a fresh PostgreSQL database when `TEST_DATABASE_URL` was
//! set at build time); the Redis tests use the server named by
//! `TEST_REDIS_URL` (ignored without it), each under its own random key prefix.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DurationRound, TimeDelta};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;

use super::*;
use crate::db::testing::TestDb;
use crate::db::GatewayDb;
use crate::on_state_pool;

const ENV_REDIS: &str = "TEST_REDIS_URL";

/// A guard on `db`'s pool.
async fn guard(settings: RateLimitSettings, db: &GatewayDb) -> AbuseGuard {
    AbuseGuard::open(settings, db.pool().clone()).await.unwrap()
}

/// A pool of its own on `db`'s database, as another gateway on it (or the
/// same gateway after a restart) opens. Close it when done.
async fn another_pool(db: &GatewayDb) -> StatePool {
    match db.pool() {
        StatePool::Sqlite(pool) => StatePool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with((*pool.connect_options()).clone())
                .await
                .unwrap(),
        ),
        StatePool::Postgres(pool) => StatePool::Postgres(
            PgPoolOptions::new()
                .max_connections(4)
                .connect_with((*pool.connect_options()).clone())
                .await
                .unwrap(),
        ),
    }
}

/// A fresh database on the engine `db` is on: a gateway that shares
/// nothing with `db`'s. Finish it when done.
async fn another_database(db: &GatewayDb) -> TestDb {
    match db.pool() {
        StatePool::Sqlite(_) => TestDb::sqlite().await,
        StatePool::Postgres(_) => TestDb::postgres().await,
    }
}

/// Now, to the minute: blocks() compares with the system clock.
fn t0() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap()
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn number(i: u32) -> Msisdn {
    Msisdn::parse(&format!("09{:08}", i % 100_000_000)).unwrap()
}

/// Well-formed codes: the `i`-th order number of a day.
fn code(day: u32, i: u32) -> DossierCode {
    DossierCode::parse(&format!(
        "000.00.12.H58-2403{:02}-{:04}",
        1 + day % 28,
        1 + i % 9999
    ))
    .unwrap()
}

fn local(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&crate::clock::vietnam()).naive_local()
}

const ALLOW: Verdict = Verdict::Allow;
const LISTED: Verdict = Verdict::Listed;
const BLOCKED: Verdict = Verdict::Silence {
    reason: "blocked",
    retry_at: None,
};
const LOOP: Verdict = Verdict::Silence {
    reason: "loop",
    retry_at: None,
};

/// Silenced for the rate limit, with the time it ends.
fn limited(verdict: &Verdict) -> bool {
    matches!(
        verdict,
        Verdict::Silence {
            reason: "rate limited",
            retry_at: Some(_)
        }
    )
}

/// Settings under which rate limits never get in the way.
fn generous() -> RateLimitSettings {
    RateLimitSettings {
        burst: 10_000,
        per_hour: 10_000,
        per_day: 100_000,
        ..Default::default()
    }
}

/// A small deterministic generator (xorshift64*), for "random" codes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

mod properties;
use properties::{check_never_panics, verdicts_at_one_instant_are_monotone};

crate::on_both_engines!(
    the_guard_is_send_sync_and_its_futures_are_send,
    a_flood_gets_three_answers_one_notice_then_silence,
    a_concurrent_flood_still_gets_exactly_one_notice,
    the_rate_limit_decision_survives_a_restart,
    a_scanner_is_blocked_after_exactly_the_miss_threshold_and_stays_blocked,
    misses_outside_the_window_do_not_add_up,
    admin_blocks_are_effective_at_once_and_may_be_permanent,
    looking_up_many_distinct_existing_codes_blocks_too,
    the_allow_list_overrides_limits_and_blocks,
    our_own_numbers_are_never_answered,
    an_auto_responder_loop_is_silenced_for_the_loop_window,
    disabled_answers_everyone_but_own_numbers_and_admin_blocks,
    a_code_looked_up_by_five_numbers_is_flagged_once_per_window,
    two_guards_on_one_database_share_blocks_allows_and_silences,
    an_unreachable_redis_stops_the_start_and_the_password_is_not_shown,
    missing_tables_are_a_clear_error,
    memory_shrinks_once_windows_pass,
    verdicts_at_one_instant_are_monotone,
    check_never_panics,
);

async fn the_guard_is_send_sync_and_its_futures_are_send(db: GatewayDb) {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<AbuseGuard>();
    fn send<T: Send>(_: &T) {}
    let g = guard(RateLimitSettings::default(), &db).await;
    let sender = number(1);
    let now = t0();
    send(&g.check(&sender, "x", now));
    send(&g.record_lookup(&sender, &code(1, 1), false, now));
    send(&g.unblock(&sender));
    send(&g.blocks());
}

// 1. A flood from one number.

async fn a_flood_gets_three_answers_one_notice_then_silence(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let sender = number(1);
    let now = t0();
    let mut verdicts = Vec::new();
    for i in 0..100 {
        let text = format!("TC 000.00.12.H58-240315-{:04}", i + 1);
        verdicts.push(g.check(&sender, &text, now).await.unwrap());
    }
    assert_eq!(verdicts[..3], [ALLOW; 3]);
    // 20 an hour: the next answer three minutes later.
    assert_eq!(
        verdicts[3],
        Verdict::Notice {
            retry_at: local(now + minutes(3))
        }
    );
    assert!(verdicts[4..].iter().all(limited), "{verdicts:?}");
    // Silenced until the time the notice gave.
    assert_eq!(
        verdicts[4],
        Verdict::Silence {
            reason: "rate limited",
            retry_at: Some(local(now + minutes(3)))
        }
    );

    // Still silent just before retry_at, answered again at it.
    let almost = now + minutes(3) - TimeDelta::milliseconds(1);
    let verdict = g.check(&sender, "tc again", almost).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");
    let retry = now + minutes(3);
    assert_eq!(g.check(&sender, "tc again", retry).await.unwrap(), ALLOW);
    // Over again within the hour: silence, no second notice.
    let verdict = g.check(&sender, "tc again 2", retry).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");

    // An hour later the burst is back, and a new flood gets a new notice.
    let later = now + minutes(120);
    for i in 0..3 {
        let text = format!("later {i}");
        assert_eq!(g.check(&sender, &text, later).await.unwrap(), ALLOW);
    }
    assert!(matches!(
        g.check(&sender, "later 3", later).await.unwrap(),
        Verdict::Notice { .. }
    ));
    // Other senders were never affected.
    assert_eq!(g.check(&number(2), "hello", now).await.unwrap(), ALLOW);
}

async fn a_concurrent_flood_still_gets_exactly_one_notice(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let sender = number(7);
    let now = t0();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let g = g.clone();
            let sender = sender.clone();
            tokio::spawn(async move { g.check(&sender, &format!("m{i}"), now).await })
        })
        .collect();
    let mut verdicts = Vec::new();
    for task in tasks {
        verdicts.push(task.await.unwrap().unwrap());
    }
    let allowed = verdicts.iter().filter(|v| **v == ALLOW).count();
    let notices = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Notice { .. }))
        .count();
    assert_eq!((allowed, notices), (3, 1), "{verdicts:?}");
}

async fn the_rate_limit_decision_survives_a_restart(db: GatewayDb) {
    let sender = number(3);
    let now = t0();
    {
        let g = guard(RateLimitSettings::default(), &db).await;
        for i in 0..3 {
            let text = format!("m{i}");
            assert_eq!(g.check(&sender, &text, now).await.unwrap(), ALLOW);
        }
        assert!(matches!(
            g.check(&sender, "m3", now).await.unwrap(),
            Verdict::Notice { .. }
        ));
    }
    // A new process: empty buckets, but the decision is in the database.
    let pool = another_pool(&db).await;
    let g = AbuseGuard::open(RateLimitSettings::default(), pool.clone())
        .await
        .unwrap();
    let verdict = g.check(&sender, "m4", now + minutes(1)).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");
    assert_eq!(
        g.check(&sender, "m5", now + minutes(3)).await.unwrap(),
        ALLOW
    );
    pool.close().await;
}

// 2. A scanner.

async fn a_scanner_is_blocked_after_exactly_the_miss_threshold_and_stays_blocked(db: GatewayDb) {
    let settings = RateLimitSettings::default();
    let threshold = settings.failed_lookups_before_block as usize;
    let g = guard(settings.clone(), &db).await;
    let scanner = number(42);
    let start = t0();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut answered = 0;
    let mut blocked_at = None;
    for i in 0..50 {
        // One message every three minutes: under the rate limit.
        let now = start + minutes(3 * i64::from(i));
        let guess = code(rng.next(), rng.next());
        let verdict = g.check(&scanner, guess.as_str(), now).await.unwrap();
        if verdict == ALLOW {
            answered += 1;
            // Both ways of recording a lookup count alike: after its
            // check (the allow list already read) or on its own.
            if answered % 2 == 0 {
                g.record_checked_lookup(&scanner, &guess, false, now)
                    .await
                    .unwrap();
            } else {
                g.record_lookup(&scanner, &guess, false, now).await.unwrap();
            }
            if answered == threshold {
                blocked_at = Some(now);
            }
        } else {
            assert_eq!(verdict, BLOCKED, "message {i}");
        }
    }
    assert_eq!(answered, threshold);
    let blocked_at = blocked_at.unwrap();

    let blocks = g.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].sender, scanner);
    assert_eq!(blocks[0].until, Some(blocked_at + minutes(1440)));
    assert_eq!(blocks[0].reason, "8 unknown dossier codes within 60 min");

    // A restart: the block is still there.
    drop(g);
    let pool = another_pool(&db).await;
    let g = AbuseGuard::open(settings, pool.clone()).await.unwrap();
    let later = start + minutes(200);
    assert_eq!(g.check(&scanner, "TC", later).await.unwrap(), BLOCKED);
    let last_minute = blocked_at + minutes(1439);
    assert_eq!(g.check(&scanner, "TC", last_minute).await.unwrap(), BLOCKED);
    // An admin can lift it at once.
    g.unblock(&scanner).await.unwrap();
    assert_eq!(g.check(&scanner, "TC", later).await.unwrap(), ALLOW);
    assert!(g.blocks().await.unwrap().is_empty());
    pool.close().await;
}

async fn misses_outside_the_window_do_not_add_up(db: GatewayDb) {
    let g = guard(generous(), &db).await;
    let sender = number(5);
    let start = t0();
    // 7 misses, then 7 more in the next hour, then 7 more: never 8 within 60 minutes.
    for i in 0..21 {
        let now = start + minutes(61 * (i / 7) + (i % 7));
        let guess = code(2, i as u32);
        assert_eq!(
            g.check(&sender, guess.as_str(), now).await.unwrap(),
            ALLOW,
            "{i}"
        );
        g.record_lookup(&sender, &guess, false, now).await.unwrap();
    }
}

async fn admin_blocks_are_effective_at_once_and_may_be_permanent(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let sender = number(9);
    let now = t0();
    assert_eq!(g.check(&sender, "a", now).await.unwrap(), ALLOW);
    g.block(&sender, None, "harassment").await.unwrap();
    assert_eq!(g.check(&sender, "b", now).await.unwrap(), BLOCKED);
    assert_eq!(
        g.check(&sender, "c", now + minutes(60 * 24 * 400))
            .await
            .unwrap(),
        BLOCKED
    );
    let blocks = g.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].until, None);
    assert_eq!(blocks[0].reason, "harassment");
    // An automatic block never shortens a permanent one.
    g.inner
        .store
        .auto_block(sender.as_international(), 1, "scan", 0)
        .await
        .unwrap();
    assert_eq!(g.blocks().await.unwrap()[0].until, None);

    let other = number(10);
    g.block(&other, Some(now + minutes(30)), "test")
        .await
        .unwrap();
    assert_eq!(g.check(&other, "a", now).await.unwrap(), BLOCKED);
    assert_eq!(
        g.check(&other, "a", now + minutes(30)).await.unwrap(),
        ALLOW
    );
}

// 3. Distinct codes, the allow list, own numbers, loops.

async fn looking_up_many_distinct_existing_codes_blocks_too(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let sender = number(11);
    let start = t0();
    for i in 0..15 {
        let now = start + minutes(3 * i);
        let wanted = code(3, i as u32);
        assert_eq!(
            g.check(&sender, wanted.as_str(), now).await.unwrap(),
            ALLOW,
            "{i}"
        );
        g.record_lookup(&sender, &wanted, true, now).await.unwrap();
    }
    assert_eq!(
        g.check(&sender, "TC", start + minutes(45)).await.unwrap(),
        BLOCKED
    );
    let blocks = g.blocks().await.unwrap();
    assert_eq!(blocks[0].reason, "15 distinct dossier codes within 60 min");

    // The same code again and again is not scanning (it is a slow loop at
    // worst: four times within ten minutes).
    let citizen = number(12);
    for i in 0..40 {
        let now = start + minutes(4 * i);
        let text = code(3, 1).to_string();
        assert_eq!(g.check(&citizen, &text, now).await.unwrap(), ALLOW, "{i}");
        g.record_lookup(&citizen, &code(3, 1), true, now)
            .await
            .unwrap();
    }
}

async fn the_allow_list_overrides_limits_and_blocks(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let staff = number(20);
    let now = t0();
    g.block(&staff, None, "mistake").await.unwrap();
    g.allow(&staff).await.unwrap();
    g.allow(&staff).await.unwrap(); // twice is fine
    for i in 0..100 {
        assert_eq!(
            g.check(&staff, "same text", now).await.unwrap(),
            LISTED,
            "{i}"
        );
        let flag = g
            .record_lookup(&staff, &code(4, i), false, now)
            .await
            .unwrap();
        assert_eq!(flag, None);
    }
    g.disallow(&staff).await.unwrap();
    assert_eq!(g.check(&staff, "x", now).await.unwrap(), BLOCKED);
    g.unblock(&staff).await.unwrap();
    // Never counted while allowed: not a scanner now.
    assert_eq!(g.check(&staff, "x", now).await.unwrap(), ALLOW);
}

async fn our_own_numbers_are_never_answered(db: GatewayDb) {
    let settings = RateLimitSettings {
        service_numbers: vec!["0912 000 111".to_owned(), "+84 987 000 222".to_owned()],
        ..Default::default()
    };
    let g = guard(settings, &db).await;
    let own = Msisdn::parse("84912000111").unwrap();
    let now = t0();
    let silence = Verdict::Silence {
        reason: "own number",
        retry_at: None,
    };
    assert_eq!(g.check(&own, "TC", now).await.unwrap(), silence);
    // Not even when someone put it on the allow list.
    g.allow(&own).await.unwrap();
    assert_eq!(g.check(&own, "TC", now).await.unwrap(), silence);
    let other = Msisdn::parse("0987000222").unwrap();
    assert_eq!(g.check(&other, "TC", now).await.unwrap(), silence);
}

async fn an_auto_responder_loop_is_silenced_for_the_loop_window(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let responder = number(30);
    let start = t0();
    let text = "Xin lỗi, tôi đang bận. Tôi sẽ gọi lại sau.";
    for i in 0..3 {
        let now = start + minutes(3 * i);
        assert_eq!(g.check(&responder, text, now).await.unwrap(), ALLOW, "{i}");
    }
    // The fourth time within ten minutes: a loop, even in another case.
    let fourth = start + minutes(9);
    let shouted = text.to_uppercase();
    assert_eq!(g.check(&responder, &shouted, fourth).await.unwrap(), LOOP);
    // Silenced whatever it sends, for loop_window_secs.
    assert_eq!(
        g.check(
            &responder,
            "TC 000.00.12.H58-240315-0007",
            fourth + minutes(5)
        )
        .await
        .unwrap(),
        LOOP
    );
    let after = fourth + minutes(10);
    assert_eq!(g.check(&responder, "TC", after).await.unwrap(), ALLOW);

    // A flood of one text at one instant: no notice to an auto-responder.
    let flood = number(31);
    let mut verdicts = Vec::new();
    for _ in 0..10 {
        verdicts.push(g.check(&flood, "auto reply", start).await.unwrap());
    }
    assert_eq!(verdicts[..3], [ALLOW; 3]);
    assert!(verdicts[3..].iter().all(|v| *v == LOOP), "{verdicts:?}");
}

async fn disabled_answers_everyone_but_own_numbers_and_admin_blocks(db: GatewayDb) {
    let settings = RateLimitSettings {
        enabled: false,
        service_numbers: vec!["0912000111".to_owned()],
        // Not used when disabled: no connection is attempted.
        redis_url: Some("redis://127.0.0.1:1".to_owned()),
        ..Default::default()
    };
    let g = guard(settings, &db).await;
    let now = t0();
    let sender = number(40);
    for i in 0..50 {
        assert_eq!(g.check(&sender, "same", now).await.unwrap(), ALLOW);
        let flag = g
            .record_lookup(&sender, &code(5, i), false, now)
            .await
            .unwrap();
        assert_eq!(flag, None);
    }
    let own = Msisdn::parse("0912000111").unwrap();
    assert!(matches!(
        g.check(&own, "x", now).await.unwrap(),
        Verdict::Silence { .. }
    ));
    g.block(&sender, None, "admin").await.unwrap();
    assert_eq!(g.check(&sender, "x", now).await.unwrap(), BLOCKED);
}

// 4. Code flags.

async fn a_code_looked_up_by_five_numbers_is_flagged_once_per_window(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let probed = code(6, 77);
    let start = t0();
    for i in 0..4 {
        let now = start + minutes(i);
        // The same number twice counts once.
        assert_eq!(
            g.record_lookup(&number(100 + i as u32), &probed, true, now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            g.record_lookup(&number(100 + i as u32), &probed, true, now)
                .await
                .unwrap(),
            None
        );
    }
    let fifth = start + minutes(4);
    let flag = g
        .record_lookup(&number(104), &probed, true, fifth)
        .await
        .unwrap();
    assert_eq!(
        flag,
        Some(CodeFlag {
            code: probed.clone(),
            senders: 5
        })
    );
    // Not again within the window.
    for i in 5..20 {
        let flag = g
            .record_lookup(&number(100 + i), &probed, true, fifth)
            .await
            .unwrap();
        assert_eq!(flag, None);
    }
    // Nobody was blocked for it.
    assert!(g.blocks().await.unwrap().is_empty());
    // Another window, five more numbers: flagged again.
    let next = fifth + minutes(61);
    let mut flags = Vec::new();
    for i in 0..5 {
        flags.push(
            g.record_lookup(&number(200 + i), &probed, false, next)
                .await
                .unwrap(),
        );
    }
    assert_eq!(flags[..4], [None, None, None, None]);
    assert_eq!(flags[4].as_ref().map(|f| f.senders), Some(5));
}

// 5. Two gateways on one database.

async fn two_guards_on_one_database_share_blocks_allows_and_silences(db: GatewayDb) {
    // Two gateways: each its own pool and its own memory, one database.
    let a = guard(RateLimitSettings::default(), &db).await;
    let pool_b = another_pool(&db).await;
    let b = AbuseGuard::open(RateLimitSettings::default(), pool_b.clone())
        .await
        .unwrap();
    let now = t0();

    // A block made through A refuses the very next message B checks.
    let sender = number(80);
    assert_eq!(b.check(&sender, "a", now).await.unwrap(), ALLOW);
    a.block(&sender, None, "blocked on gateway a")
        .await
        .unwrap();
    assert_eq!(b.check(&sender, "b", now).await.unwrap(), BLOCKED);
    let blocks = b.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].sender, sender);
    assert_eq!(blocks[0].reason, "blocked on gateway a");
    // Lifted through A: B answers the next one.
    a.unblock(&sender).await.unwrap();
    assert_eq!(b.check(&sender, "c", now).await.unwrap(), ALLOW);

    // An allow-list entry made through A counts on B's next message.
    let staff = number(81);
    b.block(&staff, None, "mistake").await.unwrap();
    assert_eq!(b.check(&staff, "a", now).await.unwrap(), BLOCKED);
    a.allow(&staff).await.unwrap();
    assert_eq!(b.check(&staff, "b", now).await.unwrap(), LISTED);
    let allowed = b.allowed().await.unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].0, staff);
    a.disallow(&staff).await.unwrap();
    assert_eq!(b.check(&staff, "c", now).await.unwrap(), BLOCKED);

    // A's "silenced until" decision: B, whose own buckets for the sender
    // are full, silences it until the same time, without a second notice.
    let flooder = number(82);
    for i in 0..3 {
        let text = format!("m{i}");
        assert_eq!(a.check(&flooder, &text, now).await.unwrap(), ALLOW);
    }
    let retry = now + minutes(3);
    assert_eq!(
        a.check(&flooder, "m3", now).await.unwrap(),
        Verdict::Notice {
            retry_at: local(retry)
        }
    );
    assert_eq!(
        b.check(&flooder, "m4", now + minutes(1)).await.unwrap(),
        Verdict::Silence {
            reason: "rate limited",
            retry_at: Some(local(retry))
        }
    );
    assert_eq!(b.silenced().await.unwrap(), [(flooder.clone(), retry)]);
    assert_eq!(b.check(&flooder, "m5", retry).await.unwrap(), ALLOW);
    pool_b.close().await;
}

// 6. Redis: two gateways share the limits.

/// Runs `scenario` on a fresh database: PostgreSQL when `postgres`, a
/// SQLite file otherwise.
async fn on_fresh_database<F: Future<Output = ()>>(
    postgres: bool,
    scenario: impl FnOnce(GatewayDb) -> F,
) {
    let test_db = if postgres {
        TestDb::postgres().await
    } else {
        TestDb::sqlite().await
    };
    scenario(test_db.db.clone()).await;
    test_db.finish().await;
}

/// As `crate::on_both_engines!`, for scenarios that also need Redis: each
/// test is ignored, saying why, when the build had no `TEST_REDIS_URL` (or,
/// on PostgreSQL, no `TEST_DATABASE_URL`).
macro_rules! on_both_engines_with_redis {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            #[cfg_attr(not(test_redis_url), ignore = "needs TEST_REDIS_URL (Redis)")]
            async fn on_sqlite() {
                super::on_fresh_database(false, super::$scenario).await;
            }

            #[tokio::test]
            #[cfg_attr(
                not(all(test_redis_url, test_database_url)),
                ignore = "needs TEST_REDIS_URL (Redis) and TEST_DATABASE_URL (a PostgreSQL server)"
            )]
            async fn on_postgres() {
                super::on_fresh_database(true, super::$scenario).await;
            }
        }
    )*};
}

on_both_engines_with_redis!(
    two_gateways_share_one_limit_through_redis,
    the_redis_script_and_the_in_process_limiter_agree,
);

/// `TEST_REDIS_URL`: the tests calling this are ignored when it was unset
/// at build time (build.rs), and fail if it is unset when they run.
fn redis_url(test: &str) -> String {
    match std::env::var(ENV_REDIS) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("{test}: {ENV_REDIS} is unset, yet was set when this test was built"),
    }
}

fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("motcua:test:{test}:{}:{nanos}:{n}:", std::process::id())
}

fn redis_settings(url: &str, prefix: &str) -> RateLimitSettings {
    RateLimitSettings {
        redis_url: Some(url.to_owned()),
        redis_key_prefix: prefix.to_owned(),
        ..Default::default()
    }
}

/// Deletes the keys a test left under `prefix` (they would expire anyway).
async fn delete_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .exec_async(&mut connection)
            .await
            .unwrap();
    }
}

/// A gateway on `db` and the shared Redis.
async fn gateway(settings: RateLimitSettings, db: &GatewayDb) -> AbuseGuard {
    AbuseGuard::open(settings, db.pool().clone())
        .await
        .unwrap_or_else(|e| panic!("{ENV_REDIS} is set but Redis is unusable: {e}"))
}

async fn two_gateways_share_one_limit_through_redis(db: GatewayDb) {
    let url = redis_url("two_gateways_share_one_limit_through_redis");
    let prefix = unique_prefix("shared");
    // Each gateway its own state database: only Redis is shared.
    let other = another_database(&db).await;
    let a = gateway(redis_settings(&url, &prefix), &db).await;
    let b = gateway(redis_settings(&url, &prefix), &other.db).await;
    let sender = number(50);
    let now = t0();
    assert_eq!(a.check(&sender, "1", now).await.unwrap(), ALLOW);
    assert_eq!(a.check(&sender, "2", now).await.unwrap(), ALLOW);
    assert_eq!(b.check(&sender, "3", now).await.unwrap(), ALLOW);
    assert_eq!(
        b.check(&sender, "4", now).await.unwrap(),
        Verdict::Notice {
            retry_at: local(now + minutes(3))
        }
    );
    // The notice went out once, from b: a stays silent.
    let verdict = a.check(&sender, "5", now).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");
    let verdict = b.check(&sender, "6", now).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");
    let verdict = a.check(&sender, "7", now + minutes(1)).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");
    // One answer at retry_at, on whichever gateway gets the message first.
    let retry = now + minutes(3);
    assert_eq!(a.check(&sender, "8", retry).await.unwrap(), ALLOW);
    let verdict = b.check(&sender, "9", retry).await.unwrap();
    assert!(limited(&verdict), "{verdict:?}");
    // Another sender on the same prefix is not affected.
    assert_eq!(b.check(&number(51), "1", now).await.unwrap(), ALLOW);
    // An admin unblock clears the shared state too.
    a.unblock(&sender).await.unwrap();
    b.unblock(&sender).await.unwrap();
    assert_eq!(b.check(&sender, "10", retry).await.unwrap(), ALLOW);
    delete_keys(&url, &prefix).await;
    other.finish().await;
}

async fn the_redis_script_and_the_in_process_limiter_agree(db: GatewayDb) {
    let url = redis_url("the_redis_script_and_the_in_process_limiter_agree");
    let settings = RateLimitSettings {
        burst: 4,
        per_hour: 12,
        per_day: 30,
        loop_repeats: 0,
        ..Default::default()
    };
    let local_guard = guard(settings.clone(), &db).await;
    let prefix = unique_prefix("agree");
    // Its own state database: the local guard's decisions stay its own.
    let other = another_database(&db).await;
    let shared_guard = gateway(
        RateLimitSettings {
            redis_url: Some(url.clone()),
            redis_key_prefix: prefix.clone(),
            ..settings
        },
        &other.db,
    )
    .await;
    let mut rng = Rng(42);
    let mut now = t0();
    let mut seen = [0_usize; 3];
    for i in 0..400 {
        let sender = number(60 + rng.next() % 3);
        now += TimeDelta::seconds(i64::from(rng.next() % 400));
        let expected = local_guard.check(&sender, "TC", now).await.unwrap();
        let got = shared_guard.check(&sender, "TC", now).await.unwrap();
        assert_eq!(got, expected, "message {i}");
        seen[match got {
            Verdict::Allow | Verdict::Listed => 0,
            Verdict::Notice { .. } => 1,
            Verdict::Silence { .. } => 2,
        }] += 1;
    }
    assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
    delete_keys(&url, &prefix).await;
    other.finish().await;
}

async fn an_unreachable_redis_stops_the_start_and_the_password_is_not_shown(db: GatewayDb) {
    // Port 1 on the loopback: nothing listens there.
    let settings = redis_settings("redis://:s3cret@127.0.0.1:1/0", "motcua:rl:");
    let err = AbuseGuard::open(settings, db.pool().clone())
        .await
        .unwrap_err();
    assert!(matches!(err, AbuseError::Redis { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("redis://:***@127.0.0.1:1/0"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

async fn missing_tables_are_a_clear_error(db: GatewayDb) {
    on_state_pool!(db.pool(), p => sqlx::query("DROP TABLE rate_limited").execute(p).await.map(drop))
        .unwrap();
    let err = AbuseGuard::open(RateLimitSettings::default(), db.pool().clone())
        .await
        .unwrap_err();
    assert!(matches!(err, AbuseError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("migrations"), "{err}");
}

// 7. Memory stays bounded.

async fn memory_shrinks_once_windows_pass(db: GatewayDb) {
    let g = guard(RateLimitSettings::default(), &db).await;
    let now = t0();
    for i in 0..10_000 {
        let sender = number(1_000_000 + i);
        assert_eq!(g.check(&sender, "TC", now).await.unwrap(), ALLOW);
        g.record_lookup(&sender, &code(i / 9999, i), false, now)
            .await
            .unwrap();
    }
    let full = g.memory_sizes();
    assert_eq!(
        (full.rates, full.loops, full.scans, full.codes),
        (10_000, 10_000, 10_000, 10_000)
    );
    // An hour on, every window has passed: only the new sender is left.
    let hour = now + minutes(61);
    g.check(&number(1), "TC", hour).await.unwrap();
    let after_hour = g.memory_sizes();
    assert_eq!(
        (
            after_hour.rates,
            after_hour.loops,
            after_hour.scans,
            after_hour.codes
        ),
        (1, 1, 0, 0)
    );
    // A sender that used its whole daily allowance is kept a day, no more.
    let heavy = number(3);
    let mut t = hour;
    for i in 0.. {
        let text = format!("TC {i}");
        if g.check(&heavy, &text, t).await.unwrap() != ALLOW {
            break;
        }
        assert!(i < 100, "the daily limit never came");
        t += minutes(3);
    }
    g.check(&number(2), "TC", t + minutes(60 * 23))
        .await
        .unwrap();
    assert_eq!(g.memory_sizes().rates, 2, "{:?}", g.memory_sizes());
    g.check(&number(2), "TC", t + minutes(60 * 25))
        .await
        .unwrap();
    assert_eq!(g.memory_sizes().total(), 2, "{:?}", g.memory_sizes());
}
