//! Every HTTP port of the binary against slow and greedy clients, over real
//! sockets with the default `limits` of each port: a client that sends its
//! request headers one byte at a time is cut off after the header timeout,
//! and connections from one address past the per-address cap (or from
//! anywhere past the port's cap) are closed at once while a client from
//! another address is still served. The ports: operations, public, admin,
//! USSD callback, Kannel drop-in (one gateway process) and the feed of
//! `core-sim`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::process::{free_port, Process};

/// The defaults the ports are tested against (`[*.limits]` in config.toml).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS_PER_IP: usize = 32;
const MAX_CONNECTIONS: usize = 256;

/// The ports of a running gateway, and a core-sim's.
struct Ports {
    named: Vec<(&'static str, SocketAddr)>,
    _gateway: Process,
    _core: Process,
    _dir: tempfile::TempDir,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `name` (its logs `<name>-1.log`) started with `args` and `env`.
fn spawn(dir: &Path, name: &str, args: &[&str], env: &[(&str, String)]) -> Process {
    let mut process = Process::new(dir).named(name);
    process.set_args(args.iter().copied());
    for (key, value) in env {
        process.set_env(key, value);
    }
    process.start();
    process
}

async fn start() -> Ports {
    let dir = tempfile::tempdir().unwrap();
    let [ops, public, admin, ussd, kannel, core] = [0; 6].map(|_| free_port());
    let gateway = spawn(
        dir.path(),
        "gateway",
        &["run"],
        &[
            ("MOTCUA_SMPP__LISTENER__BIND", "127.0.0.1:0".into()),
            ("MOTCUA_HTTP__BIND", local(ops).to_string()),
            ("MOTCUA_PUBLIC__ENABLED", "true".into()),
            ("MOTCUA_PUBLIC__BIND", local(public).to_string()),
            ("MOTCUA_ADMIN__ENABLED", "true".into()),
            ("MOTCUA_ADMIN__BIND", local(admin).to_string()),
            ("MOTCUA_USSD__HTTP__ENABLED", "true".into()),
            ("MOTCUA_USSD__HTTP__BIND", local(ussd).to_string()),
            ("MOTCUA_KANNEL__ENABLED", "true".into()),
            ("MOTCUA_KANNEL__BIND", local(kannel).to_string()),
        ],
    );
    let core_listen = local(core).to_string();
    let core_sim = spawn(
        dir.path(),
        "core-sim",
        &[
            "core-sim",
            "--listen",
            &core_listen,
            "--dossiers",
            "10",
            "--changes-per-sec",
            "0",
        ],
        &[],
    );
    let named = vec![
        ("operations", local(ops)),
        ("public", local(public)),
        ("admin", local(admin)),
        ("ussd callback", local(ussd)),
        ("kannel drop-in", local(kannel)),
        ("core-sim feed", local(core)),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for (name, addr) in &named {
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the {name} port did not open\n{}\n{}",
                gateway.logs(),
                core_sim.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ports {
        named,
        _gateway: gateway,
        _core: core_sim,
        _dir: dir,
    }
}

/// A connection to `to` from the loopback address `from` (127.0.0.0/8 is
/// all local on Linux, so each is a distinct client address).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// A connection that has begun a request and sends the rest of its headers
/// one byte every 500 ms; how long the server kept it open.
async fn slowloris(from: Ipv4Addr, to: SocketAddr, give_up: Duration) -> Duration {
    let started = Instant::now();
    let mut stream = connect_from(from, to).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: motcua\r\n")
        .await
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Closed (an answer such as 408 may come first; read on to the end).
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if stream.write_all(b"X").await.is_err() {
                    return started.elapsed();
                }
                if started.elapsed() > give_up {
                    return started.elapsed();
                }
            }
        }
    }
}

/// Connections that have begun a request and stay silent, from `from`.
async fn hold(from: Ipv4Addr, to: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = connect_from(from, to).await;
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    held
}

/// What the server did with a connection it may refuse: `Some(bytes read)`
/// when it closed it within `within`, `None` when it kept it open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `stream` begins a request and is closed within 3 s, with a 503 or nothing.
async fn assert_refused(name: &str, which: &str, mut stream: TcpStream) {
    let _ = stream.write_all(b"GET / HTTP/1.1\r\n").await;
    let answer = closed_within(&mut stream, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("the {name} port kept {which} open"));
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "the {name} port answered {which} with {answer:?}"
    );
}

