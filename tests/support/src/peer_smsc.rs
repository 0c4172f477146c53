//! An independent SMSC (SMPP server) for integration tests: the gateway under
//! test binds to it as an ESME. Built on `smpp34::SmppServer`, which answers
//! enquire_link itself and sends its own enquire_link every 30 s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use smpp34::server::ESME;
use smpp34::{
    bind_transceiver, bind_transceiver_resp, submit_sm, submit_sm_resp, SmppConnectionInformation,
    SmppError, SmppServer, SmppServerListener,
};
use tokio::sync::{mpsc, watch, Mutex};

pub use super::peer_esme::RawMessage;

/// smpp34 timers for the peer, in ms: session_init, enquire_link, inactivity,
/// response (deliver() waits at most this long for deliver_sm_resp).
const TIMERS: (u64, u64, u64, u64) = (5_000, 30_000, 300_000, 10_000);

#[derive(Debug)]
pub enum SmscError {
    /// No ESME is bound right now.
    NotBound,
    /// short_message longer than 254 octets (smpp34's deliver_sm::new would panic).
    TooLong(usize),
    /// generic_nack from the ESME, response timeout (ESME_RSYSERR), or closed session.
    Smpp(SmppError),
}

struct Shared {
    system_id: String,
    password: String,
    esme: StdMutex<Option<Arc<ESME>>>,
    bound: watch::Sender<bool>,
    submits: mpsc::UnboundedSender<(RawMessage, String)>,
    message_ids: AtomicU64,
    submit_status: AtomicU32,
}

struct Listener(Arc<Shared>);

#[async_trait]
impl SmppServerListener for Listener {
    async fn on_bind_transceiver(
        &self,
        req: bind_transceiver,
        _c: &SmppConnectionInformation,
        _s: &String,
    ) -> bind_transceiver_resp {
        if req.system_id == self.0.system_id && req.password == self.0.password {
            req.accept("PeerSmsc".to_string(), Some(0x34))
        } else {
            req.reject(SmppError::ESME_RINVPASWD)
        }
    }
    // bind_transmitter / bind_receiver: smpp34's default rejects with ESME_RBINDFAIL.

    async fn on_esme_bound(&self, esme: ESME, _s: &String) {
        *self.0.esme.lock().unwrap() = Some(Arc::new(esme));
        self.0.bound.send_replace(true);
    }

    async fn on_esme_unbound(&self, session_id: &String) {
        let mut slot = self.0.esme.lock().unwrap();
        if slot.as_ref().is_some_and(|e| &e.session_id == session_id) {
            *slot = None;
            self.0.bound.send_replace(false);
        }
    }

    async fn on_submit_sm(
        &self,
        req: submit_sm,
        _c: &SmppConnectionInformation,
        _s: &String,
    ) -> submit_sm_resp {
        let status = self.0.submit_status.load(Ordering::SeqCst);
        let id = format!("peer-{}", self.0.message_ids.fetch_add(1, Ordering::SeqCst));
        // submit_sm's header is private; its sequence_number is readable off the response.
        let sequence_number = req
            .clone()
            .reject(SmppError::ESME_ROK)
            .header
            .sequence_number;
        let msg = RawMessage {
            source_addr: req.source_addr.clone(),
            destination_addr: req.destination_addr.clone(),
            esm_class: req.esm_class,
            data_coding: req.data_coding,
            registered_delivery: req.registered_delivery,
            short_message: req.short_message.clone(),
            tlvs: req.tlvs.iter().map(|t| (t.tag, t.value.clone())).collect(),
            sequence_number,
        };
        if status == 0 {
            let _ = self.0.submits.send((msg, id.clone()));
            req.accept(id)
        } else {
            let _ = self.0.submits.send((msg, String::new()));
            req.reject(SmppError::from_command_status(status))
        }
    }
}

