//! The USSD dialogue: from a dial or an input to the next screen, for any
//! USSD channel (SMPP in both roles, the aggregators' HTTP callback).
//!
//! The bare service code opens the menu (1 look up a dossier → enter the
//! code → status; 2 help; 3 the hotline); `*8058*<code>#` looks up at once.
//! A code typed as digits is matched against every dossier's digits; when
//! several match, the citizen picks one. Each dial goes through the same
//! answering policy as an SMS ([`Answering`]: rate limits, blocks, scan
//! detection, lookups recorded); each finished dialogue is journaled with
//! its answer. Every new dialogue, however it starts (a dial, a direct
//! dial, an HTTP menu walk this gateway lost), is admitted first. Every
//! turn is answered within `answer_within_ms` (USSD centres give up after
//! about 15 s): a slow lookup gets "try again / send an SMS" and closes the
//! dialogue.
//! Dialogues wait for input in a bounded [`SessionTable`]; one left
//! unanswered is released (over SMPP, with the "ended" screen).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::dial::{CodeInputError, CodeQuery, Dial, ServiceCode, MAX_CODE_DIGITS};
use super::screens::{Screen, ScreenContext, ScreenRenderer};
use super::sessions::{Dropped, Owner, SessionTable};
use super::UssdSettings;
use crate::abuse::Verdict;
use crate::address::Address;
use crate::answering::{context_lookup, Answering, Asked};
use crate::channel::{TurnKind, UssdAnswer, UssdReturn, UssdTurn};
use crate::clock::now_ms;
use crate::domain::{DossierCode, Msisdn};
use crate::journal::{LookupNote, NewMessage, ReplyState};
use crate::reload::Swappable;
use crate::reply::ReplyKind;
use crate::store::DossierLookup;

/// What the dialogue waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Awaiting {
    /// A menu choice (1, 2, 3).
    MenuChoice,
    /// A dossier code.
    Code,
    /// Which of these dossiers.
    Choice(Vec<DossierCode>),
}

/// An open dialogue, between two turns.
#[derive(Debug, Clone)]
struct Dialogue {
    awaiting: Awaiting,
    /// Invalid inputs at the current step.
    attempts: u8,
    /// The HTTP callback's `text` answered so far (it sends every input
    /// every time): a request whose `text` is this plus `*` and more brings
    /// one new entry.
    seen: String,
    /// The address that called (HTTP), one of the dialogue's owners.
    caller: Option<IpAddr>,
    /// The last screen sent (an aggregator's retry gets it again).
    last: UssdAnswer,
    /// How to release the dialogue over SMPP.
    ret: Option<UssdReturn>,
    /// For the journal.
    channel: String,
    citizen: Address,
    service: Address,
    transcript: Vec<String>,
    opened_at: i64,
}

/// One step's result.
struct Step {
    screen: Screen,
    ctx: ScreenContext,
    next: Option<(Awaiting, u8)>,
}

/// A turn as the dialogue sees it.
enum Input<'a> {
    /// A new dialogue: admitted, then the dial.
    Dial(Dial),
    /// A new dialogue walked from the menu (an HTTP session this gateway
    /// lost, sent again with every input): admitted, then each input.
    Walk(Vec<&'a str>),
    /// The next input of an open dialogue.
    Text(&'a str),
}

/// One request of the aggregators' HTTP callback.
#[derive(Debug, Clone, Copy)]
pub struct HttpTurn<'a> {
    /// The aggregator's `sessionId`.
    pub session_id: &'a str,
    /// `serviceCode`: the service code as dialled, possibly with a direct
    /// dial in it (`*8058*<code>#`).
    pub service_code: &'a str,
    /// `phoneNumber`: the citizen's number.
    pub phone: &'a str,
    /// `text`: every input so far, `*`-joined (empty on the dial).
    pub text: &'a str,
    /// The address that called.
    pub caller: IpAddr,
}

/// `motcua_ussd_*` metrics.
#[derive(Clone, Default)]
pub struct UssdMetrics {
    turns: Family<TurnLabels, Counter>,
    open: Gauge,
    expired: Counter,
    evicted: Counter,
    slow: Counter,
    release_failures: Counter,
}

