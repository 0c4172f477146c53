//! Using `gsm-modem` on its own: open a modem's serial port, print every
//! message it receives (deleting each after printing it), and send one.
//!
//! ```sh
//! cargo run -p gsm-modem --example sms -- /dev/ttyUSB2 listen
//! cargo run -p gsm-modem --example sms -- /dev/ttyUSB2 send 0912345678 "Xin chào"
//! ```
//!
//! Without hardware, start the simulator first
//! (`cargo run -p gsm-modem --features sim --example modem-sim -- --link /tmp/ttyMODEM0`)
//! and give `/tmp/ttyMODEM0` as the port.

use std::time::Duration;

use gsm_modem::pdu::{self, Pdu, PduAddress, SubmitOptions, Tpdu};
use gsm_modem::session::{ModemEvent, Session, SessionSettings};
use tokio_serial::SerialPortBuilderExt;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, command) = match args.as_slice() {
        [port, rest @ ..] if !rest.is_empty() => (port.clone(), rest.to_vec()),
        _ => {
            eprintln!("usage: sms <port> listen | sms <port> send <number> <text>");
            std::process::exit(2);
        }
    };
    let serial = tokio_serial::new(&port, 115_200).open_native_async()?;
    let (session, handle, mut events) = Session::new(serial, SessionSettings::default());
    let stop = CancellationToken::new();
    let running = tokio::spawn(session.run(stop.clone()));
    // Wait until the modem is initialised.
    loop {
        match events.recv().await {
            Some(ModemEvent::Ready { model }) => {
                println!("modem ready: {model}");
                break;
            }
            Some(other) => println!("{other:?}"),
            None => return Err(format!("{:?}", running.await?).into()),
        }
    }
    match command.as_slice() {
        [verb] if verb == "listen" => {
            while let Some(event) = events.recv().await {
                match event {
                    ModemEvent::Received(sms) => {
                        let part = sms
                            .deliver
                            .user_data
                            .concatenation()
                            .map(|c| format!(" (part {}/{})", c.sequence, c.total))
                            .unwrap_or_default();
                        println!(
                            "from {}{part}: {}",
                            sms.deliver.originator.number,
                            sms.deliver.user_data.text()
                        );
                        if let Some(index) = sms.location {
                            handle.delete(index, &sms.pdu).await?;
                        }
                    }
                    other => println!("{other:?}"),
                }
            }
        }
        [verb, number, text] if verb == "send" => {
            let to = if let Some(international) = number.strip_prefix('+') {
                PduAddress::international(international)
            } else {
                PduAddress::unknown(number)
            };
            let parts = pdu::submit_parts(&to, text, 1, SubmitOptions::default());
            for part in parts {
                let encoded = pdu::encode(&Pdu {
                    smsc: None,
                    tpdu: Tpdu::Submit(part),
                })?;
                let reference = handle.send_pdu(encoded).await?;
                println!("sent, message reference {reference}");
            }
        }
        _ => {
            eprintln!("usage: sms <port> listen | sms <port> send <number> <text>");
            std::process::exit(2);
        }
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
    Ok(())
}
