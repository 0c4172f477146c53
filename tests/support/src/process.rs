//! The gateway binary as a child process: the one harness for every test
//! that runs the real binary. A directory of its own holds the read model,
//! the journal, `config.toml` (written at each start when given) and a log
//! file per start (`gateway-<n>.log`); the environment starts from the test
//! defaults ([`binary`]) and adds what the test sets. SIGKILL, SIGTERM,
//! restart; waits on the log and on a port.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary run in `dir`, its read model and journal there, `RUST_LOG` unset.
pub fn binary(dir: &Path) -> Command {
    let mut command = Command::new(super::bin());
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env(
            "MOTCUA_DATABASE__URL",
            format!("sqlite://{}/read.db", dir.display()),
        )
        .env(
            "MOTCUA_JOURNAL__URL",
            format!("sqlite://{}/journal.db", dir.display()),
        );
    command
}

/// A port free now (bound to 0 and released), for the binary to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary as a restartable child process. Dropped: SIGKILL.
pub struct Process {
    dir: PathBuf,
    name: String,
    config: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<OsString>,
    child: Option<Child>,
    starts: usize,
}

impl Process {
    /// `motcua-sms run` in `dir`, not started.
    pub fn new(dir: &Path) -> Self {
        Process {
            dir: dir.to_owned(),
            name: "gateway".to_owned(),
            config: None,
            env: Vec::new(),
            args: vec!["run".into()],
            child: None,
            starts: 0,
        }
    }

    /// The same with `--import` of the sample dossiers.
    pub fn importing_the_sample(dir: &Path) -> Self {
        let mut process = Self::new(dir);
        process.args.push("--import".into());
        process.args.push(super::sample_file().into());
        process
    }

    /// Another process of the binary beside the gateway in the same
    /// directory (`core-sim`, say): its logs are `<name>-<n>.log`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The command line after the binary's name, for the next starts.
    pub fn set_args<S: Into<OsString>>(&mut self, args: impl IntoIterator<Item = S>) {
        self.args = args.into_iter().map(Into::into).collect();
    }

    /// Where it keeps its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `config.toml` in its directory, written at each start.
    pub fn set_config(&mut self, toml: impl Into<String>) {
        self.config = Some(toml.into());
    }

    /// An environment variable for the next starts (set again: replaced).
    pub fn set_env(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.env.push((key.to_owned(), value)),
        }
    }

    /// Starts it; its stderr goes to `gateway-<n>.log`.
    pub fn start(&mut self) {
        if let Some(config) = &self.config {
            std::fs::write(self.dir.join("config.toml"), config).unwrap();
        }
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).unwrap();
        let child = binary(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gateway starts");
        self.child = Some(child);
    }

    /// The running child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process is frozen where it stands (its sockets stay
    /// open, its timers do not run) until [`Process::thaw`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Process::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the process runs");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {} failed", child.id());
    }

    /// SIGTERM, and wait for the drain.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn log_path(&self, start: usize) -> PathBuf {
        self.dir.join(format!("{}-{start}.log", self.name))
    }

    /// Every start's log, in order.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| std::fs::read_to_string(self.log_path(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----- restart -----\n")
    }

    /// Waits until the logs contain `needle`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log within {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (blocking) until `port` on 127.0.0.1 accepts connections.
    pub fn wait_for_port(&self, port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nothing listens on port {port} after {within:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
