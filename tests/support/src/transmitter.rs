//! A listener peer bound as a transmitter only: it submits a citizen's
//! message, and the account then has no connection to receive the reply
//! on, so the reply waits in the journal.

use std::net::SocketAddr;

use motcua_sms::smpp::pdu::{Bind, BindKind, Body, ShortMessage};
use motcua_sms::smpp::session::{next_request, Connection};
use motcua_sms::smpp::SessionSettings;
use tokio::task::JoinHandle;

/// Binds a transmitter to `listener` as the test account and submits `text`
/// from `source` (TON/NPI 1/1) to the service number; returns once the
/// submit is acknowledged, with the task that reads the connection (abort it
/// to close the connection). A deliver_sm on it fails that task.
pub async fn submit_on_a_transmitter(
    listener: SocketAddr,
    source: &str,
    text: &str,
) -> JoinHandle<()> {
    let stream = tokio::net::TcpStream::connect(listener).await.unwrap();
    let mut conn = Connection::new(stream, &SessionSettings::default()).unwrap();
    let link = conn.link.clone();
    let (source, text) = (source.to_owned(), text.to_owned());
    let exchange = tokio::spawn(async move {
        link.request(Body::Bind(Bind::new(
            BindKind::Transmitter,
            super::SYSTEM_ID,
            super::PASSWORD,
        )))
        .await
        .expect("bind_transmitter accepted");
        link.request(Body::SubmitSm(ShortMessage {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: source,
            destination_addr: super::SERVICE_NUMBER.into(),
            short_message: text.into_bytes(),
            ..ShortMessage::default()
        }))
        .await
        .expect("submit accepted")
    });
    let reader = tokio::spawn(async move {
        // Routes the responses; a transmitter receives nothing else.
        while let Some(pdu) = next_request(&mut conn).await {
            assert!(
                !matches!(pdu.body, Body::DeliverSm(_)),
                "a transmitter got a deliver_sm"
            );
        }
    });
    exchange.await.unwrap();
    reader
}
