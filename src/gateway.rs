//! The bridge between channels and the rest of the gateway: a citizen's
//! message from any channel (SMPP today; modem and USSD later) is recorded
//! in the journal — only then may the channel acknowledge it — and handed to
//! the outbox, which answers it. A redelivery of a recorded message is
//! recognised here and not answered again.

use std::sync::Arc;

use crate::journal::{now_ms, Journal, NewMessage, Recorded, StoredMessage};
use crate::outbox::{external_id, Outbox};
use crate::smpp::{IncomingSms, Receipt, ReceiveError, SmsHandler};
use crate::store::DossierStore;

/// Takes citizens' messages from the channels.
pub struct SmsGateway<S> {
    journal: Journal,
    outbox: Arc<Outbox<S>>,
}

impl<S: DossierStore> SmsGateway<S> {
    /// A gateway recording into `journal` and answering through `outbox`.
    pub fn new(journal: Journal, outbox: Arc<Outbox<S>>) -> Self {
        SmsGateway { journal, outbox }
    }
}

impl<S: DossierStore> SmsHandler for SmsGateway<S> {
    async fn receive(&self, sms: IncomingSms) -> Result<Receipt, ReceiveError> {
        let message = NewMessage {
            channel: sms.channel,
            peer_ref: sms.peer_ref,
            sender: sms.source,
            recipient: sms.destination,
            text: sms.text,
            received_at: now_ms(),
        };
        match self.journal.record(message.clone()).await {
            Ok(Recorded::New(id)) => {
                self.outbox.answer_later(StoredMessage { id, message });
                Ok(Receipt::Accepted {
                    message_id: external_id(id),
                })
            }
            Ok(Recorded::Duplicate(id)) => Ok(Receipt::Duplicate {
                message_id: external_id(id),
            }),
            Err(error) => Err(ReceiveError(error.to_string())),
        }
    }
}
