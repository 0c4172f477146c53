//! The answering policy, one for every way a citizen asks: an SMS (answered
//! by the outbox), a USSD dialogue and Kannel's get-url drop-in all go
//! through [`Answering`]. In order: admission (the abuse rules: blocked
//! numbers, rate limits, scanner blocks; a limiter that fails admits, since
//! availability comes first), then the responder's answer, then the lookup
//! recorded for abuse control (a code found or not found, which scan
//! detection counts), and the exchange recorded in the journal with what it
//! looked up ([`LookupNote`]).
//!
//! What differs per channel is the caller's to say: its name (for logs and
//! `motcua_answers_total`), what is asked ([`Asked`]: a message's text, or
//! a USSD dial, which continues as a dialogue), and how the outcome is
//! recorded (an SMS's reply is queued for the outbox to send; Kannel's and
//! a finished dialogue's answer are recorded with the message at once,
//! [`Answering::record_exchange`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::{error, info};

use crate::abuse::{AbuseGuard, Verdict};
use crate::domain::{DossierCode, Msisdn};
use crate::journal::{Journal, JournalError, LookupNote, NewMessage, Recorded, ReplyState};
use crate::reply::{ReplyContext, ReplyKind};
use crate::responder::{Lookup, Responder, Response};
use crate::store::DossierLookup;

/// The id a message is known by outside (submit_sm_resp, the reply's tag, logs).
pub fn external_id(id: i64) -> String {
    format!("{id:x}")
}

/// What a citizen asks, as admission sees it.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    /// A message's text (SMS, Kannel): scanner detection reads it.
    Message(&'a str),
    /// A USSD dial opening a dialogue: admitted once, its inputs follow.
    Dial,
}

/// How a message is answered: what it earned, the reply, the reply's
/// first state, and what the reply looked up.
#[derive(Debug, Clone)]
pub struct Decision {
    /// found, not_found, help, rate_limited, `silenced: <reason>`,
    /// not_a_phone_number: …
    pub outcome: String,
    /// The reply; empty when the message gets none.
    pub text: String,
    /// [`ReplyState::Queued`] for a reply to send, [`ReplyState::Suppressed`] for none.
    pub state: ReplyState,
    /// The dossier the reply looked up, for the journal.
    pub lookup: Option<LookupNote>,
}

impl Decision {
    /// No reply, for `outcome`.
    fn suppressed(outcome: String) -> Self {
        Decision {
            outcome,
            text: String::new(),
            state: ReplyState::Suppressed,
            lookup: None,
        }
    }
}

/// The answer to a message answered at once ([`Answering::answer_now`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectAnswer {
    /// The journal's id for the message.
    pub message_id: String,
    /// found, not_found, help, rate_limited, silenced: …
    pub outcome: String,
    /// The reply; empty when the message gets none.
    pub text: String,
}

/// The answering policy: admission, the responder, the lookup recorded for
/// abuse control, the exchange journaled. One per gateway, shared by every
/// channel.
pub struct Answering<S> {
    responder: Arc<Responder<S>>,
    guard: AbuseGuard,
    journal: Journal,
    metrics: AnswerMetrics,
}

impl<S: DossierLookup> Answering<S> {
    /// A policy answering with `responder` within `guard`'s limits,
    /// recording exchanges in `journal` and counting messages' answers in
    /// `metrics`.
    pub fn new(
        responder: Arc<Responder<S>>,
        guard: AbuseGuard,
        journal: Journal,
        metrics: AnswerMetrics,
    ) -> Self {
        Answering {
            responder,
            guard,
            journal,
            metrics,
        }
    }

    /// The responder (for what needs no admission: a keypad code's
    /// candidates, the templates' service-wide fields).
    pub fn responder(&self) -> &Responder<S> {
        &self.responder
    }

    /// The answers' metrics (`motcua_answers_total`, `motcua_answer_seconds`).
    pub fn metrics(&self) -> &AnswerMetrics {
        &self.metrics
    }

    /// Admission: the abuse rules' verdict on `sender` asking `asked` at
    /// `now`. A limiter that fails admits (availability first: a broken
    /// limiter must not silence citizens).
    pub async fn admit(&self, sender: &Msisdn, asked: Asked<'_>, now: DateTime<Utc>) -> Verdict {
        let checked = match asked {
            Asked::Message(text) => self.guard.check(sender, text, now).await,
            Asked::Dial => self.guard.check_dial(sender, now).await,
        };
        checked.unwrap_or_else(|error| {
            error!(%error, "abuse check failed; answering without it");
            Verdict::Allow
        })
    }