pub struct PeerSmsc {
    shared: Arc<Shared>,
    addr: SocketAddr,
    bound: watch::Receiver<bool>,
    submits: Mutex<mpsc::UnboundedReceiver<(RawMessage, String)>>,
    _server: SmppServer,
}

impl PeerSmsc {
    /// Listen on 127.0.0.1 (a free port) accepting bind_transceiver only for
    /// these credentials; others get ESME_RINVPASWD.
    pub async fn start(system_id: &str, password: &str) -> Self {
        let (bound_tx, bound) = watch::channel(false);
        let (submits_tx, submits) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            system_id: system_id.into(),
            password: password.into(),
            esme: StdMutex::new(None),
            bound: bound_tx,
            submits: submits_tx,
            message_ids: AtomicU64::new(1),
            submit_status: AtomicU32::new(0),
        });
        // SmppServer cannot report the port it got for port 0, so pick a free
        // one and retry if someone grabbed it in between.
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("probe a free port")
                .port();
            let (init, enquire, inactivity, response) = TIMERS;
            let mut server = SmppServer::new_with_default_timers(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
                Arc::new(Listener(shared.clone())),
                init,
                enquire,
                inactivity,
                response,
                4096,
            );
            server.start().await; // binds before returning
            if server.is_alive() {
                return PeerSmsc {
                    shared,
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                    bound,
                    submits: Mutex::new(submits),
                    _server: server,
                };
            }
        }
        panic!("PeerSmsc: no free port after 20 tries");
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait until an ESME is bound (true) or the timeout passes (false).
    pub async fn wait_bound(&self, wait: Duration) -> bool {
        let mut rx = self.bound.clone();
        tokio::time::timeout(wait, rx.wait_for(|b| *b))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn is_bound(&self) -> bool {
        *self.bound.borrow()
    }

    /// Push a deliver_sm (an MO) to the bound ESME; returns the deliver_sm_resp's
    /// command_status. Waits at most the response timer (10 s).
    pub async fn deliver(
        &self,
        source: &str,
        dest: &str,
        data_coding: u8,
        esm_class: u8,
        short_message: &[u8],
    ) -> Result<u32, SmscError> {
        if short_message.len() > 254 {
            return Err(SmscError::TooLong(short_message.len()));
        }
        let esme = self
            .shared
            .esme
            .lock()
            .unwrap()
            .clone()
            .ok_or(SmscError::NotBound)?;
        esme.deliver_sm()
            .source_addr(source)
            .destination_addr(dest)
            .esm_class(esm_class)
            .data_coding(data_coding)
            .short_message(short_message)
            .send()
            .await
            .map(|resp| resp.command_status())
            .map_err(SmscError::Smpp)
    }

    /// Next submit_sm from the ESME (already answered: status 0 + a message id,
    /// unless `set_submit_status` says otherwise).
    pub async fn next_submit(&self, wait: Duration) -> Option<RawMessage> {
        self.next_submit_with_id(wait).await.map(|(m, _)| m)
    }

    /// Same, plus the message_id returned in submit_sm_resp ("" if rejected).
    pub async fn next_submit_with_id(&self, wait: Duration) -> Option<(RawMessage, String)> {
        let mut rx = self.submits.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// Ask the bound ESME to unbind (fire-and-forget). smpp34's server does not
    /// recognise unbind_resp (it answers it with generic_nack and its own
    /// send_unbind times out), so the session only ends when the ESME closes
    /// TCP after answering, as a conformant ESME does.
    pub fn unbind(&self) {
        if let Some(esme) = self.shared.esme.lock().unwrap().clone() {
            tokio::spawn(async move {
                let _ = esme.send_unbind().await;
            });
        }
    }

    /// command_status for subsequent submit_sm_resp (0 = accept; e.g. 0x58
    /// ESME_RTHROTTLED, 0x14 ESME_RMSGQFUL to test the gateway's retries).
    pub fn set_submit_status(&self, status: u32) {
        self.shared.submit_status.store(status, Ordering::SeqCst);
    }
}
