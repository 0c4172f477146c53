//! Replies over SMPP: a session registered in the channel's
//! [`Routes`](crate::channel::Routes) as an [`Outlet`] ([`SmppOutlet`]:
//! deliver_sm toward a peer bound to the listener, submit_sm toward a
//! carrier), the parts of one reply written back to back within the link's
//! pace and sent again after a throttling answer ([`send_parts`]), a
//! one-shot [`send_text`] for the CLI, and USSD answers on the session a
//! dialogue lives on. A failure leaves as the channel's typed outcome:
//! permanent refusals fail for good, anything else may be tried again.

use std::sync::Arc;

use super::pacing::Pacing;
use super::pdu::{classify_status, status_name, tag, Body, ShortMessage, StatusClass, Tlv};
use super::session::{Link, SessionError};
use super::text::{encode_reply, DefaultAlphabet, LongMessageMode, OutgoingPart};
use super::ussd::answer_pdu_body;
use crate::channel::{
    Address, OutgoingReply, Outlet, OutletError, OutletFuture, OutletLoad, PartFormat, PartIds,
    PartLog, SendError, UssdAnswer, UssdFuture, UssdReturn,
};

/// Which request carries a reply: deliver_sm (we are the SMSC) or submit_sm
/// (we are an ESME).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCommand {
    /// The listener delivers to its bound peer.
    DeliverSm,
    /// The ESME submits to the carrier.
    SubmitSm,
}

/// Most throttling answers to one part before the send is given up (and
/// left to the caller's own retry).
const MAX_THROTTLED_TRIES: u32 = 50;

/// Who a reply goes to and how: the same for each of its parts.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// deliver_sm or submit_sm.
    pub command: ReplyCommand,
    /// Our number.
    pub from: &'a Address,
    /// The citizen.
    pub to: &'a Address,
    /// TLVs every part carries.
    pub tlvs: &'a [Tlv],
}

