//! Traffic for the admin console: the message log (search, newest first,
//! paged by id, numbers masked for viewers) and statistics over a window
//! (messages per hour or day in Vietnam time, by channel and outcome; the
//! found / not found ratio; reply latency percentiles; the agencies and
//! procedures most looked up; the busiest channels).
//!
//! Reads only, on the gateway database's pool (`db::StatePool`, SQLite or
//! PostgreSQL, each query one text for both; bucket starts are integer
//! arithmetic on the epoch milliseconds, and rankings and the series are
//! ordered here, texts by their bytes, so both engines give the same
//! figures): `messages`, `replies` (outcome, state,
//! reply text, `sent_at`) and `reply_lookups` (the dossier code each reply
//! looked up, and the agency and procedure when found), which the outbox, the
//! USSD service and the Kannel drop-in write with every reply. Latency is
//! `replies.sent_at - messages.received_at`: for SMS the time to the first
//! hand-over to the channel (sent to a peer, accepted by an SMSC); for the
//! Kannel drop-in the time to the answer. A USSD dialogue's length (from the
//! dial to the final screen) is mostly the citizen's typing, so it has its
//! own percentiles and does not count as reply latency. Replies recorded
//! before `sent_at` existed have no latency.
//!
//! After retention (`Journal::purge_before`) a message keeps its channel,
//! times, outcome and state, and its lookup's agency and procedure: it still
//! counts in the statistics, but its texts, numbers and code are empty, so a
//! search by sender or code no longer finds it.
//!
//! The structs are the console's JSON (`GET /api/v1/messages`,
//! `GET /api/v1/stats`, see docs/admin-api.md); the HTTP handlers live
//! elsewhere.

use std::collections::BTreeMap;

use crate::clock::{now_ms, VIETNAM_UTC_OFFSET_MS};
use crate::db::StatePool;
use crate::domain::{DossierCode, Msisdn};
use crate::journal::UNDECODABLE;
use crate::on_state_pool;
use crate::privacy::{mask_name, mask_number, mask_numbers_in, mask_spans};
use serde::{Deserialize, Serialize};

/// Messages per page when the query does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most messages per page.
pub const MAX_LIMIT: u32 = 500;
/// Longest statistics window, in days.
pub const MAX_WINDOW_DAYS: i64 = 400;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Entries in the top agencies and top procedures.
const TOP: i64 = 10;
/// Up to this many latency samples are sorted in memory; beyond, each
/// percentile is one query (`ORDER BY … LIMIT 1 OFFSET k`).
const IN_MEMORY_SAMPLES: i64 = 200_000;

/// Why a traffic query failed.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The query asks for something refused (an empty or too long window);
    /// the text says what, for the console to show.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The journal could not be read.
    #[error("journal database: {0}")]
    Database(#[from] sqlx::Error),
}

impl TrafficError {
    /// The API's error code: `invalid_query` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            TrafficError::InvalidQuery(_) => "invalid_query",
            TrafficError::Database(_) => "internal",
        }
    }
}

/// A search of the message log. Every filter is optional; empty strings
/// count as absent. Unix ms times; `since` / `until` / `before` are accepted
/// for `since_ms` / `until_ms` / `before_id` (the API's query parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageQuery {
    /// A dossier code in any spelling a citizen could type (read like an
    /// SMS, `DossierCode::extract`), matched exactly against the code the
    /// reply looked up; text that holds no code matches as a substring of
    /// the canonical code, case-insensitively (`h58-240315`).
    pub code: Option<String>,
    /// The citizen's number in any spelling (`0912345678`, `84912345678`,
    /// `+84 912 345 678`), matched against every spelling a channel may have
    /// stored; text that is not a phone number (an alphanumeric sender)
    /// matches exactly.
    pub sender: Option<String>,
    /// The channel: exact (`kannel`, `smsc:viettel`), or a prefix when it
    /// ends with `:` or `*` (`smsc:`, `ussd*`).
    pub channel: Option<String>,
    /// The outcome (`found`, `not_found`, `help`, …): exact, also matching
    /// outcomes with a reason (`silenced` matches `silenced: blocked`), or a
    /// prefix when it ends with `:` or `*`.
    pub outcome: Option<String>,
    /// Received at or after (Unix ms).
    #[serde(alias = "since")]
    pub since_ms: Option<i64>,
    /// Received before (Unix ms).
    #[serde(alias = "until")]
    pub until_ms: Option<i64>,
    /// Only messages with a smaller id: the previous page's `next_before`.
    #[serde(alias = "before")]
    pub before_id: Option<i64>,
    /// Messages per page, 1 to [`MAX_LIMIT`] (clamped); [`DEFAULT_LIMIT`]
    /// when absent.
    pub limit: u32,
}

impl Default for MessageQuery {
    fn default() -> Self {
        MessageQuery {
            code: None,
            sender: None,
            channel: None,
            outcome: None,
            since_ms: None,
            until_ms: None,
            before_id: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// One page of the message log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages, by decreasing id.
    pub messages: Vec<LoggedMessage>,
    /// The `before_id` of the next page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// A message as the log shows it, with its reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoggedMessage {
    /// The journal's id.
    pub id: i64,
    /// When it was received (Unix ms).
    pub received_at: i64,
    /// Where it came from (`smsc:<name>`, `listener:<account>`, `kannel`, `ussd:<transport>`).
    pub channel: String,
    /// The citizen's number as received ('' once purged).
    pub sender: String,
    /// The number texted ('' once purged).
    pub recipient: String,
    /// The text ('' once purged; a USSD dialogue's dial and inputs).
    pub text: String,
    /// The canonical dossier code the reply looked up.
    pub code: Option<String>,
    /// What the message earned (`found`, `not_found`, `help`, …); `None`
    /// while no reply is recorded (being answered, or after a crash).
    pub outcome: Option<String>,
    /// The reply's state (`queued`, `sent`, `accepted`, `delivered`, `failed`,
    /// `suppressed`, `expired`: see [`crate::journal::ReplyState`]).
    pub state: Option<String>,
    /// The reply's text ('' when none is sent, or once purged).
    pub reply_text: Option<String>,
    /// When the reply was first handed to the channel (Unix ms).
    pub sent_at: Option<i64>,
    /// `sent_at - received_at`.
    pub latency_ms: Option<i64>,
    /// Texts and numbers erased after retention.
    pub purged: bool,
    /// Where the applicant's name stood in `reply_text` when the reply was
    /// recorded (`None` for replies recorded before that was kept); only
    /// for masking, never shown.
    #[serde(skip)]
    #[schema(ignore)]
    pub name_spans: Option<Vec<(usize, usize)>>,
}

impl LoggedMessage {
    /// The message as a viewer sees it (see [`crate::privacy`]): sender and
    /// recipient redacted like [`Msisdn::redacted`] (`091****678`; short
    /// numbers like `8058` and alphanumeric names stay), phone numbers in
    /// the text and the reply masked however they are written, and the
    /// applicant's name cut to initials: in the reply, the name it carried
    /// where the journal recorded it ([`LoggedMessage::name_spans`]), and
    /// everywhere `owner_name`, the name the read model has now for the
    /// dossier `code` (a reply to the dossier's own number carries it;
    /// replies recorded before the spans were kept rely on it alone).
    pub fn masked(mut self, owner_name: Option<&str>) -> Self {
        let hide = |text: &str| {
            let text = mask_numbers_in(text);
            match owner_name {
                Some(name) => mask_name(&text, name),
                None => text,
            }
        };
        let spans = self.name_spans.take().unwrap_or_default();
        self.sender = mask_number(&self.sender);
        self.recipient = mask_number(&self.recipient);
        if self.outcome.as_deref() == Some(UNDECODABLE) {
            // A raw PDU: the sender's number and text, only encoded.
            self.text.clear();
        }
        self.text = hide(&self.text);
        self.reply_text = self
            .reply_text
            .as_deref()
            .map(|reply| hide(&mask_spans(reply, &spans)));
        self
    }

    fn from_row(row: LogRow) -> Self {
        LoggedMessage {
            latency_ms: row.sent_at.map(|sent| sent - row.received_at),
            purged: row.purged != 0,
            code: row.code.filter(|code| !code.is_empty()),
            name_spans: row
                .name_spans
                .as_deref()
                .and_then(crate::journal::spans_from_text),
            id: row.id,
            received_at: row.received_at,
            channel: row.channel,
            sender: row.sender,
            recipient: row.recipient,
            text: row.text,
            outcome: row.outcome,
            state: row.state,
            reply_text: row.reply_text,
            sent_at: row.sent_at,
        }
    }
}

/// The width of a statistics bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// One hour.
    #[default]
    Hour,
    /// One day, midnight to midnight in Vietnam (UTC+7).
    Day,
}

impl Bucket {
    fn millis(self) -> i64 {
        match self {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        }
    }

