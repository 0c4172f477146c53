//! What the gateway is doing: its channels (SMPP connections and modems,
//! with the last hour's traffic from the journal), its sync with the core,
//! and the phone simulator that answers as a citizen would be answered.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::clock::now_ms;
use crate::sms_text::Encoding;
use crate::store::{DossierWriter, SyncStage};

/// A message typed into the simulator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedMessage {
    /// The citizen's number (the dossier's own number sees the applicant's name).
    pub from: String,
    /// What the citizen texts.
    pub text: String,
}

/// The reply the citizen would get now.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulatedReply {
    /// Which template answered: found, not_found, help, invalid_date, unavailable.
    pub kind: String,
    /// The reply.
    pub text: String,
    /// `GSM-7` or `UCS-2`.
    pub encoding: String,
    /// Characters in the reply.
    pub characters: usize,
    /// SMS parts it takes.
    pub segments: usize,
    /// The code read from the message, canonical.
    pub code: Option<String>,
    /// The number is the dossier's own.
    pub sender_is_owner: bool,
}

/// The name of an encoding as the console shows it.
pub fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2",
    }
}

/// Answer a message as a citizen would be answered, with the templates in
/// use now. Nothing is sent or journaled and no rate limit counts.
#[utoipa::path(post, path = "/api/v1/simulate", tag = "traffic",
    security(("cookie" = []), ("bearer" = [])),
    request_body = SimulatedMessage,
    responses((status = 200, body = SimulatedReply), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn simulate(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<SimulatedMessage>,
) -> Result<Json<SimulatedReply>, ApiError> {
    caller.must_edit("use the simulator")?;
    let from = super::lists::number(&body.from)?;
    if body.text.chars().count() > 1_600 {
        return Err(ApiError::bad_request(
            "a message is at most 1,600 characters",
        ));
    }
    let response = state.responder().respond(&from, &body.text).await;
    Ok(Json(SimulatedReply {
        kind: response.reply.kind.as_str().to_owned(),
        characters: response.reply.text.chars().count(),
        encoding: encoding_name(response.reply.info.encoding).to_owned(),
        segments: response.reply.info.segments,
        text: response.reply.text,
        code: response.code.map(|c| c.to_string()),
        sender_is_owner: response.sender_is_owner,
    }))
}

/// One SMPP channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmppChannel {
    /// `listener:<system_id>` or `smsc:<name>`.
    pub channel: String,
    /// `listener` (peers bound to us) or `carrier` (our link to an SMSC).
    pub role: String,
    /// At least one connection is up.
    pub up: bool,
    /// Connections up.
    pub sessions: usize,
    /// Requests awaiting their response, over all connections.
    pub window_in_use: usize,
    /// The most that may await, over all connections.
    pub window_size: usize,
    /// The configured pace (messages per second), if any.
    pub max_tps: Option<u32>,
    /// Messages received in the last hour.
    pub received_last_hour: i64,
    /// Messages received per second over the last minute.
    pub tps_last_minute: f64,
    /// Replies that failed in the last hour.
    pub failed_last_hour: i64,
}

/// One modem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModemChannelView {
    /// Its name in `config.toml`.
    pub name: String,
    /// Initialised and taking replies.
    pub up: bool,
    /// Manufacturer and model.
    pub model: String,
    /// Signal 0–31 (99 unknown).
    pub signal: Option<u8>,
    /// Registered to a network.
    pub registered: Option<bool>,
    /// Messages in its storage.
    pub storage_used: Option<u32>,
    /// Room in its storage.
    pub storage_total: Option<u32>,
    /// Messages taken.
    pub received: u64,
    /// Reply parts sent.
    pub sent: u64,
    /// Sessions that ended in a failure.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Every channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channels {
    /// SMPP: the listener's peers and the carrier links (configured links
    /// that are down are listed too).
    pub smpp: Vec<SmppChannel>,
    /// GSM modems.
    pub modems: Vec<ModemChannelView>,
    /// Other channels seen in the last hour (USSD, the Kannel drop-in), by name.
    pub other: Vec<OtherChannel>,
    /// Every gateway sharing the state database (one on a single host),
    /// with the links and modems it published at its last heartbeat.
    pub nodes: Vec<NodeView>,
}