impl UssdMetrics {
    /// Counts a release the SMPP peer did not take.
    pub fn release_failed(&self) {
        self.release_failures.inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnLabels {
    transport: &'static str,
    screen: &'static str,
}

impl UssdMetrics {
    /// Adds the metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "motcua_ussd_turns",
            "USSD turns answered, by transport (smpp, http) and screen shown",
            self.turns.clone(),
        );
        registry.register(
            "motcua_ussd_sessions_open",
            "USSD dialogues waiting for the citizen's input",
            self.open.clone(),
        );
        registry.register(
            "motcua_ussd_sessions_expired",
            "USSD dialogues released after session_timeout_secs without input",
            self.expired.clone(),
        );
        registry.register(
            "motcua_ussd_sessions_evicted",
            "USSD dialogues dropped because the table held max_sessions, or their number or calling address held its share",
            self.evicted.clone(),
        );
        registry.register(
            "motcua_ussd_slow",
            "USSD turns answered 'try again' because the lookup took longer than answer_within_ms",
            self.slow.clone(),
        );
        registry.register(
            "motcua_ussd_release_failures",
            "USSD releases that could not be sent to the SMPP peer",
            self.release_failures.clone(),
        );
    }

    /// Turns shown `screen` over `transport`, so far.
    pub fn turns(&self, transport: &'static str, screen: Screen) -> u64 {
        self.turns
            .get_or_create(&TurnLabels {
                transport,
                screen: screen.as_str(),
            })
            .get()
    }

    /// Dialogues released for want of input, so far.
    pub fn expired(&self) -> u64 {
        self.expired.get()
    }

    /// Dialogues dropped from a full table, so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.get()
    }
}

/// Sends a release (the "ended" screen, `end: true`) to an SMPP peer for a
/// dialogue the gateway gave up on; wired by the app to the SMPP routes.
pub type Releaser = Arc<dyn Fn(UssdReturn, UssdAnswer) + Send + Sync>;

/// The USSD service: dialogues over any transport.
pub struct UssdService<S> {
    settings: UssdSettings,
    service: ServiceCode,
    answering: Arc<Answering<S>>,
    screens: Arc<Swappable<ScreenRenderer>>,
    releaser: Option<Releaser>,
    table: Mutex<SessionTable<Dialogue>>,
    metrics: UssdMetrics,
}

impl<S: DossierLookup> UssdService<S> {
    /// A service answering as `answering` decides, with `screens`.
    pub fn new(
        settings: UssdSettings,
        service: ServiceCode,
        answering: Arc<Answering<S>>,
        screens: Arc<Swappable<ScreenRenderer>>,
    ) -> Self {
        let table = SessionTable::new(settings.max_sessions, settings.session_timeout());
        UssdService {
            settings,
            service,
            answering,
            screens,
            releaser: None,
            table: Mutex::new(table),
            metrics: UssdMetrics::default(),
        }
    }

    /// Releases abandoned SMPP dialogues with `releaser`.
    pub fn with_releaser(mut self, releaser: Releaser) -> Self {
        self.releaser = Some(releaser);
        self
    }

    /// The metrics, to register and read.
    pub fn metrics(&self) -> &UssdMetrics {
        &self.metrics
    }