    /// The window when the query gives no `since`: a day of hours, or 30 days.
    fn default_window(self) -> i64 {
        match self {
            Bucket::Hour => DAY_MS,
            Bucket::Day => 30 * DAY_MS,
        }
    }
}

/// A statistics query: messages received in `[since_ms, until_ms)`.
/// `until_ms` defaults to now, `since_ms` to a day (hour buckets) or 30
/// days (day buckets) before it; `since` / `until` are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsQuery {
    /// Start of the window (Unix ms).
    #[serde(alias = "since")]
    pub since_ms: Option<i64>,
    /// End of the window, excluded (Unix ms).
    #[serde(alias = "until")]
    pub until_ms: Option<i64>,
    /// Hour or day buckets.
    pub bucket: Bucket,
}

impl StatsQuery {
    /// The window `[since, until)` this query asks for at `now`.
    ///
    /// # Errors
    ///
    /// [`TrafficError::InvalidQuery`] when it is empty or longer than
    /// [`MAX_WINDOW_DAYS`].
    fn window(&self, now: i64) -> Result<(i64, i64), TrafficError> {
        let until = self.until_ms.unwrap_or(now);
        let since = self
            .since_ms
            .unwrap_or_else(|| until.saturating_sub(self.bucket.default_window()));
        if since >= until {
            return Err(TrafficError::InvalidQuery(format!(
                "since ({since}) must be before until ({until})"
            )));
        }
        if until.saturating_sub(since) > MAX_WINDOW_DAYS * DAY_MS {
            return Err(TrafficError::InvalidQuery(format!(
                "the window is longer than {MAX_WINDOW_DAYS} days"
            )));
        }
        Ok((since, until))
    }
}

/// Traffic statistics over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    /// Start of the window (Unix ms).
    pub since: i64,
    /// End of the window, excluded (Unix ms).
    pub until: i64,
    /// The buckets' width.
    pub bucket: Bucket,
    /// Messages per bucket, channel and outcome, by bucket then channel then
    /// outcome; only non-zero counts. The first bucket may start before `since`.
    pub series: Vec<SeriesPoint>,
    /// The window's totals.
    pub totals: Totals,
    /// found / (found + not_found); `None` without either.
    pub found_ratio: Option<f64>,
    /// Reply latency over the SMS (and Kannel drop-in) replies sent in the window.
    pub latency_ms: Latency,
    /// The length of the USSD dialogues finished in the window, from the
    /// dial to the final screen.
    pub ussd_dialogue_ms: Latency,
    /// The 10 agencies most looked up (dossiers found), most first.
    pub top_agencies: Vec<Ranked>,
    /// The 10 procedures most looked up (dossiers found), most first.
    pub top_procedures: Vec<Ranked>,
    /// Messages per channel, most first.
    pub channels: Vec<Ranked>,
}

impl Stats {
    /// The series as CSV (RFC 4180, a header line first) for spreadsheets:
    /// `bucket_start` (the bucket's start in Vietnam time, ISO 8601 with
    /// `+07:00`), `channel`, `outcome` (empty for messages without a
    /// recorded reply) and `messages`, in the series' order.
    pub fn series_csv(&self) -> String {
        let vietnam = crate::clock::vietnam();
        // Writing to memory cannot fail: the expects below never fire.
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(["bucket_start", "channel", "outcome", "messages"])
            .expect("written to memory");
        for point in &self.series {
            let start = chrono::DateTime::from_timestamp_millis(point.start)
                .map(|t| t.with_timezone(&vietnam).to_rfc3339())
                .unwrap_or_else(|| point.start.to_string());
            let count = point.count.to_string();
            out.write_record([
                start.as_str(),
                point.channel.as_str(),
                point.outcome.as_deref().unwrap_or(""),
                count.as_str(),
            ])
            .expect("written to memory");
        }
        let bytes = out.into_inner().expect("flushed to memory");
        String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
    }
}

/// Messages of one channel and outcome in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// The bucket's start (Unix ms): a whole hour, or midnight in Vietnam.
    pub start: i64,
    /// The channel.
    pub channel: String,
    /// The outcome; `None` for messages without a recorded reply.
    pub outcome: Option<String>,
    /// How many messages.
    pub count: i64,
}

/// A window's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    /// Messages received.
    pub messages: i64,
    /// Of which answered: a reply sent, accepted or delivered.
    pub answered: i64,
    /// Of which found their dossier.
    pub found: i64,
    /// Of which asked for a dossier that is not known.
    pub not_found: i64,
    /// The others (help, invalid date, unavailable, rate limited, silenced,
    /// USSD menus left, no reply yet, …).
    pub other: i64,
}

/// Latency percentiles (nearest rank), in ms; `None` without samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Latency {
    /// Replies with a latency.
    pub samples: i64,
    /// Median.
    pub p50: Option<i64>,
    /// 90th percentile.
    pub p90: Option<i64>,
    /// 99th percentile.
    pub p99: Option<i64>,
    /// Slowest.
    pub max: Option<i64>,
}

/// Which replies a latency is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timed {
    /// SMS and Kannel drop-in replies: the gateway's own speed.
    Replies,
    /// USSD dialogues: mostly the citizen's typing.
    UssdDialogues,
}

/// A name and how many messages it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ranked {
    /// The agency, procedure or channel.
    pub name: String,
    /// Messages.
    pub count: i64,
}

/// A channel's recent traffic, for the console's channel page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentActivity {
    /// Messages received in the last hour.
    pub last_hour: i64,
    /// Messages received in the last minute.
    pub last_minute: i64,
    /// Of the last hour's messages, those whose reply failed.
    pub failed_last_hour: i64,
}

/// The message log and statistics, on the gateway database (SQLite or
/// PostgreSQL: every query is one text both engines read alike).
#[derive(Debug, Clone)]
pub struct Traffic {
    pool: StatePool,
}

/// Joins every message to its reply and lookup.
const LOG_FROM: &str = "FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
                        LEFT JOIN reply_lookups l ON l.message_id = m.id";

/// The log's columns ([`LogRow`]).
const LOG_COLUMNS: &str = "SELECT m.id, m.received_at, m.channel, m.sender, m.recipient, m.text, \
                           m.purged, l.code, l.name_spans, r.outcome, r.state, \
                           r.text AS reply_text, r.sent_at ";

/// A row of the log as read, before [`LoggedMessage::from_row`].
#[derive(sqlx::FromRow)]
struct LogRow {
    id: i64,
    received_at: i64,
    channel: String,
    sender: String,
    recipient: String,
    text: String,
    purged: i64,
    code: Option<String>,
    name_spans: Option<String>,
    outcome: Option<String>,
    state: Option<String>,
    reply_text: Option<String>,
    sent_at: Option<i64>,
}

/// A value bound to a query built at run time ([`Filter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Param {
    Text(String),
    Int(i64),
}