/// A gateway of the cluster as the state database shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// Its name (`cluster.node`).
    pub name: String,
    /// Whether it is the node serving this console.
    pub this_node: bool,
    /// `live` (heartbeating), `stopped` (left cleanly) or `taken` (its
    /// lease lapsed and another node took its waiting messages over).
    pub state: String,
    /// Its lease holds now: it is answering.
    pub alive: bool,
    /// When it started, Vietnam time (ISO 8601).
    pub started_at: String,
    /// Its last heartbeat, Vietnam time (ISO 8601).
    pub heartbeat_at: String,
    /// The node that took it over, if one did.
    pub taken_by: Option<String>,
    /// Its SMPP links as published: channel, role, open.
    pub smpp: Vec<PublishedLink>,
    /// Its modems as published: name, up.
    pub modems: Vec<PublishedModem>,
}

/// One SMPP link a node published.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedLink {
    /// `smsc:<name>` or `listener:<account>`.
    pub channel: String,
    /// `carrier` or `listener`.
    pub role: String,
    /// Taking replies.
    pub open: bool,
}

/// One modem a node published.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedModem {
    /// Its name.
    pub name: String,
    /// Initialised and taking replies.
    pub up: bool,
}

/// What a node publishes (`nodes.channels`); unknown fields are ignored,
/// and a row that does not parse shows no links rather than failing the page.
#[derive(Debug, Default, Deserialize)]
struct Published {
    #[serde(default)]
    smpp: Vec<PublishedLink>,
    #[serde(default)]
    modems: Vec<PublishedModem>,
}

fn vietnam_iso(ms: i64) -> String {
    crate::clock::in_vietnam(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| ms.to_string())
}

/// Every node of the cluster, for [`channels`].
async fn node_views(state: &AdminState) -> Result<Vec<NodeView>, ApiError> {
    let rows = crate::cluster::nodes(state.state_db())
        .await
        .map_err(|error| ApiError::internal(&error))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let published: Published = serde_json::from_str(&row.channels).unwrap_or_default();
            NodeView {
                this_node: row.name == state.node_name(),
                name: row.name,
                state: row.state,
                alive: row.alive,
                started_at: vietnam_iso(row.started_at),
                heartbeat_at: vietnam_iso(row.heartbeat_at),
                taken_by: row.taken_by,
                smpp: published.smpp,
                modems: published.modems,
            }
        })
        .collect())
}

/// A channel without a live connection to show (USSD, Kannel's get-url).
#[derive(Debug, Serialize, ToSchema)]
pub struct OtherChannel {
    /// Its name in the journal.
    pub channel: String,
    /// Messages in the last hour.
    pub received_last_hour: i64,
    /// Replies that failed in the last hour.
    pub failed_last_hour: i64,
}

/// The SMPP connections, modems and the last hour's traffic per channel.
#[utoipa::path(get, path = "/api/v1/channels", tag = "status",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, body = Channels), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn channels(
    State(state): State<AdminState>,
    _caller: Caller,
) -> Result<Json<Channels>, ApiError> {
    let now = now_ms();
    let activity = state.traffic().recent_by_channel(now).await?;
    let mut smpp: BTreeMap<String, SmppChannel> = BTreeMap::new();
    let empty = |channel: &str, role: &str| SmppChannel {
        channel: channel.to_owned(),
        role: role.to_owned(),
        up: false,
        sessions: 0,
        window_in_use: 0,
        window_size: 0,
        max_tps: None,
        received_last_hour: 0,
        tps_last_minute: 0.0,
        failed_last_hour: 0,
    };
    for name in &state.channel_config().carriers {
        let channel = format!("smsc:{name}");
        smpp.insert(channel.clone(), empty(&channel, "carrier"));
    }
    for link in state.routes().links() {
        let entry = smpp
            .entry(link.channel.clone())
            .or_insert_with(|| empty(&link.channel, link.role));
        entry.up |= link.open;
        entry.sessions += 1;
        entry.window_in_use += link.outstanding;
        entry.window_size += link.window;
        entry.max_tps = link.max_tps.or(entry.max_tps);
    }
    let mut other = Vec::new();
    for (channel, counts) in activity {
        if let Some(entry) = smpp.get_mut(&channel) {
            entry.received_last_hour = counts.last_hour;
            entry.tps_last_minute = counts.last_minute as f64 / 60.0;
            entry.failed_last_hour = counts.failed_last_hour;
        } else if channel.starts_with("listener:") || channel.starts_with("smsc:") {
            let mut entry = empty(
                &channel,
                if channel.starts_with("smsc:") {
                    "carrier"
                } else {
                    "listener"
                },
            );
            entry.received_last_hour = counts.last_hour;
            entry.tps_last_minute = counts.last_minute as f64 / 60.0;
            entry.failed_last_hour = counts.failed_last_hour;
            smpp.insert(channel, entry);
        } else if !channel.starts_with("modem") {
            other.push(OtherChannel {
                channel,
                received_last_hour: counts.last_hour,
                failed_last_hour: counts.failed_last_hour,
            });
        }
    }
    let mut modems: Vec<ModemChannelView> = state
        .modems()
        .map(|board| board.snapshot())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, m)| ModemChannelView {
            name,
            up: m.up,
            model: m.model,
            signal: m.rssi,
            registered: m.registered,
            storage_used: m.storage.map(|s| s.0),
            storage_total: m.storage.map(|s| s.1),
            received: m.received,
            sent: m.sent,
            failures: m.failures,
            last_error: m.last_error,
        })
        .collect();
    modems.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Channels {
        smpp: smpp.into_values().collect(),
        modems,
        other,
        nodes: node_views(&state).await?,
    }))
}