    /// Dialogues open now.
    pub fn open_dialogues(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionTable<Dialogue>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves one turn arriving over SMPP.
    pub async fn smpp_turn(&self, turn: UssdTurn) -> Option<UssdAnswer> {
        let now = Instant::now();
        match turn.kind {
            TurnKind::Release => {
                let open = self.lock().remove(&turn.dialogue);
                if let Some(dialogue) = open {
                    debug!(channel = %turn.ret.channel, "USSD dialogue released by the peer");
                    self.journal_dialogue(dialogue, "released", "", None);
                }
                self.note_open();
                None
            }
            TurnKind::Open => {
                let dialogue = Dialogue {
                    awaiting: Awaiting::MenuChoice,
                    attempts: 0,
                    seen: String::new(),
                    caller: None,
                    last: UssdAnswer {
                        text: String::new(),
                        end: true,
                    },
                    ret: Some(turn.ret.clone()),
                    channel: turn.ret.channel.clone(),
                    citizen: turn.ret.citizen.clone(),
                    service: turn.ret.service.clone(),
                    transcript: vec![turn.text.clone()],
                    opened_at: now_ms(),
                };
                let input = match Dial::parse(&turn.text, &self.service) {
                    Ok(dial) => Input::Dial(dial),
                    Err(error) => {
                        debug!(%error, "USSD dial for another service code: answered with help");
                        Input::Dial(Dial::Direct(String::new()))
                    }
                };
                Some(
                    self.serve(turn.dialogue, dialogue, None, input, "smpp", now)
                        .await,
                )
            }
            TurnKind::Continue => {
                let open = self.lock().take(&turn.dialogue, now);
                self.note_open();
                match open {
                    Some(mut dialogue) => {
                        let state = Some((dialogue.awaiting.clone(), dialogue.attempts));
                        dialogue.transcript.push(turn.text.clone());
                        dialogue.ret = Some(turn.ret.clone());
                        Some(
                            self.serve(
                                turn.dialogue,
                                dialogue,
                                state,
                                Input::Text(&turn.text),
                                "smpp",
                                now,
                            )
                            .await,
                        )
                    }
                    None => {
                        debug!(channel = %turn.ret.channel, "USSD input for no open dialogue (expired or unknown)");
                        Some(self.final_screen(Screen::Ended, self.base_context(), "smpp"))
                    }
                }
            }
        }
    }

    /// Serves one request of the aggregators' HTTP callback.
    pub async fn http_turn(&self, turn: HttpTurn<'_>) -> UssdAnswer {
        let now = Instant::now();
        let key = format!("http|{}", turn.session_id);
        let text = turn.text;
        let open = self.lock().take(&key, now);
        self.note_open();
        if let Some(mut dialogue) = open {
            if text == dialogue.seen {
                // The aggregator asked again (a retry): the same screen.
                let last = dialogue.last.clone();
                self.keep(key, dialogue, now);
                return last;
            }
            if let Some(entry) = next_entry(&dialogue.seen, text) {
                let state = Some((dialogue.awaiting.clone(), dialogue.attempts));
                dialogue.transcript.push(entry.to_owned());
                dialogue.seen = text.to_owned();
                return self
                    .serve(key, dialogue, state, Input::Text(entry), "http", now)
                    .await;
            }
            // Not this dialogue's next entry: the session starts over.
            self.journal_dialogue(dialogue, "abandoned", "", None);
        }
        let mut dialogue = Dialogue {
            awaiting: Awaiting::MenuChoice,
            attempts: 0,
            seen: text.to_owned(),
            caller: Some(turn.caller),
            last: UssdAnswer {
                text: String::new(),
                end: true,
            },
            ret: None,
            channel: "http".to_owned(),
            citizen: Address::new(turn.phone.to_owned(), 1, 1),
            service: Address::new(self.service.as_str().to_owned(), 0, 0),
            transcript: vec![self.service.dialled()],
            opened_at: now_ms(),
        };
        let inputs: Vec<&str> = text.split('*').collect();
        let input = if text.is_empty() {
            // The dial; an aggregator may send a direct dial only in serviceCode.
            match Dial::parse(turn.service_code, &self.service) {
                Ok(Dial::Direct(rest)) => {
                    dialogue.transcript = vec![turn.service_code.trim().to_owned()];
                    Input::Dial(Dial::Direct(rest))
                }
                Ok(Dial::Menu) | Err(_) => Input::Dial(Dial::Menu),
            }
        } else if inputs.len() > 1 && matches!(inputs[0], "1" | "2" | "3") {
            // A dialogue this gateway lost (restart, expiry) walked through
            // the menu again.
            dialogue
                .transcript
                .extend(inputs.iter().map(|input| (*input).to_owned()));
            Input::Walk(inputs)
        } else {
            // `*8058*<code>#` reaches us as text "<code>".
            dialogue.transcript = vec![format!("*{}*{}#", self.service.as_str(), text)];
            Input::Dial(Dial::Direct(text.to_owned()))
        };
        self.serve(key, dialogue, None, input, "http", now).await
    }

    /// Who `dialogue` belongs to, with their limits: its number, and the
    /// address that called.
    fn owners(&self, dialogue: &Dialogue) -> Vec<Owner> {
        let number = Msisdn::parse(&dialogue.citizen.addr)
            .map(|msisdn| msisdn.as_international().to_owned())
            .unwrap_or_else(|_| dialogue.citizen.addr.clone());
        let mut owners = vec![Owner {
            id: format!("number:{number}"),
            limit: self.settings.max_sessions_per_number,
        }];
        if let Some(caller) = dialogue.caller {
            owners.push(Owner {
                id: format!("address:{}", caller.to_canonical()),
                limit: self.settings.http.max_sessions_per_address,
            });
        }
        owners
    }

    /// Keeps `dialogue` open for its next input; the dialogues it pushes
    /// out (its owners' oldest, or the table's) are released.
    fn keep(&self, key: String, dialogue: Dialogue, now: Instant) {
        let owners = self.owners(&dialogue);
        let evicted = self.lock().put(key, dialogue, &owners, now);
        for dropped in evicted {
            self.metrics.evicted.inc();
            debug!(
                "USSD session table or a caller's share of it full: the oldest dialogue dropped"
            );
            self.release(dropped, "evicted");
        }
        self.note_open();
    }

    /// Runs one step within the time allowed, keeps the dialogue open or
    /// journals it, and returns the screen.
    async fn serve(
        &self,
        key: String,
        mut dialogue: Dialogue,
        state: Option<(Awaiting, u8)>,
        input: Input<'_>,
        transport: &'static str,
        now: Instant,
    ) -> UssdAnswer {
        let budget = self.settings.answer_within();
        let citizen = dialogue.citizen.clone();
        let msisdn = match Msisdn::parse(&citizen.addr) {
            Ok(msisdn) => msisdn,
            Err(error) => {
                warn!(%error, "USSD turn from a number that is not a phone number: answered with help");
                let answer = self.final_screen(Screen::Help, self.base_context(), transport);
                self.journal_dialogue(dialogue, Screen::Help.as_str(), &answer.text, None);
                return answer;
            }
        };
        let stepped = tokio::time::timeout(budget, self.step(&msisdn, state, input)).await;
        let step = match stepped {
            Ok(step) => step,
            Err(_) => {
                self.metrics.slow.inc();
                warn!(
                    budget_ms = budget.as_millis() as u64,
                    "USSD lookup too slow: answered 'try again'"
                );
                Step {
                    screen: Screen::Slow,
                    ctx: self.base_context(),
                    next: None,
                }
            }
        };
        let answer = self.show(step.screen, &step.ctx, transport, step.next.is_some());
        match step.next {
            Some((awaiting, attempts)) => {
                dialogue.awaiting = awaiting;
                dialogue.attempts = attempts;
                dialogue.last = answer.clone();
                self.keep(key, dialogue, now);
            }
            None => {
                info!(
                    transport,
                    sender = %msisdn,
                    outcome = step.screen.as_str(),
                    dossier = step.ctx.reply.code.as_deref(),
                    latency_us = now.elapsed().as_micros() as u64,
                    "USSD answered"
                );
                // A dossier looked up (found, not found, unavailable): its code,
                // and agency and procedure when found, go with the dialogue.
                let lookup = context_lookup(&step.ctx.reply, &answer.text);
                self.journal_dialogue(dialogue, step.screen.as_str(), &answer.text, lookup);
            }
        }
        answer
    }

    /// The next screen for `input` given what the dialogue waited for.
    async fn step(&self, msisdn: &Msisdn, state: Option<(Awaiting, u8)>, input: Input<'_>) -> Step {
        match (state, input) {
            (_, Input::Dial(dial)) => {
                if let Some(refused) = self.admit(msisdn).await {
                    return refused;
                }
                match dial {
                    Dial::Menu => self.menu(),
                    Dial::Direct(rest) if rest.is_empty() => {
                        self.close(Screen::Help, self.base_context())
                    }
                    Dial::Direct(rest) => self.query(msisdn, &rest, 0).await,
                }
            }
            (_, Input::Walk(inputs)) => {
                if let Some(refused) = self.admit(msisdn).await {
                    return refused;
                }
                self.walk(msisdn, &inputs).await
            }
            (None, Input::Text(_)) => self.close(Screen::Ended, self.base_context()),
            (Some(state), Input::Text(text)) => self.advance(msisdn, state, text).await,
        }
    }

    fn menu(&self) -> Step {
        self.open(Screen::Menu, self.base_context(), Awaiting::MenuChoice, 0)
    }

    /// The menu, then each of `inputs` in turn, until a screen closes the
    /// dialogue. Where a code is awaited, the longest run of inputs that
    /// reads as a code is one entry (keypad users type `*` between groups).
    async fn walk(&self, msisdn: &Msisdn, inputs: &[&str]) -> Step {
        let mut step = self.menu();
        let mut rest = inputs;
        while let (Some(state), false) = (step.next.clone(), rest.is_empty()) {
            let take = match state.0 {
                Awaiting::Code => (1..=rest.len().min(MAX_CODE_DIGITS))
                    .rev()
                    .find(|n| CodeQuery::parse(&rest[..*n].join("*")).is_ok())
                    .unwrap_or(1),
                _ => 1,
            };
            let entry = rest[..take].join("*");
            rest = &rest[take..];
            step = self.advance(msisdn, state, &entry).await;
        }
        step
    }

    /// The next screen for `text` typed where the dialogue waited for `state`.
    async fn advance(&self, msisdn: &Msisdn, state: (Awaiting, u8), text: &str) -> Step {
        let max_attempts = self.settings.max_attempts.max(1);
        match state {
            (Awaiting::MenuChoice, attempts) => match text.trim() {
                "1" => self.open(Screen::AskCode, self.base_context(), Awaiting::Code, 0),
                "2" => self.close(Screen::Help, self.base_context()),
                "3" => self.close(Screen::Hotline, self.base_context()),
                _ if attempts + 1 >= max_attempts => self.close(Screen::Help, self.base_context()),
                _ => {
                    let mut ctx = self.base_context();
                    ctx.retry = true;
                    self.open(Screen::Menu, ctx, Awaiting::MenuChoice, attempts + 1)
                }
            },
            (Awaiting::Code, attempts) => self.query(msisdn, text, attempts).await,
            (Awaiting::Choice(codes), attempts) => {
                let picked = text
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| codes.get(i).cloned());
                match picked {
                    Some(code) => self.lookup(msisdn, &code).await,
                    None if attempts + 1 >= max_attempts => {
                        self.close(Screen::Help, self.base_context())
                    }
                    None => {
                        let mut ctx = self.base_context();
                        ctx.retry = true;
                        ctx.choices = codes.iter().map(ToString::to_string).collect();
                        self.open(Screen::Choose, ctx, Awaiting::Choice(codes), attempts + 1)
                    }
                }
            }
        }
    }