/// SQL text with `$N` placeholders and the values they stand for, built
/// once whichever engine runs it.
#[derive(Debug, Default)]
struct Filter {
    sql: String,
    params: Vec<Param>,
}

impl Filter {
    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the placeholder of `value` (the next `$N`).
    fn bind(&mut self, value: Param) -> &mut Self {
        self.params.push(value);
        self.sql.push_str(&format!("${}", self.params.len()));
        self
    }

    fn bind_text(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(Param::Text(value.into()))
    }

    /// `LOWER(column) LIKE $N ESCAPE '\'` for the pattern `pattern`
    /// (wildcards already escaped), ASCII letters in either case alike:
    /// SQLite's own `LIKE`, which PostgreSQL's is not.
    fn like(&mut self, column: &str, pattern: &str) -> &mut Self {
        self.push(&format!("LOWER({column}) LIKE "))
            .bind_text(pattern.to_ascii_lowercase())
            .push(" ESCAPE '\\'")
    }

    /// `column = value`, or `column LIKE 'value%'` for a prefix.
    fn exact_or_prefix(&mut self, column: &str, value: &str) -> &mut Self {
        match prefix_of(value) {
            Some(prefix) => self.like(column, &format!("{}%", escape_like(prefix))),
            None => self.push(&format!("{column} = ")).bind_text(value),
        }
    }
}

impl Traffic {
    /// The traffic recorded in the gateway database whose pool is `pool`
    /// (`db::GatewayDb::pool`, migrated on opening).
    pub fn new(pool: StatePool) -> Self {
        Traffic { pool }
    }

    /// Messages received in the hour and the minute before `now_ms`, and
    /// the hour's failed replies, per channel (channels with none are absent).
    ///
    /// # Errors
    ///
    /// [`TrafficError::Database`] when the journal cannot be read.
    pub async fn recent_by_channel(
        &self,
        now_ms: i64,
    ) -> Result<BTreeMap<String, RecentActivity>, TrafficError> {
        const SQL: &str = "SELECT m.channel, count(*), \
             CAST(COALESCE(SUM(CASE WHEN m.received_at >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN r.state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE m.received_at >= $1 GROUP BY m.channel";
        let rows: Vec<(String, i64, i64, i64)> = on_state_pool!(&self.pool, p => {
            sqlx::query_as(SQL)
                .bind(now_ms - HOUR_MS)
                .bind(now_ms - 60_000)
                .fetch_all(p)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(channel, last_hour, last_minute, failed_last_hour)| {
                let activity = RecentActivity {
                    last_hour,
                    last_minute,
                    failed_last_hour,
                };
                (channel, activity)
            })
            .collect())
    }

    /// One page of the messages matching `q`, newest first.
    ///
    /// # Errors
    ///
    /// [`TrafficError::Database`] when the journal cannot be read.
    pub async fn search(&self, q: &MessageQuery) -> Result<MessagePage, TrafficError> {
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let mut sql = Filter::default();
        sql.push(LOG_COLUMNS).push(LOG_FROM).push(" WHERE 1 = 1");
        if let Some(code) = non_empty(&q.code) {
            match DossierCode::extract(code) {
                Ok(code) => {
                    sql.push(" AND l.code = ").bind_text(code.to_string());
                }
                Err(_) => {
                    sql.push(" AND ")
                        .like("l.code", &format!("%{}%", escape_like(code)));
                }
            }
        }
        if let Some(sender) = non_empty(&q.sender) {
            sql.push(" AND m.sender IN (");
            for (n, spelling) in sender_spellings(sender).into_iter().enumerate() {
                if n > 0 {
                    sql.push(", ");
                }
                sql.bind_text(spelling);
            }
            sql.push(")");
        }
        if let Some(channel) = non_empty(&q.channel) {
            sql.push(" AND ").exact_or_prefix("m.channel", channel);
        }
        if let Some(outcome) = non_empty(&q.outcome) {
            sql.push(" AND (").exact_or_prefix("r.outcome", outcome);
            if prefix_of(outcome).is_none() {
                // "silenced" also matches "silenced: <reason>".
                sql.push(" OR ")
                    .like("r.outcome", &format!("{}:%", escape_like(outcome)));
            }
            sql.push(")");
        }
        if let Some(since) = q.since_ms {
            sql.push(" AND m.received_at >= ").bind(Param::Int(since));
        }
        if let Some(until) = q.until_ms {
            sql.push(" AND m.received_at < ").bind(Param::Int(until));
        }
        if let Some(before) = q.before_id {
            sql.push(" AND m.id < ").bind(Param::Int(before));
        }
        // One more than asked: whether there is a next page.
        sql.push(" ORDER BY m.id DESC LIMIT ")
            .bind(Param::Int(i64::from(limit) + 1));
        let rows: Vec<LogRow> = on_state_pool!(&self.pool, p => {
            let mut query = sqlx::query_as(&sql.sql);
            for param in &sql.params {
                query = match param {
                    Param::Text(text) => query.bind(text.as_str()),
                    Param::Int(value) => query.bind(*value),
                };
            }
            query.fetch_all(p).await?
        });
        let mut messages: Vec<LoggedMessage> =
            rows.into_iter().map(LoggedMessage::from_row).collect();
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        let next_before = more.then(|| messages.last().map(|m| m.id)).flatten();
        Ok(MessagePage {
            messages,
            next_before,
        })
    }

    /// Statistics of the messages received in `q`'s window.
    ///
    /// # Errors
    ///
    /// [`TrafficError::InvalidQuery`] for an empty window or one longer than
    /// [`MAX_WINDOW_DAYS`]; [`TrafficError::Database`] when the journal
    /// cannot be read.
    pub async fn stats(&self, q: &StatsQuery) -> Result<Stats, TrafficError> {
        let (since, until) = q.window(now_ms())?;
        let width = q.bucket.millis();
        // Buckets aligned to Vietnam's midnight (and so its whole hours):
        // integer arithmetic on the epoch milliseconds, which both engines
        // do alike (BIGINT, division truncating).
        let series_sql = format!(
            "SELECT ((m.received_at + {VIETNAM_UTC_OFFSET_MS}) / {width}) * {width} - {VIETNAM_UTC_OFFSET_MS} AS start, \
             m.channel, r.outcome, count(*) \
             FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE m.received_at >= $1 AND m.received_at < $2 \
             GROUP BY start, m.channel, r.outcome"
        );
        let rows: Vec<(i64, String, Option<String>, i64)> =
            self.in_window(&series_sql, since, until).await?;
        let mut series: Vec<SeriesPoint> = rows
            .into_iter()
            .map(|(start, channel, outcome, count)| SeriesPoint {
                start,
                channel,
                outcome,
                count,
            })
            .collect();
        // Sorted here, not by the engine: texts by their bytes (SQLite's
        // order, not a PostgreSQL collation's), no outcome first.
        series.sort_by(|a, b| {
            (a.start, &a.channel, &a.outcome).cmp(&(b.start, &b.channel, &b.outcome))
        });
        const TOTALS: &str = "SELECT count(*), \
             CAST(COALESCE(SUM(CASE WHEN r.state IN ('sent', 'accepted', 'delivered') THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN r.outcome = 'found' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN r.outcome = 'not_found' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE m.received_at >= $1 AND m.received_at < $2";
        let (messages, answered, found, not_found): (i64, i64, i64, i64) = on_state_pool!(&self.pool, p => {
            sqlx::query_as(TOTALS)
                .bind(since)
                .bind(until)
                .fetch_one(p)
                .await?
        });
        let looked_up = found + not_found;
        Ok(Stats {
            since,
            until,
            bucket: q.bucket,
            series,
            totals: Totals {
                messages,
                answered,
                found,
                not_found,
                other: messages - looked_up,
            },
            found_ratio: (looked_up > 0).then(|| found as f64 / looked_up as f64),
            latency_ms: self
                .latency(Timed::Replies, since, until, IN_MEMORY_SAMPLES)
                .await?,
            ussd_dialogue_ms: self
                .latency(Timed::UssdDialogues, since, until, IN_MEMORY_SAMPLES)
                .await?,
            top_agencies: self.ranked("l.agency", since, until, Some(TOP)).await?,
            top_procedures: self.ranked("l.procedure", since, until, Some(TOP)).await?,
            channels: self.ranked("m.channel", since, until, None).await?,
        })
    }

