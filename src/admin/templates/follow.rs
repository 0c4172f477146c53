//! Following the template activations of the other gateways sharing a
//! PostgreSQL state database: the newest activation is watched, and when it
//! changes the versions in use are read again and put in force.

use std::time::Duration;

use super::{stored_in_use, TemplateAdminError, TemplateVersions};
use crate::db::StatePool;
use crate::on_state_pool;

/// How often a gateway looks for activations made by another gateway
/// sharing its state database ([`TemplateVersions::follow`]).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// The id of the newest activation or roll back (0 before any).
async fn latest_activation(pool: &StatePool) -> Result<i64, sqlx::Error> {
    on_state_pool!(pool, p => sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM template_activations",
    )
    .fetch_one(p)
    .await)
}

impl TemplateVersions {
    /// Puts in force the versions the state database holds as in use, when
    /// they are not the ones this process uses: another gateway sharing the
    /// database activated or rolled back a template. Returns whether the
    /// templates in use changed.
    ///
    /// # Errors
    ///
    /// [`TemplateAdminError::Database`]; the files' checks (nothing changes).
    pub async fn refresh(&self) -> Result<bool, TemplateAdminError> {
        let _turn = self.changes.lock().await;
        let stored = stored_in_use(&self.pool).await?;
        let mut wanted: Vec<(String, i64)> = stored
            .iter()
            .map(|(name, id, _)| (name.clone(), *id))
            .collect();
        let mut current: Vec<(String, i64)> = self
            .lock_active()
            .iter()
            .map(|(kind, _, id)| (kind.as_str().to_owned(), *id))
            .collect();
        wanted.sort();
        current.sort();
        if wanted == current {
            return Ok(false);
        }
        let (accepted, built) = self.accept(stored);
        let renderer = match built {
            Some(renderer) => renderer,
            None => self.build(&[])?,
        };
        *self.lock_active() = accepted;
        self.templates.replace(renderer);
        Ok(true)
    }

    /// Follows the activations other gateways make in the shared state
    /// database until `shutdown`: the newest activation is looked at every
    /// [`FOLLOW_INTERVAL`], and when it changed the versions in use are
    /// refreshed ([`TemplateVersions::refresh`]), so a template activated on
    /// one node is in force on every node within a second.
    pub async fn follow(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut seen = latest_activation(&self.pool).await.ok();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            }
            let latest = match latest_activation(&self.pool).await {
                Ok(latest) => latest,
                Err(error) => {
                    tracing::debug!(%error, "cannot read the newest template activation");
                    continue;
                }
            };
            if seen == Some(latest) {
                continue;
            }
            match self.refresh().await {
                Ok(true) => {
                    seen = Some(latest);
                    tracing::info!(
                        activation = latest,
                        "template versions activated on another gateway are in force"
                    );
                }
                Ok(false) => seen = Some(latest),
                Err(error) => {
                    tracing::warn!(%error, "cannot put in force the template versions activated on another gateway")
                }
            }
        }
    }
}