    /// The abuse rules for a dial: `Some(screen)` when refused.
    async fn admit(&self, msisdn: &Msisdn) -> Option<Step> {
        let verdict = self
            .answering
            .admit(msisdn, Asked::Dial, chrono::Utc::now())
            .await;
        // A USSD screen must say something: past the one notice SMS gets,
        // the dial is told the same (when to try again), or that the
        // number is blocked.
        let (retry_at, reason) = match verdict {
            Verdict::Allow | Verdict::Listed => return None,
            Verdict::Notice { retry_at } => (Some(retry_at), "rate limited"),
            Verdict::Silence { reason, retry_at } => (retry_at, reason),
        };
        info!(sender = %msisdn, reason, "USSD dial refused");
        let mut ctx = self.base_context();
        Some(match retry_at {
            Some(retry_at) => {
                ctx.reply.retry_at = Some(retry_at.format("%H:%M").to_string());
                self.close(Screen::TooMany, ctx)
            }
            None => self.close(Screen::Blocked, ctx),
        })
    }

    /// Reads a typed code and looks it up; a bad one is asked for again.
    async fn query(&self, msisdn: &Msisdn, text: &str, attempts: u8) -> Step {
        match CodeQuery::parse(text) {
            Err(problem) => {
                if attempts + 1 >= self.settings.max_attempts.max(1) {
                    return self.close(Screen::Help, self.base_context());
                }
                let mut ctx = self.base_context();
                ctx.problem = Some(problem_name(&problem));
                self.open(Screen::AskCode, ctx, Awaiting::Code, attempts + 1)
            }
            Ok(CodeQuery::Exact(code)) => self.lookup(msisdn, &code).await,
            Ok(CodeQuery::Digits(digits)) => {
                let limit = self.settings.max_choices.max(1);
                match self
                    .answering
                    .responder()
                    .codes_with_digits(digits.as_str(), limit)
                    .await
                {
                    Err(error) => {
                        tracing::error!(%error, "read model lookup by digits failed; answering 'unavailable'");
                        self.close(Screen::Unavailable, self.base_context())
                    }
                    Ok(codes) if codes.is_empty() => {
                        self.answering
                            .note_keypad_lookup(msisdn, digits.as_str(), false)
                            .await;
                        let mut ctx = self.base_context();
                        ctx.reply.typed_code = Some(digits.to_string());
                        self.close(Screen::NotFound, ctx)
                    }
                    Ok(codes) if codes.len() == 1 => self.lookup(msisdn, &codes[0]).await,
                    Ok(codes) => {
                        self.answering
                            .note_keypad_lookup(msisdn, digits.as_str(), true)
                            .await;
                        let mut ctx = self.base_context();
                        ctx.choices = codes.iter().map(ToString::to_string).collect();
                        self.open(Screen::Choose, ctx, Awaiting::Choice(codes), 0)
                    }
                }
            }
        }
    }

