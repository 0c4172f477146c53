//! A template preview cannot freeze the gateway: a viewer previews a text of
//! nested loops that would run for minutes while SMS traffic flows through
//! the SMPP listener of the same process (the binary, over real sockets).
//! The preview is refused within a second, and no SMS round trip meanwhile
//! takes more than 500 ms (a bound to detect a stalled gateway, not a speed
//! goal).

use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::peer_esme::PeerEsme;
use support::process::{binary as motcua, free_port, Process};
use support::{KNOWN_CODE, PASSWORD, SYSTEM_ID};

/// Nested loops over 100,000 × 100,000 items that write nothing.
const RUNAWAY: &str =
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}HS {{ code }}";
const VIEWER_FIRST: &str = "Tam-thoi-2026-abc";
const VIEWER: &str = "Mat-khau-that-2026";

struct Gateway {
    process: Process,
    _dir: tempfile::TempDir,
    smpp: SocketAddr,
    admin: SocketAddr,
}

impl Gateway {
    fn log(&self) -> String {
        self.process.logs()
    }
}

async fn start() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let smpp = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[smpp.listener]\nbind = \"{smpp}\"\n[[smpp.listener.accounts]]\n\
             system_id = \"{SYSTEM_ID}\"\npassword = \"{PASSWORD}\"\n\
             [admin]\nenabled = true\nbind = \"{admin}\"\ncookie_secure = false\n\
             [http]\nbind = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let mut add = motcua(dir.path())
        .args(["account", "add", "xem", "--role", "viewer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{VIEWER_FIRST}").unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let mut process = Process::importing_the_sample(dir.path());
    process.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
    process.set_env("MOTCUA_REPLY__ACCENTS", "false");
    process.set_env("MOTCUA_JOURNAL__SYNCHRONOUS", "normal");
    process.start();
    let gateway = Gateway {
        process,
        _dir: dir,
        smpp,
        admin,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for addr in [smpp, admin] {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the gateway did not open {addr}\n{}",
                gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    gateway
}

/// A logged-in console session: its cookie and CSRF token.
struct Session {
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn viewer(admin: SocketAddr) -> Self {
        let base = format!("http://{admin}/api/v1");
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{base}/session"))
            .json(&json!({"username": "xem", "password": VIEWER_FIRST}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        let session = Session {
            base,
            http,
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        };
        let changed = session
            .post(
                "/session/password",
                json!({"current": VIEWER_FIRST, "new": VIEWER}),
            )
            .await;
        assert_eq!(changed.status(), 200);
        session
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.try_post(path, body)
            .await
            .unwrap_or_else(|error| panic!("POST {path}: {error}"))
    }

    /// A POST given up after 5 s.
    async fn try_post(&self, path: &str, body: Value) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
    }
}

/// SMS round trips (submit_sm to the reply's deliver_sm) until `stop`.
async fn sms_traffic(smpp: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut peer = PeerEsme::bind_transceiver(smpp, SYSTEM_ID, PASSWORD)
        .await
        .expect("binds");
    let mut round_trips = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // A new sender each time: the same text from one number is a redelivery.
        let sender = format!("8498{n:07}");
        let text = format!("TC {KNOWN_CODE}");
        let started = Instant::now();
        match peer.submit(&sender, "8058", 0, text.as_bytes()).await {
            Ok((0, _)) => {}
            Ok((status, _)) => panic!("submit_sm answered with status {status:#x}"),
            Err(error) => {
                eprintln!("submit_sm not answered: {error:?}");
                round_trips.push(started.elapsed());
                break;
            }
        }
        match peer.next_deliver(Duration::from_secs(10)).await {
            Some(reply) => {
                assert_eq!(reply.destination_addr, sender);
                round_trips.push(started.elapsed());
            }
            None => {
                round_trips.push(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    round_trips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runaway_template_preview_is_refused_within_a_second_while_sms_keeps_flowing() {
    let gateway = start().await;
    let viewer = Arc::new(Session::viewer(gateway.admin).await);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(sms_traffic(gateway.smpp, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Four viewers preview at once, three times each.
    let previews: Vec<_> = (0..4)
        .map(|_| {
            let viewer = viewer.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..3 {
                    let started = Instant::now();
                    let answer = viewer
                        .try_post("/templates/found/preview", json!({"source": RUNAWAY}))
                        .await;
                    let (status, body) = match answer {
                        Ok(response) => (
                            response.status().as_u16(),
                            response.json().await.unwrap_or(Value::Null),
                        ),
                        Err(error) => (0, Value::String(error.to_string())),
                    };
                    answers.push((started.elapsed(), status, body));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for preview in previews {
        answers.extend(preview.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut round_trips = traffic.await.unwrap();
    round_trips.sort();
    let slowest = round_trips.last().copied().unwrap_or_default();
    let p99 = round_trips
        .get((round_trips.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    let sms = format!(
        "{} SMS round trips meanwhile, p99 {p99:?}, slowest {slowest:?}",
        round_trips.len()
    );
    eprintln!("{sms}");
    for (took, status, body) in &answers {
        assert!(
            *took < Duration::from_secs(1),
            "a runaway preview was answered after {took:?} ({status} {body}); {sms}"
        );
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "invalid_template", "{body}");
    }
    assert!(round_trips.len() >= 10, "{sms}");
    assert!(
        slowest < Duration::from_millis(500),
        "an SMS round trip took {slowest:?} while previews ran: {sms}\n{}",
        gateway.log()
    );
}
