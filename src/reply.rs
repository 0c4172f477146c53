//! Reply texts from admin-editable templates (minijinja, one file per reply
//! kind in `templates/`). Templates are compiled and test-rendered against
//! sample dossiers when loaded, so a broken template is refused at start-up
//! instead of reaching citizens. The renderer picks the encoding (GSM-7 when
//! unaccented, UCS-2 otherwise), counts segments, and shortens the procedure
//! name until the reply fits its segment budget.
//!
//! Texts edited in the admin console (`admin::templates`) take the place of
//! files through [`Renderer::load_with_overrides`], and must also fit their
//! budgets for every sample dossier ([`Renderer::check_budget`]); start-up
//! does not refuse a file over its budget.
//!
//! Every render is bounded ([`render_bounded`]): at most [`RENDER_FUEL`]
//! template instructions (minijinja's fuel) and [`MAX_RENDERED_BYTES`] of
//! text, so that loops in an edited template cannot hold a thread for
//! minutes or fill memory. A template is accepted (at start, on save and
//! activation in the console, on SIGHUP) only when each sample dossier takes
//! at most [`CHECK_FUEL`], a fifth of what a reply may take: real dossiers,
//! with longer names and procedures than the samples, keep room.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::sms_text::{self, Encoding, SegmentInfo};

/// The kinds of reply the gateway sends, one template each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// The dossier was found: its status.
    Found,
    /// A well-formed code that the read model does not know.
    NotFound,
    /// No code in the message: how to use the service.
    Help,
    /// Something shaped like a code but with a date that cannot exist.
    InvalidDate,
    /// The read model could not be queried.
    Unavailable,
    /// The one notice to a sender over the rate limit.
    RateLimited,
}

impl ReplyKind {
    /// Every kind, for loading and checking.
    pub const ALL: [ReplyKind; 6] = [
        ReplyKind::Found,
        ReplyKind::NotFound,
        ReplyKind::Help,
        ReplyKind::InvalidDate,
        ReplyKind::Unavailable,
        ReplyKind::RateLimited,
    ];

    /// The template file for this kind.
    pub fn template_name(self) -> &'static str {
        match self {
            ReplyKind::Found => "found.j2",
            ReplyKind::NotFound => "not_found.j2",
            ReplyKind::Help => "help.j2",
            ReplyKind::InvalidDate => "invalid_date.j2",
            ReplyKind::Unavailable => "unavailable.j2",
            ReplyKind::RateLimited => "too_many.j2",
        }
    }

    /// Short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Found => "found",
            ReplyKind::NotFound => "not_found",
            ReplyKind::Help => "help",
            ReplyKind::InvalidDate => "invalid_date",
            ReplyKind::Unavailable => "unavailable",
            ReplyKind::RateLimited => "rate_limited",
        }
    }

    /// The kind named `name`, as [`ReplyKind::as_str`] spells it (`found`,
    /// `not_found`, `help`, `invalid_date`, `unavailable`, `rate_limited`).
    pub fn parse(name: &str) -> Option<Self> {
        ReplyKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    fn embedded_source(self) -> &'static str {
        match self {
            ReplyKind::Found => include_str!("../templates/found.j2"),
            ReplyKind::NotFound => include_str!("../templates/not_found.j2"),
            ReplyKind::Help => include_str!("../templates/help.j2"),
            ReplyKind::InvalidDate => include_str!("../templates/invalid_date.j2"),
            ReplyKind::Unavailable => include_str!("../templates/unavailable.j2"),
            ReplyKind::RateLimited => include_str!("../templates/too_many.j2"),
        }
    }
}

/// Everything a template may use. Fields that do not apply are `none`, so a
/// misspelt variable is an error rather than an empty string.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplyContext {
    /// The dossier code, canonical (found / not found).
    pub code: Option<String>,
    /// The text that looked like a code (invalid date).
    pub typed_code: Option<String>,
    /// The procedure's name, shortened by the renderer when the reply is too long.
    pub procedure: Option<String>,
    /// The processing agency.
    pub agency: Option<String>,
    /// The status label (Vietnamese).
    pub status: Option<String>,
    /// The status code 1–10.
    pub status_code: Option<u8>,
    /// Appointment date, `dd/mm/yyyy`.
    pub appointment: Option<String>,
    /// Reception date, `dd/mm/yyyy`.
    pub received: Option<String>,
    /// Finish date, `dd/mm/yyyy`.
    pub finished: Option<String>,
    /// "đúng hạn", "còn hạn", "trễ hạn", or none.
    pub timeliness: Option<String>,
    /// The applicant's name: set only when the sender is the dossier's own number.
    pub owner_name: Option<String>,
    /// Set only while the read model is stale (the core unreachable past
    /// `sync.stale_after_secs`): when its data was last known current,
    /// `HH:MM dd/mm` local time.
    pub data_as_of: Option<String>,
    /// When a rate-limited sender may ask again, `HH:MM` local time.
    pub retry_at: Option<String>,
    /// The short number citizens text.
    pub service_number: String,
    /// The agency's hotline, if configured.
    pub hotline: Option<String>,
    /// True when replies keep Vietnamese diacritics.
    pub accents: bool,
}

