//! `sync.mode = "jetstream"`: a gateway follows the fan-out stream into its
//! read model.
//!
//! **Re-read** (bootstrap, and whenever the publisher marks a new snapshot):
//! read the last [`SnapshotMarker`] (none yet: the publisher has not
//! finished its first snapshot; wait), then an ordered consumer with
//! `DeliverPolicy::LastPerSubject` over the dossier subjects delivers every
//! dossier's latest record; they are applied as a snapshot generation
//! (authoritative, whatever the versions, when the marker's epoch is not the
//! one we synchronised from), then [`DossierWriter::finish_snapshot`]
//! removes what the stream no longer lists and stores the position: the
//! last stream sequence read (at least the marker's). A record of another
//! epoch than the marker's means a newer snapshot is being published: the
//! re-read waits for its marker.
//!
//! **Streaming**: the durable pull consumer (`sync.jetstream.consumer`,
//! `AckPolicy::All`) is created at the position + 1 after a re-read, or
//! whenever the server's consumer has delivered past our stored position
//! (our database is older than the consumer: a restore, or a kill before
//! the commit). Each batch of ready messages is applied with the version
//! guard in one transaction with its last stream sequence, **then** acked.
//! Records of another epoch are skipped (the publisher is re-snapshotting;
//! its marker follows); a marker past our position starts a re-read.
//!
//! Why a stream sequence is a complete position: the stream keeps the last
//! message per dossier, so every dossier that changed after sequence `n`
//! has its latest record after `n`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{self, Message};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    connect, JetStreamError, PublisherState, SnapshotMarker, SubjectKind, Subjects, EPOCH_HEADER,
    SOURCE,
};
use crate::clock::now_ms;
use crate::feed::FeedRecord;
use crate::store::{ApplyMode, DossierWriter, Freshness, SyncCheckpoint, SyncStage, SyncStatus};
use crate::sync::{
    changes_of, report_left_out, report_rejected, sleep_unless_shutdown, Backoff,
    JetStreamSettings, RejectedRecord, SyncMetrics, Validated,
};

/// With nothing to read for this long, the consumer is asked for its state
/// (a successful exchange keeps replies fresh).
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Pause before a re-read is tried again (no marker yet, or a snapshot
/// being published).
const REREAD_RETRY: Duration = Duration::from_secs(1);
/// A re-read that receives nothing for this long has read everything.
const REREAD_QUIET: Duration = Duration::from_secs(2);

/// Where the follower stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    epoch: String,
    /// The last stream sequence applied.
    seq: u64,
    generation: i64,
}

/// What the stored state asks for at start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// Re-read the stream as snapshot `generation`.
    Reread {
        generation: i64,
        previous_epoch: Option<String>,
        authoritative: bool,
    },
    /// Continue from a stored position.
    Resume(Position),
}

impl Start {
    fn from_status(status: Option<SyncStatus>) -> Start {
        let Some(status) = status else {
            return Start::Reread {
                generation: 1,
                previous_epoch: None,
                authoritative: false,
            };
        };
        let cp = status.checkpoint;
        match cp.stage {
            SyncStage::Streaming { cursor } => match cursor.parse::<u64>() {
                Ok(seq) => Start::Resume(Position {
                    epoch: cp.epoch,
                    seq,
                    generation: cp.generation,
                }),
                Err(_) => Start::Reread {
                    generation: cp.generation + 1,
                    previous_epoch: Some(cp.epoch),
                    authoritative: false,
                },
            },
            SyncStage::Snapshot { authoritative, .. } => Start::Reread {
                generation: cp.generation + 1,
                previous_epoch: Some(cp.epoch),
                authoritative,
            },
        }
    }
}

/// What a batch ended with.
enum BatchEnd {
    /// Keep reading.
    Continue,
    /// A new snapshot was marked: re-read.
    NewSnapshot,
}

/// Follows the fan-out stream into the read model.
pub struct JetStreamFollower<S> {
    store: S,
    settings: JetStreamSettings,
    subjects: Subjects,
    freshness: Arc<Freshness>,
    metrics: SyncMetrics,
}

impl<S: DossierWriter> JetStreamFollower<S> {
    /// A follower writing into `store`.
    pub fn new(
        store: S,
        settings: JetStreamSettings,
        freshness: Arc<Freshness>,
        metrics: SyncMetrics,
    ) -> Self {
        let subjects = Subjects::new(&settings.subject_prefix);
        JetStreamFollower {
            store,
            settings,
            subjects,
            freshness,
            metrics,
        }
    }

