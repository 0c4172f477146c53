//! The listener against misbehaving and hostile peers, over real sockets:
//! one bind too many for an account, submit_sm over an account's max_tps
//! (throttled ones answered 0x58 and not recorded, accepted ones answered
//! once), connections and binds from addresses outside the allow lists,
//! idle and never-bound connections, and the failed-bind lockout.
//!
//! Peers are the smpp34-based ESME of tests/support and, where the test
//! needs a chosen source address or pipelined PDUs, raw bytes written from
//! the SMPP 3.4 layout. Time limits here are generous upper bounds, never
//! assertions on speed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use support::peer_esme::PeerEsme;
use support::raw_smpp::{bind_body, cstr, pdu, Frame, RawSmpp, Read, BIND_TRANSCEIVER};
use support::{spawn_app_with, AppOptions, PASSWORD, SERVICE_NUMBER, SYSTEM_ID};

const SUBMIT_SM: u32 = 0x0000_0004;
const SUBMIT_SM_RESP: u32 = 0x8000_0004;
const DELIVER_SM: u32 = 0x0000_0005;
const DELIVER_SM_RESP: u32 = 0x8000_0005;
const UNBIND: u32 = 0x0000_0006;
const UNBIND_RESP: u32 = 0x8000_0006;

const ESME_RBINDFAIL: u32 = 0x0D;
const ESME_RINVPASWD: u32 = 0x0E;
const ESME_RINVSYSID: u32 = 0x0F;
const ESME_RTHROTTLED: u32 = 0x58;

/// Upper bound for anything the gateway should do "at once".
const WAIT: Duration = Duration::from_secs(10);

fn localhost(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn submit_body(source: &str, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, "");
    b.extend_from_slice(&[1, 1]);
    cstr(&mut b, source);
    b.extend_from_slice(&[0, 0]);
    cstr(&mut b, SERVICE_NUMBER);
    b.extend_from_slice(&[0, 0, 0]);
    cstr(&mut b, "");
    cstr(&mut b, "");
    b.extend_from_slice(&[0, 0, 0, 0, text.len() as u8]);
    b.extend_from_slice(text.as_bytes());
    b
}

/// The C string at the start of `bytes` and what follows it.
fn take_cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|&b| b == 0).expect("NUL-terminated");
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[end + 1..],
    )
}

/// destination_addr of a deliver_sm body.
fn deliver_destination(body: &[u8]) -> String {
    let (_service_type, rest) = take_cstr(body);
    let (_source, rest) = take_cstr(&rest[2..]);
    take_cstr(&rest[2..]).0
}

async fn bind_peer(app: &support::TestApp, password: &str) -> Result<PeerEsme, u32> {
    PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, password)
        .await
        .map_err(|e| e.status().unwrap_or_else(|| panic!("bind failed: {e:?}")))
}

