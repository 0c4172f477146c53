//! The responder: from a citizen's text to the reply text. Parse the code,
//! look it up in the read model, apply the privacy rule, render the template.
//! It knows no protocol, no socket and no database type: only the
//! [`DossierLookup`] trait and the [`Renderer`]. Rate limits slot in here
//! between parsing and lookup.

use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::domain::{Dossier, DossierCode, ExtractError, Msisdn, Timeliness};
use crate::reload::Swappable;
use crate::reply::{RenderedReply, Renderer, ReplyContext, ReplyKind};
use crate::sms_text;
use crate::store::{DossierLookup, Freshness};

use crate::clock::vietnam_now;

/// A source of "now" in local Vietnamese time (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> NaiveDateTime + Send + Sync>;

/// What the responder decided, for logs and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The code found in the message, if any.
    pub code: Option<DossierCode>,
    /// True when the sender is the dossier's own phone number.
    pub sender_is_owner: bool,
    /// The dossier's agency, when it was found.
    pub agency: Option<String>,
    /// The dossier's procedure, when it was found.
    pub procedure: Option<String>,
    /// The reply to send.
    pub reply: RenderedReply,
}

/// A lookup's outcome, ready for any channel's templates.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Found, not found or unavailable.
    pub kind: ReplyKind,
    /// The code answered about: the dossier's when it was found (perhaps a
    /// look-alike of the code asked for), otherwise the code asked for.
    pub code: DossierCode,
    /// The template variables, privacy rule applied.
    pub context: ReplyContext,
    /// True when the sender is the dossier's own phone number.
    pub sender_is_owner: bool,
}

/// Turns a citizen's text into a reply.
pub struct Responder<S> {
    store: S,
    templates: Arc<Swappable<Renderer>>,
    clock: Clock,
    freshness: Arc<Freshness>,
}

impl<S: DossierLookup> Responder<S> {
    /// A responder answering from `store` with `renderer`'s templates.
    pub fn new(store: S, renderer: Arc<Renderer>) -> Self {
        let renderer = Arc::try_unwrap(renderer).unwrap_or_else(|shared| (*shared).clone());
        Self::with_templates(store, Arc::new(Swappable::new(renderer)))
    }

    /// A responder answering from `store` with whatever template set
    /// `templates` holds at each message (replaced on SIGHUP).
    pub fn with_templates(store: S, templates: Arc<Swappable<Renderer>>) -> Self {
        Responder {
            store,
            templates,
            clock: Arc::new(vietnam_now),
            freshness: Arc::new(Freshness::always_fresh()),
        }
    }

    /// Labels lookups with the data's date while `freshness` says it is stale.
    pub fn with_freshness(mut self, freshness: Arc<Freshness>) -> Self {
        self.freshness = freshness;
        self
    }

    /// Replaces the clock (tests, replays).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The reply to `text` sent by `sender`.
    pub async fn respond(&self, sender: &Msisdn, text: &str) -> Response {
        let (kind, mut ctx, code, owner) = match DossierCode::extract(text) {
            Err(ExtractError::NoCode) => (
                ReplyKind::Help,
                self.templates.current().base_context(),
                None,
                false,
            ),
            Err(ExtractError::ImpossibleDate { found }) => {
                let mut ctx = self.templates.current().base_context();
                ctx.typed_code = Some(found);
                (ReplyKind::InvalidDate, ctx, None, false)
            }
            Ok(code) => {
                let lookup = self.lookup(Some(sender), &code).await;
                (
                    lookup.kind,
                    lookup.context,
                    Some(lookup.code),
                    lookup.sender_is_owner,
                )
            }
        };
        let reply = self.render(kind, &ctx);
        Response {
            code,
            sender_is_owner: owner,
            agency: ctx.agency.take(),
            procedure: ctx.procedure.take(),
            reply,
        }
    }