    /// Latency percentiles of what `timed` picks among the replies to
    /// messages received in `[since, until)`: sorted in memory up to
    /// `in_memory` samples, one query per percentile beyond.
    async fn latency(
        &self,
        timed: Timed,
        since: i64,
        until: i64,
        in_memory: i64,
    ) -> Result<Latency, TrafficError> {
        // Case does not matter (SQLite's LIKE ignores it, PostgreSQL's
        // does not): the USSD service names its channels `ussd:<transport>`,
        // and no other channel's name starts with `ussd` in any case.
        let channels = match timed {
            Timed::Replies => "m.channel NOT LIKE 'ussd:%'",
            Timed::UssdDialogues => "m.channel LIKE 'ussd:%'",
        };
        let samples_from = format!(
            "FROM messages m JOIN replies r ON r.message_id = m.id \
             WHERE m.received_at >= $1 AND m.received_at < $2 AND r.sent_at IS NOT NULL \
             AND {channels}"
        );
        let count = format!("SELECT count(*) {samples_from}");
        let samples: i64 = on_state_pool!(&self.pool, p => {
            sqlx::query_scalar(&count)
                .bind(since)
                .bind(until)
                .fetch_one(p)
                .await?
        });
        if samples == 0 {
            return Ok(Latency::default());
        }
        let ordered =
            format!("SELECT r.sent_at - m.received_at AS latency {samples_from} ORDER BY latency");
        let ranks = [50, 90, 99, 100].map(|p| nearest_rank(p, samples));
        let values: Vec<i64> = if samples <= in_memory {
            let sorted: Vec<(i64,)> = self.in_window(&ordered, since, until).await?;
            ranks
                .iter()
                .map(|&rank| sorted.get(rank as usize).map_or(0, |(value,)| *value))
                .collect()
        } else {
            let one = format!("{ordered} LIMIT 1 OFFSET $3");
            let mut values = Vec::with_capacity(ranks.len());
            for rank in ranks {
                let value: Option<i64> = on_state_pool!(&self.pool, p => {
                    sqlx::query_scalar(&one)
                        .bind(since)
                        .bind(until)
                        .bind(rank)
                        .fetch_optional(p)
                        .await?
                });
                values.push(value.unwrap_or_default());
            }
            values
        };
        Ok(Latency {
            samples,
            p50: Some(values[0]),
            p90: Some(values[1]),
            p99: Some(values[2]),
            max: Some(values[3]),
        })
    }

    /// The rows `sql` reads, its `$1` and `$2` bound to the window's
    /// `since` and `until`.
    async fn in_window<T>(&self, sql: &str, since: i64, until: i64) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        on_state_pool!(&self.pool, p => {
            sqlx::query_as(sql).bind(since).bind(until).fetch_all(p).await
        })
    }

    /// The values of `column` (over messages received in `[since, until)`
    /// with their lookups) by how many messages had them, most first (ties
    /// by name, in byte order), at most `limit` (`None`: all). Ranked here,
    /// not by the engine, so that ties fall alike on both.
    async fn ranked(
        &self,
        column: &str,
        since: i64,
        until: i64,
        limit: Option<i64>,
    ) -> Result<Vec<Ranked>, TrafficError> {
        let sql = format!(
            "SELECT {column}, count(*) {LOG_FROM} \
             WHERE m.received_at >= $1 AND m.received_at < $2 AND {column} IS NOT NULL \
             GROUP BY {column}"
        );
        let rows: Vec<(String, i64)> = self.in_window(&sql, since, until).await?;
        let mut ranked: Vec<Ranked> = rows
            .into_iter()
            .map(|(name, count)| Ranked { name, count })
            .collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        if let Some(limit) = limit {
            ranked.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(ranked)
    }
}

/// The 0-based index of the `percent`th percentile of `n` sorted samples
/// (nearest rank).
fn nearest_rank(percent: i64, n: i64) -> i64 {
    ((percent * n + 99) / 100 - 1).clamp(0, n - 1)
}

/// The trimmed text, unless empty.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `value` without its trailing `:`-keeping prefix mark: `smsc:` is a
/// prefix as is, `ussd*` is the prefix `ussd`.
fn prefix_of(value: &str) -> Option<&str> {
    if let Some(prefix) = value.strip_suffix('*') {
        Some(prefix)
    } else if value.ends_with(':') {
        Some(value)
    } else {
        None
    }
}