/// A whole request from `from`: the response's status line.
async fn request(from: Ipv4Addr, to: SocketAddr) -> String {
    let mut stream = connect_from(from, to).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: motcua\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("answered within 10 s")
        .expect("readable");
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_sent_one_byte_at_a_time_is_cut_off_after_the_header_timeout_on_every_port() {
    let ports = start().await;
    let give_up = HEADER_READ_TIMEOUT + Duration::from_secs(6);
    let runs: Vec<_> = ports
        .named
        .iter()
        .map(|&(name, addr)| {
            tokio::spawn(async move {
                (
                    name,
                    slowloris(Ipv4Addr::new(127, 0, 0, 1), addr, give_up).await,
                )
            })
        })
        .collect();
    for run in runs {
        let (name, open) = run.await.unwrap();
        assert!(
            open < HEADER_READ_TIMEOUT + Duration::from_secs(3),
            "the {name} port kept a slow header open for {open:?} (header timeout {HEADER_READ_TIMEOUT:?})"
        );
        assert!(
            open >= HEADER_READ_TIMEOUT - Duration::from_secs(1),
            "the {name} port closed a slow header after {open:?}, before the header timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_address_cap_are_closed_while_another_address_is_served() {
    let ports = start().await;
    let attacker = Ipv4Addr::new(127, 0, 0, 1);
    let neighbour = Ipv4Addr::new(127, 0, 0, 2);
    for &(name, addr) in &ports.named {
        let held = hold(attacker, addr, MAX_CONNECTIONS_PER_IP).await;
        for extra in 0..4 {
            let past = format!(
                "connection {} from one address (past its cap of {MAX_CONNECTIONS_PER_IP})",
                MAX_CONNECTIONS_PER_IP + extra + 1
            );
            assert_refused(name, &past, connect_from(attacker, addr).await).await;
        }
        let status = request(neighbour, addr).await;
        assert!(
            status.starts_with("HTTP/1.1 ") && !status.contains(" 503 "),
            "the {name} port did not serve another address while one was at its cap: {status:?}"
        );
        drop(held);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_port_cap_are_closed() {
    let ports = start().await;
    let (name, addr) = ports.named[0];
    // The port's cap filled from several addresses, each under its own cap.
    let mut held = Vec::new();
    let mut host = 10;
    while held.len() < MAX_CONNECTIONS {
        let count = (MAX_CONNECTIONS - held.len()).min(MAX_CONNECTIONS_PER_IP / 2);
        held.extend(hold(Ipv4Addr::new(127, 0, 1, host), addr, count).await);
        host += 1;
    }
    for extra in 0..4u8 {
        let past = format!(
            "connection {} (past its cap of {MAX_CONNECTIONS})",
            MAX_CONNECTIONS + usize::from(extra) + 1
        );
        let stream = connect_from(Ipv4Addr::new(127, 0, 2, 1 + extra), addr).await;
        assert_refused(name, &past, stream).await;
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_request_is_closed_after_the_header_timeout() {
    let ports = start().await;
    let (name, addr) = ports.named[0];
    let from = Ipv4Addr::new(127, 0, 0, 3);
    let give_up = HEADER_READ_TIMEOUT + Duration::from_secs(3);
    // One that never sends anything.
    let silent = tokio::spawn(async move {
        let started = Instant::now();
        let mut stream = connect_from(from, addr).await;
        (closed_within(&mut stream, give_up).await, started.elapsed())
    });
    // One kept alive after a whole request and answer, then silent.
    let mut kept = connect_from(from, addr).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: motcua\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 17];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
    let idle_since = Instant::now();
    assert!(
        closed_within(&mut kept, give_up).await.is_some(),
        "the {name} port kept an idle kept-alive connection open for {:?}",
        idle_since.elapsed()
    );
    let (closed, after) = silent.await.unwrap();
    assert!(
        closed.is_some(),
        "the {name} port kept a connection that sent nothing open for {after:?}"
    );
}