    /// Looks `code` up for `sender` and fills the template variables, the
    /// privacy rule applied (the applicant's name only for the dossier's own
    /// number; `None`, a web visitor, never sees it); the kind is found, not
    /// found or unavailable. A code not found as typed is looked up as its
    /// look-alikes (`O`↔`0`, `I`/`l`↔`1` in the agency groups, at most
    /// [`crate::domain::dossier_code::MAX_LOOK_ALIKES`] more lookups) before
    /// it is "not found". Any channel's templates can render the context.
    pub async fn lookup(&self, sender: Option<&Msisdn>, code: &DossierCode) -> Lookup {
        let mut ctx = self.templates.current().base_context();
        ctx.code = Some(code.to_string());
        ctx.data_as_of = self.data_as_of();
        let mut answered = code.clone();
        let (kind, owner) = match self.find(code).await {
            Ok(Some(dossier)) => {
                let owner = sender.is_some_and(|sender| dossier.is_owned_by(sender));
                self.fill_found(&mut ctx, &dossier, owner);
                ctx.code = Some(dossier.code.to_string());
                answered = dossier.code;
                (ReplyKind::Found, owner)
            }
            Ok(None) => (ReplyKind::NotFound, false),
            Err(error) => {
                tracing::error!(%error, dossier = %code, "read model lookup failed; answering 'unavailable'");
                (ReplyKind::Unavailable, false)
            }
        };
        Lookup {
            kind,
            code: answered,
            context: ctx,
            sender_is_owner: owner,
        }
    }

    /// The dossier `code` names, or the first of its look-alikes found.
    async fn find(&self, code: &DossierCode) -> Result<Option<Dossier>, crate::store::StoreError> {
        if let Some(dossier) = self.store.find(code).await? {
            return Ok(Some(dossier));
        }
        for alike in code.look_alikes() {
            if let Some(dossier) = self.store.find(&alike).await? {
                tracing::debug!(typed = %code, found = %alike, "dossier found under a look-alike of the code typed");
                return Ok(Some(dossier));
            }
        }
        Ok(None)
    }

    /// The codes of the dossiers whose digits are `digits` (a phone
    /// keypad's input), at most `limit`.
    ///
    /// # Errors
    ///
    /// The read model's, when it cannot be queried.
    pub async fn codes_with_digits(
        &self,
        digits: &str,
        limit: u32,
    ) -> Result<Vec<DossierCode>, crate::store::StoreError> {
        self.store.find_by_digits(digits, limit).await
    }

    /// A context with only the service-wide fields, for other channels' templates.
    pub fn base_context(&self) -> ReplyContext {
        self.templates.current().base_context()
    }

    /// The one notice to a sender over the rate limit: try again after `retry_at` (local time).
    pub fn rate_limited(&self, retry_at: NaiveDateTime) -> Response {
        let mut ctx = self.templates.current().base_context();
        ctx.retry_at = Some(retry_at.format("%H:%M").to_string());
        Response {
            code: None,
            sender_is_owner: false,
            agency: None,
            procedure: None,
            reply: self.render(ReplyKind::RateLimited, &ctx),
        }
    }

    /// When the read model's data dates from, if it is stale now.
    fn data_as_of(&self) -> Option<String> {
        let as_of_ms = self.freshness.stale_as_of(crate::clock::now_ms())?;
        let at = crate::clock::in_vietnam(as_of_ms)?;
        Some(at.format("%H:%M %d/%m").to_string())
    }

    fn fill_found(&self, ctx: &mut ReplyContext, dossier: &Dossier, owner: bool) {
        let date = |t: Option<NaiveDateTime>| t.map(|t| t.format("%d/%m/%Y").to_string());
        let timeliness = dossier.timeliness((self.clock)());
        ctx.procedure = dossier.procedure_name.clone();
        ctx.agency = dossier.agency_name.clone();
        ctx.status = Some(dossier.status.label().to_owned());
        ctx.status_code = Some(dossier.status.code());
        ctx.appointment = date(dossier.appointment_at);
        ctx.received = date(dossier.received_at);
        ctx.finished = date(dossier.finished_at.or(dossier.returned_at));
        ctx.timeliness =
            (timeliness != Timeliness::NotApplicable).then(|| timeliness.label().to_owned());
        // Privacy: the applicant's name goes only to the dossier's own number.
        ctx.owner_name = if owner {
            dossier.owner_name.clone()
        } else {
            None
        };
    }

