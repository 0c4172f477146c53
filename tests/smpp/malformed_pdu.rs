//! Malformed PDUs over a raw socket: truncated, a lying command_length, an
//! unknown command id, a huge length, a body cut inside a field. Each gets an
//! answer (generic_nack or the command's own response with an error status)
//! and the session goes on serving the next good PDU.

use std::time::Duration;

use support::raw_smpp::{
    self, bind_body, cstr, Frame, RawSmpp, BIND_TRANSCEIVER, BIND_TRANSCEIVER_RESP,
};
use support::{spawn_app, KNOWN_CODE, PASSWORD, SYSTEM_ID};

const GENERIC_NACK: u32 = 0x8000_0000;
const SUBMIT_SM: u32 = 0x0000_0004;
const SUBMIT_SM_RESP: u32 = 0x8000_0004;
const DELIVER_SM: u32 = 0x0000_0005;
const ENQUIRE_LINK: u32 = 0x0000_0015;
const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;

/// A PDU written by hand, byte by byte, from the SMPP 3.4 layout (status 0).
fn pdu(command_id: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    raw_smpp::pdu(command_id, 0, sequence, body)
}

fn submit_body(text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, "");
    b.extend_from_slice(&[1, 1]);
    cstr(&mut b, "84987000111");
    b.extend_from_slice(&[0, 0]);
    cstr(&mut b, "8058");
    b.extend_from_slice(&[0, 0, 0]);
    cstr(&mut b, "");
    cstr(&mut b, "");
    b.extend_from_slice(&[0, 0, 0, 0, text.len() as u8]);
    b.extend_from_slice(text.as_bytes());
    b
}

/// An answer must come within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What these tests ask of the raw peer.
trait Session {
    async fn read_skipping_deliveries(&mut self) -> Frame;
    async fn assert_alive(&mut self, sequence: u32);
}

impl Session for RawSmpp {
    /// Reads until a frame that is not a deliver_sm (acknowledging those).
    async fn read_skipping_deliveries(&mut self) -> Frame {
        loop {
            let frame = self.frame(ANSWER_WITHIN).await;
            if frame.0 == DELIVER_SM {
                let mut resp = pdu(DELIVER_SM | 0x8000_0000, frame.2, &[0]);
                resp[8..12].copy_from_slice(&0u32.to_be_bytes());
                self.send(&resp).await;
                continue;
            }
            return frame;
        }
    }

    /// The session still serves: enquire_link gets its response.
    async fn assert_alive(&mut self, sequence: u32) {
        self.send(&pdu(ENQUIRE_LINK, sequence, &[])).await;
        let (id, status, seq, _) = self.read_skipping_deliveries().await;
        assert_eq!((id, status, seq), (ENQUIRE_LINK_RESP, 0, sequence));
    }
}

#[tokio::test]
async fn every_malformed_pdu_is_answered_and_the_session_survives() {
    let app = spawn_app().await;
    let mut raw = RawSmpp::connect(app.listener).await;
    raw.send(&pdu(BIND_TRANSCEIVER, 1, &bind_body(SYSTEM_ID, PASSWORD)))
        .await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status, seq), (BIND_TRANSCEIVER_RESP, 0, 1));

    // 1. Unknown command id: generic_nack ESME_RINVCMDID (0x03).
    raw.send(&pdu(0x0000_0999, 2, b"junk")).await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status, seq), (GENERIC_NACK, 0x03, 2));
    raw.assert_alive(3).await;

    // 2. Huge length: generic_nack ESME_RINVCMDLEN (0x02), garbage after it skipped.
    let mut huge = pdu(SUBMIT_SM, 4, &[]);
    huge[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    huge.extend_from_slice(b"trailing garbage that must not be read as a PDU");
    raw.send(&huge).await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status, seq), (GENERIC_NACK, 0x02, 4));
    raw.assert_alive(5).await;

    // 3. Lying command_length (shorter than the body): the command's own
    //    response with an error; the leftover bytes are skipped.
    let mut lying = pdu(SUBMIT_SM, 6, &submit_body(&format!("TC {KNOWN_CODE}")));
    lying[..4].copy_from_slice(&30u32.to_be_bytes());
    raw.send(&lying).await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, seq), (SUBMIT_SM_RESP, 6));
    assert_ne!(status, 0);
    raw.assert_alive(7).await;

    // 4. Body cut inside a field with a consistent length: submit_sm_resp ESME_RINVMSGLEN.
    let body = submit_body("TC");
    raw.send(&pdu(SUBMIT_SM, 8, &body[..10])).await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status, seq), (SUBMIT_SM_RESP, 0x01, 8));
    raw.assert_alive(9).await;

    // 5. Length below the header size.
    let mut tiny = pdu(ENQUIRE_LINK, 10, &[]);
    tiny[..4].copy_from_slice(&8u32.to_be_bytes());
    raw.send(&tiny).await;
    let (id, status, _, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status), (GENERIC_NACK, 0x02));
    raw.assert_alive(11).await;

    // 6. Truncated: the PDU stops before its declared length and nothing
    //    follows; after the partial-PDU timeout it is answered and dropped.
    let whole = pdu(SUBMIT_SM, 12, &submit_body("TC 1"));
    raw.send(&whole[..whole.len() - 5]).await;
    let (id, status, _, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status), (GENERIC_NACK, 0x02));
    raw.assert_alive(13).await;

    // And a good submit_sm is still answered with the dossier's status.
    raw.send(&pdu(
        SUBMIT_SM,
        14,
        &submit_body(&format!("TC {KNOWN_CODE}")),
    ))
    .await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status, seq), (SUBMIT_SM_RESP, 0, 14));
    let (id, _, _, body) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!(id, DELIVER_SM);
    assert!(!body.is_empty());
    app.stop().await;
}

/// A good PDU that arrives in two TCP segments, its first byte shortly
/// before the moment a timer started with the read loop (rather than with
/// the frame) would fire and its last byte after it, but well within
/// `partial_pdu_timeout_ms` of its first byte: it is taken, not nacked.
#[tokio::test]
async fn a_good_pdu_split_across_segments_around_the_tick_is_accepted() {
    const TIMEOUT_MS: u64 = 1_000;
    let app = support::spawn_app_with(support::AppOptions {
        partial_pdu_timeout_ms: TIMEOUT_MS,
        ..support::AppOptions::default()
    })
    .await;
    let mut raw = RawSmpp::connect(app.listener).await;
    raw.send(&pdu(BIND_TRANSCEIVER, 1, &bind_body(SYSTEM_ID, PASSWORD)))
        .await;
    let (id, status, seq, _) = raw.frame(ANSWER_WITHIN).await;
    assert_eq!((id, status, seq), (BIND_TRANSCEIVER_RESP, 0, 1));
    for (round, sequence) in [2u32, 3].into_iter().enumerate() {
        // The session has just answered a PDU and gone back to reading.
        let whole = pdu(
            SUBMIT_SM,
            sequence,
            &submit_body(&format!("TC {KNOWN_CODE}")),
        );
        tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 8 / 10)).await;
        raw.send(&whole[..20]).await;
        tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 4 / 10)).await;
        raw.send(&whole[20..]).await;
        let (id, status, seq, _) = raw.read_skipping_deliveries().await;
        assert_eq!(
            (id, status, seq),
            (SUBMIT_SM_RESP, 0, sequence),
            "round {round}: the split PDU was taken whole"
        );
    }
    raw.assert_alive(4).await;
    app.stop().await;
}