    /// Looks `code` up for `sender` (a dialogue's code, already admitted)
    /// and records the lookup for abuse control when it was found or not
    /// found.
    pub async fn lookup(&self, sender: &Msisdn, code: &DossierCode) -> Lookup {
        let lookup = self.responder.lookup(Some(sender), code).await;
        if matches!(lookup.kind, ReplyKind::Found | ReplyKind::NotFound) {
            let found = lookup.kind == ReplyKind::Found;
            self.note_lookup(sender, code, found, Utc::now()).await;
        }
        lookup
    }

    /// Records a lookup by keypad digits (none or several dossiers matched)
    /// for abuse control.
    pub async fn note_keypad_lookup(&self, sender: &Msisdn, digits: &str, found: bool) {
        if let Err(error) = self
            .guard
            .record_keypad_lookup(sender, digits, found, Utc::now())
            .await
        {
            error!(%error, "cannot record the lookup for abuse control");
        }
    }

    async fn note_lookup(
        &self,
        sender: &Msisdn,
        code: &DossierCode,
        found: bool,
        now: DateTime<Utc>,
    ) {
        if let Err(error) = self.guard.record_lookup(sender, code, found, now).await {
            error!(%error, "cannot record the lookup for abuse control");
        }
    }

    /// Decides the answer to a message's `text` from `sender` (its address
    /// as received) on `channel`, known in logs as `message` (its external
    /// id; `None` when it is answered before being journaled). A sender
    /// that is no phone number gets no reply; otherwise admission, the
    /// reply and the lookup recorded, the outcome counted.
    pub async fn decide(
        &self,
        message: Option<&str>,
        channel: &str,
        sender: &str,
        text: &str,
        started: Instant,
    ) -> Decision {
        match Msisdn::parse(sender) {
            Err(reason) => {
                match message {
                    Some(message) => {
                        info!(%channel, message_id = %message, %reason, "sender is not a phone number; no reply")
                    }
                    None => info!(%channel, %reason, "sender is not a phone number; no reply"),
                }
                Decision::suppressed("not_a_phone_number".to_owned())
            }
            Ok(sender) => {
                let message = message.unwrap_or("direct");
                let decision = self
                    .decide_uncounted(message, channel, &sender, text, started)
                    .await;
                self.metrics
                    .answered(channel, &decision.outcome, started.elapsed());
                decision
            }
        }
    }

    async fn decide_uncounted(
        &self,
        message: &str,
        channel: &str,
        sender: &Msisdn,
        text: &str,
        started: Instant,
    ) -> Decision {
        let now = Utc::now();
        let response = match self.admit(sender, Asked::Message(text), now).await {
            Verdict::Silence { reason, .. } => {
                info!(%channel, message_id = %message, sender = %sender, reason, "not answered");
                return Decision::suppressed(format!("silenced: {reason}"));
            }
            Verdict::Notice { retry_at } => self.responder.rate_limited(retry_at),
            Verdict::Listed => self.responder.respond(sender, text).await,
            Verdict::Allow => {
                let response = self.responder.respond(sender, text).await;
                let kind = response.reply.kind;
                if let (Some(code), ReplyKind::Found | ReplyKind::NotFound) = (&response.code, kind)
                {
                    let found = kind == ReplyKind::Found;
                    if let Err(error) = self
                        .guard
                        .record_checked_lookup(sender, code, found, now)
                        .await
                    {
                        error!(%error, "cannot record the lookup for abuse control");
                    }
                }
                response
            }
        };
        let reply = &response.reply;
        info!(
            %channel,
            message_id = %message,
            sender = %sender,
            outcome = reply.kind.as_str(),
            dossier = response.code.as_ref().map(|c| c.as_str()),
            owner = response.sender_is_owner,
            encoding = reply.info.encoding.name(),
            segments = reply.info.segments,
            latency_us = started.elapsed().as_micros() as u64,
            "answered"
        );
        let lookup = response_lookup(&response);
        Decision {
            outcome: reply.kind.as_str().to_owned(),
            text: response.reply.text,
            state: ReplyState::Queued,
            lookup,
        }
    }

