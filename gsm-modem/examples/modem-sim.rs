//! An unattended simulated GSM modem for demos: a gateway opens `--link`
//! as its serial port, and you play the phones on stdin.
//!
//! ```text
//! cargo run -p gsm-modem --features sim --example modem-sim -- \
//!     --link /tmp/ttyMODEM0 --profile huawei [--delivery store|direct|both] \
//!     [--slots 20] [--pin 1234]
//! ```
//!
//! Commands on stdin, one a line:
//!
//! - `send <from> <text...>`: a phone texts the modem's SIM;
//! - `fault hang|send-hang [<sends let through>]|reboot|full|no-delete|no-cmti|recover` or `fault cms <code> <times>`;
//! - `storage`: the SIM indexes in use;
//! - `quit`.
//!
//! Every message the gateway sends is printed as it is accepted (each part,
//! then the whole text once all parts are in).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use gsm_modem::sim::{Delivery, Fault, SimModem, SimSettings, Submitted};

const USAGE: &str =
    "usage: modem-sim --link <path> [--profile generic|huawei|zte|wavecom|telit|pantech] \
[--delivery store|direct|both] [--slots N] [--pin PIN]";

fn parse_args() -> Result<(PathBuf, SimSettings), String> {
    let mut link = None;
    let mut settings = SimSettings::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--link" => link = Some(PathBuf::from(value()?)),
            "--profile" => settings.profile = value()?.parse()?,
            "--delivery" => {
                settings.delivery = match value()?.as_str() {
                    "store" => Delivery::Store,
                    "direct" => Delivery::Direct,
                    "both" => Delivery::DirectAndStore,
                    other => return Err(format!("unknown delivery {other:?}")),
                }
            }
            "--slots" => settings.slots = value()?.parse().map_err(|e| format!("--slots: {e}"))?,
            "--pin" => settings.pin = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let link = link.ok_or_else(|| format!("--link is required\n{USAGE}"))?;
    Ok((link, settings))
}

fn parse_fault(words: &[&str]) -> Result<Fault, String> {
    Ok(match words {
        ["hang"] => Fault::Hang,
        ["send-hang"] => Fault::HangAtNextSend,
        ["send-hang", after] => {
            Fault::HangAfterSends(after.parse().map_err(|e| format!("sends: {e}"))?)
        }
        ["reboot"] => Fault::Reboot,
        ["full"] => Fault::StorageFull,
        ["recover"] => Fault::Recover,
        ["no-delete"] => Fault::RefuseDelete,
        ["no-cmti"] => Fault::LoseIndications,
        ["cms", code, times] => Fault::CmsErrorOnSend {
            code: code.parse().map_err(|e| format!("code: {e}"))?,
            times: times.parse().map_err(|e| format!("times: {e}"))?,
        },
        _ => {
            return Err(
                "fault hang|send-hang [<sends let through>]|reboot|full|no-delete|no-cmti|recover|cms <code> <times>"
                    .into(),
            )
        }
    })
}

/// Prints parts as they come and whole messages once complete.
#[derive(Default)]
struct Printer {
    parts: HashMap<(String, u16, u8), Vec<Option<String>>>,
}

impl Printer {
    fn print(&mut self, sub: &Submitted) {
        let text = sub.pdu.user_data.text();
        let Some(c) = sub.pdu.user_data.concatenation().filter(|c| c.total > 1) else {
            println!("SENT to {} (1 part, mr {}): {text}", sub.to, sub.mr);
            return;
        };
        println!(
            "part {}/{} to {} (ref {}, mr {}): {text}",
            c.sequence, c.total, sub.to, c.reference, sub.mr
        );
        let key = (sub.to.clone(), c.reference, c.total);
        let parts = self
            .parts
            .entry(key.clone())
            .or_insert_with(|| vec![None; usize::from(c.total)]);
        if let Some(slot) = parts.get_mut(usize::from(c.sequence.saturating_sub(1))) {
            *slot = Some(text);
        }
        if parts.iter().all(Option::is_some) {
            let whole: String = parts.iter().flatten().cloned().collect();
            println!("SENT to {} ({} parts): {whole}", sub.to, c.total);
            self.parts.remove(&key);
        }
    }
}

#[tokio::main]
async fn main() {
    let (link, settings) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let profile = settings.profile;
    let modem = match SimModem::start(&link, settings).await {
        Ok(modem) => modem,
        Err(error) => {
            eprintln!("cannot start the simulator at {}: {error}", link.display());
            std::process::exit(1);
        }
    };
    println!(
        "simulated {profile} modem at {} — commands: send <from> <text>, fault ..., storage, quit",
        link.display()
    );

    // Stdin on a thread: tokio's io-std is not among this crate's features.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut printer = Printer::default();
    let mut seen = 0;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    [] => {}
                    ["send", from, text @ ..] if !text.is_empty() => {
                        let parts = modem.phone_sends(from, &text.join(" "));
                        println!("{from} sent {parts} part(s)");
                    }
                    ["fault", rest @ ..] => match parse_fault(rest) {
                        Ok(fault) => {
                            println!("fault: {fault:?}");
                            modem.fault(fault);
                        }
                        Err(message) => eprintln!("{message}"),
                    },
                    ["storage"] => println!("SIM storage in use: {:?}", modem.storage()),
                    ["quit"] | ["exit"] => break,
                    _ => eprintln!("send <from> <text...> | fault ... | storage | quit"),
                }
            }
            got = modem.wait_submitted(seen + 1, Duration::from_millis(500)) => {
                if let Ok(all) = got {
                    for sub in &all[seen..] {
                        printer.print(sub);
                    }
                    seen = all.len();
                }
            }
        }
    }
    modem.shutdown();
    // Let the simulator remove its symlink.
    tokio::time::sleep(Duration::from_millis(50)).await;
}