impl ReplyContext {
    /// The variables a template may use: the fields above, by name.
    pub const FIELDS: [&'static str; 16] = [
        "code",
        "typed_code",
        "procedure",
        "agency",
        "status",
        "status_code",
        "appointment",
        "received",
        "finished",
        "timeliness",
        "owner_name",
        "data_as_of",
        "retry_at",
        "service_number",
        "hotline",
        "accents",
    ];
}

/// How replies are written.
#[derive(Debug, Clone)]
pub struct ReplySettings {
    /// Keep Vietnamese diacritics (UCS-2) or fold them away (GSM-7).
    pub accents: bool,
    /// Segment budget for a GSM-7 reply.
    pub max_segments_gsm7: usize,
    /// Segment budget for a UCS-2 reply.
    pub max_segments_ucs2: usize,
    /// The short number citizens text.
    pub service_number: String,
    /// The agency's hotline, if any.
    pub hotline: Option<String>,
}

impl Default for ReplySettings {
    fn default() -> Self {
        ReplySettings {
            accents: true,
            max_segments_gsm7: 1,
            max_segments_ucs2: 2,
            service_number: "8058".to_owned(),
            hotline: None,
        }
    }
}

/// A reply ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedReply {
    /// Which template produced it.
    pub kind: ReplyKind,
    /// The text as the citizen will read it.
    pub text: String,
    /// Its encoding and segment count.
    pub info: SegmentInfo,
    /// Where the applicant's name stands in `text` (character offsets, end
    /// exclusive), as it was rendered (perhaps cut to its last words,
    /// unaccented); empty when the reply names nobody. Recorded with the
    /// reply so that the console masks what the reply carried.
    pub name_spans: Vec<(usize, usize)>,
}

/// A template that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template file exists but cannot be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Syntax error or unknown variable, found when compiling or test-rendering.
    #[error("template {name} is invalid: {detail}")]
    Invalid {
        /// Template file name.
        name: &'static str,
        /// The line at fault, when known.
        line: Option<usize>,
        /// minijinja's message, with the line.
        detail: String,
    },
    /// A sample dossier renders past the segment budget even with the
    /// procedure name shortened (checked for texts edited in the admin
    /// console, see [`Renderer::check_budget`]; never at start-up).
    #[error(
        "template {name} needs {segments} {encoding} segments for the sample dossier `{sample}`, \
         over its budget of {budget} even with the procedure name shortened: shorten the text"
    )]
    OverBudget {
        /// Template file name.
        name: &'static str,
        /// The sample's id (see [`Renderer::named_samples`]).
        sample: String,
        /// `GSM-7` or `UCS-2`.
        encoding: &'static str,
        /// Segments the reply needs.
        segments: usize,
        /// Segments allowed for that encoding.
        budget: usize,
    },
}

impl TemplateError {
    /// A template that minijinja refused, with the line it names.
    pub(crate) fn invalid(name: &'static str, error: &minijinja::Error) -> Self {
        TemplateError::Invalid {
            name,
            line: error.line(),
            detail: describe(error),
        }
    }

    /// The template line at fault, when known (a syntax error or an unknown variable).
    pub fn line(&self) -> Option<usize> {
        match self {
            TemplateError::Invalid { line, .. } => *line,
            _ => None,
        }
    }
}

/// A template text that replaces the file or built-in one (a version saved
/// in the admin console, or a candidate being previewed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOverride {
    /// The reply kind it replaces.
    pub kind: ReplyKind,
    /// The minijinja text.
    pub source: String,
    /// What [`Renderer::sources`] says for it, e.g. `version 7`.
    pub origin: String,
}

/// Template instructions one render may execute (minijinja's fuel); past
/// it the render fails ("runs too long").
pub const RENDER_FUEL: u64 = 100_000;

/// Template instructions a template may use for one sample dossier to be
/// accepted (a fifth of [`RENDER_FUEL`]; the built-in ones use a few hundred).
pub const CHECK_FUEL: u64 = RENDER_FUEL / 5;

