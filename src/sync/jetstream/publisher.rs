//! `motcua-sms fanout`: follows a core feed and publishes every record to
//! the JetStream stream the gateways follow.
//!
//! Bootstrap and every re-snapshot (`410 cursor_expired`, a new epoch, a
//! stream that was recreated): note the stream's next sequence `S0`, publish
//! every snapshot record, purge the dossier messages below `S0` (dossiers
//! deleted while nobody watched leave the stream), publish a
//! [`SnapshotMarker`] (gateways re-read the stream on it), then store the
//! snapshot's head as the position. Then follow the change log: publish each
//! page's records, wait for the stream's acks, store the page's cursor
//! ([`PublisherState`], in the stream itself). Publishes are pipelined, at
//! most `max_in_flight` acks awaited at once.
//!
//! A crash anywhere replays at most what followed the last stored position;
//! the replay is dropped by the stream's duplicate window (same
//! `Nats-Msg-Id`) or, past it, refused by the gateways' version guard. A
//! snapshot record the stream reports as a duplicate (an earlier, interrupted
//! snapshot published it within the window) is published again under an id
//! qualified by `S0`: the purge would otherwise remove its only copy.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, stream::Stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    connect, message_id, stream_config, JetStreamError, PublisherState, SnapshotMarker, Subjects,
    EPOCH_HEADER,
};
use crate::feed::FeedRecord;
use crate::sync::client::{FeedClient, FeedClientError};
use crate::sync::{sleep_unless_shutdown, Backoff};

/// Longest gap between two stored positions while the core answers (the
/// gateways' evidence that the core is up; see [`PublisherState::core_ok_at_ms`]).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// What the publisher follows and where it publishes.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// The core feed's base URL.
    pub feed_url: String,
    /// Its bearer token.
    pub feed_token: Option<String>,
    /// NATS server(s), `nats://host:port[,…]`.
    pub nats_url: String,
    /// A NATS `.creds` file, if the server wants one.
    pub credentials: Option<PathBuf>,
    /// The stream's name.
    pub stream: String,
    /// The subjects' prefix.
    pub prefix: String,
    /// The stream's duplicate window.
    pub duplicate_window: Duration,
    /// Publish acks awaited at once at most.
    pub max_in_flight: usize,
    /// Changes asked for per feed request.
    pub batch: usize,
    /// Snapshot records per page.
    pub snapshot_page: usize,
    /// Long-poll wait when caught up.
    pub wait: Duration,
    /// Longest pause between attempts.
    pub backoff_max: Duration,
}