    /// Follows the stream until `shutdown`. A batch being applied when
    /// `shutdown` comes is rolled back whole, position included, and not acked.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Ok(Some(status)) = self.store.sync_status(SOURCE).await {
            if let Some(ok) = status.last_ok_at_ms {
                self.freshness.mark_ok(ok);
            }
        }
        info!(
            nats = %self.settings.url,
            stream = %self.settings.stream,
            consumer = %self.settings.consumer_name(),
            "following the fan-out stream"
        );
        let mut backoff = Backoff::new(Duration::from_secs(self.settings.backoff_max_secs.max(1)));
        while !shutdown.is_cancelled() {
            let error = tokio::select! {
                _ = shutdown.cancelled() => break,
                outcome = self.session(&mut backoff) => match outcome {
                    Ok(()) => continue,
                    Err(error) => error,
                },
            };
            self.metrics.error(error.kind());
            let pause = backoff.next_pause();
            warn!(%error, retry_in_ms = pause.as_millis() as u64, "JetStream sync failed; replies keep coming from the read model");
            if let Err(store_error) = self
                .store
                .note_exchange(SOURCE, now_ms(), Err(&error))
                .await
            {
                debug!(%store_error, "could not note the failure");
            }
            if !sleep_unless_shutdown(&shutdown, pause).await {
                break;
            }
        }
        info!("JetStream follower stopped");
    }

    /// One connection's worth of following; returns only on failure.
    async fn session(&self, backoff: &mut Backoff) -> Result<(), JetStreamError> {
        let client = connect(
            &self.settings.url,
            (!self.settings.credentials.is_empty())
                .then(|| std::path::Path::new(&self.settings.credentials)),
            &format!("motcua-sms gateway {}", self.settings.gateway),
        )
        .await?;
        let js = jetstream::new(client);
        let stream = self.open_stream(&js).await?;
        let status = self.store.sync_status(SOURCE).await?;
        let mut start = Start::from_status(status);
        if let Start::Resume(position) = &start {
            start = self.check_resume(&stream, position).await?;
        }
        let (mut position, mut consumer) = match start {
            Start::Resume(position) => {
                let consumer = self.durable(&stream, &position).await?;
                (position, consumer)
            }
            Start::Reread {
                generation,
                previous_epoch,
                authoritative,
            } => {
                self.metrics.snapshot("bootstrap");
                let position = self
                    .reread_until_done(&stream, generation, previous_epoch, authoritative)
                    .await?;
                let consumer = self.recreate_durable(&stream, position.seq).await?;
                (position, consumer)
            }
        };
        info!(epoch = %position.epoch, seq = position.seq, "following the stream");
        loop {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(self.settings.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| JetStreamError::nats("pull from the consumer")(Box::new(e)))?
                .ready_chunks(self.settings.batch);
            loop {
                let chunk = match tokio::time::timeout(IDLE_CHECK, messages.next()).await {
                    Err(_idle) => {
                        let info = consumer.info().await.map_err(|e| {
                            JetStreamError::nats("ask the consumer's state")(Box::new(e))
                        })?;
                        let pending = info.num_pending;
                        self.succeeded(Some(pending));
                        // Stored as the last success: when the core was last
                        // heard of, for `motcua-sms status`.
                        let core_ok = self.freshness.last_ok_ms().unwrap_or_else(now_ms);
                        self.store
                            .note_exchange(SOURCE, core_ok, Ok(Some(pending)))
                            .await?;
                        backoff.reset();
                        continue;
                    }
                    Ok(None) => {
                        return Err(JetStreamError::Protocol(
                            "the consumer's message stream ended".into(),
                        ))
                    }
                    Ok(Some(chunk)) => chunk,
                };
                let mut batch = Vec::with_capacity(chunk.len());
                let mut failure = None;
                for item in chunk {
                    match item {
                        Ok(message) => batch.push(message),
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
                // What arrived before a failure is still applied.
                let end = self.apply_batch(&mut position, batch).await?;
                backoff.reset();
                if let Some(error) = failure {
                    return Err(JetStreamError::nats("receive messages")(Box::new(error)));
                }
                if let BatchEnd::NewSnapshot = end {
                    break;
                }
            }
            // A new snapshot was marked: re-read, then a fresh durable.
            self.metrics.snapshot("new_snapshot");
            position = self
                .reread_until_done(
                    &stream,
                    position.generation + 1,
                    Some(position.epoch.clone()),
                    false,
                )
                .await?;
            consumer = self.recreate_durable(&stream, position.seq).await?;
        }
    }

    async fn open_stream(&self, js: &jetstream::Context) -> Result<Stream, JetStreamError> {
        use async_nats::jetstream::context::GetStreamErrorKind;
        match js.get_stream(&self.settings.stream).await {
            Ok(stream) => Ok(stream),
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(je)
                    if je.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Err(JetStreamError::NoStream(self.settings.stream.clone()))
                }
                _ => Err(JetStreamError::nats("open the stream")(Box::new(e))),
            },
        }
    }

    /// Keeps a stored position when the stream still has our durable
    /// consumer; re-reads when it does not (the stream was recreated, or
    /// the consumer removed).
    async fn check_resume(
        &self,
        stream: &Stream,
        position: &Position,
    ) -> Result<Start, JetStreamError> {
        use async_nats::jetstream::context::ConsumerInfoErrorKind;
        let reread = Start::Reread {
            generation: position.generation + 1,
            previous_epoch: Some(position.epoch.clone()),
            authoritative: false,
        };
        match stream.consumer_info(self.settings.consumer_name()).await {
            Ok(_) => Ok(Start::Resume(position.clone())),
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                warn!(
                    consumer = %self.settings.consumer_name(),
                    "our durable consumer is gone (stream recreated or consumer removed); re-reading the stream"
                );
                Ok(reread)
            }
            Err(e) => Err(JetStreamError::nats("ask for our consumer")(Box::new(e))),
        }
    }

    /// The durable consumer for `position`: the existing one when it has
    /// delivered nothing past it, else a new one starting right after it.
    async fn durable(
        &self,
        stream: &Stream,
        position: &Position,
    ) -> Result<consumer::Consumer<pull::Config>, JetStreamError> {
        let name = self.settings.consumer_name();
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| JetStreamError::nats("ask for our consumer")(Box::new(e)))?;
        let ours = info.config.filter_subject == self.subjects.all()
            && info.config.ack_policy == AckPolicy::All;
        if ours && info.delivered.stream_sequence <= position.seq {
            return stream
                .get_consumer(&name)
                .await
                .map_err(JetStreamError::nats("open our consumer"));
        }
        debug!(
            delivered = info.delivered.stream_sequence,
            ours = position.seq,
            "the consumer is ahead of the read model; starting it again at our position"
        );
        self.recreate_durable(stream, position.seq).await
    }

    /// Deletes our durable consumer if any and creates it to deliver from `seq + 1`.
    async fn recreate_durable(
        &self,
        stream: &Stream,
        seq: u64,
    ) -> Result<consumer::Consumer<pull::Config>, JetStreamError> {
        let name = self.settings.consumer_name();
        if let Err(e) = stream.delete_consumer(&name).await {
            debug!(error = %e, "no consumer to delete");
        }
        stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!(
                    "motcua-sms gateway {}: read model sync",
                    self.settings.gateway
                )),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: seq + 1,
                },
                ack_policy: AckPolicy::All,
                ack_wait: Duration::from_secs(30),
                filter_subject: self.subjects.all(),
                max_ack_pending: (self.settings.batch as i64 * 4).max(1000),
                ..Default::default()
            })
            .await
            .map_err(|e| JetStreamError::nats("create our durable consumer")(Box::new(e)))
    }

    /// [`Self::reread`] until a marker is there and no newer snapshot is
    /// being published.
    async fn reread_until_done(
        &self,
        stream: &Stream,
        mut generation: i64,
        previous_epoch: Option<String>,
        authoritative: bool,
    ) -> Result<Position, JetStreamError> {
        loop {
            if let Some(position) = self
                .reread(stream, generation, previous_epoch.as_deref(), authoritative)
                .await?
            {
                return Ok(position);
            }
            generation += 1;
            tokio::time::sleep(REREAD_RETRY).await;
        }
    }

    /// Reads every dossier's latest record as snapshot `generation`;
    /// `None` when it must be tried again later.
    async fn reread(
        &self,
        stream: &Stream,
        generation: i64,
        previous_epoch: Option<&str>,
        force_authoritative: bool,
    ) -> Result<Option<Position>, JetStreamError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let marker_message = match stream
            .get_last_raw_message_by_subject(&self.subjects.snapshot())
            .await
        {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                info!("the publisher has not completed a snapshot yet; waiting");
                return Ok(None);
            }
            Err(e) => {
                return Err(JetStreamError::nats("read the snapshot marker")(Box::new(
                    e,
                )))
            }
        };
        let marker: SnapshotMarker = serde_json::from_slice(&marker_message.payload)
            .map_err(|e| JetStreamError::Protocol(format!("snapshot marker: {e}")))?;
        let marker_seq = marker_message.sequence;
        let authoritative =
            force_authoritative || previous_epoch.is_some_and(|e| e != marker.epoch);
        let mode = if authoritative {
            ApplyMode::Authoritative { generation }
        } else {
            ApplyMode::Snapshot { generation }
        };
        info!(
            epoch = %marker.epoch,
            marker_seq,
            generation,
            authoritative,
            "re-reading the stream (last record per dossier)"
        );
        let checkpoint = |stage| SyncCheckpoint {
            source: SOURCE.to_owned(),
            epoch: marker.epoch.clone(),
            stage,
            generation,
            pending: None,
        };
        let ordered = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subjects.dossiers(),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| JetStreamError::nats("create a re-read consumer")(Box::new(e)))?;
        let end = stream
            .get_info()
            .await
            .map_err(|e| JetStreamError::nats("read the stream's state")(Box::new(e)))?
            .state
            .last_sequence;
        let mut messages = ordered
            .messages()
            .await
            .map_err(|e| JetStreamError::nats("re-read the stream")(Box::new(e)))?
            .ready_chunks(self.settings.batch);
        let mut last_seq = 0;
        let mut read = 0usize;
        let mut done = false;
        while !done {
            let chunk = match tokio::time::timeout(REREAD_QUIET, messages.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Err(JetStreamError::Protocol("the re-read ended early".into())),
                // Nothing delivered for a while: the stream's end holds no
                // dossier message (an empty stream, or a control message
                // last); everything before it was delivered.
                Err(_quiet) => break,
            };
            let mut records = Vec::with_capacity(chunk.len());
            let mut rejected = Vec::new();
            read += chunk.len();
            for item in chunk {
                let message =
                    item.map_err(|e| JetStreamError::nats("re-read the stream")(Box::new(e)))?;
                let info = message
                    .info()
                    .map_err(|e| JetStreamError::Protocol(format!("message info: {e}")))?;
                last_seq = info.stream_sequence;
                // (The server's `pending` count is not relied upon: 2.9
                // servers miscount it for LastPerSubject consumers.)
                done |= info.stream_sequence >= end;
                if epoch_of(&message).is_some_and(|e| e != marker.epoch) {
                    info!("a snapshot of another epoch is being published; waiting for its marker");
                    return Ok(None);
                }
                match self.decode(&message) {
                    Ok(record) => records.push(record),
                    Err(r) => rejected.push(r),
                }
            }
            let Validated {
                changes,
                rejected: invalid,
                left_out,
            } = changes_of(&records);
            rejected.extend(invalid);
            report_rejected(SOURCE, &rejected, &self.metrics);
            report_left_out(SOURCE, &left_out, &self.metrics);
            let report = self
                .store
                .apply(
                    &changes,
                    mode,
                    Some(&checkpoint(SyncStage::Snapshot {
                        head_cursor: marker_seq.to_string(),
                        page_token: Some(last_seq.to_string()),
                        authoritative,
                    })),
                )
                .await?;
            self.metrics.count(&report);
            self.succeeded(None);
        }
        let seq = last_seq.max(marker_seq);
        let deleted = self
            .store
            .finish_snapshot(
                generation,
                authoritative,
                &checkpoint(SyncStage::Streaming {
                    cursor: seq.to_string(),
                }),
            )
            .await?;
        self.succeeded(None);
        info!(
            epoch = %marker.epoch,
            seq,
            deleted_unlisted = deleted,
            records = read,
            "re-read complete; following the stream"
        );
        Ok(Some(Position {
            epoch: marker.epoch,
            seq,
            generation,
        }))
    }

    /// Applies one batch of the durable consumer, then acks it.
    async fn apply_batch(
        &self,
        position: &mut Position,
        batch: Vec<Message>,
    ) -> Result<BatchEnd, JetStreamError> {
        let mut records = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        let mut last: Option<(usize, u64, u64)> = None; // (index, seq, pending)
        let mut end = BatchEnd::Continue;
        for (i, message) in batch.iter().enumerate() {
            let info = message
                .info()
                .map_err(|e| JetStreamError::Protocol(format!("message info: {e}")))?;
            let seq = info.stream_sequence;
            let pending = info.pending;
            if seq <= position.seq {
                // Delivered again: already applied.
                last = Some((i, position.seq, pending));
                continue;
            }
            match self.subjects.kind_of(message.subject.as_str()) {
                SubjectKind::Dossier(_) => match epoch_of(message) {
                    Some(epoch) if epoch == position.epoch => match self.decode(message) {
                        Ok(record) => records.push(record),
                        Err(r) => rejected.push(r),
                    },
                    Some(_) => {
                        debug!(
                            seq,
                            "record of another epoch skipped until its snapshot's marker"
                        );
                    }
                    None => rejected.push(RejectedRecord {
                        code: message.subject.to_string(),
                        reason: format!("no {EPOCH_HEADER} header"),
                    }),
                },
                SubjectKind::Snapshot => {
                    info!(seq, "the publisher marked a new snapshot");
                    end = BatchEnd::NewSnapshot;
                    break;
                }
                SubjectKind::Publisher => {
                    // The publisher's word on when it last heard from the core.
                    let core_ok = serde_json::from_slice::<PublisherState>(&message.payload)
                        .ok()
                        .map(|state| state.core_ok_at_ms.unwrap_or_else(now_ms));
                    if let Some(at) = core_ok {
                        self.freshness.mark_ok(at);
                    }
                }
                SubjectKind::Other => {}
            }
            last = Some((i, seq, pending));
        }
        let Some((index, seq, pending)) = last else {
            return Ok(end);
        };
        let Validated {
            changes,
            rejected: invalid,
            left_out,
        } = changes_of(&records);
        rejected.extend(invalid);
        report_rejected(SOURCE, &rejected, &self.metrics);
        report_left_out(SOURCE, &left_out, &self.metrics);
        if seq > position.seq {
            let checkpoint = SyncCheckpoint {
                source: SOURCE.to_owned(),
                epoch: position.epoch.clone(),
                stage: SyncStage::Streaming {
                    cursor: seq.to_string(),
                },
                generation: position.generation,
                pending: Some(pending),
            };
            let report = self
                .store
                .apply(&changes, ApplyMode::Guarded, Some(&checkpoint))
                .await?;
            self.metrics.count(&report);
            if report.altered() > 0 {
                debug!(
                    written = report.written,
                    deleted = report.deleted,
                    unchanged = report.unchanged,
                    seq,
                    "changes applied"
                );
            }
            position.seq = seq;
        }
        // Committed: now the stream may forget them (AckPolicy::All acks
        // everything up to this message). A lost ack only brings them again.
        if let Err(error) = batch[index].ack().await {
            debug!(%error, "ack not sent; the messages will come again");
        }
        self.succeeded(Some(pending));
        Ok(end)
    }

    /// The feed record a dossier message carries.
    fn decode(&self, message: &Message) -> Result<FeedRecord, RejectedRecord> {
        serde_json::from_slice::<FeedRecord>(&message.payload).map_err(|e| RejectedRecord {
            code: message.subject.chars().take(64).collect(),
            // serde quotes the value it could not take: mask numbers in it.
            reason: format!(
                "not a feed record: {}",
                crate::privacy::mask_numbers_in(&e.to_string())
            ),
        })
    }

    /// A successful exchange with NATS. Freshness is not marked here: it
    /// comes from the publisher's heartbeat (`PublisherState::core_ok_at_ms`),
    /// so that replies are labelled while the core is down even if NATS is up.
    fn succeeded(&self, pending: Option<u64>) {
        if let Some(pending) = pending {
            self.metrics
                .pending
                .set(pending.min(i64::MAX as u64) as i64);
        }
    }
}