    /// Renders, falling back to a fixed text should a template fail at run
    /// time (templates are checked at load, so this is a last resort).
    fn render(&self, kind: ReplyKind, ctx: &ReplyContext) -> RenderedReply {
        self.templates.current().render(kind, ctx).unwrap_or_else(|error| {
            tracing::error!(%error, template = kind.template_name(), "template failed at run time; sending the fixed fallback text");
            let text = format!(
                "He thong tra cuu tam gian doan. Vui long thu lai sau. Soan TC <ma ho so> gui {}",
                ctx.service_number
            );
            RenderedReply {
                kind: ReplyKind::Unavailable,
                info: sms_text::segment_info(&text),
                text,
                name_spans: Vec::new(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal_record::PortalRecord;
    use crate::reply::ReplySettings;
    use crate::store::{DossierWriter, SqliteStore};
    use chrono::NaiveDate;

    async fn responder(accents: bool) -> Responder<SqliteStore> {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let record = PortalRecord::from_json(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TenTTHC":"Cấp giấy phép xây dựng",
                "TrangThaiHoSo":4,"NgayHenTra":"20240329170000",
                "SoDienThoai":"0912345678","ChuHoSo":"Nguyễn Văn An"}"#,
        )
        .unwrap();
        store
            .upsert_batch(&[record.into_dossier().unwrap()])
            .await
            .unwrap();
        let renderer = Renderer::load(
            None,
            ReplySettings {
                accents,
                ..ReplySettings::default()
            },
        )
        .unwrap();
        Responder::new(store, Arc::new(renderer)).with_clock(Arc::new(|| {
            NaiveDate::from_ymd_opt(2024, 3, 20)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap()
        }))
    }

    fn msisdn(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    /// A responder whose read model also holds dossiers `codes` (status 4).
    async fn responder_with(codes: &[&str]) -> Responder<SqliteStore> {
        let r = responder(true).await;
        let dossiers: Vec<Dossier> = codes
            .iter()
            .map(|code| {
                PortalRecord::from_json(&format!(r#"{{"MaHoSo":"{code}","TrangThaiHoSo":4}}"#))
                    .unwrap()
                    .into_dossier()
                    .unwrap()
            })
            .collect();
        r.store.upsert_batch(&dossiers).await.unwrap();
        r
    }

    #[tokio::test]
    async fn any_symbol_between_the_groups_is_a_separator() {
        let r = responder(true).await;
        for text in [
            "TC 000§00§12§H58§240315§0007",
            "TC 000·00·12·H58·240315·0007",
            "TC 000+00+12+H58+240315+0007",
            "TC 000#00#12#H58#240315#0007",
            "TC 000*00*12*H58*240315*0007",
            "TC 000~00~12~H58~240315~0007",
        ] {
            let resp = r.respond(&msisdn("0987654321"), text).await;
            assert_eq!(resp.reply.kind, ReplyKind::Found, "{text}");
            assert_eq!(
                resp.code.as_ref().map(DossierCode::as_str),
                Some("000.00.12.H58-240315-0007")
            );
        }
    }

    #[tokio::test]
    async fn a_code_not_found_as_typed_is_found_as_its_look_alike() {
        let r = responder_with(&["000.00.30.H58-240315-0008", "000.0I.01.H26-210212-9090"]).await;
        let sender = msisdn("0987654321");
        for (typed, found) in [
            ("TC 000.00.3O.H58-240315-0008", "000.00.30.H58-240315-0008"),
            ("TC OOO.OO.3O.H58-240315-0008", "000.00.30.H58-240315-0008"),
            ("TC 000.0I.0l.H26-210212-9090", "000.0I.01.H26-210212-9090"),
            ("TC 000.01.01.H26-210212-9090", "000.0I.01.H26-210212-9090"),
            ("TC 000.00.I2.H58-240315-0007", "000.00.12.H58-240315-0007"),
        ] {
            let resp = r.respond(&sender, typed).await;
            assert_eq!(resp.reply.kind, ReplyKind::Found, "{typed}");
            assert_eq!(
                resp.code.as_ref().map(DossierCode::as_str),
                Some(found),
                "{typed}"
            );
            assert!(resp.reply.text.contains(found), "{}", resp.reply.text);
        }
        // No look-alike exists: not found, naming the code as typed.
        let resp = r.respond(&sender, "TC 000.00.3O.H58-240315-0009").await;
        assert_eq!(resp.reply.kind, ReplyKind::NotFound);
        assert_eq!(
            resp.code.as_ref().map(DossierCode::as_str),
            Some("000.00.3O.H58-240315-0009")
        );
    }

    #[tokio::test]
    async fn stranger_gets_the_status_without_the_name() {
        let r = responder(true).await;
        let resp = r
            .respond(&msisdn("0987654321"), "tc 000 00 12 h58 240315 7")
            .await;
        assert_eq!(resp.reply.kind, ReplyKind::Found);
        assert!(!resp.sender_is_owner);
        assert_eq!(resp.procedure.as_deref(), Some("Cấp giấy phép xây dựng"));
        let text = &resp.reply.text;
        assert!(text.contains("000.00.12.H58-240315-0007"), "{text}");
        assert!(text.contains("Đang xử lý"), "{text}");
        assert!(text.contains("29/03/2024"), "{text}");
        assert!(text.contains("còn hạn"), "{text}");
        assert!(!text.contains("Nguyễn"), "{text}");
    }

    #[tokio::test]
    async fn owner_gets_the_name() {
        let r = responder(false).await;
        let resp = r
            .respond(&msisdn("+84912345678"), "TC 000.00.12.H58-240315-0007")
            .await;
        assert!(resp.sender_is_owner);
        assert!(
            resp.reply.text.contains("Nguyen Van An"),
            "{}",
            resp.reply.text
        );
        assert_eq!(resp.reply.info.encoding, sms_text::Encoding::Gsm7);
    }

    #[tokio::test]
    async fn unknown_code_no_code_and_bad_date_each_get_their_reply() {
        let r = responder(true).await;
        let sender = msisdn("0987654321");
        let kind = |text: &'static str| {
            let r = &r;
            let sender = &sender;
            async move { r.respond(sender, text).await.reply.kind }
        };
        assert_eq!(
            kind("TC 000.00.12.H58-240315-0099").await,
            ReplyKind::NotFound
        );
        assert_eq!(kind("xin chào").await, ReplyKind::Help);
        assert_eq!(
            kind("TC 000.00.12.H58-240231-0007").await,
            ReplyKind::InvalidDate
        );
    }

    #[tokio::test]
    async fn stale_data_is_labelled_with_its_date_and_fresh_data_is_not() {
        // 2024-03-20 07:30 UTC is 14:30 in Vietnam.
        let as_of = chrono::NaiveDate::from_ymd_opt(2024, 3, 20)
            .unwrap()
            .and_hms_opt(7, 30, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let freshness = Arc::new(Freshness::new(
            Some(std::time::Duration::from_secs(60)),
            Some(as_of),
        ));
        let r = responder(true).await.with_freshness(freshness.clone());
        let found = r
            .respond(&msisdn("0987000111"), "TC 000.00.12.H58-240315-0007")
            .await;
        assert!(
            found.reply.text.ends_with("(cập nhật lúc 14:30 20/03)"),
            "{}",
            found.reply.text
        );
        let missing = r
            .respond(&msisdn("0987000111"), "TC 000.00.12.H58-240315-0009")
            .await;
        assert!(
            missing.reply.text.contains("cập nhật lúc 14:30 20/03"),
            "{}",
            missing.reply.text
        );
        freshness.mark_ok(crate::clock::now_ms());
        let fresh = r
            .respond(&msisdn("0987000111"), "TC 000.00.12.H58-240315-0007")
            .await;
        assert!(
            !fresh.reply.text.contains("cập nhật"),
            "{}",
            fresh.reply.text
        );
        let help = r.respond(&msisdn("0987000111"), "hello").await;
        assert!(!help.reply.text.contains("cập nhật"));
    }
}
