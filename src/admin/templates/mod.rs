//! Reply template versions for the admin console: list the templates, read
//! one with its saved versions, preview a candidate text against the sample
//! dossiers, save a version, put one in use, roll back. Versions and every
//! change of the text in use are stored in the gateway's state database
//! (`template_versions`, `template_activations`; SQLite or PostgreSQL) and
//! written to the audit log.
//!
//! A bad template never reaches citizens: a text is saved only when it
//! compiles, uses only the reply variables (even in branches no sample
//! reaches) and renders every sample dossier within its segment budget; it
//! is checked again when activated (the settings may have changed since),
//! and the whole set (files, built-ins and the versions in use) must pass
//! before it replaces the one replies use. The SIGHUP reload builds its set
//! through [`TemplateVersions::reload`] so that versions in use survive it.
//!
//! Previews and the checks of save, activation and roll back render an
//! edited text, which anyone logged in may write: they run off the async
//! workers, on blocking threads, at most [`CheckPool::concurrency`] at once,
//! each within [`CHECK_TIME_LIMIT`] (besides the fuel and size every render
//! has, see [`crate::reply::render_bounded`]). A check past the limit is
//! refused (`invalid_template`, nothing changes); one that cannot start
//! within it because others hold the threads is answered `busy`.

mod follow;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admin::accounts::audit_entry;
use crate::clock::now_ms;
use crate::db::StatePool;
use crate::on_state_pool;
use crate::reload::Swappable;
use crate::reply::{
    Renderer, ReplyContext, ReplyKind, ReplySettings, TemplateError, TemplateOverride,
};

/// Why a template request cannot be carried out. [`TemplateAdminError::code`]
/// gives the API's error code for each.
#[derive(Debug, thiserror::Error)]
pub enum TemplateAdminError {
    /// No reply kind has this name.
    #[error(
        "no template {0:?}: the templates are found, not_found, help, invalid_date, \
         unavailable, rate_limited"
    )]
    UnknownTemplate(String),
    /// The text does not compile, or uses a variable the replies do not have.
    #[error("template {name} is invalid: {detail}")]
    Invalid {
        /// Template file name (`found.j2`).
        name: &'static str,
        /// The line at fault, when known.
        line: Option<usize>,
        /// What is wrong, with the line.
        detail: String,
    },
    /// A sample dossier renders past the segment budget even with the
    /// procedure name shortened.
    #[error(
        "template {name} needs {segments} {encoding} segments for the sample dossier \
         `{sample}`, over its budget of {budget}: shorten the text"
    )]
    OverBudget {
        /// Template file name (`found.j2`).
        name: &'static str,
        /// The sample's id (`owner`, `stranger`, `stale`, `sparse`, `none`).
        sample: String,
        /// `GSM-7` or `UCS-2`.
        encoding: &'static str,
        /// Segments the reply needs.
        segments: usize,
        /// Segments allowed for that encoding.
        budget: usize,
    },
    /// No such version, or a version of another template.
    #[error("no version {0} of this template")]
    UnknownVersion(i64),
    /// The template has no earlier text to go back to.
    #[error("template {0} has no earlier text to roll back to")]
    NothingToRollBack(String),
    /// Rendering the sample dossiers took longer than [`CHECK_TIME_LIMIT`].
    #[error(
        "template {name} takes longer than {} ms to render the sample dossiers: simplify it",
        CHECK_TIME_LIMIT.as_millis()
    )]
    TooSlow {
        /// Template file name (`found.j2`).
        name: &'static str,
    },
    /// Other checks held every thread for [`CHECK_TIME_LIMIT`].
    #[error("template checks are busy; try again in a moment")]
    Busy,
    /// The check stopped without an answer (a panic in the renderer).
    #[error("template check failed: {0}")]
    Interrupted(String),
    /// A template file in the templates folder cannot be read.
    #[error(transparent)]
    Files(TemplateError),
    /// The database.
    #[error("templates database: {0}")]
    Database(#[from] sqlx::Error),
}

impl TemplateAdminError {
    /// The API's error code (docs/admin-api.md, "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            TemplateAdminError::UnknownTemplate(_) | TemplateAdminError::UnknownVersion(_) => {
                "not_found"
            }
            TemplateAdminError::Invalid { .. } | TemplateAdminError::TooSlow { .. } => {
                "invalid_template"
            }
            TemplateAdminError::Busy => "busy",
            TemplateAdminError::OverBudget { .. } => "over_budget",
            TemplateAdminError::NothingToRollBack(_) => "conflict",
            TemplateAdminError::Files(_)
            | TemplateAdminError::Interrupted(_)
            | TemplateAdminError::Database(_) => "internal",
        }
    }
}

impl From<TemplateError> for TemplateAdminError {
    fn from(error: TemplateError) -> Self {
        match error {
            TemplateError::Invalid { name, line, detail } => {
                TemplateAdminError::Invalid { name, line, detail }
            }
            TemplateError::OverBudget {
                name,
                sample,
                encoding,
                segments,
                budget,
            } => TemplateAdminError::OverBudget {
                name,
                sample,
                encoding,
                segments,
                budget,
            },
            read @ TemplateError::Read { .. } => TemplateAdminError::Files(read),
        }
    }
}

