//! A PostgreSQL server of a test's own, for what must not touch the shared
//! one (`TEST_DATABASE_URL`): restarting the server under load, for one.
//! Made with the machine's `initdb` and `pg_ctl` (found beside the server
//! that `TEST_DATABASE_URL` names: `/usr/lib/postgresql/<version>/bin`) in
//! a temporary folder, listening on 127.0.0.1 on a free port with trust
//! authentication, run as the `postgres` user when the test runs as root
//! (PostgreSQL refuses root). Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running private server.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `pg_ctl`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql holds the server's binaries")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server's binaries under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as `postgres` when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    /// Creates and starts a server.
    pub fn start() -> PrivatePostgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("a temporary folder");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(dir.path());
                    c
                },
                "chown of the server's folder",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = as_server_user(&bin.join("initdb"));
        initdb
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data);
        run(initdb, "initdb");
        let server = PrivatePostgres {
            bin,
            port: crate::process::free_port(),
            dir,
        };
        server.pg_ctl("start");
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, action: &str) {
        self.pg_ctl_mode(action, "fast");
    }

    fn pg_ctl_mode(&self, action: &str, mode: &str) {
        let mut command = as_server_user(&self.bin.join("pg_ctl"));
        command
            .arg(action)
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", mode]);
        if action != "stop" {
            command
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
                    self.port,
                    self.dir.path().display()
                ));
        }
        run(command, &format!("pg_ctl {action}"));
    }

    /// The maintenance URL (database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`.
    pub fn create_database(&self, name: &str) {
        let mut command = as_server_user(&self.bin.join("createdb"));
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]);
        run(command, "createdb");
    }

    /// Stops the server (fast: connections are cut).
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Stops the server as a crash would (`immediate`: no checkpoint; what
    /// was committed comes back from the WAL at the next start).
    pub fn crash(&self) {
        self.pg_ctl_mode("stop", "immediate");
    }

    /// Starts it again after [`PrivatePostgres::stop`] or [`PrivatePostgres::crash`].
    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut command = as_server_user(&self.bin.join("pg_ctl"));
        command
            .arg("stop")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate"]);
        let _ = command.output();
    }
}
