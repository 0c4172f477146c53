//! A one-shot ESME for `motcua-sms sms send`: binds to a listener as a
//! transceiver, submits one text as a citizen would send it, waits for the
//! reply to that citizen (reassembling concatenated parts by their
//! reference), unbinds and returns the text.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::codec::Inbound;
use super::outlet::{send_text, ReplyCommand};
use super::pdu::{status, Bind, BindKind, Body, Pdu, ShortMessage};
use super::session::{Connection, SessionError};
use super::text::{concatenation, decode_text, DefaultAlphabet};
use super::Address;
use super::SessionSettings;

/// Failures of a one-shot exchange.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there.
    #[error("cannot connect to the SMPP listener at {address}: {source}")]
    Connect {
        /// Where.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Bind refused, submit refused, or the link failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// No reply in time.
    #[error("no reply within {0:?}")]
    NoReply(Duration),
}

/// The reply as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedReply {
    /// The reassembled text.
    pub text: String,
    /// The parts as they arrived.
    pub parts: Vec<ShortMessage>,
}

/// The parts of replies to one citizen, by concatenation reference, until
/// one reply is whole (parts of two replies never mix).
#[derive(Default)]
struct ReplyParts {
    by_reference: HashMap<(u16, u8), BTreeMap<u8, ShortMessage>>,
}

impl ReplyParts {
    /// Takes a part; returns the reply's parts in order once it is whole.
    fn add(&mut self, sm: ShortMessage) -> Option<Vec<ShortMessage>> {
        let Some(part) = concatenation(&sm) else {
            return Some(vec![sm]);
        };
        let parts = self
            .by_reference
            .entry((part.reference, part.total))
            .or_default();
        parts.insert(part.index, sm);
        if parts.len() < usize::from(part.total) {
            return None;
        }
        self.by_reference
            .remove(&(part.reference, part.total))
            .map(|parts| parts.into_values().collect())
    }
}

/// Binds with `system_id`/`password`, sends `text` from `from` to `to`, and
/// returns the reply: the first whole reply addressed to `from` (its parts
/// joined by their concatenation reference). A deliver_sm for another
/// number, when the account is shared with other peers, is refused with
/// ESME_RX_T_APPN so that the gateway delivers it again elsewhere.
pub async fn send_and_receive(
    address: SocketAddr,
    system_id: &str,
    password: &str,
    from: &str,
    to: &str,
    text: &str,
    wait: Duration,
) -> Result<ReceivedReply, ClientError> {
    let settings = SessionSettings::default();
    let stream = TcpStream::connect(address)
        .await
        .map_err(|source| ClientError::Connect { address, source })?;
    let mut conn = Connection::new(stream, &settings)
        .map_err(|source| ClientError::Connect { address, source })?;
    let link = conn.link.clone();
    let bind = Body::Bind(Bind::new(BindKind::Transceiver, system_id, password));
    let citizen = Address::new(from, 1, 1);
    let service = Address::new(to, 0, 0);
    let text = text.to_owned();
    // Requests run beside the read loop, which routes their responses.
    let exchange = tokio::spawn(async move {
        link.request(bind).await?;
        send_text(
            &link,
            ReplyCommand::SubmitSm,
            &citizen,
            &service,
            &text,
            &[],
        )
        .await?;
        Ok::<_, SessionError>(link)
    });
    let mut exchange = Some(exchange);
    let mut link_after_submit = None;
    let mut reply = ReplyParts::default();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let parts = loop {
        tokio::select! {
            _ = &mut deadline => return Err(ClientError::NoReply(wait)),
            done = async { exchange.as_mut().expect("polled only while Some").await }, if exchange.is_some() => {
                exchange = None;
                match done {
                    Ok(Ok(link)) => link_after_submit = Some(link),
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(SessionError::Closed.into()),
                }
            }
            inbound = conn.next() => {
                let pdu = match inbound {
                    Some(Ok(Inbound::Pdu(pdu))) => pdu,
                    Some(Ok(Inbound::Invalid { .. })) => continue,
                    Some(Err(e)) => return Err(SessionError::Io(e).into()),
                    None => return Err(SessionError::Closed.into()),
                };
                let seq = pdu.sequence_number;
                match pdu.body {
                    Body::DeliverSm(sm) => {
                        if sm.destination_addr != from {
                            // Another sender's reply (the account is shared):
                            // refused for now, so the gateway delivers it
                            // again, to the session it belongs to.
                            conn.link.send(Pdu::deliver_sm_resp(seq, status::ESME_RX_T_APPN)).await?;
                            continue;
                        }
                        conn.link.send(Pdu::deliver_sm_resp(seq, status::ESME_ROK)).await?;
                        if let Some(whole) = reply.add(sm) {
                            break whole;
                        }
                    }
                    Body::EnquireLink => conn.link.send(Pdu::new(seq, Body::EnquireLinkResp)).await?,
                    Body::Unbind => {
                        conn.link.send(Pdu::new(seq, Body::UnbindResp)).await?;
                        return Err(SessionError::Closed.into());
                    }
                    _ if pdu.command_id & super::pdu::command_id::RESPONSE_BIT != 0 => {
                        conn.link.complete(pdu);
                    }
                    _ => {}
                }
            }
        }
    };
    let text = parts
        .iter()
        .map(|sm| decode_text(sm, DefaultAlphabet::Gsm7Unpacked).unwrap_or_default())
        .collect();
    // Unbind politely; the reply is already in hand, so failures only get logged.
    let link = link_after_submit.unwrap_or_else(|| conn.link.clone());
    let unbind_seq = link.next_sequence();
    if link.send(Pdu::new(unbind_seq, Body::Unbind)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(Inbound::Pdu(pdu))) = conn.next().await {
                if pdu.body == Body::UnbindResp || pdu.command_status != status::ESME_ROK {
                    break;
                }
            }
        })
        .await;
    }
    Ok(ReceivedReply { text, parts })
}
