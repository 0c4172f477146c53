//! The bridge between channels and the rest of the gateway: a citizen's
//! message from any channel (SMPP, a GSM modem; USSD turns too) is recorded
//! in the journal — only then may the channel acknowledge it — and handed to
//! the outbox, which answers it. A redelivery of a recorded message is
//! recognised here and not answered again; a channel that sees the peer
//! read an acknowledgement says so, and copies of that message are then new
//! messages (the journal's rule, [`Journal::record`]). One part of a concatenated
//! message is recorded as a fragment; the part that completes it makes the
//! message. Delivery receipts go to the journal's record of the reply.

use std::sync::Arc;

use crate::answering::external_id;
use crate::channel::{
    id_spellings, Address, DeliveryReport, IncomingSms, Receipt, ReceiptState, ReceiveError,
    SmsHandler, TurnKind, UndecodableSms, UssdAnswer, UssdTurn,
};
use crate::clock::now_ms;
use crate::journal::{
    FragmentRecorded, Journal, NewFragment, NewMessage, ReceiptApplied, ReceiptUpdate, Recorded,
    ReplyState, StoredMessage, UNDECODABLE,
};
use crate::outbox::Outbox;
use crate::store::DossierLookup;
use crate::ussd::UssdService;

/// Takes citizens' messages from the channels.
pub struct SmsGateway<S> {
    journal: Journal,
    outbox: Arc<Outbox<S>>,
    ussd: Option<Arc<UssdService<S>>>,
}

impl<S: DossierLookup> SmsGateway<S> {
    /// A gateway recording into `journal` and answering through `outbox`.
    pub fn new(journal: Journal, outbox: Arc<Outbox<S>>) -> Self {
        SmsGateway {
            journal,
            outbox,
            ussd: None,
        }
    }

    /// Answers USSD turns arriving over SMPP with `service`.
    pub fn with_ussd(mut self, service: Arc<UssdService<S>>) -> Self {
        self.ussd = Some(service);
        self
    }
}

impl<S: DossierLookup> SmsHandler for SmsGateway<S> {
    async fn ussd(&self, turn: UssdTurn) -> Option<UssdAnswer> {
        match &self.ussd {
            Some(service) => service.smpp_turn(turn).await,
            None => {
                tracing::debug!(channel = %turn.ret.channel, "USSD is off (ussd.enabled = false): dialogue closed");
                (turn.kind != TurnKind::Release).then(|| UssdAnswer {
                    text: String::new(),
                    end: true,
                })
            }
        }
    }

    async fn receive(&self, sms: IncomingSms) -> Result<Receipt, ReceiveError> {
        let message = NewMessage {
            channel: sms.channel,
            peer_ref_lasting: sms.fingerprint.is_some(),
            peer_ref: sms.fingerprint.clone().or(sms.peer_ref),
            sender: sms.source,
            recipient: sms.destination,
            text: sms.text,
            received_at: now_ms(),
        };
        if let Some(part) = sms.part {
            let fragment = NewFragment {
                message,
                reference: part.reference,
                total: part.total,
                part: part.index,
                fingerprint: sms.fingerprint,
            };
            return match self.journal.record_fragment(fragment).await {
                Ok(FragmentRecorded::Waiting(id)) => Ok(Receipt::Accepted {
                    message_id: format!("p{}", external_id(id)),
                }),
                Ok(FragmentRecorded::Duplicate) => Ok(Receipt::Duplicate {
                    message_id: String::new(),
                }),
                Ok(FragmentRecorded::Joined(stored)) => {
                    let message_id = external_id(stored.id);
                    self.outbox.answer_later(stored).await;
                    Ok(Receipt::Accepted { message_id })
                }
                Err(error) => Err(ReceiveError::not_recorded(error)),
            };
        }
        match self.journal.record(message.clone()).await {
            Ok(Recorded::New(id)) => {
                self.outbox
                    .answer_later(StoredMessage { id, message })
                    .await;
                Ok(Receipt::Accepted {
                    message_id: external_id(id),
                })
            }
            Ok(Recorded::Duplicate(id)) => Ok(Receipt::Duplicate {
                message_id: external_id(id),
            }),
            Err(error) => Err(ReceiveError::not_recorded(error)),
        }
    }

    async fn acknowledgements_read(&self, message_ids: Vec<String>) {
        // Ids as the peer got them (hex); parts waiting for the rest of
        // their message ("p…") and redelivered parts ("") are not messages.
        let ids: Vec<i64> = message_ids
            .iter()
            .filter_map(|id| i64::from_str_radix(id, 16).ok())
            .collect();
        if let Err(error) = self.journal.acknowledgements_read(ids).await {
            tracing::warn!(%error, "cannot note acknowledgements read; copies of these messages stay redeliveries");
        }
    }

    /// Recorded with its raw text (hex) as the message and the outcome
    /// `undecodable`, with no reply: visible in the console's message log,
    /// erased with the rest after retention.
    async fn undecodable(&self, sms: UndecodableSms) -> Result<Receipt, ReceiveError> {
        let message = NewMessage {
            channel: sms.channel,
            peer_ref: Some(sms.fingerprint),
            peer_ref_lasting: true,
            sender: Address::new("", 0, 0),
            recipient: sms.destination,
            text: sms.raw_hex,
            received_at: now_ms(),
        };
        match self
            .journal
            .record_exchange(message, UNDECODABLE, "", ReplyState::Suppressed, None)
            .await
        {
            Ok(Recorded::New(id)) => {
                tracing::warn!(message_id = %external_id(id), error = %sms.error, "unreadable message recorded (outcome undecodable)");
                Ok(Receipt::Accepted {
                    message_id: external_id(id),
                })
            }
            Ok(Recorded::Duplicate(id)) => Ok(Receipt::Duplicate {
                message_id: external_id(id),
            }),
            Err(error) => Err(ReceiveError::not_recorded(error)),
        }
    }

    async fn delivery_report(
        &self,
        channel: String,
        report: DeliveryReport,
    ) -> Result<(), ReceiveError> {
        let update = ReceiptUpdate {
            channel,
            peer_ids: id_spellings(&report.message_id),
            state: report.state.as_str().to_owned(),
            is_final: report.state.is_final(),
            // ACCEPTD is final and not a failure (read on the subscriber's
            // behalf): the reply is not marked failed for it.
            success: report.state.is_success() || report.state == ReceiptState::Accepted,
            error: report.error.or(report.network_error),
        };
        match self.journal.apply_receipt(update).await {
            Ok(ReceiptApplied::Matched { message_id, reply }) => {
                tracing::debug!(message_id = %external_id(message_id), reply = reply.as_str(), "delivery receipt recorded");
                Ok(())
            }
            Ok(ReceiptApplied::Unmatched) => {
                tracing::debug!("delivery receipt for an id not (yet) recorded; kept");
                Ok(())
            }
            Err(error) => Err(ReceiveError::not_recorded(error)),
        }
    }
}
