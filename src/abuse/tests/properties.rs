//! Properties of the guard, checked with proptest's runner inside
//! both-engine scenarios: verdicts at one instant never answer after a
//! refusal and give at most one notice; no sender, text or time panics.

use std::future::Future;
use std::sync::atomic::AtomicU32;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseResult, TestRunner};

use super::*;

fn one_instant_case() -> impl Strategy<Value = (RateLimitSettings, Vec<(String, Option<bool>)>)> {
    let settings = (
        1_u32..5,
        0_u32..30,
        1_u32..80,
        0_u32..4,
        0_u32..6,
        0_u32..6,
        0_u32..4,
    )
        .prop_map(
            |(burst, extra_hour, per_day, loop_repeats, misses, distinct, flag)| {
                RateLimitSettings {
                    burst,
                    per_hour: burst + extra_hour,
                    per_day,
                    loop_repeats: if loop_repeats == 1 { 0 } else { loop_repeats },
                    failed_lookups_before_block: misses,
                    distinct_codes_before_block: distinct,
                    code_flag_senders: flag,
                    ..Default::default()
                }
            },
        );
    let text = prop_oneof![
        Just("TC 000.00.12.H58-240315-0007".to_owned()),
        Just("  tc 000.00.12.h58-240315-0007 ".to_owned()),
        Just(String::new()),
        "\\PC{0,24}",
    ];
    let messages = prop::collection::vec((text, any::<Option<bool>>()), 1..40);
    (settings, messages)
}

/// Checks `property` on [`PROPERTY_CASES`] values of the strategy `make`
/// builds, shrinking a failure as `proptest!` does. The runner blocks, so
/// it runs on a blocking thread, each case on the scenario's runtime (whose
/// database the cases share), while the scenario awaits it.
async fn check_property<S, F, Fut>(make: impl FnOnce() -> S + Send + 'static, property: F)
where
    S: Strategy,
    F: Fn(S::Value) -> Fut + Send + 'static,
    Fut: Future<Output = TestCaseResult>,
{
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: PROPERTY_CASES,
            source_file: Some(file!()),
            ..ProptestConfig::default()
        });
        runner
            .run(&make(), |value| runtime.block_on(property(value)))
            .map_err(|error| error.to_string())
    })
    .await
    .expect("the property runner");
    if let Err(error) = outcome {
        panic!("{error}");
    }
}

/// Cases tried per property.
const PROPERTY_CASES: u32 = 48;

/// For one sender at one instant: no panic, never an answer after a
/// refusal, and at most one notice.
pub(super) async fn verdicts_at_one_instant_are_monotone(db: GatewayDb) {
    // The cases share the database: each has a sender of its own.
    let senders = AtomicU32::new(0);
    check_property(one_instant_case, move |(settings, messages)| {
        let db = db.clone();
        let sender = number(77_000 + senders.fetch_add(1, Ordering::Relaxed));
        async move { one_instant(settings, messages, sender, &db).await }
    })
    .await;
}

async fn one_instant(
    settings: RateLimitSettings,
    messages: Vec<(String, Option<bool>)>,
    sender: Msisdn,
    db: &GatewayDb,
) -> TestCaseResult {
    let g = guard(settings, db).await;
    let now = t0();
    let mut refused = false;
    let mut notices = 0;
    for (i, (text, lookup)) in messages.iter().enumerate() {
        let verdict = g.check(&sender, text, now).await.unwrap();
        match verdict {
            Verdict::Allow => prop_assert!(!refused, "answer after a refusal: {i}"),
            Verdict::Notice { retry_at } => {
                notices += 1;
                prop_assert!(retry_at > local(now));
                refused = true;
            }
            Verdict::Silence { .. } => refused = true,
            Verdict::Listed => prop_assert!(false, "nobody is on the allow list: {i}"),
        }
        if let (Verdict::Allow, Some(found)) = (verdict, lookup) {
            let code = code(7, i as u32);
            g.record_checked_lookup(&sender, &code, *found, now)
                .await
                .unwrap();
        }
    }
    prop_assert!(notices <= 1);
    Ok(())
}

/// Any sender, any text, any time the guard can represent: no panic.
pub(super) async fn check_never_panics(db: GatewayDb) {
    let cases = || ("[35789][0-9]{8}", "\\PC{0,64}", -3_000_i64..3_000);
    check_property(cases, move |(digits, text, offset_days)| {
        let db = db.clone();
        async move {
            let g = guard(RateLimitSettings::default(), &db).await;
            let sender = Msisdn::parse(&format!("0{digits}")).unwrap();
            let now = t0() + TimeDelta::days(offset_days);
            for _ in 0..6 {
                g.check(&sender, &text, now).await.unwrap();
            }
            Ok(())
        }
    })
    .await;
}