impl PublisherSettings {
    /// Defaults for the feed at `feed_url` and the NATS server at `nats_url`.
    pub fn new(feed_url: &str, feed_token: Option<String>, nats_url: &str) -> Self {
        PublisherSettings {
            feed_url: feed_url.to_owned(),
            feed_token,
            nats_url: nats_url.to_owned(),
            credentials: None,
            stream: super::DEFAULT_STREAM.to_owned(),
            prefix: super::DEFAULT_PREFIX.to_owned(),
            duplicate_window: super::DEFAULT_DUPLICATE_WINDOW,
            max_in_flight: 1024,
            batch: crate::feed::MAX_LIMIT,
            snapshot_page: crate::feed::MAX_LIMIT,
            wait: Duration::from_secs(25),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// What the publisher did, for logs, tests and benchmarks.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Records stored by the stream.
    pub published: AtomicU64,
    /// Records the stream dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Snapshots published.
    pub snapshots: AtomicU64,
    /// Failed steps.
    pub errors: AtomicU64,
}

/// Where the publisher is in the core feed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// A snapshot is to be published, for this reason.
    Snapshot(&'static str),
    /// Following the change log.
    Streaming { epoch: String, cursor: String },
}

/// Follows a core feed into a JetStream stream.
pub struct JetStreamPublisher {
    settings: PublisherSettings,
    feed: FeedClient,
    subjects: Subjects,
    stats: Arc<PublisherStats>,
    /// When the position was last stored (the heartbeat's clock).
    last_stored: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A connected session: the context and the stream.
struct Session {
    js: jetstream::Context,
    stream: Stream,
}

/// One publish awaiting its ack, kept to publish it again if needed.
struct InFlight {
    ack: PublishAckFuture,
    subject: String,
    id: String,
    epoch: String,
    payload: Bytes,
}

impl JetStreamPublisher {
    /// A publisher with `settings`; nothing is contacted before [`Self::run`].
    pub fn new(settings: PublisherSettings) -> Result<Self, JetStreamError> {
        let timeout = settings.wait + Duration::from_secs(30);
        let feed = FeedClient::new(&settings.feed_url, settings.feed_token.clone(), timeout)?;
        let subjects = Subjects::new(&settings.prefix);
        Ok(JetStreamPublisher {
            settings,
            feed,
            subjects,
            stats: Arc::new(PublisherStats::default()),
            last_stored: std::sync::Mutex::new(None),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
    }

    /// Publishes until `shutdown`; failures are logged and retried with
    /// backoff. A publish in flight when `shutdown` comes is abandoned (the
    /// next run publishes it again).
    pub async fn run(self, shutdown: CancellationToken) {
        info!(
            feed = %self.feed.base(),
            nats = %self.settings.nats_url,
            stream = %self.settings.stream,
            "fan-out: following the core feed into JetStream"
        );
        let mut backoff = Backoff::new(self.settings.backoff_max);
        let mut session: Option<Session> = None;
        let mut position: Option<Position> = None;
        while !shutdown.is_cancelled() {
            let step = async {
                if session.is_none() {
                    let s = self.open().await?;
                    position = Some(self.stored_position(&s.stream).await?);
                    session = Some(s);
                }
                let s = session.as_mut().expect("opened above");
                let current = position.clone().unwrap_or(Position::Snapshot("bootstrap"));
                let next = self.step(s, current).await?;
                position = Some(next);
                Ok::<(), JetStreamError>(())
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => break,
                outcome = step => outcome,
            };
            match outcome {
                Ok(()) => backoff.reset(),
                Err(JetStreamError::Feed(FeedClientError::Gone {
                    epoch_changed,
                    body,
                })) => {
                    let reason = if epoch_changed {
                        "epoch_changed"
                    } else {
                        "cursor_expired"
                    };
                    warn!(reason, core_says = %body.message, "the core cannot continue from our position; publishing a new snapshot");
                    position = Some(Position::Snapshot(reason));
                }
                Err(error) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    let pause = backoff.next_pause();
                    warn!(%error, retry_in_ms = pause.as_millis() as u64, "fan-out step failed");
                    if matches!(
                        error,
                        JetStreamError::Nats { .. }
                            | JetStreamError::Connect { .. }
                            | JetStreamError::NoStream(_)
                    ) {
                        // Reconnect and re-read the stored position: the
                        // stream may have been recreated.
                        session = None;
                        position = None;
                    }
                    if !sleep_unless_shutdown(&shutdown, pause).await {
                        break;
                    }
                }
            }
        }
        info!("fan-out stopped");
    }

    /// Connects and makes sure the stream exists with our configuration.
    async fn open(&self) -> Result<Session, JetStreamError> {
        let client = connect(
            &self.settings.nats_url,
            self.settings.credentials.as_deref(),
            "motcua-sms fanout",
        )
        .await?;
        let js = jetstream::new(client);
        let config = stream_config(
            &self.settings.stream,
            &self.subjects,
            self.settings.duplicate_window,
        );
        js.create_or_update_stream(config)
            .await
            .map_err(|e| JetStreamError::nats("create or update the stream")(Box::new(e)))?;
        let stream = js
            .get_stream(&self.settings.stream)
            .await
            .map_err(|e| JetStreamError::nats("open the stream")(Box::new(e)))?;
        Ok(Session { js, stream })
    }

    /// The position stored in the stream; a snapshot when there is none.
    async fn stored_position(&self, stream: &Stream) -> Result<Position, JetStreamError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match stream
            .get_last_raw_message_by_subject(&self.subjects.publisher())
            .await
        {
            Ok(message) => match serde_json::from_slice::<PublisherState>(&message.payload) {
                Ok(state) => {
                    info!(epoch = %state.epoch, cursor = %state.cursor, "resuming from the stored position");
                    Ok(Position::Streaming {
                        epoch: state.epoch,
                        cursor: state.cursor,
                    })
                }
                Err(error) => {
                    warn!(%error, "stored position unreadable; publishing a new snapshot");
                    Ok(Position::Snapshot("bootstrap"))
                }
            },
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                Ok(Position::Snapshot("bootstrap"))
            }
            Err(e) => Err(JetStreamError::nats("read the stored position")(Box::new(
                e,
            ))),
        }
    }

    async fn step(&self, s: &mut Session, position: Position) -> Result<Position, JetStreamError> {
        match position {
            Position::Snapshot(reason) => self.snapshot(s, reason).await,
            Position::Streaming { epoch, cursor } => {
                // The core answers at once when it has changes; the wait
                // only holds a caught-up request.
                let page = self
                    .feed
                    .changes(&cursor, self.settings.batch, self.settings.wait)
                    .await?;
                if page.epoch != epoch {
                    warn!(ours = %epoch, core = %page.epoch, "the core's epoch changed; publishing a new snapshot");
                    return Ok(Position::Snapshot("epoch_changed"));
                }
                if !page.records.is_empty() {
                    self.publish_all(&s.js, &page.records, &epoch, None).await?;
                    debug!(records = page.records.len(), "changes published");
                }
                // The position goes out when it moved, and as a heartbeat
                // while the core answers: gateways date their data by it.
                if page.next_cursor != cursor || self.heartbeat_due() {
                    self.store_position(&s.js, &epoch, &page.next_cursor)
                        .await?;
                }
                Ok(Position::Streaming {
                    epoch,
                    cursor: page.next_cursor,
                })
            }
        }
    }

    /// Publishes a whole snapshot, purges what precedes it, marks it.
    async fn snapshot(
        &self,
        s: &mut Session,
        reason: &'static str,
    ) -> Result<Position, JetStreamError> {
        let info = s
            .stream
            .info()
            .await
            .map_err(|e| JetStreamError::nats("read the stream's state")(Box::new(e)))?;
        let from_seq = info.state.last_sequence + 1;
        let first = self
            .feed
            .snapshot(None, self.settings.snapshot_page)
            .await?;
        let epoch = first.epoch.clone();
        let head = first.head_cursor.clone();
        info!(reason, %epoch, from_seq, "publishing a snapshot of the core");
        let mut page = first;
        let mut records = 0usize;
        loop {
            if page.epoch != epoch {
                warn!("the core changed epoch during the snapshot; starting again");
                return Ok(Position::Snapshot("epoch_changed"));
            }
            self.publish_all(&s.js, &page.records, &epoch, Some(from_seq))
                .await?;
            records += page.records.len();
            match page.next_page_token.take() {
                Some(token) => {
                    page = self
                        .feed
                        .snapshot(Some(&token), self.settings.snapshot_page)
                        .await?;
                }
                None => break,
            }
        }
        // Nothing precedes the first sequence; and a 2.9 server reads a
        // filtered purge "below 1" as "everything".
        let purged = if from_seq > 1 {
            s.stream
                .purge()
                .filter(self.subjects.dossiers())
                .sequence(from_seq)
                .await
                .map_err(|e| JetStreamError::nats("purge what precedes the snapshot")(Box::new(e)))?
                .purged
        } else {
            0
        };
        let marker = SnapshotMarker {
            epoch: epoch.clone(),
            from_seq,
            reason: reason.to_owned(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(EPOCH_HEADER, epoch.as_str());
        let ack =
            s.js.publish_with_headers(
                self.subjects.snapshot(),
                headers,
                Bytes::from(serde_json::to_vec(&marker).expect("a marker serialises")),
            )
            .await
            .map_err(|e| JetStreamError::nats("publish the snapshot marker")(Box::new(e)))?
            .await
            .map_err(|e| JetStreamError::nats("publish the snapshot marker")(Box::new(e)))?;
        self.store_position(&s.js, &epoch, &head).await?;
        self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        info!(
            %epoch,
            records,
            purged,
            marker_seq = ack.sequence,
            "snapshot published; following changes from its head"
        );
        Ok(Position::Streaming {
            epoch,
            cursor: head,
        })
    }

    /// Publishes `records` of `epoch`, pipelined, and waits for every ack.
    /// `snapshot_from`: the snapshot's first sequence, when publishing one.
    async fn publish_all(
        &self,
        js: &jetstream::Context,
        records: &[FeedRecord],
        epoch: &str,
        snapshot_from: Option<u64>,
    ) -> Result<(), JetStreamError> {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        for record in records {
            if in_flight.len() >= self.settings.max_in_flight.max(1) {
                let oldest = in_flight.pop_front().expect("not empty");
                self.settle(js, oldest, snapshot_from).await?;
            }
            let subject = self.subjects.dossier(&record.code);
            let id = message_id(&record.code, record.version, epoch);
            let payload = Bytes::from(serde_json::to_vec(record).expect("a record serialises"));
            let ack = send(js, &subject, &id, epoch, payload.clone()).await?;
            in_flight.push_back(InFlight {
                ack,
                subject,
                id,
                epoch: epoch.to_owned(),
                payload,
            });
        }
        while let Some(oldest) = in_flight.pop_front() {
            self.settle(js, oldest, snapshot_from).await?;
        }
        Ok(())
    }

    /// Waits for one ack; a snapshot record dropped as a duplicate goes
    /// again under an id of this snapshot.
    async fn settle(
        &self,
        js: &jetstream::Context,
        sent: InFlight,
        snapshot_from: Option<u64>,
    ) -> Result<(), JetStreamError> {
        let ack = sent
            .ack
            .await
            .map_err(|e| JetStreamError::nats("publish a record")(Box::new(e)))?;
        if !ack.duplicate {
            self.stats.published.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        if let Some(from) = snapshot_from {
            let id = format!("{}:s{from}", sent.id);
            let again = send(js, &sent.subject, &id, &sent.epoch, sent.payload)
                .await?
                .await
                .map_err(|e| JetStreamError::nats("publish a record")(Box::new(e)))?;
            if !again.duplicate {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// True when the last stored position is older than [`HEARTBEAT`].
    fn heartbeat_due(&self) -> bool {
        let last = *self.last_stored.lock().expect("heartbeat clock");
        last.is_none_or(|at| at.elapsed() >= HEARTBEAT)
    }

    /// Stores the position in the stream and waits for the ack.
    async fn store_position(
        &self,
        js: &jetstream::Context,
        epoch: &str,
        cursor: &str,
    ) -> Result<(), JetStreamError> {
        let state = PublisherState {
            epoch: epoch.to_owned(),
            cursor: cursor.to_owned(),
            core_ok_at_ms: Some(crate::clock::now_ms()),
        };
        js.publish(
            self.subjects.publisher(),
            Bytes::from(serde_json::to_vec(&state).expect("a state serialises")),
        )
        .await
        .map_err(|e| JetStreamError::nats("store the position")(Box::new(e)))?
        .await
        .map_err(|e| JetStreamError::nats("store the position")(Box::new(e)))?;
        *self.last_stored.lock().expect("heartbeat clock") = Some(std::time::Instant::now());
        Ok(())
    }
}

/// Sends one record message; the ack comes later.
async fn send(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    epoch: &str,
    payload: Bytes,
) -> Result<PublishAckFuture, JetStreamError> {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    headers.insert(EPOCH_HEADER, epoch);
    js.publish_with_headers(subject.to_owned(), headers, payload)
        .await
        .map_err(|e| JetStreamError::nats("publish a record")(Box::new(e)))
}

/// Publishes one record of `epoch` as the publisher does and waits for the
/// stream's ack (tools and tests: a duplicate comes back with
/// `duplicate: true`).
pub async fn publish_record(
    js: &jetstream::Context,
    subjects: &Subjects,
    record: &FeedRecord,
    epoch: &str,
) -> Result<async_nats::jetstream::publish::PublishAck, JetStreamError> {
    let payload = Bytes::from(serde_json::to_vec(record).expect("a record serialises"));
    send(
        js,
        &subjects.dossier(&record.code),
        &message_id(&record.code, record.version, epoch),
        epoch,
        payload,
    )
    .await?
    .await
    .map_err(|e| JetStreamError::nats("publish a record")(Box::new(e)))
}
