//! A gateway process following a core (or taking pushed batches), for the
//! sync tests, on the one process harness ([`Process`]): its settings, read
//! model, metrics and replies (each question from a fresh number).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use motcua_sms::smpp::client::send_and_receive;
use motcua_sms::store::{DossierLookup, DossierWriter, ReadModel};

use super::core::{local_digest, Core, TOKEN};
use super::process::{free_port, Process};

pub const BUCKETS: u32 = 64;
/// What a reply says while the read model is stale.
pub const STALE_LABEL: &str = "cập nhật lúc";
/// Messages asked so far (each from its own number).
static ASKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A suffix no other test run uses (stream names, subject prefixes).
pub fn unique_suffix() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// POSTs `body` to the push webhook on `http_port`, signed with `secret`
/// now (or carrying `signature` as given), until the port answers.
pub async fn push(
    http_port: u16,
    secret: &str,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    use motcua_sms::sync::push::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = signature.unwrap_or_else(|| sign(secret.as_bytes(), now, body.as_bytes()));
    let http = reqwest::Client::new();
    loop {
        let sent = http
            .post(format!("http://127.0.0.1:{http_port}/v1/push"))
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, &signature)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(response) => return response,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A gateway process and where it keeps its files.
pub struct GatewayProcess {
    pub dir: PathBuf,
    pub smpp_port: u16,
    pub http_port: u16,
    pub feed_url: String,
    pub extra: Vec<(String, String)>,
    /// The process (started by [`GatewayProcess::start`]).
    pub process: Process,
    /// The sync source whose stage `wait_streaming` watches (`feed` unless
    /// `MOTCUA_SYNC__MODE` says `jetstream` among the extra settings).
    pub source: String,
    /// The read model's URL when not a SQLite file in `dir`.
    pub database: Option<String>,
}

impl GatewayProcess {
    pub fn new(dir: &Path, feed_url: &str, extra: &[(&str, &str)]) -> Self {
        GatewayProcess {
            dir: dir.to_owned(),
            smpp_port: free_port(),
            http_port: free_port(),
            feed_url: feed_url.to_owned(),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            process: Process::new(dir),
            source: if extra
                .iter()
                .any(|(k, v)| *k == "MOTCUA_SYNC__MODE" && *v == "jetstream")
            {
                "jetstream".to_owned()
            } else {
                "feed".to_owned()
            },
            database: None,
        }
    }

    /// A gateway without a feed that takes batches pushed to its HTTP
    /// port, signed with `secret`.
    pub fn pushed_to(dir: &Path, secret: &str) -> Self {
        Self::new(
            dir,
            "http://127.0.0.1:9/",
            &[
                ("MOTCUA_SYNC__MODE", "off"),
                ("MOTCUA_SYNC__PUSH__ENABLED", "true"),
                ("MOTCUA_SYNC__PUSH__SECRET", secret),
            ],
        )
    }

    pub fn db_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/read.db", self.dir.display()))
    }

    /// The read model in `url` (e.g. PostgreSQL) instead of a SQLite file in `dir`.
    pub fn with_database(mut self, url: Option<&str>) -> Self {
        self.database = url.map(str::to_owned);
        self
    }

    /// Starts it (again) with the settings as they are now.
    pub fn start(&mut self) {
        let database = self.db_url();
        let process = &mut self.process;
        process.set_config(format!(
            "[[smpp.listener.accounts]]\nsystem_id = \"{}\"\npassword = \"{}\"\n",
            super::SYSTEM_ID,
            super::PASSWORD
        ));
        process.set_env("MOTCUA_LOG__LEVEL", "info,motcua_sms::sync=debug");
        process.set_env("MOTCUA_DATABASE__URL", database);
        process.set_env("MOTCUA_REPLY__ACCENTS", "true");
        process.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
        process.set_env(
            "MOTCUA_SMPP__LISTENER__BIND",
            format!("127.0.0.1:{}", self.smpp_port),
        );
        process.set_env("MOTCUA_HTTP__BIND", format!("127.0.0.1:{}", self.http_port));
        process.set_env("MOTCUA_SYNC__MODE", "feed");
        process.set_env("MOTCUA_SYNC__FEED__URL", &self.feed_url);
        process.set_env("MOTCUA_SYNC__FEED__TOKEN", TOKEN);
        process.set_env("MOTCUA_SYNC__FEED__WAIT_SECS", "1");
        process.set_env("MOTCUA_SYNC__FEED__BACKOFF_MAX_SECS", "1");
        process.set_env("MOTCUA_SYNC__FEED__REQUEST_TIMEOUT_SECS", "3");
        for (k, v) in &self.extra {
            process.set_env(k, v);
        }
        process.start();
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait for the drain.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Every start's log.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The read model, opened beside the running gateway.
    pub async fn store(&self) -> ReadModel {
        ReadModel::open(&self.db_url())
            .await
            .expect("read model opens")
    }

    pub async fn sync_stage(&self) -> Option<String> {
        if let Some(url) = &self.database {
            // PostgreSQL migrations hold a lock: reading beside them is safe.
            let pool = sqlx::PgPool::connect(url).await.ok()?;
            let stage: Option<String> =
                sqlx::query_scalar("SELECT stage FROM sync_state WHERE source = $1")
                    .bind(&self.source)
                    .fetch_optional(&pool)
                    .await
                    .ok()
                    .flatten();
            pool.close().await;
            return stage;
        }
        let path = self.dir.join("read.db");
        if !path.exists() {
            return None;
        }
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .ok()?;
        let stage: Option<String> =
            sqlx::query_scalar("SELECT stage FROM sync_state WHERE source = ?")
                .bind(&self.source)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten();
        pool.close().await;
        stage
    }

    pub async fn wait_streaming(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.sync_stage().await.as_deref() != Some("streaming") {
            assert!(
                Instant::now() < deadline,
                "the gateway did not finish its snapshot in {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the read model holds exactly the core's (code, version) pairs.
    pub async fn wait_converged(&self, core: &Core, within: Duration) {
        // Not before the gateway has migrated the file (two migrators race).
        self.wait_streaming(within).await;
        let deadline = Instant::now() + within;
        loop {
            let theirs = core.digest(BUCKETS).await.digests;
            let store = self.store().await;
            let live = store.live_versions().await.unwrap();
            store.close().await;
            if local_digest(&live, BUCKETS) == theirs {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the read model did not converge to the core in {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every live core record is in the read model, field for field.
    pub async fn assert_same_records(&self, core: &Core) {
        let store = self.store().await;
        let records = core.records().await;
        assert!(!records.is_empty());
        for record in &records {
            let expected = record.to_dossier().unwrap().unwrap();
            let held = store.find(&expected.code).await.unwrap();
            assert_eq!(held.as_ref(), Some(&expected), "dossier {}", record.code);
        }
        assert_eq!(store.count().await.unwrap() as usize, records.len());
        store.close().await;
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.http_port))
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap()
    }

    /// The reply to `TC code`; `None` when the gateway is not up.
    pub async fn ask(&self, code: &str) -> Option<String> {
        match self.try_ask(code).await {
            Ok(text) => Some(text),
            Err(error) => {
                eprintln!("ask {code}: {error}");
                None
            }
        }
    }

    /// The reply, waiting up to 30 s for the gateway to come up.
    pub async fn answer(&self, code: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_ask(code).await {
                Ok(text) => return text,
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "no answer to {code}: {error}\n{}",
                    self.logs()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks about `code` until the reply carries the stale label ("cập nhật
    /// lúc …") or not, as `labelled` says, within `within`; that reply.
    pub async fn answer_until_labelled(
        &self,
        code: &str,
        labelled: bool,
        within: Duration,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.answer(code).await;
            if text.contains(STALE_LABEL) == labelled {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the reply is {} the stale label after {within:?}: {text}\n{}",
                if labelled {
                    "still without"
                } else {
                    "still with"
                },
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn try_ask(
        &self,
        code: &str,
    ) -> Result<String, motcua_sms::smpp::client::ClientError> {
        let addr = format!("127.0.0.1:{}", self.smpp_port).parse().unwrap();
        // A new sender each time: the same text from the same number
        // within journal.redelivery_window_secs is one message redelivered.
        let sender = format!(
            "8498{:07}",
            ASKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let reply = send_and_receive(
            addr,
            super::SYSTEM_ID,
            super::PASSWORD,
            &sender,
            super::SERVICE_NUMBER,
            &format!("TC {code}"),
            Duration::from_secs(5),
        )
        .await?;
        // After a restart the gateway delivers replies owed to messages of
        // killed sessions on whatever session of the account is bound: such
        // a reply, to another number, is not the answer to this question.
        if reply.parts.iter().any(|p| p.destination_addr != sender) {
            return Err(motcua_sms::smpp::client::ClientError::NoReply(
                Duration::ZERO,
            ));
        }
        Ok(reply.text)
    }
}
