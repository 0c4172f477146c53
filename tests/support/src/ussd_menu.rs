//! A scripted USSD handler for the USSD tests: a two-step menu. A dial
//! opens it ("1. A\n2. B", the dialogue stays open), "1" ends it with "A!",
//! anything else with "Sai"; a release is answered with nothing. It hands
//! every turn it sees to the test, and records SMS given to `receive` (a
//! USSD turn must never be one).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use motcua_sms::channel::{
    DeliveryReport, IncomingSms, Receipt, ReceiveError, SmsHandler, TurnKind, UssdAnswer, UssdTurn,
};
use tokio::sync::mpsc;

/// The message id `receive` acknowledges an SMS with.
pub const SMS_ID: &str = "sms-1";

/// The scripted handler: the menu, and what it was given.
pub struct Menu {
    turns: mpsc::UnboundedSender<UssdTurn>,
    sms: Mutex<Vec<IncomingSms>>,
}

impl Menu {
    /// The handler, and the turns it will see, in order.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<UssdTurn>) {
        let (turns, seen) = mpsc::unbounded_channel();
        (
            Arc::new(Menu {
                turns,
                sms: Mutex::new(Vec::new()),
            }),
            seen,
        )
    }

    /// SMS given to `receive` so far.
    pub fn sms_count(&self) -> usize {
        self.sms.lock().unwrap().len()
    }

    /// The texts of the SMS given to `receive`, in order.
    pub fn sms_texts(&self) -> Vec<String> {
        self.sms
            .lock()
            .unwrap()
            .iter()
            .map(|sms| sms.text.clone())
            .collect()
    }
}

impl SmsHandler for Menu {
    async fn receive(&self, sms: IncomingSms) -> Result<Receipt, ReceiveError> {
        self.sms.lock().unwrap().push(sms);
        Ok(Receipt::Accepted {
            message_id: SMS_ID.into(),
        })
    }

    async fn delivery_report(
        &self,
        _channel: String,
        _report: DeliveryReport,
    ) -> Result<(), ReceiveError> {
        Ok(())
    }

    async fn ussd(&self, turn: UssdTurn) -> Option<UssdAnswer> {
        let answer = match turn.kind {
            TurnKind::Open => Some(("1. A\n2. B", false)),
            TurnKind::Continue if turn.text.trim() == "1" => Some(("A!", true)),
            TurnKind::Continue => Some(("Sai", true)),
            TurnKind::Release => None,
        };
        let _ = self.turns.send(turn);
        answer.map(|(text, end)| UssdAnswer {
            text: text.into(),
            end,
        })
    }
}

/// The next turn the handler saw (within `wait`).
pub async fn next_turn(seen: &mut mpsc::UnboundedReceiver<UssdTurn>, wait: Duration) -> UssdTurn {
    tokio::time::timeout(wait, seen.recv())
        .await
        .expect("the handler sees the turn")
        .expect("handler alive")
}
