//! `motcua-sms state backup` of a gateway under SMPP load: the gateway
//! binary takes about 1,000 messages a second from sixteen peer sessions
//! (smpp34's codec) while the backup command runs beside it. The backup
//! passes its integrity check (its own and `state verify`'s) and holds every
//! message the peers got acknowledged before the backup began, with its
//! sender and text, under the id the gateway gave in submit_sm_resp.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::peer_esme::PeerEsme;
use support::process::{binary, free_port, Process};

/// Peer sessions submitting at once.
const SESSIONS: usize = 16;
/// Messages a second each session aims at (about 1,000 in all).
const PER_SESSION_RATE: u64 = 63;

/// A message the gateway acknowledged.
struct Acked {
    /// submit_sm_resp's message_id (the journal's id, in hex).
    message_id: String,
    sender: String,
    text: String,
    at: Instant,
    latency: Duration,
}

/// One session's load: a message every 1/PER_SESSION_RATE s until `stop`.
async fn submit_until(
    port: u16,
    session: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut peer = PeerEsme::bind_transceiver(addr, support::SYSTEM_ID, support::PASSWORD)
        .await
        .expect("bind_transceiver accepted");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SESSION_RATE));
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sender = format!("849{session}{i:07}");
        let text = format!("TC 000.00.12.H58-240315-{:04} lan {i}", i % 9000);
        let sent = Instant::now();
        let (status, message_id) = peer
            .submit(&sender, support::SERVICE_NUMBER, 0, text.as_bytes())
            .await
            .expect("submit_sm answered");
        if status == 0 {
            acked.lock().unwrap().push(Acked {
                message_id,
                sender,
                text,
                at: Instant::now(),
                latency: sent.elapsed(),
            });
        }
        // The replies: read, answered by the peer's reader.
        while peer.next_deliver(Duration::ZERO).await.is_some() {}
        i += 1;
    }
    peer.unbind().await;
}

fn slowest(acked: &[Acked], within: impl Fn(Instant) -> bool) -> Duration {
    acked
        .iter()
        .filter(|a| within(a.at))
        .map(|a| a.latency)
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_holds_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut gateway = Process::importing_the_sample(dir.path());
    gateway.set_config(
        "[[smpp.listener.accounts]]\nsystem_id = \"demo\"\npassword = \"demo\"\nmax_binds = 20\n",
    );
    gateway.set_env("MOTCUA_SMPP__LISTENER__BIND", format!("127.0.0.1:{port}"));
    gateway.start();
    gateway.wait_for_port(port, Duration::from_secs(60));

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let load_started = Instant::now();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|session| tokio::spawn(submit_until(port, session, stop.clone(), acked.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Everything acknowledged up to here must be in the backup.
    let before: Vec<(String, String, String)> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|a| (a.message_id.clone(), a.sender.clone(), a.text.clone()))
        .collect();
    let backup_file = dir.path().join("backups/state.db");
    std::fs::create_dir_all(backup_file.parent().unwrap()).unwrap();
    let backup_started = Instant::now();
    let output = tokio::task::spawn_blocking({
        let (dir, backup_file) = (dir.path().to_owned(), backup_file.clone());
        move || {
            // Small steps, so the copy takes many of them under the load.
            binary(&dir)
                .args(["state", "backup", "--step-pages", "8", "--to"])
                .arg(&backup_file)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let backup_ended = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for session in sessions {
        session.await.unwrap();
    }
    let load_ended = Instant::now();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("integrity ok"), "{stdout}");

    let acked = acked.lock().unwrap();
    let during = acked
        .iter()
        .filter(|a| a.at >= backup_started && a.at <= backup_ended)
        .count();
    let rate = acked.len() as f64 / (load_ended - load_started).as_secs_f64();
    println!(
        "load: {} messages acknowledged at {rate:.0}/s; backup: {:?}, {during} acknowledged \
         meanwhile; slowest submit_sm_resp before it {:?}, during it {:?}\n{stdout}",
        acked.len(),
        backup_ended - backup_started,
        slowest(&acked, |at| at < backup_started),
        slowest(&acked, |at| at >= backup_started && at <= backup_ended),
    );
    assert!(before.len() > 500, "{} acknowledged before", before.len());
    assert!(
        during > 0,
        "the gateway kept acknowledging during the backup"
    );

    let verify = binary(dir.path())
        .args(["state", "verify"])
        .arg(&backup_file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("integrity: ok"), "{report}");

    let copy = rusqlite::Connection::open_with_flags(
        &backup_file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let integrity: String = copy
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut find = copy
        .prepare("SELECT sender, text FROM messages WHERE id = ?1")
        .unwrap();
    for (message_id, sender, text) in &before {
        let id = i64::from_str_radix(message_id, 16).unwrap();
        let row: Option<(String, String)> = find
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
            .ok();
        assert_eq!(
            row.as_ref(),
            Some(&(sender.clone(), text.clone())),
            "message {message_id} acknowledged before the backup"
        );
    }
    gateway.stop();
}