    /// Looks one dossier up: the final screen.
    async fn lookup(&self, msisdn: &Msisdn, code: &DossierCode) -> Step {
        let lookup = self.answering.lookup(msisdn, code).await;
        let screen = match lookup.kind {
            ReplyKind::Found => Screen::Found,
            ReplyKind::NotFound => Screen::NotFound,
            _ => Screen::Unavailable,
        };
        let mut ctx = self.base_context();
        ctx.reply = lookup.context;
        self.close(screen, ctx)
    }

    fn base_context(&self) -> ScreenContext {
        let mut reply = self.answering.responder().base_context();
        reply.accents = self.screens.current().accents();
        ScreenContext {
            reply,
            service_code: self.service.dialled(),
            service_prefix: format!("*{}", self.service.as_str()),
            ..ScreenContext::default()
        }
    }

    fn open(&self, screen: Screen, ctx: ScreenContext, awaiting: Awaiting, attempts: u8) -> Step {
        Step {
            screen,
            ctx,
            next: Some((awaiting, attempts)),
        }
    }

    fn close(&self, screen: Screen, ctx: ScreenContext) -> Step {
        Step {
            screen,
            ctx,
            next: None,
        }
    }

    /// Renders a screen and counts it.
    fn show(
        &self,
        screen: Screen,
        ctx: &ScreenContext,
        transport: &'static str,
        open: bool,
    ) -> UssdAnswer {
        self.metrics
            .turns
            .get_or_create(&TurnLabels {
                transport,
                screen: screen.as_str(),
            })
            .inc();
        let text = match self.screens.current().render(screen, ctx) {
            Ok(shown) => shown.text,
            Err(error) => {
                tracing::error!(%error, template = screen.template_name(), "USSD template failed at run time; sending the fixed fallback text");
                format!(
                    "He thong tam gian doan. Vui long thu lai sau hoac nhan tin TC <ma ho so> gui {}",
                    ctx.reply.service_number
                )
            }
        };
        UssdAnswer { text, end: !open }
    }