/// Longest text one render may write (bytes of UTF-8), before the reply is
/// fitted to its segments; past it the render fails.
pub const MAX_RENDERED_BYTES: usize = 8 * 1024;

/// A template environment as every channel's templates use it: unknown
/// variables are errors, block tags leave no blank lines, and every render
/// runs on at most [`RENDER_FUEL`].
pub(crate) fn template_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(RENDER_FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env
}

/// Adds template `name` to `env`: the file `dir/name` when it exists, else
/// `embedded` (the built-in default). Returns where it came from.
pub(crate) fn add_template(
    env: &mut Environment<'static>,
    dir: Option<&Path>,
    name: &'static str,
    embedded: &'static str,
) -> Result<String, TemplateError> {
    let path = dir.map(|d| d.join(name)).filter(|p| p.exists());
    let (source, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(&p).map_err(|source| TemplateError::Read {
                path: p.clone(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (embedded.to_owned(), "built-in".to_owned()),
    };
    env.add_template_owned(name, source)
        .map_err(|e| TemplateError::invalid(name, &e))?;
    Ok(origin)
}

/// The text `template` renders for `ctx`, and the fuel it took, within
/// [`RENDER_FUEL`] (the environment's) and [`MAX_RENDERED_BYTES`].
///
/// # Errors
///
/// minijinja's; [`minijinja::ErrorKind::OutOfFuel`] for a render that runs
/// too long, [`minijinja::ErrorKind::InvalidOperation`] for a text too long.
pub(crate) fn render_bounded<S: Serialize>(
    template: &minijinja::Template<'_, '_>,
    ctx: S,
) -> Result<(String, u64), minijinja::Error> {
    let mut out = CappedText::default();
    let rendered = template.render_captured_to(ctx, &mut out);
    if out.over {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("the text is longer than {MAX_RENDERED_BYTES} bytes"),
        ));
    }
    let consumed = rendered?
        .state()
        .fuel_levels()
        .map_or(0, |(consumed, _)| consumed);
    let text = String::from_utf8(out.bytes).map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "the template wrote text that is not UTF-8",
        )
    })?;
    Ok((text, consumed))
}

/// A render's output, refused past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct CappedText {
    bytes: Vec<u8>,
    over: bool,
}

impl std::io::Write for CappedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A template that took `consumed` fuel for sample `sample`, refused when
/// over [`CHECK_FUEL`].
pub(crate) fn check_fuel(
    name: &'static str,
    sample: &str,
    consumed: u64,
) -> Result<(), TemplateError> {
    if consumed <= CHECK_FUEL {
        return Ok(());
    }
    Err(TemplateError::Invalid {
        name,
        line: None,
        detail: format!(
            "rendering the sample dossier `{sample}` takes {consumed} steps, more than the \
             {CHECK_FUEL} a template may take: simplify its loops"
        ),
    })
}

/// minijinja's message, with the line when it knows it.
pub(crate) fn describe(err: &minijinja::Error) -> String {
    if err.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "the template runs too long (more than {RENDER_FUEL} steps{}): simplify its loops",
            err.line()
                .map_or(String::new(), |line| format!(", line {line}"))
        );
    }
    let mut detail = err.to_string();
    if let Some(line) = err.line() {
        if !detail.contains("line") {
            detail.push_str(&format!(" (line {line})"));
        }
    }
    detail
}

/// Renders replies from a checked set of templates.
#[derive(Clone)]
pub struct Renderer {
    env: Environment<'static>,
    settings: ReplySettings,
    /// Where each template came from, for the start-up log.
    sources: Vec<(ReplyKind, String)>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("settings", &self.settings)
            .field("sources", &self.sources)
            .finish()
    }
}

impl Renderer {
    /// Loads the templates: a file `dir/<kind>.j2` overrides the default
    /// built into the binary; a missing `dir` means all built-in defaults.
    /// Every template is compiled and rendered against sample data first.
    ///
    /// # Errors
    ///
    /// The first template that cannot be read, compiled or rendered.
    pub fn load(dir: Option<&Path>, settings: ReplySettings) -> Result<Self, TemplateError> {
        Self::load_with_overrides(dir, &[], settings)
    }

