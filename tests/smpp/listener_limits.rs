//! The listener's memory stays bounded whatever its peers do, over real
//! sockets against the gateway binary:
//!
//! - a bound peer that pipelines 100,000 `submit_sm` and never reads a
//!   response: the gateway's resident memory (`VmRSS` in
//!   `/proc/<pid>/status`) stays under 150 MB, and another peer is answered
//!   all along (each session holds an inbound window: past it the gateway
//!   stops reading that socket; each channel answers within its own share);
//! - 5,000 idle connections: past `max_connections_per_ip` and
//!   `max_connections` they are closed at once, with a log line.

use std::net::SocketAddr;

use std::time::{Duration, Instant};

use motcua_sms::smpp::client::send_and_receive;
use motcua_sms::smpp::pdu::{Bind, BindKind, Body, Pdu, ShortMessage};
use support::process::{free_port, Process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 100_000;
const RSS_LIMIT_KB: u64 = 150 * 1024;

struct Gateway {
    process: Process,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// The binary with two accounts (`flood` and `demo`) and `listener`
    /// added to `[smpp.listener]`.
    fn start(listener: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut process = Process::importing_the_sample(dir.path());
        process.set_config(format!(
            "[smpp.listener]\nbind = \"127.0.0.1:{port}\"\n{listener}\n\
             [[smpp.listener.accounts]]\nsystem_id = \"flood\"\npassword = \"flood\"\n\
             [[smpp.listener.accounts]]\nsystem_id = \"demo\"\npassword = \"demo\"\n"
        ));
        process.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
        process.set_env("MOTCUA_ADMIN__ENABLED", "false");
        process.set_env("MOTCUA_HTTP__BIND", format!("127.0.0.1:{}", free_port()));
        process.start();
        process.wait_for_port(port, Duration::from_secs(30));
        Gateway {
            process,
            port,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        self.process.logs()
    }

    /// Resident memory now, in kB.
    fn rss_kb(&self) -> u64 {
        let pid = self.process.pid().expect("the gateway runs");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the gateway is alive");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

fn submit(sequence: u32, sender: &str) -> Vec<u8> {
    Pdu::new(
        sequence,
        Body::SubmitSm(ShortMessage {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: sender.to_owned(),
            destination_addr: "8058".into(),
            short_message: format!("TC {}", support::KNOWN_CODE).into_bytes(),
            ..ShortMessage::default()
        }),
    )
    .to_bytes()
    .to_vec()
}

async fn bind(stream: &mut TcpStream, system_id: &str, password: &str) {
    stream
        .write_all(
            &Pdu::new(
                1,
                Body::Bind(Bind::new(BindKind::Transceiver, system_id, password)),
            )
            .to_bytes(),
        )
        .await
        .unwrap();
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).await.unwrap();
    let length = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; length - 16];
    stream.read_exact(&mut rest).await.unwrap();
    assert_eq!(&header[4..12], &[0x80, 0, 0, 9, 0, 0, 0, 0], "bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_pipelining_without_reading_stays_bounded_and_others_are_answered() {
    let gateway = Gateway::start("");
    let baseline = gateway.rss_kb();
    let mut flood = TcpStream::connect(gateway.addr()).await.unwrap();
    bind(&mut flood, "flood", "flood").await;
    // 100,000 submit_sm written back to back; not one response is read.
    let writer = tokio::spawn(async move {
        let mut written = 0;
        for chunk in (0..FLOOD).collect::<Vec<_>>().chunks(500) {
            let bytes: Vec<u8> = chunk
                .iter()
                .flat_map(|&i| submit(i as u32 + 2, &format!("8490{i:07}")))
                .collect();
            if flood.write_all(&bytes).await.is_err() {
                break;
            }
            written += chunk.len();
        }
        (flood, written)
    });

    // Meanwhile another peer asks, again and again, and is answered.
    let started = Instant::now();
    let mut peak = baseline;
    let mut answered = 0;
    let mut unanswered = Vec::new();
    while started.elapsed() < Duration::from_secs(25) {
        peak = peak.max(gateway.rss_kb());
        let sender = format!("84981{:06}", answered + unanswered.len());
        let reply = send_and_receive(
            gateway.addr(),
            "demo",
            "demo",
            &sender,
            "8058",
            &format!("TC {}", support::KNOWN_CODE),
            Duration::from_secs(15),
        )
        .await;
        match reply {
            Ok(reply) => {
                assert!(reply.text.contains(support::KNOWN_CODE), "{}", reply.text);
                answered += 1;
            }
            Err(error) => unanswered.push(format!("after {:?}: {error}", started.elapsed())),
        }
        for _ in 0..5 {
            peak = peak.max(gateway.rss_kb());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    peak = peak.max(gateway.rss_kb());
    writer.abort();
    println!(
        "RSS: {} MB at start, {} MB at most; the other peer answered {answered} times, \
         not answered {} times",
        baseline / 1024,
        peak / 1024,
        unanswered.len()
    );
    assert!(
        unanswered.is_empty(),
        "the other peer was not answered: {unanswered:?}"
    );
    assert!(
        peak < RSS_LIMIT_KB,
        "RSS reached {} MB (limit {} MB)",
        peak / 1024,
        RSS_LIMIT_KB / 1024
    );
    assert!(answered >= 10, "answered only {answered} times");
}

/// Opens `count` connections from `source` (a loopback address) and keeps them.
async fn open_from(source: [u8; 4], to: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        streams.push(socket.connect(to).await.expect("the kernel accepts"));
    }
    streams
}

/// How many of `streams` the gateway still holds open (the others were
/// closed by it: a read sees the end of the stream).
async fn still_open(streams: &mut [TcpStream]) -> usize {
    let mut open = 0;
    for stream in streams.iter_mut() {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(5), stream.read(&mut byte)).await {
            Err(_) => open += 1,         // nothing to read: still open
            Ok(Ok(0)) | Ok(Err(_)) => {} // closed by the gateway
            Ok(Ok(_)) => panic!("an idle connection was sent something"),
        }
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_caps_are_refused_with_a_log_line() {
    const PER_IP: usize = 400;
    const TOTAL: usize = 1_000;
    let gateway = Gateway::start(&format!(
        "max_connections = {TOTAL}\nmax_connections_per_ip = {PER_IP}\nbind_timeout_secs = 600"
    ));
    // 5,000 connections that never send a byte, 1,000 from each of five
    // loopback addresses.
    let mut by_source = Vec::new();
    for last in 1..=5u8 {
        by_source.push(open_from([127, 0, 0, last], gateway.addr(), 1_000).await);
    }
    // The gateway closes the refused ones right after accepting them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected = [PER_IP, PER_IP, TOTAL - 2 * PER_IP, 0, 0];
    let mut counts = Vec::new();
    loop {
        counts.clear();
        for streams in by_source.iter_mut() {
            counts.push(still_open(streams).await);
        }
        if counts == expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        counts,
        expected,
        "connections left open per address\n{}",
        gateway.log()
    );
    let log = gateway.log();
    assert!(
        log.contains("connection refused: max_connections_per_ip reached"),
        "{log}"
    );
    assert!(
        log.contains("connection refused: max_connections reached"),
        "{log}"
    );
    // Once the idle ones go, a peer binds and is answered.
    drop(by_source);
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        match send_and_receive(
            gateway.addr(),
            "demo",
            "demo",
            "84987000999",
            "8058",
            &format!("TC {}", support::KNOWN_CODE),
            Duration::from_secs(10),
        )
        .await
        {
            Ok(reply) => break reply,
            Err(error) => assert!(Instant::now() < deadline, "{error}\n{}", gateway.log()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reply.text.contains(support::KNOWN_CODE));
}