/// One source the read model follows.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncSource {
    /// `feed`, `jetstream` or `push`.
    pub source: String,
    /// The core's epoch.
    pub epoch: String,
    /// `snapshot` or `streaming`.
    pub stage: String,
    /// The cursor streamed from (streaming), or the head the snapshot resumes at.
    pub cursor: String,
    /// Changes the core said it still had after our position.
    pub pending: Option<u64>,
    /// The last successful exchange with the core (Unix ms).
    pub last_ok_at: Option<i64>,
    /// The last change applied (Unix ms).
    pub last_change_at: Option<i64>,
    /// Changes applied since the source was first used.
    pub applied_total: u64,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
}

/// The read model's sync with the core.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncView {
    /// `off`, `feed` or `jetstream` (and whether the push webhook is on).
    pub mode: String,
    /// Replies are labelled with the data's date: the core has not been heard from in time.
    pub stale: bool,
    /// The last contact with the core, over all sources (Unix ms).
    pub last_ok_at: Option<i64>,
    /// Seconds without contact before replies are labelled.
    pub stale_after_secs: Option<u64>,
    /// Seconds since the last contact.
    pub lag_secs: Option<f64>,
    /// Each source's position.
    pub sources: Vec<SyncSource>,
}

/// Sync with the one-stop core: lag, cursor, last change.
#[utoipa::path(get, path = "/api/v1/sync", tag = "status",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, body = SyncView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn sync(
    State(state): State<AdminState>,
    _caller: Caller,
) -> Result<Json<SyncView>, ApiError> {
    let now = now_ms();
    let statuses = state
        .store()
        .all_sync_status()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let sources: Vec<SyncSource> = statuses
        .into_iter()
        .map(|s| {
            let (stage, cursor) = match s.checkpoint.stage {
                SyncStage::Snapshot { head_cursor, .. } => ("snapshot", head_cursor),
                SyncStage::Streaming { cursor } => ("streaming", cursor),
            };
            SyncSource {
                source: s.checkpoint.source,
                epoch: s.checkpoint.epoch,
                stage: stage.to_owned(),
                cursor,
                pending: s.checkpoint.pending,
                last_ok_at: s.last_ok_at_ms,
                last_change_at: s.last_applied_at_ms,
                applied_total: s.applied_total,
                last_error: s.last_error,
            }
        })
        .collect();
    let freshness = state.freshness();
    let last_ok_at = freshness
        .last_ok_ms()
        .or_else(|| sources.iter().filter_map(|s| s.last_ok_at).max());
    let config = state.sync_config();
    Ok(Json(SyncView {
        mode: config.mode.clone(),
        stale: freshness.stale_as_of(now).is_some(),
        last_ok_at,
        stale_after_secs: config.stale_after_secs,
        lag_secs: last_ok_at.map(|t| (now - t).max(0) as f64 / 1000.0),
        sources,
    }))
}