/// A template as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TemplateSummary {
    /// The reply kind (`found`, `not_found`, …).
    pub name: &'static str,
    /// Its file in the templates folder (`found.j2`).
    pub file: &'static str,
    /// Where the text in use comes from: `built-in`, a file's path, or `version N`.
    pub origin: String,
    /// The version in use, if the text in use is a saved version.
    pub active_version: Option<i64>,
    /// When the text in use was last changed in the console (Unix ms).
    pub updated_at: Option<i64>,
    /// Who changed it.
    pub updated_by: Option<String>,
    /// Segment budget for a GSM-7 reply.
    pub max_segments_gsm7: usize,
    /// Segment budget for a UCS-2 reply.
    pub max_segments_ucs2: usize,
    /// Replies keep Vietnamese diacritics (UCS-2).
    pub accents: bool,
}

/// A saved version of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VersionInfo {
    /// The version's id (`version N`).
    pub id: i64,
    /// The reply kind it is for.
    pub template: String,
    /// The account that saved it.
    pub author: String,
    /// The author's note.
    pub note: String,
    /// When it was saved (Unix ms).
    pub created_at: i64,
    /// It is the text in use now.
    #[sqlx(skip)]
    pub active: bool,
    /// The minijinja text.
    pub source: String,
}

/// A template with its text in use and its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TemplateDetail {
    /// The reply kind.
    pub name: &'static str,
    /// Its file in the templates folder.
    pub file: &'static str,
    /// Where the text in use comes from: `built-in`, a file's path, or `version N`.
    pub origin: String,
    /// The text in use.
    pub source: String,
    /// The version in use, if any.
    pub active_version: Option<i64>,
    /// The variables a template may use.
    pub variables: Vec<&'static str>,
    /// The saved versions, newest first.
    pub versions: Vec<VersionInfo>,
}

/// One sample dossier rendered by a candidate text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewSample {
    /// The sample's id (`owner`, `stranger`, `stale`, `sparse`, `none`).
    pub sample: &'static str,
    /// What the sample stands for.
    pub label: &'static str,
    /// The reply as the citizen would read it (procedure shortened to fit).
    pub text: String,
    /// `GSM-7` or `UCS-2`.
    pub encoding: &'static str,
    /// Characters in the text.
    pub characters: usize,
    /// SMS parts it takes.
    pub segments: usize,
    /// Parts allowed for its encoding (one more for the `stale` sample).
    pub budget: usize,
    /// Within the budget.
    pub fits: bool,
}

/// A candidate text rendered against every sample dossier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Each sample's reply.
    pub samples: Vec<PreviewSample>,
    /// Why the text could not be saved as it is: the first sample over its
    /// budget; `None` when every sample fits.
    pub problem: Option<String>,
}

/// An active override: the kind, its text, the version's id.
type Active = Vec<(ReplyKind, String, i64)>;

/// How long a preview or a check of an edited text may take in all.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(1);

/// The blocking threads previews and checks render on.
#[derive(Clone)]
pub struct CheckPool {
    permits: Arc<tokio::sync::Semaphore>,
}

impl CheckPool {
    /// Checks at once: half the processors, at least one, so that replies
    /// and channels always keep processors of their own.
    pub fn concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }

    fn new() -> Self {
        CheckPool {
            permits: Arc::new(tokio::sync::Semaphore::new(Self::concurrency())),
        }
    }

    /// Runs `job` on a blocking thread when one of the pool's is free. The
    /// job gets its deadline and must refuse ([`TemplateAdminError::TooSlow`])
    /// to change anything once past it; `answer_by_deadline` answers the
    /// caller at the deadline even if the job is still running (it holds
    /// its place in the pool until it ends), for jobs that change nothing.
    async fn run<T: Send + 'static>(
        &self,
        name: &'static str,
        answer_by_deadline: bool,
        job: impl FnOnce(Instant) -> Result<T, TemplateAdminError> + Send + 'static,
    ) -> Result<T, TemplateAdminError> {
        let deadline = Instant::now() + CHECK_TIME_LIMIT;
        let permit = tokio::time::timeout_at(deadline.into(), self.permits.clone().acquire_owned())
            .await
            .map_err(|_| TemplateAdminError::Busy)?
            .map_err(|_| TemplateAdminError::Busy)?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job(deadline)
        });
        let joined = if answer_by_deadline {
            tokio::time::timeout_at(deadline.into(), task)
                .await
                .map_err(|_| TemplateAdminError::TooSlow { name })?
        } else {
            task.await
        };
        joined.map_err(|error| TemplateAdminError::Interrupted(error.to_string()))?
    }
}

/// `Err(TooSlow)` once `deadline` has passed.
fn in_time(name: &'static str, deadline: Instant) -> Result<(), TemplateAdminError> {
    if Instant::now() > deadline {
        return Err(TemplateAdminError::TooSlow { name });
    }
    Ok(())
}

/// The template versions, and the set of templates replies use.
#[derive(Clone)]
pub struct TemplateVersions {
    pool: StatePool,
    templates: Arc<Swappable<Renderer>>,
    dir: PathBuf,
    /// Replaced by [`TemplateVersions::reload_with`] when `[reply]` changes.
    settings: Arc<Mutex<ReplySettings>>,
    /// The versions in use, by kind; changed together with `templates`.
    active: Arc<Mutex<Active>>,
    /// Activations and roll backs one at a time.
    changes: Arc<tokio::sync::Mutex<()>>,
    /// Where previews and checks of edited texts run.
    checks: CheckPool,
}