    fn final_screen(
        &self,
        screen: Screen,
        ctx: ScreenContext,
        transport: &'static str,
    ) -> UssdAnswer {
        self.show(screen, &ctx, transport, false)
    }

    fn note_open(&self) {
        let open = self.lock().len() as i64;
        self.metrics.open.set(open);
    }

    /// Journals a finished dialogue with what it looked up (in the
    /// background: the answer does not wait).
    fn journal_dialogue(
        &self,
        dialogue: Dialogue,
        outcome: &str,
        answer: &str,
        lookup: Option<LookupNote>,
    ) {
        let message = NewMessage {
            channel: format!("ussd:{}", dialogue.channel),
            peer_ref: None,
            peer_ref_lasting: false,
            sender: dialogue.citizen,
            recipient: dialogue.service,
            text: transcript_text(&dialogue.transcript),
            received_at: dialogue.opened_at,
        };
        let answering = self.answering.clone();
        let outcome = outcome.to_owned();
        let answer = answer.to_owned();
        tokio::spawn(async move {
            let recorded = answering
                .record_exchange(message, &outcome, &answer, ReplyState::Sent, lookup)
                .await;
            if let Err(error) = recorded {
                tracing::error!(%error, "cannot journal a USSD dialogue");
            }
        });
    }

    /// Releases a dialogue that left the table unfinished: journaled, and
    /// over SMPP closed with the "ended" screen.
    fn release(&self, dropped: Dropped<Dialogue>, why: &'static str) {
        let dialogue = dropped.value;
        let ret = dialogue.ret.clone();
        self.journal_dialogue(dialogue, why, "", None);
        let (Some(ret), Some(releaser)) = (ret, &self.releaser) else {
            return;
        };
        let answer = self.final_screen(Screen::Ended, self.base_context(), "smpp");
        releaser(ret, answer);
    }

    /// Releases dialogues left without input past `session_timeout_secs`, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tick = Duration::from_millis(250);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            let expired = self.lock().expire(Instant::now());
            if expired.is_empty() {
                continue;
            }
            self.metrics.expired.inc_by(expired.len() as u64);
            debug!(
                count = expired.len(),
                "USSD dialogues expired without input"
            );
            for dropped in expired {
                self.release(dropped, "abandoned");
            }
            self.note_open();
        }
    }
}

/// The entry `text` adds to what the dialogue has `seen` (the HTTP
/// callback sends every input so far, `*`-joined): everything after
/// `seen` and its `*`, as one entry even when it holds `*` itself (a code
/// typed with `*` between groups). `None` when `text` does not continue `seen`.
fn next_entry<'a>(seen: &str, text: &'a str) -> Option<&'a str> {
    if seen.is_empty() {
        return (!text.is_empty()).then_some(text);
    }
    text.strip_prefix(seen)?.strip_prefix('*')
}

/// The dialogue as one line for the journal: the dial, then each input.
fn transcript_text(transcript: &[String]) -> String {
    const MAX_INPUTS: usize = 12;
    const MAX_INPUT_CHARS: usize = 64;
    let mut parts: Vec<String> = transcript
        .iter()
        .take(MAX_INPUTS)
        .map(|input| input.chars().take(MAX_INPUT_CHARS).collect())
        .collect();
    if transcript.len() > MAX_INPUTS {
        parts.push("…".to_owned());
    }
    parts.join(" > ")
}

