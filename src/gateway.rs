//! The bridge between channels and the responder: a citizen's message from
//! any channel (SMPP today; modem and USSD later) becomes a reply text. The
//! sender's address is validated here; an address that is not a phone
//! number (a brand name, a service code) gets no reply. Logs carry the
//! outcome with the number redacted, never the message text.

use std::time::Instant;

use tracing::info;

use crate::domain::Msisdn;
use crate::responder::Responder;
use crate::smpp::{IncomingSms, SmsHandler};
use crate::store::DossierStore;

/// Answers citizens' messages from the read model.
pub struct SmsGateway<S> {
    responder: Responder<S>,
}

impl<S: DossierStore> SmsGateway<S> {
    /// A gateway answering through `responder`.
    pub fn new(responder: Responder<S>) -> Self {
        SmsGateway { responder }
    }
}

impl<S: DossierStore> SmsHandler for SmsGateway<S> {
    async fn handle(&self, sms: IncomingSms) -> Option<String> {
        let sender = match Msisdn::parse(&sms.source_addr) {
            Ok(sender) => sender,
            Err(reason) => {
                info!(channel = %sms.channel, %reason, "sender is not a phone number; no reply");
                return None;
            }
        };
        let started = Instant::now();
        let response = self.responder.respond(&sender, &sms.text).await;
        let reply = response.reply;
        info!(
            channel = %sms.channel,
            sender = %sender,
            outcome = reply.kind.as_str(),
            dossier = response.code.as_ref().map(|c| c.as_str()),
            owner = response.sender_is_owner,
            encoding = reply.info.encoding.name(),
            segments = reply.info.segments,
            latency_us = started.elapsed().as_micros() as u64,
            "answered"
        );
        Some(reply.text)
    }
}