    /// As [`Renderer::load`], with `overrides` in place of the file or
    /// built-in text of their kinds (the last one wins for a kind). An
    /// override must also use only the reply variables, even in branches
    /// the samples do not reach. Segment budgets are not checked here: see
    /// [`Renderer::check_budget`].
    ///
    /// # Errors
    ///
    /// The first template that cannot be read, compiled or rendered, or an
    /// override using a variable the replies do not have.
    pub fn load_with_overrides(
        dir: Option<&Path>,
        overrides: &[TemplateOverride],
        settings: ReplySettings,
    ) -> Result<Self, TemplateError> {
        let mut env = template_environment();
        let mut sources = Vec::new();
        for kind in ReplyKind::ALL {
            let name = kind.template_name();
            let origin = match overrides.iter().rev().find(|o| o.kind == kind) {
                Some(replacement) => {
                    env.add_template_owned(name, replacement.source.clone())
                        .map_err(|e| TemplateError::invalid(name, &e))?;
                    replacement.origin.clone()
                }
                None => add_template(&mut env, dir, name, kind.embedded_source())?,
            };
            sources.push((kind, origin));
        }
        let renderer = Renderer {
            env,
            settings,
            sources,
        };
        for replacement in overrides {
            renderer.refuse_unknown_variables(replacement.kind)?;
        }
        renderer.check()?;
        Ok(renderer)
    }

    /// Where each template was loaded from: `built-in`, a file's path, or an
    /// override's origin (`version 7`).
    pub fn sources(&self) -> &[(ReplyKind, String)] {
        &self.sources
    }

    /// Where `kind`'s template was loaded from (see [`Renderer::sources`]).
    pub fn origin(&self, kind: ReplyKind) -> &str {
        self.sources
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or("built-in", |(_, origin)| origin.as_str())
    }

    /// The text of `kind`'s template in this set.
    pub fn source(&self, kind: ReplyKind) -> String {
        self.env
            .get_template(kind.template_name())
            .map(|template| template.source().to_owned())
            .unwrap_or_default()
    }

    /// The settings in force.
    pub fn settings(&self) -> &ReplySettings {
        &self.settings
    }

    /// A context with the service-wide fields filled in.
    pub fn base_context(&self) -> ReplyContext {
        ReplyContext {
            service_number: self.settings.service_number.clone(),
            hotline: self.settings.hotline.clone(),
            accents: self.settings.accents,
            ..ReplyContext::default()
        }
    }

    /// Renders every template against sample data, so that syntax errors and
    /// unknown variables surface now.
    fn check(&self) -> Result<(), TemplateError> {
        for kind in ReplyKind::ALL {
            for (sample, _, ctx) in self.named_samples() {
                let (_, consumed) = self
                    .render_measured(kind, &ctx)
                    .map_err(|e| self.render_error(kind, &e))?;
                check_fuel(kind.template_name(), sample, consumed)?;
            }
        }
        Ok(())
    }

    /// Checks that every sample dossier's reply from `kind`, rendered as a
    /// citizen would get it (the procedure shortened when too long), fits
    /// the segment budget of its encoding (one segment more while the data
    /// is stale, see [`Renderer::budget_for`]).
    ///
    /// # Errors
    ///
    /// [`TemplateError::OverBudget`] for the first sample that does not
    /// fit; [`TemplateError::Invalid`] if a sample cannot be rendered.
    pub fn check_budget(&self, kind: ReplyKind) -> Result<(), TemplateError> {
        for (sample, _, ctx) in self.named_samples() {
            let reply = self
                .render(kind, &ctx)
                .map_err(|e| self.render_error(kind, &e))?;
            let budget = self.budget_for(&ctx, reply.info.encoding);
            if reply.info.segments > budget {
                return Err(TemplateError::OverBudget {
                    name: kind.template_name(),
                    sample: sample.to_owned(),
                    encoding: reply.info.encoding.name(),
                    segments: reply.info.segments,
                    budget,
                });
            }
        }
        Ok(())
    }

    /// A render failure as a [`TemplateError`]: an undefined value is
    /// reported as the unknown variable(s) behind it when they can be named.
    fn render_error(&self, kind: ReplyKind, error: &minijinja::Error) -> TemplateError {
        if error.kind() == minijinja::ErrorKind::UndefinedError {
            if let Err(unknown) = self.refuse_unknown_variables(kind) {
                return unknown;
            }
        }
        TemplateError::invalid(kind.template_name(), error)
    }