    /// Answers `message` at once, for a channel that waits for the reply
    /// text itself (Kannel's `get-url`): the same policy as a journaled
    /// message, then the message and its answer recorded in one write (the
    /// outbox never sends it). An empty text means no reply (a blocked or
    /// rate-limited number, not a phone number).
    ///
    /// # Errors
    ///
    /// The journal's, when the exchange cannot be recorded (the answer is
    /// not given then: the caller reports a failure).
    pub async fn answer_now(&self, message: NewMessage) -> Result<DirectAnswer, JournalError> {
        let started = Instant::now();
        let Decision {
            outcome,
            text,
            state,
            lookup,
        } = self
            .decide(
                None,
                &message.channel,
                &message.sender.addr,
                &message.text,
                started,
            )
            .await;
        let state = if state == ReplyState::Queued {
            ReplyState::Sent
        } else {
            state
        };
        let id = self
            .record_exchange(message, &outcome, &text, state, lookup)
            .await?;
        Ok(DirectAnswer {
            message_id: external_id(id),
            outcome,
            text,
        })
    }

    /// Records an exchange answered at once: the message, its outcome, the
    /// answer given in `state`, and what it looked up, in one journal
    /// write. Returns the message's journal id (a duplicate's, when the
    /// message was recorded before).
    ///
    /// # Errors
    ///
    /// The journal's, when the exchange cannot be recorded.
    pub async fn record_exchange(
        &self,
        message: NewMessage,
        outcome: &str,
        answer: &str,
        state: ReplyState,
        lookup: Option<LookupNote>,
    ) -> Result<i64, JournalError> {
        let recorded = self
            .journal
            .record_exchange(message, outcome, answer, state, lookup)
            .await?;
        Ok(match recorded {
            Recorded::New(id) | Recorded::Duplicate(id) => id,
        })
    }
}

/// What a message's reply looked up, for the journal: its code, and agency
/// and procedure when found, with where the applicant's name stands in it.
fn response_lookup(response: &Response) -> Option<LookupNote> {
    response.code.as_ref().map(|code| LookupNote {
        code: code.to_string(),
        agency: response.agency.clone(),
        procedure: response.procedure.clone(),
        name_spans: response.reply.name_spans.clone(),
    })
}

/// What a screen's context looked up, for the journal: a dossier looked up
/// (found, not found, unavailable) gives its code, and agency and procedure
/// when found, with where the applicant's name stands in `shown`, the text
/// the citizen got.
pub fn context_lookup(reply: &ReplyContext, shown: &str) -> Option<LookupNote> {
    reply.code.clone().map(|code| LookupNote {
        code,
        agency: reply.agency.clone(),
        procedure: reply.procedure.clone(),
        name_spans: reply.owner_name.as_deref().map_or_else(Vec::new, |name| {
            crate::domain::vietnamese::find_name(shown, name)
        }),
    })
}

/// Messages answered, by channel and outcome, and how long deciding the
/// answer took (abuse rules, lookup, rendering), with the replies the
/// outbox let expire, for `/metrics`.
#[derive(Debug, Clone)]
pub struct AnswerMetrics {
    answers: Family<Vec<(String, String)>, Counter>,
    seconds: Histogram,
    expired: Counter,
}

impl Default for AnswerMetrics {
    fn default() -> Self {
        AnswerMetrics {
            answers: Family::default(),
            expired: Counter::default(),
            seconds: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
        }
    }
}

impl AnswerMetrics {
    fn answered(&self, channel: &str, outcome: &str, took: Duration) {
        // "silenced: <reason>" counts as "silenced".
        let outcome = outcome.split(':').next().unwrap_or(outcome);
        self.answers
            .get_or_create(&vec![
                ("channel".to_owned(), channel.to_owned()),
                ("outcome".to_owned(), outcome.to_owned()),
            ])
            .inc();
        self.seconds.observe(took.as_secs_f64());
    }

    /// Counts `count` replies recorded expired (never sent).
    pub fn replies_expired(&self, count: u64) {
        self.expired.inc_by(count);
    }

    /// Registers `motcua_answers_total`, `motcua_answer_seconds` and
    /// `motcua_replies_expired_total`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("motcua");
        sub.register(
            "answers",
            "Messages answered, by channel and outcome (found, not_found, help, silenced, ...)",
            self.answers.clone(),
        );
        sub.register(
            "answer_seconds",
            "Time to decide an answer: abuse rules, lookup, rendering",
            self.seconds.clone(),
        );
        sub.register(
            "replies_expired",
            "Replies not handed to their channel within journal.reply_expiry_secs: recorded expired, never sent",
            self.expired.clone(),
        );
    }
}
