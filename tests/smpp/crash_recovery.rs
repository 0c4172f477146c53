//! No loss, no double answer across crashes: the gateway binary runs under
//! load from an independent SMPP peer (smpp34's codec) and is killed with
//! SIGKILL at random moments, five times, and restarted each time. The peer
//! behaves like an aggregator: a message whose submit_sm_resp it did not get
//! is submitted again after reconnecting; a reply delivered a second time
//! with the same reply-to id (TLV 0x1401) is recognised as the same reply.
//! At the end every message the peer got acknowledged has exactly one
//! reply, and no message has been answered as two different messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::peer_esme::{PeerEsme, RawMessage};
use support::process::{free_port, Process};

/// Messages sent at least; more while the killer is still at work.
const MESSAGES: usize = 400;
const KILLS: usize = 5;
const REPLY_TO_TAG: u16 = 0x1401;

/// A small deterministic generator, seeded from the clock (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The gateway on `port`, the demo account asking for the reply-to TLV;
/// each start logs to its own file.
fn gateway(dir: &Path, port: u16) -> Process {
    let mut process = Process::importing_the_sample(dir);
    process.set_config(
        "[[smpp.listener.accounts]]\nsystem_id = \"demo\"\npassword = \"demo\"\nreply_to_tlv = true\n",
    );
    process.set_env("MOTCUA_REPLY__ACCENTS", "false");
    process.set_env("MOTCUA_SMPP__LISTENER__BIND", format!("127.0.0.1:{port}"));
    process
}

fn text_for(i: usize) -> String {
    match i % 3 {
        0 => format!("TC {}", support::KNOWN_CODE),
        1 => format!("TC 000.00.12.H58-240315-{:04}", 100 + i % 9000),
        _ => "xin chao".to_owned(),
    }
}

fn sender_for(i: usize) -> String {
    format!("8491{i:07}")
}

/// What the peer saw.
#[derive(Default)]
struct Observed {
    /// Message index → message id from submit_sm_resp.
    acked: BTreeMap<usize, String>,
    /// Sender → reply-to ids of the replies delivered to it, one entry per delivery.
    replies: BTreeMap<String, Vec<String>>,
}

impl Observed {
    fn take(&mut self, m: RawMessage) {
        let reply_to = m
            .tlvs
            .iter()
            .find(|(tag, _)| *tag == REPLY_TO_TAG)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        self.replies
            .entry(m.destination_addr)
            .or_default()
            .push(reply_to);
    }

    fn missing(&self) -> usize {
        self.acked
            .keys()
            .filter(|i| !self.replies.contains_key(&sender_for(**i)))
            .count()
    }
}

async fn connect(port: u16) -> PeerEsme {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PeerEsme::bind_transceiver(addr, support::SYSTEM_ID, support::PASSWORD).await {
            Ok(peer) => return peer,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "gateway did not come back: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn drain(peer: &mut PeerEsme, observed: &mut Observed) {
    while let Some(m) = peer.next_deliver(Duration::ZERO).await {
        observed.take(m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_answers_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut process = gateway(dir.path(), port);
    process.start();
    let gateway = Arc::new(Mutex::new(process));

    // The killer: SIGKILL at random moments, restart at once.
    let killer = {
        let gateway = gateway.clone();
        std::thread::spawn(move || {
            let mut rng = Lcg(seed);
            for _ in 1..=KILLS {
                std::thread::sleep(Duration::from_millis(400 + rng.next() % 900));
                let mut process = gateway.lock().unwrap();
                assert!(process.pid().is_some(), "the gateway runs");
                process.kill();
                process.start();
            }
        })
    };

    let mut observed = Observed::default();
    let mut peer = connect(port).await;
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut next = 0;
    let mut kills_seen = 0;
    loop {
        // New messages keep coming until the killer is done and MESSAGES were sent.
        if queue.is_empty() {
            if killer.is_finished() && next >= MESSAGES {
                break;
            }
            queue.push_back(next);
            next += 1;
        }
        let Some(i) = queue.pop_front() else { break };
        match peer
            .submit(&sender_for(i), "8058", 0, text_for(i).as_bytes())
            .await
        {
            Ok((0, message_id)) => {
                if let Some(previous) = observed.acked.insert(i, message_id.clone()) {
                    assert_eq!(previous, message_id, "a resubmitted message got a new id");
                }
            }
            Ok((_, _)) => queue.push_back(i),
            Err(_) => {
                // The gateway died: resubmit this one after reconnecting.
                queue.push_front(i);
                drain(&mut peer, &mut observed).await;
                kills_seen += 1;
                peer = connect(port).await;
            }
        }
        drain(&mut peer, &mut observed).await;
        // A steady load (a few hundred messages a second) while the killer works.
        if !killer.is_finished() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    // Let the killer finish, then wait for every acknowledged message's reply.
    while !killer.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    killer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while observed.missing() > 0 && Instant::now() < deadline {
        match peer.next_deliver(Duration::from_millis(200)).await {
            Some(m) => observed.take(m),
            None if !peer.is_connected() => peer = connect(port).await,
            None => {}
        }
    }
    // Late duplicates, if any, would arrive now.
    while let Some(m) = peer.next_deliver(Duration::from_millis(500)).await {
        observed.take(m);
    }
    peer.unbind().await;
    gateway.lock().unwrap().stop();

    let mut wire_duplicates = 0;
    for (i, message_id) in &observed.acked {
        let replies = observed.replies.get(&sender_for(*i)).unwrap_or_else(|| {
            panic!("message {i} ({message_id}) was acknowledged but never answered")
        });
        let distinct: BTreeSet<&String> = replies.iter().collect();
        assert_eq!(
            distinct.into_iter().collect::<Vec<_>>(),
            vec![message_id],
            "message {i}: every reply must answer exactly this message"
        );
        wire_duplicates += replies.len() - 1;
    }
    println!(
        "crash test: {} messages acknowledged, {} answered, {KILLS} kills ({kills_seen} seen by the peer), \
         {wire_duplicates} in-doubt replies redelivered with the same reply-to id",
        observed.acked.len(),
        observed.acked.len() - observed.missing(),
    );
    assert!(observed.acked.len() >= MESSAGES);
    assert!(
        kills_seen >= KILLS - 1,
        "the peer saw only {kills_seen} of {KILLS} kills: the load did not cover them"
    );
}