    /// Refuses a template that uses a name which is neither a reply variable
    /// ([`ReplyContext::FIELDS`]) nor a template global (`range`, …),
    /// wherever it stands, naming each with the first line it appears on.
    fn refuse_unknown_variables(&self, kind: ReplyKind) -> Result<(), TemplateError> {
        let name = kind.template_name();
        let Ok(template) = self.env.get_template(name) else {
            return Ok(());
        };
        let mut unknown: Vec<(Option<usize>, String)> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|var| {
                !ReplyContext::FIELDS.contains(&var.as_str())
                    && !self.env.globals().any(|(global, _)| global == var)
            })
            .map(|var| (first_line_with(template.source(), &var), var))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        let listed: Vec<String> = unknown
            .iter()
            .map(|(line, var)| match line {
                Some(line) => format!("`{var}` (line {line})"),
                None => format!("`{var}`"),
            })
            .collect();
        let plural = if unknown.len() > 1 { "s" } else { "" };
        Err(TemplateError::Invalid {
            name,
            line: unknown[0].0,
            detail: format!(
                "unknown variable{plural} {}; the replies have: {}",
                listed.join(", "),
                ReplyContext::FIELDS.join(", ")
            ),
        })
    }

    /// Sample contexts covering the optional fields both set and unset
    /// (those of [`Renderer::named_samples`]).
    pub fn sample_contexts(&self) -> Vec<ReplyContext> {
        self.named_samples()
            .into_iter()
            .map(|(_, _, ctx)| ctx)
            .collect()
    }

    /// The sample dossiers every template is rendered against, each with a
    /// stable id and a label for the admin console: `owner` (found, asked
    /// from the applicant's own number), `stranger` (found, from another
    /// number), `stale` (found while the read model is stale), `sparse` (a
    /// new dossier with few fields), `none` (no dossier: only the
    /// service-wide fields).
    pub fn named_samples(&self) -> Vec<(&'static str, &'static str, ReplyContext)> {
        let base = self.base_context();
        let owner = ReplyContext {
            code: Some("000.00.12.H58-240315-0007".into()),
            typed_code: Some("000.00.12.H58-240231-0007".into()),
            procedure: Some("Cấp giấy phép xây dựng nhà ở riêng lẻ".into()),
            agency: Some("UBND huyện Cái Bè".into()),
            status: Some("Đang xử lý".into()),
            status_code: Some(4),
            appointment: Some("29/03/2024".into()),
            received: Some("15/03/2024".into()),
            finished: Some("28/03/2024".into()),
            timeliness: Some("còn hạn".into()),
            owner_name: Some("Nguyễn Văn An".into()),
            retry_at: Some("14:35".into()),
            ..base.clone()
        };
        let stranger = ReplyContext {
            owner_name: None,
            ..owner.clone()
        };
        // The read model stale: the "last updated" branch rendered too.
        let stale = ReplyContext {
            data_as_of: Some("14:05 27/11".into()),
            ..owner.clone()
        };
        let sparse = ReplyContext {
            code: Some("000.00.12.H58-240315-0007".into()),
            status: Some("Mới đăng ký".into()),
            status_code: Some(1),
            ..base.clone()
        };
        vec![
            (
                "owner",
                "found, asked from the applicant's own number",
                owner,
            ),
            ("stranger", "found, asked from another number", stranger),
            ("stale", "found while the data is not current", stale),
            ("sparse", "a new dossier with few details", sparse),
            ("none", "no dossier: only the service-wide details", base),
        ]
    }

    fn render_raw(&self, kind: ReplyKind, ctx: &ReplyContext) -> Result<String, minijinja::Error> {
        self.render_measured(kind, ctx).map(|(text, _)| text)
    }

    /// [`Renderer::render_raw`], and the fuel it took.
    fn render_measured(
        &self,
        kind: ReplyKind,
        ctx: &ReplyContext,
    ) -> Result<(String, u64), minijinja::Error> {
        let template = self.env.get_template(kind.template_name())?;
        let (text, consumed) = render_bounded(&template, ctx)?;
        let text = text.trim();
        let text = if self.settings.accents {
            text.to_owned()
        } else {
            sms_text::to_gsm7_lossy(text)
        };
        Ok((text, consumed))
    }

    /// The segment budget for a reply in `encoding`.
    pub fn budget(&self, encoding: Encoding) -> usize {
        match encoding {
            Encoding::Gsm7 => self.settings.max_segments_gsm7,
            Encoding::Ucs2 => self.settings.max_segments_ucs2,
        }
    }

    /// The segment budget an edited template must keep for a reply to
    /// `ctx` in `encoding`: [`Renderer::budget`], and
    /// [`STALE_EXTRA_SEGMENTS`] more while the data is stale (the "last
    /// updated" label matters more than one segment).
    pub fn budget_for(&self, ctx: &ReplyContext, encoding: Encoding) -> usize {
        let extra = if ctx.data_as_of.is_some() {
            STALE_EXTRA_SEGMENTS
        } else {
            0
        };
        self.budget(encoding) + extra
    }

    /// Renders a reply. When it exceeds its segment budget, the procedure name
    /// is shortened word by word, then the applicant's name is cut to its
    /// last two words (how Vietnamese people are addressed), then the
    /// procedure is left out; if even that does not fit, the longer text is sent.
    pub fn render(
        &self,
        kind: ReplyKind,
        ctx: &ReplyContext,
    ) -> Result<RenderedReply, minijinja::Error> {
        let mut ctx = ctx.clone();
        let mut text = self.render_raw(kind, &ctx)?;
        let mut info = sms_text::segment_info(&text);
        let fits = |info: &SegmentInfo| info.segments <= self.budget(info.encoding);
        if let Some(full) = ctx.procedure.clone() {
            let mut limit = full.chars().count();
            while !fits(&info) && limit > MIN_PROCEDURE_CHARS {
                limit = limit.saturating_sub(4).max(MIN_PROCEDURE_CHARS);
                ctx.procedure = Some(shorten(&full, limit));
                text = self.render_raw(kind, &ctx)?;
                info = sms_text::segment_info(&text);
            }
        }
        if !fits(&info) {
            if let Some(name) = ctx.owner_name.take() {
                ctx.owner_name = Some(last_words(&name, 2));
                text = self.render_raw(kind, &ctx)?;
                info = sms_text::segment_info(&text);
            }
        }
        if !fits(&info) && ctx.procedure.is_some() {
            ctx.procedure = None;
            text = self.render_raw(kind, &ctx)?;
            info = sms_text::segment_info(&text);
        }
        let name_spans = ctx
            .owner_name
            .as_deref()
            .map(|name| crate::domain::vietnamese::find_name(&text, name))
            .unwrap_or_default();
        Ok(RenderedReply {
            kind,
            text,
            info,
            name_spans,
        })
    }
}