/// Binds with the right password, trying again while refused with
/// ESME_RBINDFAIL, for up to `within`; `never` says what failed otherwise.
async fn bind_once_allowed(
    app: &support::TestApp,
    within: Duration,
    retry: Duration,
    never: &str,
) -> PeerEsme {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match bind_peer(app, PASSWORD).await {
            Ok(peer) => return peer,
            Err(status) => {
                assert_eq!(status, ESME_RBINDFAIL);
                assert!(tokio::time::Instant::now() < deadline, "{never}");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Replies (deliver_sm) received, by destination: the citizen answered.
type Replies = HashMap<String, u32>;

/// What these tests do with the raw peer: count the replies it gets.
trait TakesReplies {
    async fn take_reply(&mut self, frame: &Frame, replies: &mut Replies);
    async fn next_response(&mut self, replies: &mut Replies) -> Frame;
    async fn await_replies(&mut self, replies: &mut Replies, done: impl Fn(&Replies) -> bool);
}

impl TakesReplies for RawSmpp {
    /// Acknowledges a deliver_sm and counts it.
    async fn take_reply(&mut self, frame: &Frame, replies: &mut Replies) {
        assert_eq!(frame.0, DELIVER_SM, "only replies arrive unasked");
        *replies.entry(deliver_destination(&frame.3)).or_default() += 1;
        self.write(&pdu(DELIVER_SM_RESP, 0, frame.2, &[0]))
            .await
            .unwrap();
    }

    /// The next frame that is not a reply (replies are taken and counted).
    async fn next_response(&mut self, replies: &mut Replies) -> Frame {
        loop {
            let frame = self.frame(WAIT).await;
            if frame.0 != DELIVER_SM {
                return frame;
            }
            self.take_reply(&frame, replies).await;
        }
    }

    /// Takes replies until `done` holds, for up to [`WAIT`].
    async fn await_replies(&mut self, replies: &mut Replies, done: impl Fn(&Replies) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(replies) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "replies so far: {replies:?}"
            );
            if let Read::Frame(frame) = self.read(Duration::from_millis(200)).await {
                self.take_reply(&frame, replies).await;
            }
        }
    }
}

#[tokio::test]
async fn max_binds_refuses_one_bind_too_many_and_a_freed_place_can_be_used() {
    let app = spawn_app_with(AppOptions {
        listener: Box::new(|l| l.accounts[0].max_binds = 2),
        ..AppOptions::default()
    })
    .await;
    let first = bind_peer(&app, PASSWORD).await.expect("first bind");
    let second = bind_peer(&app, PASSWORD).await.expect("second bind");
    assert_eq!(
        bind_peer(&app, PASSWORD).await.err(),
        Some(ESME_RBINDFAIL),
        "a third concurrent bind is refused"
    );

    // An unbind gives the place back before it is acknowledged.
    first.unbind().await;
    let third = bind_peer(&app, PASSWORD)
        .await
        .expect("the place of an unbound session is free");

    // A peer that just goes away frees its place once the gateway sees it.
    drop(second);
    let fourth = bind_once_allowed(
        &app,
        WAIT,
        Duration::from_millis(100),
        "the place of a closed connection is never freed",
    )
    .await;
    third.unbind().await;
    fourth.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn over_max_tps_submits_are_throttled_not_recorded_and_accepted_ones_answered_once() {
    let app = spawn_app_with(AppOptions {
        accents: false,
        listener: Box::new(|l| l.accounts[0].max_tps = Some(2)),
        ..AppOptions::default()
    })
    .await;
    let mut raw = RawSmpp::connect_from(localhost(1), app.listener, WAIT).await;
    assert_eq!(raw.bind(SYSTEM_ID, PASSWORD, WAIT).await, 0);

    // Ten citizens (distinct numbers, so per-sender limits stay out of the
    // way), submitted back to back in one write.
    const N: u32 = 10;
    let source = |i: u32| format!("09870001{i:02}");
    let mut burst = Vec::new();
    for i in 0..N {
        burst.extend(pdu(
            SUBMIT_SM,
            0,
            100 + i,
            &submit_body(&source(i), "xin chao"),
        ));
    }
    raw.write(&burst).await.unwrap();

    let mut replies = Replies::new();
    let mut statuses: HashMap<u32, u32> = HashMap::new();
    while statuses.len() < N as usize {
        let (id, status, seq, body) = raw.next_response(&mut replies).await;
        assert_eq!(id, SUBMIT_SM_RESP);
        // An error response may leave the body (the message_id) out.
        let message_id = if body.is_empty() {
            String::new()
        } else {
            take_cstr(&body).0
        };
        match status {
            0 => assert!(!message_id.is_empty(), "accepted with an id"),
            ESME_RTHROTTLED => assert!(message_id.is_empty(), "throttled: no id"),
            other => panic!("unexpected submit_sm_resp status 0x{other:02x}"),
        }
        assert!(statuses.insert(seq - 100, status).is_none());
    }
    let accepted: Vec<u32> = (0..N).filter(|i| statuses[i] == 0).collect();
    let throttled: Vec<u32> = (0..N).filter(|i| statuses[i] == ESME_RTHROTTLED).collect();
    assert!(!accepted.is_empty(), "the first of a burst passes");
    assert!(!throttled.is_empty(), "{N} at once exceed max_tps = 2");

    // Every accepted message is answered; the throttled ones were not
    // recorded, so nothing answers them.
    raw.await_replies(&mut replies, |r| {
        accepted.iter().all(|&i| r.contains_key(&source(i)))
    })
    .await;
    if let Read::Frame(frame) = raw.read(Duration::from_millis(1500)).await {
        panic!(
            "unexpected PDU 0x{:08x} to {:?}",
            frame.0,
            deliver_destination(&frame.3)
        );
    }

    // The peer resends the throttled ones, as a peer should, until taken.
    let mut sequence = 200;
    for &i in &throttled {
        loop {
            sequence += 1;
            raw.write(&pdu(
                SUBMIT_SM,
                0,
                sequence,
                &submit_body(&source(i), "xin chao"),
            ))
            .await
            .unwrap();
            let (id, status, seq, _) = raw.next_response(&mut replies).await;
            assert_eq!((id, seq), (SUBMIT_SM_RESP, sequence));
            if status == 0 {
                break;
            }
            assert_eq!(status, ESME_RTHROTTLED);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Each citizen is answered exactly once.
    raw.await_replies(&mut replies, |r| r.len() == N as usize)
        .await;
    assert!(
        matches!(raw.read(Duration::from_millis(1500)).await, Read::TimedOut),
        "no reply twice"
    );
    assert!(replies.values().all(|&n| n == 1), "{replies:?}");
    assert_eq!(replies.len(), N as usize);
    app.stop().await;
}

#[tokio::test]
async fn a_connection_from_outside_the_allow_list_is_closed_unanswered() {
    let app = spawn_app_with(AppOptions {
        listener: Box::new(|l| l.allowed_ips = vec!["127.0.0.1/32".parse().unwrap()]),
        ..AppOptions::default()
    })
    .await;
    let mut outsider = RawSmpp::connect_from(localhost(2), app.listener, WAIT).await;
    // The bind may or may not be written before the close is seen; either
    // way no answer comes, only the end of the connection.
    let _ = outsider
        .write(&pdu(
            BIND_TRANSCEIVER,
            0,
            1,
            &bind_body(SYSTEM_ID, PASSWORD),
        ))
        .await;
    match outsider.read(WAIT).await {
        Read::Closed => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }

    let mut insider = RawSmpp::connect_from(localhost(1), app.listener, WAIT).await;
    assert_eq!(insider.bind(SYSTEM_ID, PASSWORD, WAIT).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_account_bound_to_an_address_refuses_binds_from_elsewhere() {
    let app = spawn_app_with(AppOptions {
        listener: Box::new(|l| {
            l.accounts[0].allowed_ips = vec!["127.0.0.1".parse().unwrap()];
        }),
        ..AppOptions::default()
    })
    .await;
    let mut elsewhere = RawSmpp::connect_from(localhost(2), app.listener, WAIT).await;
    assert_eq!(
        elsewhere.bind(SYSTEM_ID, PASSWORD, WAIT).await,
        ESME_RINVSYSID,
        "answered as an unknown system_id, even with the right password"
    );
    let mut allowed = RawSmpp::connect_from(localhost(1), app.listener, WAIT).await;
    assert_eq!(allowed.bind(SYSTEM_ID, PASSWORD, WAIT).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_idle_session_is_unbound_and_a_silent_connection_closed() {
    let app = spawn_app_with(AppOptions {
        listener: Box::new(|l| {
            l.idle_timeout_secs = 1;
            l.bind_timeout_secs = 1;
        }),
        ..AppOptions::default()
    })
    .await;

    // Bound, then silent: the gateway unbinds, and closes once answered.
    let mut idle = RawSmpp::connect_from(localhost(1), app.listener, WAIT).await;
    assert_eq!(idle.bind(SYSTEM_ID, PASSWORD, WAIT).await, 0);
    let (id, _, seq, _) = idle.frame(WAIT).await;
    assert_eq!(id, UNBIND, "the gateway unbinds an idle session");
    idle.write(&pdu(UNBIND_RESP, 0, seq, &[])).await.unwrap();
    match idle.read(WAIT).await {
        Read::Closed => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }

    // Connected, never bound: closed without a word.
    let mut silent = RawSmpp::connect_from(localhost(1), app.listener, WAIT).await;
    match silent.read(WAIT).await {
        Read::Closed => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn failed_binds_lock_the_address_out_even_for_the_right_password_until_it_passes() {
    let app = spawn_app_with(AppOptions {
        listener: Box::new(|l| {
            l.lockout_after_failures = 3;
            l.lockout_window_secs = 600;
            l.lockout_secs = 4;
        }),
        ..AppOptions::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(bind_peer(&app, "guess").await.err(), Some(ESME_RINVPASWD));
    }
    assert_eq!(
        bind_peer(&app, PASSWORD).await.err(),
        Some(ESME_RBINDFAIL),
        "locked out: the right password is refused too"
    );
    // Another address is not locked out.
    let mut neighbour = RawSmpp::connect_from(localhost(2), app.listener, WAIT).await;
    assert_eq!(neighbour.bind(SYSTEM_ID, PASSWORD, WAIT).await, 0);

    // Once the lockout has passed, the right password binds again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let peer = bind_once_allowed(
        &app,
        Duration::from_secs(30),
        Duration::from_millis(250),
        "the lockout never ends",
    )
    .await;
    peer.unbind().await;
    app.stop().await;
}
