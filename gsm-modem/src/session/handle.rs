//! The owner's side of a running session: [`ModemHandle`] sends requests
//! (send a PDU, delete a handed-over message, any command) that the
//! session serves between its own jobs.

use super::*;

pub(super) enum Request {
    Send {
        pdu: EncodedPdu,
        done: oneshot::Sender<Result<u8, ModemError>>,
    },
    Delete {
        index: u32,
        pdu: Vec<u8>,
        done: oneshot::Sender<Result<Deletion, ModemError>>,
    },
    Command {
        text: String,
        timeout: Duration,
        done: oneshot::Sender<Result<Vec<String>, ModemError>>,
    },
}

/// Sends requests to a running session. Cheap to clone.
#[derive(Clone)]
pub struct ModemHandle {
    pub(super) requests: mpsc::Sender<Request>,
    pub(super) ready: Arc<AtomicBool>,
}

impl ModemHandle {
    /// True while the session is initialised and running.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.requests.is_closed()
    }

    /// Sends one PDU with `AT+CMGS`; the message reference the network gave it.
    pub async fn send_pdu(&self, pdu: EncodedPdu) -> Result<u8, ModemError> {
        self.call(|done| Request::Send { pdu, done }).await
    }

    /// Deletes the message `pdu` (as handed over) at `index` of the
    /// storage: `AT+CMGR` first, and `AT+CMGD` only if the slot still holds
    /// `pdu`, with nothing in between. An error means nothing was deleted.
    pub async fn delete(&self, index: u32, pdu: &[u8]) -> Result<Deletion, ModemError> {
        let pdu = pdu.to_vec();
        self.call(|done| Request::Delete { index, pdu, done }).await
    }

    /// Runs any command (without the `\r`), giving its information lines.
    pub async fn command(&self, text: &str, timeout: Duration) -> Result<Vec<String>, ModemError> {
        let text = text.to_owned();
        self.call(|done| Request::Command {
            text,
            timeout,
            done,
        })
        .await
    }

    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, ModemError>>) -> Request,
    ) -> Result<T, ModemError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(request(done))
            .await
            .map_err(|_| ModemError::Closed)?;
        answer.await.map_err(|_| ModemError::Closed)?
    }
}
