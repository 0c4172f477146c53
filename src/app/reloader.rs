//! Putting a re-read configuration and the templates in force while the
//! gateway runs (SIGHUP, see [`crate::signals`]): everything is loaded and
//! checked first, and replaces what is in use only when all of it passes.

use std::sync::Arc;

use tracing::info;

use crate::abuse::{AbuseError, AbuseGuard};
use crate::admin::templates::TemplateVersions;
use crate::config::Config;
use crate::reload::Swappable;
use crate::reply::{Renderer, TemplateError};
use crate::ussd::screens::ScreenRenderer;

/// Reloads the SMS and USSD templates from disk while the gateway runs
/// (SIGHUP): both sets are loaded and checked first, and replace the ones in
/// use only if both pass; links, dialogues and queued replies are untouched.
/// With [`TemplateVersions`], the reply versions put in use in the admin
/// console stay in place of their files.
#[derive(Clone)]
pub struct Reloader {
    templates: Arc<Swappable<Renderer>>,
    screens: Option<Arc<Swappable<ScreenRenderer>>>,
    templates_dir: std::path::PathBuf,
    reply: crate::reply::ReplySettings,
    ussd_accents: bool,
    versions: Option<TemplateVersions>,
    guard: Option<AbuseGuard>,
}

/// Why a new configuration was not put in force on SIGHUP.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A `[rate_limit]` value is wrong.
    #[error(transparent)]
    Limits(#[from] AbuseError),
    /// The templates fail their checks under the new `[reply]` settings.
    #[error(transparent)]
    Templates(#[from] TemplateError),
    /// `[log] level` is not a filter.
    #[error("{0}")]
    Log(String),
}

impl Reloader {
    /// A reloader for `config`'s templates, held in `templates`, with the
    /// console's `versions` kept and `guard`'s limits updated.
    pub(super) fn new(
        config: &Config,
        templates: Arc<Swappable<Renderer>>,
        versions: TemplateVersions,
        guard: AbuseGuard,
    ) -> Self {
        Reloader {
            templates,
            screens: None,
            templates_dir: config.reply.templates_dir.clone(),
            reply: config.reply.settings(&config.service),
            ussd_accents: config.ussd.accents,
            versions: Some(versions),
            guard: Some(guard),
        }
    }

    /// Reloads the USSD screens, held in `screens`, with the reply templates.
    pub(super) fn hold_screens(&mut self, screens: Arc<Swappable<ScreenRenderer>>) {
        self.screens = Some(screens);
    }

    /// Reloads the reply templates through `versions` (the admin console's
    /// versions in use kept) rather than from the files alone.
    pub fn with_versions(mut self, versions: TemplateVersions) -> Self {
        self.versions = Some(versions);
        self
    }

    /// Loads and checks the USSD screens from the templates directory's `ussd/`.
    pub(super) fn load_screens(&self) -> Result<ScreenRenderer, TemplateError> {
        let dir = self.templates_dir.join("ussd");
        ScreenRenderer::load(dir.is_dir().then_some(dir.as_path()), self.ussd_accents)
    }

    /// Puts a re-read `config.toml` in force (SIGHUP): `[rate_limit]`
    /// (limits, not Redis or our own numbers), `[reply]` (accents, segment
    /// budgets, service number, hotline: the templates are reloaded and
    /// checked under them) and `[log] level`. Everything is checked before
    /// anything changes. Other sections (`reply.templates_dir` included)
    /// take effect at the next start.
    ///
    /// # Errors
    ///
    /// The first value or template that fails its checks; nothing changed.
    pub fn apply_config(&mut self, config: &Config) -> Result<(), ReloadError> {
        let level = config.log.level.clone();
        tracing_subscriber::EnvFilter::try_new(&level)
            .map_err(|e| ReloadError::Log(format!("[log] level {level:?}: {e}")))?;
        config.rate_limit.check()?;
        let reply = config.reply.settings(&config.service);
        let previous_reply = std::mem::replace(&mut self.reply, reply.clone());
        let reloaded = match &self.versions {
            Some(versions) => versions.reload_with(reply),
            None => Ok(()),
        }
        .and_then(|()| self.reload());
        if let Err(error) = reloaded {
            self.reply = previous_reply;
            if let Some(versions) = &self.versions {
                // The previous settings passed before; put them back.
                let _ = versions.reload_with(self.reply.clone());
            }
            return Err(error.into());
        }
        if let Some(guard) = &self.guard {
            guard.update_limits(&config.rate_limit)?;
        }
        let level_applied = crate::telemetry::set_level(&level).map_err(ReloadError::Log)?;
        info!(
            accents = self.reply.accents,
            max_segments_gsm7 = self.reply.max_segments_gsm7,
            max_segments_ucs2 = self.reply.max_segments_ucs2,
            rate_limits = config.rate_limit.enabled,
            log_level = if level_applied { level.as_str() } else { "RUST_LOG" },
            "configuration reloaded: [reply], [rate_limit], [log]; other sections at the next start"
        );
        Ok(())
    }

    /// Loads and checks every template again; on success the new sets are
    /// in use for the next message. On failure nothing changes.
    ///
    /// # Errors
    ///
    /// The first template that fails its checks, with its name and why.
    pub fn reload(&self) -> Result<(), TemplateError> {
        let dir = self.templates_dir.as_path();
        let screens = match &self.screens {
            Some(_) => Some(self.load_screens()?),
            None => None,
        };
        // The screens are not in use until the reply templates have passed.
        match &self.versions {
            Some(versions) => versions.reload()?,
            None => self.templates.replace(Renderer::load(
                dir.is_dir().then_some(dir),
                self.reply.clone(),
            )?),
        }
        let files = self
            .templates
            .current()
            .sources()
            .iter()
            .filter(|(_, origin)| origin != "built-in" && !origin.starts_with("version "))
            .count();
        if let (Some(held), Some(screens)) = (&self.screens, screens) {
            held.replace(screens);
        }
        info!(dir = %dir.display(), files, "templates reloaded");
        Ok(())
    }
}
