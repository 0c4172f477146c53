//! node-smpp (npm `smpp` 0.5.1) scripts as child processes, for the
//! interoperability tests: `tests/peers/node/esme.js` (an ESME bound to the
//! listener) and `smsc.js` (an SMSC the gateway binds to). Commands go to a
//! script's stdin and events come back as JSON lines on its stdout. The
//! tests run when `TEST_NODE_SMPP_DIR` names the directory whose
//! `node_modules` holds smpp 0.5.1, with `node` on PATH.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub const ENV: &str = "TEST_NODE_SMPP_DIR";
/// Generous: the machine is shared; nothing here measures speed.
pub const WAIT: Duration = Duration::from_secs(30);
/// The version `tests/peers/node/package.json` pins.
pub const SMPP_VERSION: &str = "0.5.1";
/// Events that mean a peer saw something it could not handle.
pub const TROUBLE: &[&str] = &[
    "error",
    "generic_nack",
    "unknown_pdu",
    "bad_command",
    "command_failed",
    "not_bound",
];

/// The directory whose `node_modules` holds npm smpp [`SMPP_VERSION`]
/// (`npm ci` in tests/peers/node), from `TEST_NODE_SMPP_DIR`; tests calling
/// this are ignored when it is unset at build time.
pub fn node_dir() -> PathBuf {
    PathBuf::from(super::service(ENV))
}

/// A Node peer script as a child process: commands go to its stdin, its
/// stdout JSON lines are events. Killed when dropped.
pub struct NodePeer {
    name: &'static str,
    _child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Events received but not yet asked for.
    queued: VecDeque<Value>,
    /// Every event received, for failure messages and final checks.
    pub history: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

impl NodePeer {
    pub async fn start(dir: &Path, script: &'static str, args: &[String]) -> Self {
        let path = super::repo_root().join("tests/peers/node").join(script);
        let mut child = Command::new("node")
            .arg(&path)
            .args(args)
            .env(ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start node {}: {e} (is node on PATH?)",
                    path.display()
                )
            });
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr_pipe = child.stderr.take().expect("stderr piped");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "stdout", "line": line}));
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr_pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        NodePeer {
            name: script,
            _child: child,
            stdin,
            events,
            queued: VecDeque::new(),
            history: Vec::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    pub async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{} stdin: {e}\n{}", self.name, self.report()));
        self.stdin.flush().await.unwrap();
    }

    /// The next `event` event.
    pub async fn expect(&mut self, event: &str) -> Value {
        self.expect_where(event, |_| true).await
    }

    /// The first `event` event that `matches`; others stay queued for later.
    pub async fn expect_where(&mut self, event: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let wanted = |e: &Value| e["event"] == event && matches(e);
        if let Some(i) = self.queued.iter().position(wanted) {
            return self.queued.remove(i).expect("index in range");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    self.history.push(e.clone());
                    if wanted(&e) {
                        return e;
                    }
                    self.queued.push_back(e);
                }
                Ok(None) => {
                    // The script ended: let its last words reach the report.
                    if let Some(reader) = self.stderr_reader.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
                    }
                    panic!(
                        "{} ended before the expected {event} event\n{}",
                        self.name,
                        self.report()
                    )
                }
                Err(_) => panic!(
                    "no expected {event} event from {} within {WAIT:?}\n{}",
                    self.name,
                    self.report()
                ),
            }
        }
    }

    /// The next event (also kept in the history), or `None` when nothing
    /// comes within `wait` or the script has ended.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Value> {
        if let Some(e) = self.queued.pop_front() {
            return Some(e);
        }
        let e = tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()??;
        self.history.push(e.clone());
        Some(e)
    }

    /// Takes in what has arrived so far and checks that the peer never
    /// reported trouble (a PDU it could not parse, a generic_nack, ...).
    pub fn assert_no_trouble(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.history.push(e);
        }
        let trouble: Vec<&Value> = self
            .history
            .iter()
            .filter(|e| TROUBLE.iter().any(|t| e["event"] == *t) || e["event"] == "stdout")
            .collect();
        assert!(
            trouble.is_empty(),
            "{} reported trouble: {trouble:?}\n{}",
            self.name,
            self.report()
        );
    }

    /// Parts of messages the gateway sent to `citizen` so far.
    pub fn parts_sent_to(&self, citizen: &str) -> usize {
        self.history
            .iter()
            .filter(|e| e["event"] == "part" && e["destination_addr"] == citizen)
            .count()
    }

    pub fn report(&self) -> String {
        let events: Vec<String> = self.history.iter().map(Value::to_string).collect();
        format!(
            "events from {}:\n  {}\nstderr:\n{}",
            self.name,
            events.join("\n  "),
            self.stderr.lock().unwrap()
        )
    }
}

/// The ESME script connected to `listener`.
pub async fn node_esme(dir: &Path, listener: std::net::SocketAddr) -> NodePeer {
    let mut peer = NodePeer::start(
        dir,
        "esme.js",
        &[listener.ip().to_string(), listener.port().to_string()],
    )
    .await;
    let connected = peer.expect("connected").await;
    assert_eq!(
        connected["smpp_version"], SMPP_VERSION,
        "{ENV} holds the pinned smpp"
    );
    peer
}

/// Waits for the gateway's (next) bind and checks it.
pub async fn expect_bind(smsc: &mut NodePeer) -> Value {
    let bound = smsc.expect("bound").await;
    assert_eq!(bound["system_id"], "motcua", "{bound}");
    assert_eq!(bound["interface_version"], 0x34, "{bound}");
    bound
}