/// The `Motcua-Epoch` header of a message.
fn epoch_of(message: &Message) -> Option<&str> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(EPOCH_HEADER))
        .map(|v| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SyncCheckpoint;

    fn status(stage: SyncStage) -> Option<SyncStatus> {
        Some(SyncStatus {
            checkpoint: SyncCheckpoint {
                source: SOURCE.into(),
                epoch: "e1".into(),
                stage,
                generation: 4,
                pending: None,
            },
            last_ok_at_ms: None,
            last_applied_at_ms: None,
            applied_total: 0,
            last_error: None,
        })
    }

    #[test]
    fn the_stored_state_decides_between_resuming_and_re_reading() {
        assert_eq!(
            Start::from_status(None),
            Start::Reread {
                generation: 1,
                previous_epoch: None,
                authoritative: false
            }
        );
        assert_eq!(
            Start::from_status(status(SyncStage::Streaming {
                cursor: "812".into()
            })),
            Start::Resume(Position {
                epoch: "e1".into(),
                seq: 812,
                generation: 4
            })
        );
        // Killed mid re-read: a new generation, authoritative kept.
        assert_eq!(
            Start::from_status(status(SyncStage::Snapshot {
                head_cursor: "10".into(),
                page_token: Some("8".into()),
                authoritative: true
            })),
            Start::Reread {
                generation: 5,
                previous_epoch: Some("e1".into()),
                authoritative: true
            }
        );
        // A feed cursor is no stream sequence.
        assert!(matches!(
            Start::from_status(status(SyncStage::Streaming {
                cursor: "1-2f".into()
            })),
            Start::Reread { generation: 5, .. }
        ));
    }
}