/// `text` with LIKE's wildcards escaped (escape character `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every spelling a channel may have stored the number `typed` in (SMPP
/// source addresses, Kannel's `%p`, modems, USSD aggregators): with or
/// without `+` or `00`, national with or without the trunk zero. Text
/// that is not a phone number is its own only spelling.
fn sender_spellings(typed: &str) -> Vec<String> {
    let Ok(number) = Msisdn::parse(typed) else {
        return vec![typed.to_owned()];
    };
    let international = number.as_international();
    let mut spellings = vec![
        international.to_owned(),
        format!("+{international}"),
        format!("00{international}"),
    ];
    if number.is_vietnamese() {
        let national = number.national();
        spellings.push(national[1..].to_owned());
        spellings.push(national);
    }
    spellings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::GatewayDb;
    use crate::journal::{spans_text, LookupNote, ReplyState};

    const CODE_7: &str = "000.00.12.H58-240315-0007";
    const CAI_BE: &str = "UBND huyện Cái Bè";
    const BUILDING: &str = "Cấp phép xây dựng";
    const MARRIAGE: &str = "Đăng ký kết hôn";

    /// The fixture's two days (the 20th and 21st, Vietnam time), by day.
    fn the_20th_and_21st_by_day() -> StatsQuery {
        StatsQuery {
            since_ms: Some(utc(19, 17, 0, 0)),
            until_ms: Some(utc(21, 17, 0, 0)),
            bucket: Bucket::Day,
        }
    }

    /// Unix ms of a UTC time on March 2024.
    fn utc(day: u32, hour: u32, minute: u32, second: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(2024, 3, day)
            .unwrap()
            .and_hms_opt(hour, minute, second)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    /// A received message, before it is recorded.
    #[derive(Debug, Clone)]
    struct Message {
        channel: String,
        sender: String,
        text: String,
        received_at: i64,
    }

    fn message(channel: &str, sender: &str, text: &str, received_at: i64) -> Message {
        Message {
            channel: channel.into(),
            sender: sender.into(),
            text: text.into(),
            received_at,
        }
    }

    /// A recorded reply.
    #[derive(Debug, Clone)]
    struct Reply {
        outcome: String,
        text: String,
        state: ReplyState,
        sent_at: Option<i64>,
    }

    fn lookup(code: &str, found: Option<(&str, &str)>) -> Option<LookupNote> {
        Some(LookupNote {
            code: code.into(),
            agency: found.map(|(agency, _)| agency.into()),
            procedure: found.map(|(_, procedure)| procedure.into()),
            name_spans: Vec::new(),
        })
    }

    /// Writes `m`, its reply and the reply's lookup as the journal records
    /// them (`messages`, `replies`, `reply_lookups`: the rows these reads
    /// are written against), on either engine; returns the message's id.
    async fn record(
        db: &GatewayDb,
        m: &Message,
        reply: Option<Reply>,
        lookup: Option<LookupNote>,
    ) -> i64 {
        on_state_pool!(db.pool(), p => {
            let mut tx = p.begin().await.unwrap();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (channel, sender, sender_ton, sender_npi, recipient, \
                 recipient_ton, recipient_npi, text, received_at) \
                 VALUES ($1, $2, 1, 1, '8058', 0, 0, $3, $4) RETURNING id",
            )
            .bind(&m.channel)
            .bind(&m.sender)
            .bind(&m.text)
            .bind(m.received_at)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            if let Some(reply) = reply {
                sqlx::query(
                    "INSERT INTO replies (message_id, outcome, text, state, attempts, \
                     next_attempt_at, created_at, updated_at, sent_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $5, $5, $6)",
                )
                .bind(id)
                .bind(&reply.outcome)
                .bind(&reply.text)
                .bind(reply.state.as_str())
                .bind(m.received_at)
                .bind(reply.sent_at)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            if let Some(note) = lookup {
                sqlx::query(
                    "INSERT INTO reply_lookups (message_id, code, agency, procedure, name_spans) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(&note.code)
                .bind(&note.agency)
                .bind(&note.procedure)
                .bind(spans_text(&note.name_spans))
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
            id
        })
    }

    /// A message answered by the outbox, its reply in `state` (handed to
    /// the channel two seconds after the message, unless still queued).
    async fn outbox(
        db: &GatewayDb,
        m: Message,
        outcome: &str,
        lookup: Option<LookupNote>,
        state: ReplyState,
    ) -> i64 {
        let reply = Reply {
            outcome: outcome.into(),
            text: format!("{outcome} reply, hotline 0987654321"),
            state,
            sent_at: (state != ReplyState::Queued).then_some(m.received_at + 2_000),
        };
        record(db, &m, Some(reply), lookup).await
    }

    /// A message answered on the spot (USSD, Kannel), a second later.
    async fn exchange(
        db: &GatewayDb,
        m: Message,
        outcome: &str,
        lookup: Option<LookupNote>,
    ) -> i64 {
        let reply = Reply {
            outcome: outcome.into(),
            text: "answer".into(),
            state: ReplyState::Sent,
            sent_at: Some(m.received_at + 1_000),
        };
        record(db, &m, Some(reply), lookup).await
    }

    /// What the retention purge (`Journal::purge_before`, see
    /// `journal::retention`) leaves of the messages received before
    /// `cutoff` whose reply is no longer queued: texts, numbers and code
    /// erased, the rest kept.
    async fn as_purged_before(db: &GatewayDb, cutoff: i64) {
        on_state_pool!(db.pool(), p => {
            let mut tx = p.begin().await.unwrap();
            for sql in [
                "UPDATE replies SET text = '' WHERE state <> 'queued' AND message_id IN \
                 (SELECT id FROM messages WHERE received_at < $1)",
                "UPDATE reply_lookups SET code = '' WHERE message_id IN \
                 (SELECT m.id FROM messages m JOIN replies r ON r.message_id = m.id \
                  WHERE m.received_at < $1 AND r.state <> 'queued')",
                "UPDATE messages SET text = '', sender = '', recipient = '', purged = 1 \
                 WHERE received_at < $1 AND NOT EXISTS (SELECT 1 FROM replies r \
                 WHERE r.message_id = messages.id AND r.state = 'queued')",
            ] {
                sqlx::query(sql).bind(cutoff).execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        })
    }

    /// Seven messages over two days in Vietnam (20 and 21 March 2024),
    /// ids 1 to 7.
    async fn traffic(db: &GatewayDb) -> Traffic {
        let j = db;
        let found = |code: &str, procedure| lookup(code, Some((CAI_BE, procedure)));
        outbox(
            j,
            message(
                "smsc:viettel",
                "84912345678",
                &format!("TC {CODE_7}"),
                utc(20, 1, 0, 0),
            ),
            "found",
            found(CODE_7, BUILDING),
            ReplyState::Accepted,
        )
        .await;
        outbox(
            j,
            message(
                "smsc:vina",
                "0912345678",
                "tc 000 00 12 h58 240315 8",
                utc(20, 2, 10, 0),
            ),
            "not_found",
            lookup("000.00.12.H58-240315-0008", None),
            ReplyState::Accepted,
        )
        .await;
        outbox(
            j,
            message(
                "listener:demo",
                "+84912345678",
                "xin chao",
                utc(20, 2, 20, 0),
            ),
            "help",
            None,
            ReplyState::Sent,
        )
        .await;
        // 23:30 UTC on the 20th is 06:30 on the 21st in Vietnam.
        exchange(
            j,
            message(
                "kannel",
                "84987000111",
                "TC 000.00.12.H58-240315-0009 goi +84987654321",
                utc(20, 23, 30, 0),
            ),
            "found",
            found("000.00.12.H58-240315-0009", MARRIAGE),
        )
        .await;
        exchange(
            j,
            message(
                "ussd:http",
                "84987000222",
                "*8058*1*0000012582403150007#",
                utc(21, 3, 0, 0),
            ),
            "found",
            lookup(CODE_7, Some(("Sở Tư pháp", MARRIAGE))),
        )
        .await;
        outbox(
            j,
            message(
                "smsc:viettel",
                "84987000333",
                "TC 000.00.12.H58-240315-0010",
                utc(21, 4, 0, 0),
            ),
            "not_found",
            lookup("000.00.12.H58-240315-0010", None),
            ReplyState::Queued,
        )
        .await;
        // 16:59:59 UTC is still the 20th in Vietnam (23:59:59).
        outbox(
            j,
            message(
                "listener:demo",
                "84912345678",
                "TC 38.98.H29-210519-0003",
                utc(20, 16, 59, 59),
            ),
            "found",
            found("38.98.H29-210519-0003", BUILDING),
            ReplyState::Sent,
        )
        .await;
        Traffic::new(db.pool().clone())
    }

    async fn ids(t: &Traffic, q: MessageQuery) -> Vec<i64> {
        t.search(&q)
            .await
            .unwrap()
            .messages
            .iter()
            .map(|m| m.id)
            .collect()
    }

    fn query() -> MessageQuery {
        MessageQuery::default()
    }

    async fn the_log_is_searched_by_code_sender_channel_outcome_and_time(db: GatewayDb) {
        let t = traffic(&db).await;
        assert_eq!(ids(&t, query()).await, vec![7, 6, 5, 4, 3, 2, 1]);
        // A code as a citizen types it; the USSD lookup of the same dossier too.
        let code = |c: &str| MessageQuery {
            code: Some(c.into()),
            ..query()
        };
        assert_eq!(ids(&t, code("tc 000 00 12 h58 24O315 7")).await, vec![5, 1]);
        assert_eq!(ids(&t, code("0000012H582403150007")).await, vec![5, 1]);
        // Not a code: a piece of the canonical code, any case.
        assert_eq!(ids(&t, code("h58-240315")).await, vec![6, 5, 4, 2, 1]);
        assert_eq!(ids(&t, code("h29")).await, vec![7]);
        assert_eq!(ids(&t, code("%")).await, Vec::<i64>::new());
        assert_eq!(ids(&t, code("  ")).await.len(), 7, "empty is no filter");
        // A sender in any spelling finds every stored spelling.
        for spelling in ["0912345678", "84912345678", "+84 912 345 678", "912345678"] {
            let q = MessageQuery {
                sender: Some(spelling.into()),
                ..query()
            };
            assert_eq!(ids(&t, q).await, vec![7, 3, 2, 1], "{spelling}");
        }
        let q = MessageQuery {
            sender: Some("VIETTEL".into()),
            ..query()
        };
        assert!(ids(&t, q).await.is_empty());
        // Channels: exact, or a prefix.
        let channel = |c: &str| MessageQuery {
            channel: Some(c.into()),
            ..query()
        };
        assert_eq!(ids(&t, channel("smsc:")).await, vec![6, 2, 1]);
        assert_eq!(ids(&t, channel("smsc:viettel")).await, vec![6, 1]);
        assert_eq!(ids(&t, channel("smsc")).await, Vec::<i64>::new());
        assert_eq!(ids(&t, channel("ussd*")).await, vec![5]);
        assert_eq!(ids(&t, channel("kannel")).await, vec![4]);
        // Outcomes, also combined.
        let outcome = |o: &str| MessageQuery {
            outcome: Some(o.into()),
            ..query()
        };
        assert_eq!(ids(&t, outcome("found")).await, vec![7, 5, 4, 1]);
        assert_eq!(ids(&t, outcome("not_found")).await, vec![6, 2]);
        let q = MessageQuery {
            channel: Some("smsc:".into()),
            ..outcome("found")
        };
        assert_eq!(ids(&t, q).await, vec![1]);
        // A time window: [since, until).
        let q = MessageQuery {
            since_ms: Some(utc(20, 2, 10, 0)),
            until_ms: Some(utc(20, 16, 59, 59)),
            ..query()
        };
        assert_eq!(ids(&t, q).await, vec![3, 2]);
    }

    async fn an_outcome_matches_the_outcomes_with_a_reason(db: GatewayDb) {
        let t = Traffic::new(db.pool().clone());
        let silenced = Reply {
            outcome: "silenced: blocked".into(),
            text: String::new(),
            state: ReplyState::Suppressed,
            sent_at: None,
        };
        let m = message("smsc:a", "84912345678", "TC", 1_000);
        let id = record(&db, &m, Some(silenced), None).await;
        for outcome in ["silenced", "silenced:", "silenced: blocked", "sil*"] {
            let q = MessageQuery {
                outcome: Some(outcome.into()),
                ..query()
            };
            assert_eq!(ids(&t, q).await, vec![id], "{outcome}");
        }
        let q = MessageQuery {
            outcome: Some("silenced: rate".into()),
            ..query()
        };
        assert!(ids(&t, q).await.is_empty());
    }

    async fn pages_follow_each_other_by_id(db: GatewayDb) {
        let t = traffic(&db).await;
        let mut before = None;
        let mut pages = Vec::new();
        loop {
            let page = t
                .search(&MessageQuery {
                    before_id: before,
                    limit: 2,
                    ..query()
                })
                .await
                .unwrap();
            pages.push(page.messages.iter().map(|m| m.id).collect::<Vec<_>>());
            match page.next_before {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, vec![vec![7, 6], vec![5, 4], vec![3, 2], vec![1]]);
        // A page exactly full has no next page.
        let page = t
            .search(&MessageQuery {
                before_id: Some(3),
                limit: 2,
                ..query()
            })
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.next_before, None);
        // The limit is clamped.
        let all = t
            .search(&MessageQuery {
                limit: 0,
                ..query()
            })
            .await
            .unwrap();
        assert_eq!(all.messages.len(), 1);
        assert_eq!(all.next_before, Some(7));
    }

    async fn a_logged_message_carries_its_reply_and_viewers_see_numbers_masked(db: GatewayDb) {
        let t = traffic(&db).await;
        let page = t.search(&query()).await.unwrap();
        let by_id = |id: i64| page.messages.iter().find(|m| m.id == id).unwrap().clone();
        let first = by_id(1);
        assert_eq!(first.received_at, utc(20, 1, 0, 0));
        assert_eq!(first.channel, "smsc:viettel");
        assert_eq!(first.code.as_deref(), Some(CODE_7));
        assert_eq!(first.outcome.as_deref(), Some("found"));
        assert_eq!(first.state.as_deref(), Some("accepted"));
        let sent_at = first.sent_at.expect("sent");
        assert_eq!(first.latency_ms, Some(sent_at - first.received_at));
        assert!(!first.purged);
        let queued = by_id(6);
        assert_eq!(queued.state.as_deref(), Some("queued"));
        assert_eq!((queued.sent_at, queued.latency_ms), (None, None));
        assert_eq!(by_id(3).code, None);

        let kannel = by_id(4).masked(None);
        assert_eq!(kannel.sender, "098****111");
        assert_eq!(kannel.recipient, "8058");
        assert_eq!(
            kannel.text, "TC 000.00.12.H58-240315-0009 goi 098****321",
            "a typed number is masked, the code is not"
        );
        let national = by_id(2).masked(None);
        assert_eq!(national.sender, "091****678");
        assert_eq!(
            national.reply_text.as_deref(),
            Some("not_found reply, hotline 098****321")
        );
        // A code typed without separators is a long digit run: masked too
        // (the code itself is in `code`).
        let ussd = by_id(5).masked(None);
        assert!(ussd.text.starts_with("*8058*1*000*"), "{}", ussd.text);
        assert!(!ussd.text.contains("2403150"), "{}", ussd.text);
        assert_eq!(ussd.code.as_deref(), Some(CODE_7));
        // Unmasked, everything is there.
        assert_eq!(
            by_id(4).text,
            "TC 000.00.12.H58-240315-0009 goi +84987654321"
        );
    }

    async fn an_unreadable_message_is_in_the_log_with_its_raw_pdu_hidden_from_viewers(
        db: GatewayDb,
    ) {
        let t = Traffic::new(db.pool().clone());
        let raw = "07914889200030F0040B914819010203F40000622170129144828AC8329BFD06";
        let m = message("modem", "", raw, utc(20, 1, 0, 0));
        let suppressed = Reply {
            outcome: UNDECODABLE.into(),
            text: String::new(),
            state: ReplyState::Suppressed,
            sent_at: None,
        };
        record(&db, &m, Some(suppressed), None).await;
        let page = t
            .search(&MessageQuery {
                outcome: Some(UNDECODABLE.into()),
                ..query()
            })
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 1);
        let logged = page.messages[0].clone();
        assert_eq!(logged.channel, "modem");
        assert_eq!(logged.text, raw);
        assert_eq!(logged.state.as_deref(), Some("suppressed"));
        assert_eq!(logged.reply_text.as_deref(), Some(""));
        assert_eq!(logged.masked(None).text, "");
    }

    async fn a_viewer_sees_the_name_where_the_reply_carried_it_whatever_the_read_model_says(
        db: GatewayDb,
    ) {
        let t = Traffic::new(db.pool().clone());
        let reply = "HS 000.00.12.H58-240315-0007\nChủ HS: Nguyễn Văn An";
        let spans = crate::domain::vietnamese::find_name(reply, "Nguyễn Văn An");
        assert_eq!(spans, [(37, 50)]);
        let note = LookupNote {
            name_spans: spans,
            ..lookup(CODE_7, Some((CAI_BE, BUILDING))).unwrap()
        };
        let m = message(
            "kannel",
            "84912345678",
            &format!("TC {CODE_7}"),
            utc(20, 1, 0, 0),
        );
        let sent = Reply {
            outcome: "found".into(),
            text: reply.into(),
            state: ReplyState::Sent,
            sent_at: Some(m.received_at + 1_000),
        };
        record(&db, &m, Some(sent), Some(note)).await;
        let page = t.search(&query()).await.unwrap();
        let logged = page.messages[0].clone();
        assert_eq!(logged.name_spans, Some(vec![(37, 50)]));
        // The read model no longer has the dossier (or has another name).
        for now in [None, Some("Lê Thị Hoa")] {
            let seen = logged.clone().masked(now);
            assert_eq!(
                seen.reply_text.as_deref(),
                Some("HS 000.00.12.H58-240315-0007\nChủ HS: N***** V** A*")
            );
        }
        // Spans are never part of the API's JSON.
        let json = serde_json::to_value(&logged).unwrap();
        assert!(json.get("name_spans").is_none(), "{json}");
    }

    #[test]
    fn name_spans_are_kept_as_text_and_read_back() {
        use crate::journal::{spans_from_text, spans_text};
        assert_eq!(spans_text(&[]), "");
        assert_eq!(spans_text(&[(3, 16), (40, 53)]), "3-16,40-53");
        assert_eq!(spans_from_text("3-16,40-53"), Some(vec![(3, 16), (40, 53)]));
        assert_eq!(spans_from_text(""), Some(vec![]));
        assert_eq!(spans_from_text("3-x"), None);
    }

    async fn recent_activity_counts_the_last_hour_and_minute_per_channel(db: GatewayDb) {
        let t = traffic(&db).await;
        // 30 s after the queued message on smsc:viettel (04:00 on the 21st);
        // the USSD dial at 03:00 is more than an hour before.
        let recent = t.recent_by_channel(utc(21, 4, 0, 30)).await.unwrap();
        assert_eq!(
            recent.into_iter().collect::<Vec<_>>(),
            vec![(
                "smsc:viettel".to_owned(),
                RecentActivity {
                    last_hour: 1,
                    last_minute: 1,
                    failed_last_hour: 0,
                }
            )]
        );
        let recent = t.recent_by_channel(utc(21, 3, 30, 0)).await.unwrap();
        assert_eq!(recent["ussd:http"].last_hour, 1);
        assert_eq!(recent["ussd:http"].last_minute, 0);
        assert!(t
            .recent_by_channel(utc(22, 6, 0, 0))
            .await
            .unwrap()
            .is_empty());
    }

    async fn the_series_exports_as_csv_in_vietnam_time(db: GatewayDb) {
        let t = traffic(&db).await;
        let stats = t.stats(&the_20th_and_21st_by_day()).await.unwrap();
        let csv = stats.series_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("bucket_start,channel,outcome,messages"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), stats.series.len());
        // 16:59:59 UTC on the 20th is the 20th in Vietnam; 23:30 UTC is the 21st.
        assert!(
            rows.contains(&"2024-03-20T00:00:00+07:00,listener:demo,found,1"),
            "{csv}"
        );
        assert!(
            rows.contains(&"2024-03-21T00:00:00+07:00,kannel,found,1"),
            "{csv}"
        );
        assert!(
            rows.contains(&"2024-03-21T00:00:00+07:00,smsc:viettel,not_found,1"),
            "{csv}"
        );
        let total: i64 = rows
            .iter()
            .map(|row| row.rsplit(',').next().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(total, stats.totals.messages);
    }

    async fn stats_count_per_day_and_hour_in_vietnam_time(db: GatewayDb) {
        let t = traffic(&db).await;
        // The 20th and 21st in Vietnam: from 17:00 UTC the day before.
        let day_20 = utc(19, 17, 0, 0);
        let day_21 = utc(20, 17, 0, 0);
        let window = |bucket| StatsQuery {
            since_ms: Some(day_20),
            until_ms: Some(utc(21, 17, 0, 0)),
            bucket,
        };
        let stats = t.stats(&window(Bucket::Day)).await.unwrap();
        assert_eq!((stats.since, stats.until), (day_20, utc(21, 17, 0, 0)));
        let per_day = |start: i64| -> i64 {
            stats
                .series
                .iter()
                .filter(|p| p.start == start)
                .map(|p| p.count)
                .sum()
        };
        assert_eq!(per_day(day_20), 4, "{:?}", stats.series);
        assert_eq!(
            per_day(day_21),
            3,
            "the message at 23:30 UTC counts on the 21st"
        );
        assert_eq!(stats.series.len(), 7);
        assert!(stats.series.contains(&SeriesPoint {
            start: day_21,
            channel: "kannel".into(),
            outcome: Some("found".into()),
            count: 1,
        }));
        assert_eq!(
            stats.totals,
            Totals {
                messages: 7,
                answered: 6,
                found: 4,
                not_found: 2,
                other: 1,
            }
        );
        assert_eq!(stats.found_ratio, Some(4.0 / 6.0));
        assert_eq!(
            stats.latency_ms.samples, 5,
            "the queued reply has none, the USSD dialogue is apart"
        );
        assert_eq!(stats.ussd_dialogue_ms.samples, 1);
        let ranked = |list: &[Ranked]| -> Vec<(String, i64)> {
            list.iter().map(|r| (r.name.clone(), r.count)).collect()
        };
        assert_eq!(
            ranked(&stats.top_agencies),
            vec![(CAI_BE.into(), 3), ("Sở Tư pháp".into(), 1)]
        );
        assert_eq!(
            ranked(&stats.top_procedures),
            vec![(BUILDING.into(), 2), (MARRIAGE.into(), 2)]
        );
        assert_eq!(
            ranked(&stats.channels),
            vec![
                ("listener:demo".into(), 2),
                ("smsc:viettel".into(), 2),
                ("kannel".into(), 1),
                ("smsc:vina".into(), 1),
                ("ussd:http".into(), 1),
            ]
        );
        // Hours: the two messages at 02:10 and 02:20 UTC share one.
        let stats = t.stats(&window(Bucket::Hour)).await.unwrap();
        let starts: Vec<i64> = stats.series.iter().map(|p| p.start).collect();
        assert_eq!(
            starts,
            vec![
                utc(20, 1, 0, 0),
                utc(20, 2, 0, 0),
                utc(20, 2, 0, 0),
                utc(20, 16, 0, 0),
                utc(20, 23, 0, 0),
                utc(21, 3, 0, 0),
                utc(21, 4, 0, 0),
            ]
        );
        // A window that starts later leaves the earlier ones out.
        let late = t
            .stats(&StatsQuery {
                since_ms: Some(day_21),
                until_ms: Some(utc(21, 17, 0, 0)),
                bucket: Bucket::Day,
            })
            .await
            .unwrap();
        assert_eq!(late.totals.messages, 3);
        assert_eq!(late.found_ratio, Some(2.0 / 3.0));
    }

    async fn latency_percentiles_are_the_nearest_ranks(db: GatewayDb) {
        let t = Traffic::new(db.pool().clone());
        let base = now_ms();
        // Message k waited k × 10 s (answered at `base`).
        for k in 1..=100i64 {
            let m = message(
                "kannel",
                "84912345678",
                &format!("TC {k}"),
                base - k * 10_000,
            );
            let answered = Reply {
                outcome: "help".into(),
                text: "answer".into(),
                state: ReplyState::Sent,
                sent_at: Some(base),
            };
            record(&db, &m, Some(answered), None).await;
        }
        let q = StatsQuery {
            since_ms: Some(base - 2_000_000),
            until_ms: Some(base + 1),
            bucket: Bucket::Hour,
        };
        let latency = t.stats(&q).await.unwrap().latency_ms;
        assert_eq!(latency.samples, 100);
        let about = |value: Option<i64>, k: i64| {
            let value = value.unwrap();
            assert!(
                (k * 10_000..(k + 1) * 10_000).contains(&value),
                "{value} for {k}"
            );
        };
        about(latency.p50, 50);
        about(latency.p90, 90);
        about(latency.p99, 99);
        about(latency.max, 100);
        // Over the in-memory cap each percentile is a query: the same values.
        let (since, until) = q.window(now_ms()).unwrap();
        assert_eq!(
            t.latency(Timed::Replies, since, until, 10).await.unwrap(),
            latency
        );
        // No samples: no percentiles.
        let empty = t.latency(Timed::Replies, 0, 1, 10).await.unwrap();
        assert_eq!(empty, Latency::default());
        // Kannel replies are no USSD dialogues.
        let dialogues = t.stats(&q).await.unwrap().ussd_dialogue_ms;
        assert_eq!(dialogues, Latency::default());
        assert_eq!(nearest_rank(50, 1), 0);
        assert_eq!(nearest_rank(99, 1000), 989);
    }

    async fn empty_and_too_long_windows_are_refused(db: GatewayDb) {
        let t = Traffic::new(db.pool().clone());
        for (since, until) in [(10, 10), (20, 10), (0, 401 * DAY_MS)] {
            let error = t
                .stats(&StatsQuery {
                    since_ms: Some(since),
                    until_ms: Some(until),
                    bucket: Bucket::Day,
                })
                .await
                .unwrap_err();
            assert!(matches!(error, TrafficError::InvalidQuery(_)), "{error}");
            assert_eq!(error.code(), "invalid_query");
        }
        // 400 days exactly, and the defaults, are fine; an empty journal has no ratio.
        let stats = t
            .stats(&StatsQuery {
                since_ms: Some(0),
                until_ms: Some(400 * DAY_MS),
                bucket: Bucket::Day,
            })
            .await
            .unwrap();
        assert_eq!(stats.found_ratio, None);
        assert_eq!(stats.latency_ms.p50, None);
        let stats = t.stats(&StatsQuery::default()).await.unwrap();
        assert_eq!(stats.until - stats.since, DAY_MS);
    }

    #[test]
    fn queries_read_the_api_json() {
        let q: MessageQuery =
            serde_json::from_str(r#"{"sender":"0912345678","before":42,"since":5}"#).unwrap();
        assert_eq!(q.sender.as_deref(), Some("0912345678"));
        assert_eq!(
            (q.before_id, q.since_ms, q.limit),
            (Some(42), Some(5), DEFAULT_LIMIT)
        );
        let q: StatsQuery = serde_json::from_str(r#"{"bucket":"day","since_ms":1}"#).unwrap();
        assert_eq!(
            (q.bucket, q.since_ms, q.until_ms),
            (Bucket::Day, Some(1), None)
        );
        let json = serde_json::to_value(Latency::default()).unwrap();
        assert_eq!(json["p50"], serde_json::Value::Null);
    }

    async fn purged_messages_count_but_are_not_found_by_code_or_sender(db: GatewayDb) {
        let t = traffic(&db).await;
        as_purged_before(&db, utc(20, 12, 0, 0)).await;
        let page = t.search(&query()).await.unwrap();
        let first = page.messages.iter().find(|m| m.id == 1).unwrap();
        assert!(first.purged);
        assert_eq!((first.sender.as_str(), first.text.as_str()), ("", ""));
        assert_eq!(first.code, None);
        let q = MessageQuery {
            code: Some(CODE_7.into()),
            ..query()
        };
        assert_eq!(ids(&t, q).await, vec![5]);
        let stats = t.stats(&the_20th_and_21st_by_day()).await.unwrap();
        assert_eq!(stats.totals.found, 4);
        assert_eq!(stats.top_agencies[0].count, 3, "agencies are kept");
    }

    /// Messages from noon to noon in Vietnam (the 20th to the 21st), one
    /// every 7 min 13 s and two on either side of midnight, by channel
    /// and outcome.
    async fn across_vietnam_midnight(
        db: &GatewayDb,
    ) -> Vec<(i64, &'static str, Option<&'static str>)> {
        let midnight = utc(20, 17, 0, 0);
        let mut times: Vec<i64> = (utc(20, 5, 0, 0)..utc(21, 5, 0, 0))
            .step_by(433_000)
            .collect();
        times.extend([midnight - 1, midnight]);
        let channels = ["smsc:viettel", "kannel", "ussd:http"];
        let outcomes = [Some("found"), Some("not_found"), Some("help"), None];
        let mut sent = Vec::new();
        for (n, at) in times.into_iter().enumerate() {
            let (channel, outcome) = (channels[n % 3], outcomes[n % 4]);
            let reply = outcome.map(|outcome| Reply {
                outcome: outcome.into(),
                text: "answer".into(),
                state: ReplyState::Sent,
                sent_at: Some(at + 1_500),
            });
            record(db, &message(channel, "84912345678", "TC", at), reply, None).await;
            sent.push((at, channel, outcome));
        }
        sent
    }

    /// A series point's bucket start, channel and outcome.
    type SeriesKey = (i64, String, Option<String>);

    /// The start (Unix ms) of the Vietnam calendar day or hour `at` falls
    /// in, by the calendar (chrono), not by the queries' arithmetic.
    fn calendar_start(at: i64, bucket: Bucket) -> i64 {
        let local = crate::clock::in_vietnam(at).unwrap();
        let start = match bucket {
            Bucket::Day => local.date_naive().and_hms_opt(0, 0, 0).unwrap(),
            Bucket::Hour => local
                .date_naive()
                .and_hms_opt(chrono::Timelike::hour(&local), 0, 0)
                .unwrap(),
        };
        start
            .and_local_timezone(crate::clock::vietnam())
            .unwrap()
            .timestamp_millis()
    }

    async fn daily_and_hourly_series_across_vietnam_midnight_follow_the_calendar(db: GatewayDb) {
        let t = Traffic::new(db.pool().clone());
        let sent = across_vietnam_midnight(&db).await;
        let midnight = utc(20, 17, 0, 0);
        for bucket in [Bucket::Day, Bucket::Hour] {
            let mut expected: BTreeMap<SeriesKey, i64> = BTreeMap::new();
            for (at, channel, outcome) in &sent {
                let key = (
                    calendar_start(*at, bucket),
                    channel.to_string(),
                    outcome.map(str::to_owned),
                );
                *expected.entry(key).or_default() += 1;
            }
            let stats = t.stats(&two_days(bucket)).await.unwrap();
            let series: Vec<(SeriesKey, i64)> = stats
                .series
                .iter()
                .map(|p| ((p.start, p.channel.clone(), p.outcome.clone()), p.count))
                .collect();
            assert_eq!(
                series,
                expected.into_iter().collect::<Vec<_>>(),
                "{bucket:?}"
            );
            assert_eq!(stats.totals.messages, sent.len() as i64);
        }
        let before = sent.iter().filter(|(at, ..)| *at < midnight).count() as i64;
        let after = sent.len() as i64 - before;
        let mut late = t.stats(&two_days(Bucket::Day)).await.unwrap();
        // One bucket a day, 23:59:59.999 on the 20th, 00:00 on the 21st.
        late.series.retain(|p| p.start >= midnight);
        assert_eq!(late.series.iter().map(|p| p.count).sum::<i64>(), after);
        // A window from midnight on: the 21st's messages only.
        let late = t
            .stats(&StatsQuery {
                since_ms: Some(midnight),
                ..two_days(Bucket::Day)
            })
            .await
            .unwrap();
        assert_eq!(late.totals.messages, after);
        assert_eq!(
            late.totals.found,
            sent.iter()
                .filter(|(at, _, outcome)| *at >= midnight && *outcome == Some("found"))
                .count() as i64
        );
    }

    /// The 20th and 21st in Vietnam, in `bucket`s.
    fn two_days(bucket: Bucket) -> StatsQuery {
        StatsQuery {
            bucket,
            ..the_20th_and_21st_by_day()
        }
    }

    crate::on_both_engines!(
        the_log_is_searched_by_code_sender_channel_outcome_and_time,
        an_outcome_matches_the_outcomes_with_a_reason,
        pages_follow_each_other_by_id,
        a_logged_message_carries_its_reply_and_viewers_see_numbers_masked,
        an_unreadable_message_is_in_the_log_with_its_raw_pdu_hidden_from_viewers,
        a_viewer_sees_the_name_where_the_reply_carried_it_whatever_the_read_model_says,
        recent_activity_counts_the_last_hour_and_minute_per_channel,
        the_series_exports_as_csv_in_vietnam_time,
        stats_count_per_day_and_hour_in_vietnam_time,
        latency_percentiles_are_the_nearest_ranks,
        empty_and_too_long_windows_are_refused,
        purged_messages_count_but_are_not_found_by_code_or_sender,
        daily_and_hourly_series_across_vietnam_midnight_follow_the_calendar,
    );
}