/// The first line (1-based) where `word` stands as a whole identifier.
fn first_line_with(source: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    source
        .lines()
        .position(|line| {
            line.match_indices(word).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + word.len()..].chars().next();
                !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
            })
        })
        .map(|index| index + 1)
}

/// Segments a reply may take beyond its budget while the read model is
/// stale, to carry the "last updated" label.
pub const STALE_EXTRA_SEGMENTS: usize = 1;

/// The procedure name is never shortened below this many characters.
const MIN_PROCEDURE_CHARS: usize = 12;

/// The last `n` words of a name ("Nguyễn Thị Ngọc Phương Thảo" → "Phương Thảo").
fn last_words(name: &str, n: usize) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    words[words.len().saturating_sub(n)..].join(" ")
}

/// Shortens `text` to at most `max_chars` characters, cutting at a word
/// boundary when one is near and marking the cut with an ellipsis.
pub fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let keep = max_chars.saturating_sub(1);
    let head: String = text.chars().take(keep).collect();
    let cut = match head.rfind(' ') {
        Some(space) if head[..space].chars().count() * 3 >= keep * 2 => &head[..space],
        _ => head.as_str(),
    };
    format!("{}…", cut.trim_end_matches([' ', ',', '-', '(']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer(accents: bool) -> Renderer {
        Renderer::load(
            None,
            ReplySettings {
                accents,
                hotline: Some("0273 3 888 999".into()),
                ..ReplySettings::default()
            },
        )
        .unwrap()
    }

    /// The longest realistic values, to check the segment budgets.
    fn worst_case(r: &Renderer) -> ReplyContext {
        ReplyContext {
            code: Some("000.A0.01.H26-210212-9090".into()),
            typed_code: Some("000.A0.01.H26-210230-9090".into()),
            procedure: Some(
                "Thủ tục cấp Giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở và tài sản khác gắn liền với đất lần đầu".into(),
            ),
            agency: Some("Văn phòng đăng ký đất đai tỉnh Đồng Tháp - Chi nhánh huyện Cái Bè".into()),
            status: Some("Yêu cầu thực hiện nghĩa vụ tài chính".into()),
            status_code: Some(6),
            appointment: Some("29/03/2024".into()),
            received: Some("15/03/2024".into()),
            finished: None,
            timeliness: Some("trễ hạn".into()),
            owner_name: Some("Nguyễn Thị Ngọc Phương Thảo".into()),
            ..r.base_context()
        }
    }

    #[test]
    fn default_templates_fit_their_budgets() {
        for accents in [true, false] {
            let r = renderer(accents);
            for kind in ReplyKind::ALL {
                for ctx in [worst_case(&r), r.sample_contexts().remove(0)] {
                    let reply = r.render(kind, &ctx).unwrap();
                    let expected = if accents {
                        (Encoding::Ucs2, 2)
                    } else {
                        (Encoding::Gsm7, 1)
                    };
                    assert_eq!(
                        reply.info.encoding, expected.0,
                        "{kind:?} accents={accents}: {}",
                        reply.text
                    );
                    assert!(
                        reply.info.segments <= expected.1,
                        "{kind:?} accents={accents} needs {} segments: {}",
                        reply.info.segments,
                        reply.text
                    );
                }
            }
        }
    }

    #[test]
    fn the_stale_label_costs_at_most_one_segment_more() {
        for accents in [true, false] {
            let r = renderer(accents);
            let budget = if accents { 2 } else { 1 };
            for kind in [ReplyKind::Found, ReplyKind::NotFound] {
                let ctx = ReplyContext {
                    data_as_of: Some("23:59 31/12".into()),
                    ..worst_case(&r)
                };
                let reply = r.render(kind, &ctx).unwrap();
                assert!(
                    reply.info.segments <= budget + 1,
                    "{kind:?} accents={accents} needs {} segments: {}",
                    reply.info.segments,
                    reply.text
                );
                let label = if accents {
                    "cập nhật lúc 23:59 31/12"
                } else {
                    "cap nhat luc 23:59 31/12"
                };
                assert!(reply.text.contains(label), "{}", reply.text);
            }
        }
    }

    #[test]
    fn found_reply_carries_the_required_fields() {
        let r = renderer(true);
        let reply = r.render(ReplyKind::Found, &worst_case(&r)).unwrap();
        assert!(
            reply.text.contains("000.A0.01.H26-210212-9090"),
            "{}",
            reply.text
        );
        assert!(reply.text.contains("Yêu cầu thực hiện nghĩa vụ tài chính"));
        assert!(reply.text.contains("29/03/2024"));
        assert!(reply.text.contains("trễ hạn"));
        assert!(reply.text.contains("Thủ tục cấp"), "{}", reply.text);
        let plain = renderer(false);
        let reply = plain.render(ReplyKind::Found, &worst_case(&plain)).unwrap();
        assert!(
            reply.text.contains("Yeu cau thuc hien nghia vu tai chinh"),
            "{}",
            reply.text
        );
        assert!(reply.text.contains("tre han"));
    }

    #[test]
    fn a_broken_template_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("help.j2"), "Soạn TC\n{{ servce_number }}\n").unwrap();
        let err = Renderer::load(Some(dir.path()), ReplySettings::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("help.j2"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        std::fs::write(dir.path().join("help.j2"), "{% if %}").unwrap();
        assert!(Renderer::load(Some(dir.path()), ReplySettings::default()).is_err());
    }

    /// `help.j2` replaced by `source`: the renderer, or why it is refused.
    fn with_help(source: &str) -> Result<Renderer, TemplateError> {
        Renderer::load_with_overrides(
            None,
            &[TemplateOverride {
                kind: ReplyKind::Help,
                source: source.to_owned(),
                origin: "test".into(),
            }],
            ReplySettings::default(),
        )
    }

    #[test]
    fn nested_loops_run_out_of_fuel_at_once_and_are_refused() {
        let started = std::time::Instant::now();
        let err = with_help(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("help.j2"), "{err}");
        assert!(err.contains("runs too long"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "a bound to detect a hang: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_template_using_more_than_its_check_fuel_or_writing_too_much_is_refused() {
        // Within the fuel of one reply, over what a sample may take.
        let err = with_help("{% for a in range(20000) %}{% endfor %}Soạn TC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("simplify its loops"), "{err}");
        assert!(err.contains(&CHECK_FUEL.to_string()), "{err}");
        let err = with_help("{{ 'x' * 100000 }}").unwrap_err().to_string();
        assert!(
            err.contains(&format!("longer than {MAX_RENDERED_BYTES} bytes")),
            "{err}"
        );
        // A template with a small loop is fine.
        let r =
            with_help("{% for n in range(3) %}{{ n }}{% endfor %} {{ service_number }}").unwrap();
        let reply = r.render(ReplyKind::Help, &r.base_context()).unwrap();
        assert_eq!(reply.text, "012 8058");
    }

    #[test]
    fn the_built_in_templates_take_a_small_part_of_the_check_fuel() {
        for accents in [true, false] {
            let r = renderer(accents);
            for kind in ReplyKind::ALL {
                for ctx in r.sample_contexts() {
                    let (_, consumed) = r.render_measured(kind, &ctx).unwrap();
                    assert!(consumed * 10 < CHECK_FUEL, "{kind:?}: {consumed}");
                }
            }
        }
    }

    /// The text of each of `reply`'s name spans.
    fn spanned(reply: &RenderedReply) -> Vec<String> {
        let chars: Vec<char> = reply.text.chars().collect();
        reply
            .name_spans
            .iter()
            .map(|&(start, end)| chars[start..end].iter().collect())
            .collect()
    }

    #[test]
    fn a_reply_says_where_it_carries_the_applicants_name_as_rendered() {
        for accents in [true, false] {
            let r = renderer(accents);
            let owner = r.named_samples()[0].2.clone();
            let reply = r.render(ReplyKind::Found, &owner).unwrap();
            let named = spanned(&reply);
            let expected = if accents {
                "Nguyễn Văn An"
            } else {
                "Nguyen Van An"
            };
            assert_eq!(named, [expected], "{}", reply.text);
            let stranger = r.named_samples()[1].2.clone();
            assert!(r
                .render(ReplyKind::Found, &stranger)
                .unwrap()
                .name_spans
                .is_empty());
        }
        // A name cut to its last two words to fit: those are found.
        let r = renderer(false);
        let long = ReplyContext {
            owner_name: Some("Nguyễn Thị Ngọc Phương Thảo".into()),
            procedure: Some("Thủ tục ".repeat(40)),
            ..r.named_samples()[0].2.clone()
        };
        let reply = r.render(ReplyKind::Found, &long).unwrap();
        let named = spanned(&reply);
        assert!(
            named == ["Nguyen Thi Ngoc Phuong Thao"] || named == ["Phuong Thao"],
            "{named:?} in {}",
            reply.text
        );
    }

    #[test]
    fn a_file_in_the_folder_overrides_the_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("help.j2"),
            "Gửi TC mã hồ sơ tới {{ service_number }}",
        )
        .unwrap();
        let r = Renderer::load(Some(dir.path()), ReplySettings::default()).unwrap();
        let reply = r.render(ReplyKind::Help, &r.base_context()).unwrap();
        assert_eq!(reply.text, "Gửi TC mã hồ sơ tới 8058");
    }

    #[test]
    fn built_in_templates_pass_the_admin_budget_check() {
        for accents in [true, false] {
            let r = renderer(accents);
            for kind in ReplyKind::ALL {
                r.check_budget(kind)
                    .unwrap_or_else(|e| panic!("accents={accents}: {e}"));
            }
        }
    }

    #[test]
    fn kinds_parse_from_their_names_and_fields_are_the_context() {
        for kind in ReplyKind::ALL {
            assert_eq!(ReplyKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ReplyKind::parse("found.j2"), None);
        let serialized = serde_json::to_value(ReplyContext::default()).unwrap();
        let keys: Vec<&str> = serialized
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = ReplyContext::FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }

    #[test]
    fn an_override_replaces_the_file_and_says_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("help.j2"),
            "From the file {{ service_number }}",
        )
        .unwrap();
        let overrides = [TemplateOverride {
            kind: ReplyKind::Help,
            source: "Version {{ service_number }}".into(),
            origin: "version 3".into(),
        }];
        let r =
            Renderer::load_with_overrides(Some(dir.path()), &overrides, ReplySettings::default())
                .unwrap();
        let reply = r.render(ReplyKind::Help, &r.base_context()).unwrap();
        assert_eq!(reply.text, "Version 8058");
        assert_eq!(r.origin(ReplyKind::Help), "version 3");
        assert_eq!(r.source(ReplyKind::Help), "Version {{ service_number }}");
        assert_eq!(r.origin(ReplyKind::Found), "built-in");
        // An override may not use an unknown name even where no sample goes;
        // a file may (start-up behaviour unchanged).
        let hidden = "{% if status_code == 99 %}{{ nope }}{% endif %}ok";
        let err = Renderer::load_with_overrides(
            None,
            &[TemplateOverride {
                kind: ReplyKind::Found,
                source: hidden.into(),
                origin: "version 4".into(),
            }],
            ReplySettings::default(),
        )
        .unwrap_err();
        assert_eq!(err.line(), Some(1), "{err}");
        assert!(err.to_string().contains("`nope`"), "{err}");
        std::fs::write(dir.path().join("found.j2"), hidden).unwrap();
        assert!(Renderer::load(Some(dir.path()), ReplySettings::default()).is_ok());
    }

    #[test]
    fn shorten_cuts_at_words() {
        assert_eq!(
            shorten("Cấp giấy phép xây dựng", 40),
            "Cấp giấy phép xây dựng"
        );
        assert_eq!(
            shorten("Cấp giấy phép xây dựng nhà ở", 16),
            "Cấp giấy phép…"
        );
        assert_eq!(shorten("Abcdefghijklmnop", 8), "Abcdefg…");
    }
}