/// Sends the `parts` of one reply as `envelope` says,
/// skipping those `ids` already holds, pacing each through `pacing` and
/// sending a part again (before anything newer of this reply) when the peer
/// throttles. The parts are written back to back, in order, and their
/// responses awaited together. Returns when every part is acknowledged, or
/// with the first failure — `ids` then says which parts got through.
pub async fn send_parts(
    link: &Link,
    pacing: &Pacing,
    envelope: &Envelope<'_>,
    parts: &[OutgoingPart],
    ids: &mut PartIds,
) -> Result<(), SessionError> {
    let Envelope {
        command,
        from,
        to,
        tlvs,
    } = *envelope;
    ids.resize(parts.len(), None);
    let sends = parts
        .iter()
        .zip(ids.iter())
        .enumerate()
        .filter(|(_, (_, id))| id.is_none())
        .map(|(index, (part, _))| {
            let mut part_tlvs = tlvs.to_vec();
            part_tlvs.extend(part.tlvs.iter().cloned());
            let sm = ShortMessage {
                source_addr_ton: from.ton,
                source_addr_npi: from.npi,
                source_addr: from.addr.clone(),
                dest_addr_ton: to.ton,
                dest_addr_npi: to.npi,
                destination_addr: to.addr.clone(),
                esm_class: part.esm_class,
                registered_delivery: link.registered_delivery,
                data_coding: part.data_coding,
                short_message: part.short_message.clone(),
                tlvs: part_tlvs,
                ..Default::default()
            };
            async move { (index, send_one(link, pacing, command, sm).await) }
        });
    // join_all polls the sends in order, so the parts are queued in order.
    let results = futures::future::join_all(sends).await;
    let mut first_error = None;
    for (index, result) in results {
        match result {
            Ok(id) => ids[index] = Some(id),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One part: paced, sent, and sent again after throttling answers.
async fn send_one(
    link: &Link,
    pacing: &Pacing,
    command: ReplyCommand,
    sm: ShortMessage,
) -> Result<String, SessionError> {
    let mut throttled = 0;
    loop {
        pacing.ready().await;
        let body = match command {
            ReplyCommand::DeliverSm => Body::DeliverSm(sm.clone()),
            ReplyCommand::SubmitSm => Body::SubmitSm(sm.clone()),
        };
        match link.request(body).await {
            Ok(resp) => {
                pacing.accepted();
                return Ok(match resp.body {
                    Body::SubmitSmResp { message_id } | Body::DeliverSmResp { message_id } => {
                        message_id
                    }
                    _ => String::new(),
                });
            }
            Err(SessionError::Refused { status: code, .. })
                if classify_status(code) == StatusClass::Throttle
                    && throttled < MAX_THROTTLED_TRIES =>
            {
                throttled += 1;
                let pause = pacing.throttled();
                tracing::debug!(
                    status = status_name(code),
                    ?pause,
                    tries = throttled,
                    "peer throttled a part; pausing the link, then sending it again"
                );
            }
            Err(error) => return Err(error),
        }
    }
}

/// Sends `text` as one reply with the default encoding (UDH with an 8-bit
/// reference when long) and no pacing; returns the ids the peer gave the
/// parts. For one-shot senders such as `motcua-sms sms send`.
pub async fn send_text(
    link: &Link,
    command: ReplyCommand,
    from: &Address,
    to: &Address,
    text: &str,
    tlvs: &[Tlv],
) -> Result<Vec<String>, SessionError> {
    let parts = encode_reply(
        text,
        link.next_reference(),
        LongMessageMode::default(),
        DefaultAlphabet::default(),
    );
    let mut ids = PartIds::new();
    let envelope = Envelope {
        command,
        from,
        to,
        tlvs,
    };
    send_parts(link, &Pacing::default(), &envelope, &parts, &mut ids).await?;
    Ok(ids.into_iter().flatten().collect())
}

/// An SMPP session as a way out for replies and USSD answers.
#[derive(Clone)]
pub struct SmppOutlet {
    /// Its sending half.
    pub link: Link,
    /// deliver_sm (listener) or submit_sm (carrier link).
    pub command: ReplyCommand,
    /// Replaces the reply's source address (configured per carrier link).
    pub source_override: Option<String>,
    /// Replaces the source TON.
    pub source_ton: Option<u8>,
    /// Replaces the source NPI.
    pub source_npi: Option<u8>,
    /// Carry the id of the answered message in the [`tag::MOTCUA_REPLY_TO`] TLV.
    pub tag_replies: bool,
    /// The pace of the link this connection belongs to.
    pub pacing: Arc<Pacing>,
    /// How long replies are split on it.
    pub long_messages: LongMessageMode,
    /// How data_coding 0 is written on it.
    pub alphabet: DefaultAlphabet,
}

/// The channel's typed outcome for a session failure: a permanent refusal
/// fails for good; a closed link, a timeout, a socket error or another
/// refusal may be tried again.
pub fn send_error(error: SessionError) -> SendError {
    match error {
        SessionError::Refused { status: code, .. } => {
            let cause = OutletError::Refused {
                status: status_name(code),
                source: Box::new(error),
            };
            if classify_status(code) == StatusClass::Permanent {
                SendError::Failed(cause)
            } else {
                SendError::RetryLater(cause)
            }
        }
        SessionError::Closed => SendError::RetryLater(OutletError::Link {
            closed: true,
            source: Box::new(error),
        }),
        SessionError::Timeout { .. } | SessionError::Io(_) => {
            SendError::RetryLater(OutletError::Link {
                closed: false,
                source: Box::new(error),
            })
        }
    }
}

impl Outlet for SmppOutlet {
    fn is_open(&self) -> bool {
        self.link.is_open()
    }

    fn is_carrier(&self) -> bool {
        self.command == ReplyCommand::SubmitSm
    }

    fn part_format(&self) -> Option<PartFormat> {
        Some(PartFormat(
            ((self.long_messages as u32) << 8) | self.alphabet as u32,
        ))
    }

    fn load(&self) -> Option<OutletLoad> {
        Some(OutletLoad {
            role: match self.command {
                ReplyCommand::DeliverSm => "listener",
                ReplyCommand::SubmitSm => "carrier",
            },
            outstanding: self.link.outstanding(),
            window: self.link.window_size(),
            max_tps: self.pacing.max_tps().map(|n| n.get()),
        })
    }

    fn send<'a>(
        &'a self,
        reply: &'a OutgoingReply<'a>,
        reference: u16,
        ids: &'a mut PartIds,
        _log: &'a dyn PartLog,
    ) -> OutletFuture<'a> {
        Box::pin(async move {
            let mut from = reply.from.clone();
            if let Some(source) = &self.source_override {
                from.addr = source.clone();
            }
            if let Some(ton) = self.source_ton {
                from.ton = ton;
            }
            if let Some(npi) = self.source_npi {
                from.npi = npi;
            }
            let tlvs = if self.tag_replies {
                vec![Tlv {
                    tag: tag::MOTCUA_REPLY_TO,
                    value: reply.reply_to.as_bytes().to_vec(),
                }]
            } else {
                Vec::new()
            };
            let parts = encode_reply(reply.text, reference, self.long_messages, self.alphabet);
            let envelope = Envelope {
                command: self.command,
                from: &from,
                to: reply.to,
                tlvs: &tlvs,
            };
            send_parts(&self.link, &self.pacing, &envelope, &parts, ids)
                .await
                .map_err(send_error)
        })
    }

    fn answer_ussd<'a>(&'a self, ret: &'a UssdReturn, answer: &'a UssdAnswer) -> UssdFuture<'a> {
        Box::pin(async move {
            let body = answer_pdu_body(ret, answer, self.command, self.alphabet);
            self.pacing.ready().await;
            self.link.request(body).await.map_err(send_error)?;
            self.pacing.accepted();
            Ok(())
        })
    }
}