fn problem_name(problem: &CodeInputError) -> &'static str {
    match problem {
        CodeInputError::Empty => "empty",
        CodeInputError::TooShort { .. } => "short",
        CodeInputError::TooLong { .. } => "long",
        CodeInputError::ImpossibleDate { .. } => "date",
        CodeInputError::ZeroOrder => "zero",
        CodeInputError::NotACode => "not_code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::{AbuseGuard, RateLimitSettings};
    use crate::answering::AnswerMetrics;
    use crate::channel::{ServiceOp, SessionInfo};
    use crate::journal::{Journal, JournalSettings};
    use crate::portal_record::PortalRecord;
    use crate::reply::{Renderer, ReplySettings};
    use crate::responder::Responder;
    use crate::store::{DossierWriter, SqliteStore, StoreError};

    /// A read model whose lookups take `delay`.
    struct SlowStore {
        inner: SqliteStore,
        delay: Duration,
    }

    impl DossierLookup for SlowStore {
        async fn find(
            &self,
            code: &DossierCode,
        ) -> Result<Option<crate::domain::Dossier>, StoreError> {
            tokio::time::sleep(self.delay).await;
            self.inner.find(code).await
        }
        async fn find_by_digits(
            &self,
            digits: &str,
            limit: u32,
        ) -> Result<Vec<DossierCode>, StoreError> {
            tokio::time::sleep(self.delay).await;
            self.inner.find_by_digits(digits, limit).await
        }
    }

    const CODE: &str = "000.00.12.H58-240315-0007";
    const DIGITS: &str = "0000012582403150007";

    async fn service(
        delay: Duration,
        settings: UssdSettings,
        dir: &tempfile::TempDir,
    ) -> UssdService<SlowStore> {
        let inner = SqliteStore::open("sqlite::memory:").await.unwrap();
        let record = PortalRecord::from_json(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TenTTHC":"Cấp giấy phép xây dựng",
                "TrangThaiHoSo":4,"NgayHenTra":"20240329170000",
                "SoDienThoai":"0912345678","ChuHoSo":"Nguyễn Văn An"}"#,
        )
        .unwrap();
        inner
            .upsert_batch(&[record.into_dossier().unwrap()])
            .await
            .unwrap();
        let renderer = Arc::new(Renderer::load(None, ReplySettings::default()).unwrap());
        let journal = Journal::open(JournalSettings {
            url: format!("sqlite://{}/journal.db", dir.path().display()),
            ..JournalSettings::default()
        })
        .await
        .unwrap();
        // Several dials from one number per test: room for them.
        let limits = RateLimitSettings {
            burst: 50,
            per_hour: 100,
            ..RateLimitSettings::default()
        };
        let guard = AbuseGuard::open(limits, journal.pool().clone())
            .await
            .unwrap();
        let responder = Arc::new(Responder::new(SlowStore { inner, delay }, renderer));
        UssdService::new(
            settings,
            ServiceCode::parse("*8058#").unwrap(),
            Arc::new(Answering::new(
                responder,
                guard,
                journal,
                AnswerMetrics::default(),
            )),
            Arc::new(Swappable::new(ScreenRenderer::load(None, false).unwrap())),
        )
    }

    fn http<'a>(session_id: &'a str, phone: &'a str, text: &'a str) -> HttpTurn<'a> {
        HttpTurn {
            session_id,
            service_code: "*8058#",
            phone,
            text,
            caller: IpAddr::from([127, 0, 0, 1]),
        }
    }

    fn turn(kind: TurnKind, op: ServiceOp, text: &str, session: u8) -> UssdTurn {
        UssdTurn {
            dialogue: format!("smsc:test|84987000111|{session}"),
            kind,
            op,
            text: text.to_owned(),
            ret: UssdReturn {
                channel: "smsc:test".into(),
                citizen: Address::new("84987000111", 1, 1),
                service: Address::new("8058", 0, 0),
                session_info: Some(SessionInfo {
                    session,
                    sequence: 0,
                    end: false,
                }),
                data_sm: false,
                service_type: "USSD".into(),
            },
        }
    }

    #[tokio::test]
    async fn a_slow_lookup_is_answered_try_again_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let settings = UssdSettings {
            answer_within_ms: 200,
            ..UssdSettings::default()
        };
        let service = service(Duration::from_secs(30), settings, &dir).await;
        let answer = service
            .http_turn(http("slow-1", "0987000111", DIGITS))
            .await;
        assert!(answer.end);
        assert!(
            answer.text.starts_with("He thong dang ban"),
            "{}",
            answer.text
        );
        assert_eq!(service.metrics().turns("http", Screen::Slow), 1);
        assert_eq!(service.metrics().slow.get(), 1);
        // The menu needs no lookup: it is not slowed down.
        let menu = service.http_turn(http("slow-2", "0987000112", "")).await;
        assert!(!menu.end, "{}", menu.text);
    }

    #[tokio::test]
    async fn smpp_turns_walk_the_menu_and_a_release_forgets_the_dialogue() {
        let dir = tempfile::tempdir().unwrap();
        let service = service(Duration::ZERO, UssdSettings::default(), &dir).await;
        let open = turn(TurnKind::Open, ServiceOp::PssrIndication, "*8058#", 7);
        let menu = service.smpp_turn(open).await.unwrap();
        assert!(
            !menu.end && menu.text.starts_with("Tra cuu ho so"),
            "{}",
            menu.text
        );
        let ask = service
            .smpp_turn(turn(TurnKind::Continue, ServiceOp::UssrConfirm, "1", 7))
            .await
            .unwrap();
        assert!(!ask.end && ask.text.starts_with("Nhap"), "{}", ask.text);
        let status = service
            .smpp_turn(turn(TurnKind::Continue, ServiceOp::UssrConfirm, DIGITS, 7))
            .await
            .unwrap();
        assert!(status.end, "{}", status.text);
        assert!(
            status.text.starts_with(&format!("HS {CODE}")),
            "{}",
            status.text
        );
        assert_eq!(service.open_dialogues(), 0);

        // Another session number is another dialogue; a release ends it.
        service
            .smpp_turn(turn(TurnKind::Open, ServiceOp::PssrIndication, "*8058#", 8))
            .await
            .unwrap();
        assert_eq!(service.open_dialogues(), 1);
        let released = service
            .smpp_turn(turn(TurnKind::Release, ServiceOp::UssrConfirm, "", 8))
            .await;
        assert_eq!(released, None);
        assert_eq!(service.open_dialogues(), 0);
        // Input for a dialogue that is gone: closed with the "ended" screen.
        let late = service
            .smpp_turn(turn(TurnKind::Continue, ServiceOp::UssrConfirm, "1", 8))
            .await
            .unwrap();
        assert!(
            late.end && late.text.starts_with("Het thoi gian"),
            "{}",
            late.text
        );
        // A direct dial over SMPP, and a dial for another service code.
        let direct = service
            .smpp_turn(turn(
                TurnKind::Open,
                ServiceOp::PssrIndication,
                &format!("*8058*{DIGITS}#"),
                9,
            ))
            .await
            .unwrap();
        assert!(
            direct.end && direct.text.starts_with("HS "),
            "{}",
            direct.text
        );
        let other = service
            .smpp_turn(turn(TurnKind::Open, ServiceOp::PssrIndication, "*101#", 10))
            .await
            .unwrap();
        assert!(
            other.end && other.text.starts_with("Bam *8058*"),
            "{}",
            other.text
        );
    }

    #[tokio::test]
    async fn an_abandoned_smpp_dialogue_is_released_with_the_ended_screen() {
        let dir = tempfile::tempdir().unwrap();
        let settings = UssdSettings {
            session_timeout_secs: 1,
            ..UssdSettings::default()
        };
        let released = Arc::new(Mutex::new(Vec::new()));
        let sink = released.clone();
        let service = Arc::new(service(Duration::ZERO, settings, &dir).await.with_releaser(
            Arc::new(move |ret, answer| {
                sink.lock().unwrap().push((ret, answer));
            }),
        ));
        service
            .smpp_turn(turn(TurnKind::Open, ServiceOp::PssrIndication, "*8058#", 3))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(service.clone().run(stop.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while released.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "never released");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        sweeper.await.unwrap();
        let released = released.lock().unwrap();
        let (ret, answer) = &released[0];
        assert_eq!(ret.session_info.map(|s| s.session), Some(3));
        assert!(
            answer.end && answer.text.starts_with("Het thoi gian"),
            "{}",
            answer.text
        );
        assert_eq!(service.open_dialogues(), 0);
        assert_eq!(service.metrics().expired(), 1);
    }

    #[test]
    fn transcripts_are_bounded() {
        let long: Vec<String> = (0..20).map(|n| "9".repeat(n * 10)).collect();
        let text = transcript_text(&long);
        assert!(text.ends_with(" > …"), "{text}");
        assert!(text.split(" > ").all(|part| part.chars().count() <= 64));
    }
}