impl std::fmt::Debug for TemplateVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateVersions")
            .field("dir", &self.dir)
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

fn parse_kind(name: &str) -> Result<ReplyKind, TemplateAdminError> {
    ReplyKind::parse(name).ok_or_else(|| TemplateAdminError::UnknownTemplate(name.to_owned()))
}

fn version_origin(id: i64) -> String {
    format!("version {id}")
}

fn overrides(active: &[(ReplyKind, String, i64)]) -> Vec<TemplateOverride> {
    active
        .iter()
        .map(|(kind, source, id)| TemplateOverride {
            kind: *kind,
            source: source.clone(),
            origin: version_origin(*id),
        })
        .collect()
}

/// The versions in use as stored, by template: `(template, version id,
/// source)`, templates in name order.
async fn stored_in_use(pool: &StatePool) -> Result<Vec<(String, i64, String)>, sqlx::Error> {
    on_state_pool!(pool, p => sqlx::query_as(
        "SELECT a.template, v.id, v.source FROM template_activations a \
         JOIN template_versions v ON v.id = a.version_id \
         WHERE a.id IN (SELECT max(id) FROM template_activations GROUP BY template) \
         ORDER BY a.template",
    )
    .fetch_all(p)
    .await)
}

impl TemplateVersions {
    /// Template versions in the gateway's state database (`db::GatewayDb`,
    /// which migrated it). The versions in use are loaded and, if there are any, put
    /// in `templates` with the files of `dir` (which may not exist) and the
    /// built-ins. A stored version that no longer passes its checks (the
    /// settings changed) is skipped with a warning: the file or built-in
    /// text is used instead, and start-up goes on.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::Database`].
    pub async fn open(
        pool: StatePool,
        templates: Arc<Swappable<Renderer>>,
        dir: PathBuf,
        settings: ReplySettings,
    ) -> Result<Self, TemplateAdminError> {
        let stored = stored_in_use(&pool).await?;
        let versions = TemplateVersions {
            pool,
            templates,
            dir,
            settings: Arc::new(Mutex::new(settings)),
            active: Arc::default(),
            changes: Arc::default(),
            checks: CheckPool::new(),
        };
        let (accepted, built) = versions.accept(stored);
        if let Some(renderer) = built {
            tracing::info!(versions = accepted.len(), "template versions in use");
            *versions.lock_active() = accepted;
            versions.templates.replace(renderer);
        }
        Ok(versions)
    }

    /// The stored versions that pass their checks together, in order, and
    /// the renderer built with them (`None` when none is stored or passes).
    /// A version that fails is skipped with a warning: its file or built-in
    /// text is used.
    fn accept(&self, stored: Vec<(String, i64, String)>) -> (Active, Option<Renderer>) {
        let mut accepted = Vec::new();
        let mut built = None;
        for (name, id, source) in stored {
            let Some(kind) = ReplyKind::parse(&name) else {
                tracing::warn!(template = %name, version = id, "stored version of an unknown template ignored");
                continue;
            };
            let mut trial = accepted.clone();
            trial.push((kind, source, id));
            match self.build(&trial) {
                Ok(renderer) => {
                    accepted = trial;
                    built = Some(renderer);
                }
                Err(error) => tracing::warn!(
                    template = %name,
                    version = id,
                    %error,
                    "template version in use no longer passes its checks; the file or built-in text is used"
                ),
            }
        }
        (accepted, built)
    }

    fn dir(&self) -> Option<&Path> {
        self.dir.is_dir().then_some(self.dir.as_path())
    }

    fn lock_active(&self) -> MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn active_version(&self, kind: ReplyKind) -> Option<i64> {
        self.lock_active()
            .iter()
            .find(|(k, ..)| *k == kind)
            .map(|(.., id)| *id)
    }

    /// Files and built-ins with `active` in their place, each of these
    /// within its budget.
    fn build(&self, active: &[(ReplyKind, String, i64)]) -> Result<Renderer, TemplateError> {
        let renderer =
            Renderer::load_with_overrides(self.dir(), &overrides(active), self.settings())?;
        for (kind, ..) in active {
            renderer.check_budget(*kind)?;
        }
        Ok(renderer)
    }

    /// The full set: the files (or built-ins) with the versions in use in
    /// their place, every template checked.
    ///
    /// # Errors
    ///
    /// The first template that fails its checks.
    pub fn renderer(&self) -> Result<Renderer, TemplateError> {
        self.build(&self.lock_active())
    }

    /// Builds [`TemplateVersions::renderer`] and puts it in use, under the
    /// lock activations take (a reload never puts back a set older than an
    /// activation). For SIGHUP: the files are read again.
    ///
    /// # Errors
    ///
    /// The first template that fails its checks; nothing changes then.
    pub fn reload(&self) -> Result<(), TemplateError> {
        let active = self.lock_active();
        let renderer = self.build(&active)?;
        self.templates.replace(renderer);
        Ok(())
    }

    /// The `[reply]` settings in force.
    pub fn settings(&self) -> ReplySettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// As [`TemplateVersions::reload`], with new `[reply]` settings (SIGHUP
    /// after `config.toml` changed): the whole set, the versions in use
    /// included, must pass its checks under them, or nothing changes.
    ///
    /// # Errors
    ///
    /// As [`TemplateVersions::reload`].
    pub fn reload_with(&self, settings: ReplySettings) -> Result<(), TemplateError> {
        let active = self.lock_active();
        let previous = std::mem::replace(
            &mut *self.settings.lock().unwrap_or_else(|e| e.into_inner()),
            settings,
        );
        match self.build(&active) {
            Ok(renderer) => {
                self.templates.replace(renderer);
                Ok(())
            }
            Err(error) => {
                *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = previous;
                Err(error)
            }
        }
    }

    /// Puts `version` (its text and id; `None`: the file or built-in) in use
    /// for `kind` if the whole set passes its checks (by `deadline`, when
    /// given). Returns what was in use for `kind` before.
    fn install(
        &self,
        kind: ReplyKind,
        version: Option<(String, i64)>,
        deadline: Option<Instant>,
    ) -> Result<Option<(String, i64)>, TemplateAdminError> {
        let mut active = self.lock_active();
        let mut next: Active = active
            .iter()
            .filter(|(k, ..)| *k != kind)
            .cloned()
            .collect();
        next.extend(version.map(|(source, id)| (kind, source, id)));
        let renderer = self.build(&next)?;
        if let Some(deadline) = deadline {
            in_time(kind.template_name(), deadline)?;
        }
        let previous = active
            .iter()
            .find(|(k, ..)| *k == kind)
            .map(|(_, source, id)| (source.clone(), *id));
        *active = next;
        self.templates.replace(renderer);
        Ok(previous)
    }

    /// The set in use with `kind`'s text replaced by `source`, compiled and
    /// rendered against every sample (budgets not checked).
    fn candidate(&self, kind: ReplyKind, source: &str) -> Result<Renderer, TemplateAdminError> {
        let mut set = overrides(&self.lock_active());
        set.push(TemplateOverride {
            kind,
            source: source.to_owned(),
            origin: "candidate".to_owned(),
        });
        Ok(Renderer::load_with_overrides(
            self.dir(),
            &set,
            self.settings(),
        )?)
    }

    /// Every template: where its text comes from, the version in use, who
    /// changed it last and when, the budgets.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::Database`].
    pub async fn list(&self) -> Result<Vec<TemplateSummary>, TemplateAdminError> {
        let latest: Vec<(String, i64, String)> = on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT template, at, actor FROM template_activations \
             WHERE id IN (SELECT max(id) FROM template_activations GROUP BY template)",
        )
        .fetch_all(p)
        .await)?;
        let renderer = self.templates.current();
        let settings = self.settings();
        Ok(ReplyKind::ALL
            .into_iter()
            .map(|kind| {
                let last = latest.iter().find(|(name, ..)| name == kind.as_str());
                TemplateSummary {
                    name: kind.as_str(),
                    file: kind.template_name(),
                    origin: renderer.origin(kind).to_owned(),
                    active_version: self.active_version(kind),
                    updated_at: last.map(|(_, at, _)| *at),
                    updated_by: last.map(|(.., actor)| actor.clone()),
                    max_segments_gsm7: settings.max_segments_gsm7,
                    max_segments_ucs2: settings.max_segments_ucs2,
                    accents: settings.accents,
                }
            })
            .collect())
    }

    async fn version(&self, id: i64) -> Result<Option<VersionInfo>, TemplateAdminError> {
        Ok(on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT id, template, author, note, created_at, source FROM template_versions \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// A template's text in use, the variables it may use, and its saved
    /// versions, newest first.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::UnknownTemplate`], database.
    pub async fn get(&self, name: &str) -> Result<TemplateDetail, TemplateAdminError> {
        let kind = parse_kind(name)?;
        let mut versions: Vec<VersionInfo> = on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT id, template, author, note, created_at, source FROM template_versions \
             WHERE template = $1 ORDER BY id DESC",
        )
        .bind(kind.as_str())
        .fetch_all(p)
        .await)?;
        let active_version = self.active_version(kind);
        for version in &mut versions {
            version.active = Some(version.id) == active_version;
        }
        let renderer = self.templates.current();
        Ok(TemplateDetail {
            name: kind.as_str(),
            file: kind.template_name(),
            origin: renderer.origin(kind).to_owned(),
            source: renderer.source(kind),
            active_version,
            variables: ReplyContext::FIELDS.to_vec(),
            versions,
        })
    }

    /// Renders `source` as template `name` against every sample dossier, as
    /// citizens would get it, with each reply's encoding, length and budget.
    /// Nothing is stored.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::Invalid`] with the line for a syntax error or
    /// an unknown variable; [`TemplateAdminError::UnknownTemplate`].
    pub async fn preview(&self, name: &str, source: &str) -> Result<Preview, TemplateAdminError> {
        let kind = parse_kind(name)?;
        let this = self.clone();
        let source = source.to_owned();
        self.checks
            .run(kind.template_name(), true, move |deadline| {
                let preview = this.preview_now(kind, &source)?;
                in_time(kind.template_name(), deadline)?;
                Ok(preview)
            })
            .await
    }

    /// [`TemplateVersions::preview`], on the calling thread.
    fn preview_now(&self, kind: ReplyKind, source: &str) -> Result<Preview, TemplateAdminError> {
        let renderer = self.candidate(kind, source)?;
        let mut samples = Vec::new();
        for (sample, label, ctx) in renderer.named_samples() {
            let reply = renderer
                .render(kind, &ctx)
                .map_err(|e| TemplateError::invalid(kind.template_name(), &e))?;
            let budget = renderer.budget_for(&ctx, reply.info.encoding);
            samples.push(PreviewSample {
                sample,
                label,
                characters: reply.text.chars().count(),
                encoding: reply.info.encoding.name(),
                segments: reply.info.segments,
                budget,
                fits: reply.info.segments <= budget,
                text: reply.text,
            });
        }
        let problem = match renderer.check_budget(kind) {
            Ok(()) => None,
            Err(over @ TemplateError::OverBudget { .. }) => Some(over.to_string()),
            Err(other) => return Err(other.into()),
        };
        Ok(Preview { samples, problem })
    }

    /// Saves `source` as a new version of template `name` (not put in use),
    /// after the checks activation makes; audited as `template.save`.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::Invalid`], [`TemplateAdminError::OverBudget`]
    /// (nothing saved), [`TemplateAdminError::UnknownTemplate`], database.
    pub async fn save(
        &self,
        name: &str,
        source: &str,
        author: &str,
        note: &str,
    ) -> Result<VersionInfo, TemplateAdminError> {
        let kind = parse_kind(name)?;
        let this = self.clone();
        let text = source.to_owned();
        self.checks
            .run(kind.template_name(), true, move |deadline| {
                this.candidate(kind, &text)?.check_budget(kind)?;
                in_time(kind.template_name(), deadline)
            })
            .await?;
        let now = now_ms();
        let id = on_state_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO template_versions (template, source, author, note, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(kind.as_str())
            .bind(source)
            .bind(author)
            .bind(note)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            audit_entry(now, author, "template.save", kind.as_str(), &version_origin(id))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        Ok(VersionInfo {
            id,
            template: kind.as_str().to_owned(),
            author: author.to_owned(),
            note: note.to_owned(),
            created_at: now,
            active: false,
            source: source.to_owned(),
        })
    }

    /// Checks version `version_id` of template `name` again and puts it in
    /// use at once (the next reply uses it); recorded and audited as
    /// `template.activate`.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::UnknownVersion`] (also for a version of another
    /// template), [`TemplateAdminError::Invalid`] or
    /// [`TemplateAdminError::OverBudget`] (nothing changes), database.
    pub async fn activate(
        &self,
        name: &str,
        version_id: i64,
        actor: &str,
    ) -> Result<VersionInfo, TemplateAdminError> {
        let kind = parse_kind(name)?;
        let _turn = self.changes.lock().await;
        let version = self
            .version(version_id)
            .await?
            .filter(|v| v.template == kind.as_str())
            .ok_or(TemplateAdminError::UnknownVersion(version_id))?;
        self.switch(
            kind,
            Some((version.source.clone(), version_id)),
            actor,
            "template.activate",
            None,
        )
        .await?;
        Ok(VersionInfo {
            active: true,
            ..version
        })
    }

    /// Puts back the text in use before the current one: the previous
    /// version, or the file or built-in text (`Ok(None)`). Rolling back
    /// again goes one step further back. Recorded and audited as
    /// `template.rollback`.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::NothingToRollBack`] when no activation is left
    /// to undo; the checks' errors (nothing changes); database.
    pub async fn rollback(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<Option<i64>, TemplateAdminError> {
        let kind = parse_kind(name)?;
        let _turn = self.changes.lock().await;
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT id, version_id, undoes FROM template_activations WHERE template = $1 \
             ORDER BY id",
        )
        .bind(kind.as_str())
        .fetch_all(p)
        .await)?;
        // Activations stack up; each roll back took the top one off.
        let mut stack: Vec<(i64, Option<i64>)> = Vec::new();
        for (id, version, undoes) in rows {
            match undoes {
                Some(_) => {
                    stack.pop();
                }
                None => stack.push((id, version)),
            }
        }
        let Some((undone, _)) = stack.pop() else {
            return Err(TemplateAdminError::NothingToRollBack(
                kind.as_str().to_owned(),
            ));
        };
        let target = stack.last().and_then(|(_, version)| *version);
        let replacement = match target {
            Some(id) => {
                let version = self
                    .version(id)
                    .await?
                    .ok_or(TemplateAdminError::UnknownVersion(id))?;
                Some((version.source, id))
            }
            None => None,
        };
        self.switch(kind, replacement, actor, "template.rollback", Some(undone))
            .await?;
        Ok(target)
    }

    /// Records the change of `kind`'s text to `version` (`None`: the file or
    /// built-in) with its audit entry, and puts it in use if the whole set
    /// passes its checks; if the record cannot be committed, what was in
    /// use is put back.
    async fn switch(
        &self,
        kind: ReplyKind,
        version: Option<(String, i64)>,
        actor: &str,
        action: &str,
        undoes: Option<i64>,
    ) -> Result<(), TemplateAdminError> {
        let now = now_ms();
        let version_id = version.as_ref().map(|(_, id)| *id);
        let detail = version_id.map_or_else(|| "file or built-in".to_owned(), version_origin);
        let (previous, committed) = on_state_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO template_activations (template, version_id, actor, at, undoes) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(kind.as_str())
            .bind(version_id)
            .bind(actor)
            .bind(now)
            .bind(undoes)
            .execute(&mut *tx)
            .await?;
            audit_entry(now, actor, action, kind.as_str(), &detail)
                .execute(&mut *tx)
                .await?;
            let this = self.clone();
            let previous = self
                .checks
                .run(kind.template_name(), false, move |deadline| {
                    this.install(kind, version, Some(deadline))
                })
                .await?;
            (previous, tx.commit().await)
        });
        if let Err(error) = committed {
            // What was in use passed before: put back, whatever the time.
            let this = self.clone();
            let undone = tokio::task::spawn_blocking(move || this.install(kind, previous, None))
                .await
                .map_err(|e| TemplateAdminError::Interrupted(e.to_string()))
                .and_then(|undone| undone);
            if let Err(undo) = undone {
                tracing::error!(template = kind.as_str(), %undo, "could not put back the template in use");
            }
            return Err(error.into());
        }
        tracing::info!(template = kind.as_str(), %actor, %action, %detail, "template in use changed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::GatewayDb;
    use crate::reply::ReplyContext;

    /// Versions over a fresh set of built-in templates (no templates
    /// folder), with the default settings: the start of the gateway.
    async fn open_versions(db: &GatewayDb) -> (TemplateVersions, Arc<Swappable<Renderer>>) {
        open_with(db, ReplySettings::default()).await
    }

    async fn open_with(
        db: &GatewayDb,
        settings: ReplySettings,
    ) -> (TemplateVersions, Arc<Swappable<Renderer>>) {
        let templates = Arc::new(Swappable::new(
            Renderer::load(None, settings.clone()).unwrap(),
        ));
        let versions = TemplateVersions::open(
            db.pool().clone(),
            templates.clone(),
            PathBuf::from("/nonexistent/templates"),
            settings,
        )
        .await
        .unwrap();
        (versions, templates)
    }

    fn help_text(templates: &Swappable<Renderer>) -> String {
        let renderer = templates.current();
        renderer
            .render(ReplyKind::Help, &renderer.base_context())
            .unwrap()
            .text
    }

    const BUILT_IN_HELP: &str = "Tra cứu hồ sơ";

    async fn an_unknown_variable_is_refused_with_its_line(db: GatewayDb) {
        let (versions, _) = open_versions(&db).await;
        let err = versions
            .preview("found", "HS {{ code }}\n{{ cod }}")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_template");
        match &err {
            TemplateAdminError::Invalid { line, detail, .. } => {
                assert_eq!(*line, Some(2), "{detail}");
                assert!(detail.contains("`cod`"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // Also in a branch no sample dossier reaches.
        let err = versions
            .save(
                "found",
                "HS {{ code }}\n{% if status_code == 99 %}\n{{ stauts }}\n{% endif %}",
                "an",
                "",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, TemplateAdminError::Invalid { line: Some(3), .. }),
            "{err:?}"
        );
        assert!(versions.get("found").await.unwrap().versions.is_empty());
    }

    async fn a_syntax_error_is_refused_with_its_line(db: GatewayDb) {
        let (versions, _) = open_versions(&db).await;
        let err = versions
            .save("help", "Soạn TC\n{% if %}\n", "an", "")
            .await
            .unwrap_err();
        assert!(
            matches!(err, TemplateAdminError::Invalid { line: Some(2), .. }),
            "{err:?}"
        );
        assert!(matches!(
            versions.preview("nope", "x").await,
            Err(TemplateAdminError::UnknownTemplate(_))
        ));
    }

    async fn a_text_over_its_budget_is_shown_but_never_saved(db: GatewayDb) {
        let (versions, _) = open_versions(&db).await;
        let long = "HS {{ code }}\n{{ procedure }} {{ agency }} {{ status }}\n".repeat(5);
        let preview = versions.preview("found", &long).await.unwrap();
        assert_eq!(preview.samples.len(), 5);
        let owner = &preview.samples[0];
        assert_eq!((owner.sample, owner.encoding), ("owner", "UCS-2"));
        assert!(!owner.fits && owner.segments > owner.budget, "{owner:?}");
        let problem = preview.problem.unwrap();
        assert!(
            problem.contains("found.j2") && problem.contains("owner"),
            "{problem}"
        );
        let err = versions.save("found", &long, "an", "").await.unwrap_err();
        assert_eq!(err.code(), "over_budget");
        assert!(
            matches!(
                &err,
                TemplateAdminError::OverBudget { sample, encoding: "UCS-2", budget: 2, .. }
                    if sample == "owner"
            ),
            "{err:?}"
        );
        // A text that fits previews clean.
        let fine = versions
            .preview("found", "HS {{ code }}: {{ status }}")
            .await
            .unwrap();
        assert!(fine.problem.is_none() && fine.samples.iter().all(|s| s.fits));
        assert_eq!(
            fine.samples[0].text,
            "HS 000.00.12.H58-240315-0007: Đang xử lý"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_past_its_time_limit_is_answered_at_the_limit_and_holds_its_place() {
        let pool = CheckPool {
            permits: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        let started = Instant::now();
        let slow = pool.run("found.j2", true, |_| {
            std::thread::sleep(CHECK_TIME_LIMIT * 3);
            Ok(())
        });
        assert!(matches!(
            slow.await,
            Err(TemplateAdminError::TooSlow { name: "found.j2" })
        ));
        let answered = started.elapsed();
        assert!(answered < CHECK_TIME_LIMIT * 2, "{answered:?}");
        // The slow one still runs and holds the only thread: the next waits
        // the limit, then is told the checks are busy.
        let next = pool.run("help.j2", true, |_| Ok(())).await;
        assert!(matches!(next, Err(TemplateAdminError::Busy)), "{next:?}");
        // Once it ends, checks run again.
        tokio::time::sleep(CHECK_TIME_LIMIT / 2).await;
        pool.run("help.j2", true, |_| Ok(())).await.unwrap();
    }

    async fn an_activation_checked_past_its_deadline_changes_nothing(db: GatewayDb) {
        let (versions, templates) = open_versions(&db).await;
        let late = Instant::now() - Duration::from_secs(1);
        let refused = versions.install(
            ReplyKind::Help,
            Some(("Soạn TC gửi {{ service_number }}".into(), 1)),
            Some(late),
        );
        assert!(matches!(refused, Err(TemplateAdminError::TooSlow { .. })));
        assert!(help_text(&templates).starts_with(BUILT_IN_HELP));
        assert_eq!(versions.active_version(ReplyKind::Help), None);
    }

    async fn save_activate_and_roll_back_change_the_replies_at_once(db: GatewayDb) {
        let (versions, templates) = open_versions(&db).await;
        assert!(help_text(&templates).starts_with(BUILT_IN_HELP));
        assert!(matches!(
            versions.rollback("help", "an").await,
            Err(TemplateAdminError::NothingToRollBack(_))
        ));

        let first = versions
            .save(
                "help",
                "Gửi TC <mã> tới {{ service_number }}",
                "an",
                "shorter",
            )
            .await
            .unwrap();
        assert!(!first.active);
        // Saved is not in use.
        assert!(help_text(&templates).starts_with(BUILT_IN_HELP));
        let second = versions
            .save(
                "help",
                "Nhắn TC <mã hồ sơ> tới {{ service_number }}",
                "binh",
                "",
            )
            .await
            .unwrap();
        assert!(second.id > first.id);

        assert!(
            versions
                .activate("help", first.id, "an")
                .await
                .unwrap()
                .active
        );
        assert_eq!(help_text(&templates), "Gửi TC <mã> tới 8058");
        versions.activate("help", second.id, "binh").await.unwrap();
        assert_eq!(help_text(&templates), "Nhắn TC <mã hồ sơ> tới 8058");

        let detail = versions.get("help").await.unwrap();
        assert_eq!(detail.origin, format!("version {}", second.id));
        assert_eq!(detail.source, second.source);
        assert_eq!(detail.active_version, Some(second.id));
        let listed: Vec<(i64, &str, bool)> = detail
            .versions
            .iter()
            .map(|v| (v.id, v.author.as_str(), v.active))
            .collect();
        assert_eq!(listed, [(second.id, "binh", true), (first.id, "an", false)]);
        assert_eq!(detail.versions[1].note, "shorter");
        assert!(detail.variables.contains(&"service_number"));

        assert_eq!(
            versions.rollback("help", "an").await.unwrap(),
            Some(first.id)
        );
        assert_eq!(help_text(&templates), "Gửi TC <mã> tới 8058");
        assert_eq!(versions.rollback("help", "an").await.unwrap(), None);
        assert!(help_text(&templates).starts_with(BUILT_IN_HELP));
        assert!(matches!(
            versions.rollback("help", "an").await,
            Err(TemplateAdminError::NothingToRollBack(_))
        ));
        let summary = versions.list().await.unwrap();
        let help = summary.iter().find(|t| t.name == "help").unwrap();
        assert_eq!(
            (
                help.origin.as_str(),
                help.active_version,
                help.updated_by.as_deref()
            ),
            ("built-in", None, Some("an"))
        );

        let log: Vec<(String, String, String, String)> = on_state_pool!(db.pool(), p => {
            sqlx::query_as("SELECT actor, action, target, detail FROM audit_log ORDER BY id")
                .fetch_all(p)
                .await
        })
        .unwrap();
        let log: Vec<String> = log
            .into_iter()
            .map(|(actor, action, target, detail)| format!("{actor} {action} {target} {detail}"))
            .collect();
        let (a, b) = (first.id, second.id);
        assert_eq!(
            log,
            [
                format!("an template.save help version {a}"),
                format!("binh template.save help version {b}"),
                format!("an template.activate help version {a}"),
                format!("binh template.activate help version {b}"),
                format!("an template.rollback help version {a}"),
                "an template.rollback help file or built-in".to_owned(),
            ]
        );
    }

    async fn a_version_of_another_template_or_none_at_all_is_not_activated(db: GatewayDb) {
        let (versions, templates) = open_versions(&db).await;
        let help = versions
            .save("help", "Soạn TC <mã> gửi {{ service_number }}", "an", "")
            .await
            .unwrap();
        let err = versions
            .activate("unavailable", help.id, "an")
            .await
            .unwrap_err();
        assert!(matches!(err, TemplateAdminError::UnknownVersion(id) if id == help.id));
        assert_eq!(err.code(), "not_found");
        assert!(matches!(
            versions.activate("help", 999, "an").await,
            Err(TemplateAdminError::UnknownVersion(999))
        ));
        assert!(help_text(&templates).starts_with(BUILT_IN_HELP));
        assert!(versions
            .list()
            .await
            .unwrap()
            .iter()
            .all(|t| t.active_version.is_none() && t.updated_at.is_none()));
    }

    async fn reopening_puts_the_active_version_back_and_renderer_includes_it(db: GatewayDb) {
        let (versions, _) = open_versions(&db).await;
        let found = versions
            .save("found", "HS {{ code }}: {{ status }}", "an", "")
            .await
            .unwrap();
        versions.activate("found", found.id, "an").await.unwrap();

        let rendered = |renderer: &Renderer| {
            let ctx = ReplyContext {
                code: Some("X".into()),
                status: Some("Đã trả kết quả".into()),
                ..renderer.base_context()
            };
            renderer.render(ReplyKind::Found, &ctx).unwrap().text
        };
        let renderer = versions.renderer().unwrap();
        assert_eq!(rendered(&renderer), "HS X: Đã trả kết quả");
        assert_eq!(
            renderer.origin(ReplyKind::Found),
            format!("version {}", found.id)
        );
        assert_eq!(renderer.origin(ReplyKind::Help), "built-in");

        // A restart: a fresh built-in set, then the versions opened again.
        let (reopened, templates) = open_versions(&db).await;
        assert_eq!(rendered(&templates.current()), "HS X: Đã trả kết quả");
        assert_eq!(
            reopened.list().await.unwrap()[0].active_version,
            Some(found.id)
        );
        // A reload (SIGHUP) keeps it.
        reopened.reload().unwrap();
        assert_eq!(rendered(&templates.current()), "HS X: Đã trả kết quả");
    }

    async fn an_activation_by_another_gateway_is_put_in_force_by_refresh(db: GatewayDb) {
        // Two gateways on one state database, each with its own templates.
        let (here, _) = open_versions(&db).await;
        let (there, there_templates) = open_versions(&db).await;
        assert!(!there.refresh().await.unwrap(), "nothing changed yet");
        let help = here
            .save("help", "Nhắn TC <mã hồ sơ> để tra cứu.", "an", "")
            .await
            .unwrap();
        here.activate("help", help.id, "an").await.unwrap();
        assert!(help_text(&there_templates).starts_with(BUILT_IN_HELP));
        assert!(there.refresh().await.unwrap());
        assert_eq!(
            help_text(&there_templates),
            "Nhắn TC <mã hồ sơ> để tra cứu."
        );
        assert_eq!(
            there.list().await.unwrap().len(),
            here.list().await.unwrap().len()
        );
        // A roll back there (to the built-in text) is seen here the same way.
        there.rollback("help", "binh").await.unwrap();
        assert!(here.refresh().await.unwrap());
        assert!(help_text(&here.templates).starts_with(BUILT_IN_HELP));
        assert!(!here.refresh().await.unwrap());
    }

    async fn following_puts_another_gateways_activation_in_force(db: GatewayDb) {
        let (here, _) = open_versions(&db).await;
        let (there, there_templates) = open_versions(&db).await;
        let stop = tokio_util::sync::CancellationToken::new();
        let following = tokio::spawn(there.follow(stop.clone()));
        let help = here
            .save("help", "Soạn TC <mã> gửi 8058.", "an", "")
            .await
            .unwrap();
        here.activate("help", help.id, "an").await.unwrap();
        let activated = Instant::now();
        while help_text(&there_templates) != "Soạn TC <mã> gửi 8058." {
            assert!(
                activated.elapsed() < Duration::from_secs(10),
                "never put in force on the other gateway"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "in force on the other gateway after {:?}",
            activated.elapsed()
        );
        stop.cancel();
        following.await.unwrap();
    }

    async fn a_stored_version_that_no_longer_fits_is_skipped_at_open(db: GatewayDb) {
        let (versions, _) = open_versions(&db).await;
        // Fits two UCS-2 segments, not one.
        let text = "Tra cứu hồ sơ: nhắn TC và mã hồ sơ trên giấy biên nhận, gửi tới {{ service_number }}. Xin cảm ơn quý khách.";
        let help = versions.save("help", text, "an", "").await.unwrap();
        versions.activate("help", help.id, "an").await.unwrap();
        let settings = ReplySettings {
            max_segments_ucs2: 1,
            ..ReplySettings::default()
        };
        let (reopened, templates) = open_with(&db, settings).await;
        assert_eq!(templates.current().origin(ReplyKind::Help), "built-in");
        assert_eq!(reopened.get("help").await.unwrap().active_version, None);
        // Activating it again is refused for the same reason.
        assert_eq!(
            reopened
                .activate("help", help.id, "an")
                .await
                .unwrap_err()
                .code(),
            "over_budget"
        );
    }

    crate::on_both_engines!(
        an_unknown_variable_is_refused_with_its_line,
        a_syntax_error_is_refused_with_its_line,
        a_text_over_its_budget_is_shown_but_never_saved,
        an_activation_checked_past_its_deadline_changes_nothing,
        an_activation_by_another_gateway_is_put_in_force_by_refresh,
        following_puts_another_gateways_activation_in_force,
        save_activate_and_roll_back_change_the_replies_at_once,
        a_version_of_another_template_or_none_at_all_is_not_activated,
        reopening_puts_the_active_version_back_and_renderer_includes_it,
        a_stored_version_that_no_longer_fits_is_skipped_at_open,
    );
}
