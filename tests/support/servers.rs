//! Private PostgreSQL and Redis servers for tests that stop, kill or cut them: each test
//! gets its own instance on a free loopback port in a temporary directory, so tests running
//! in parallel (and the shared servers of `.ci/services.sh`) never see the outage. Stopped
//! on drop. Needs only the binaries: `initdb`/`pg_ctl` under `/usr/lib/postgresql/*/bin`
//! (or `KEYMINT_TEST_PGBIN`) and `redis-server` on `PATH`; a missing binary panics with a
//! message saying what to install.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound once and released; the server binds it right after).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("keymint-{tag}-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("KEYMINT_TEST_PGBIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL binaries: install them (`apt-get install postgresql`) or set \
             KEYMINT_TEST_PGBIN to the directory holding initdb and pg_ctl"
        ),
    }
}

/// Runs `program args` as the `postgres` user when we are root (initdb and postgres refuse
/// to run as root), else as ourselves.
fn run_pg(program: &Path, args: &[&str]) {
    let status = if is_root() {
        let mut line = shell_quote(program.to_str().unwrap());
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", &line])
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .status()
    }
    .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        status.success(),
        "{} {args:?} failed: {status}",
        program.display()
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A PostgreSQL server of the test's own, with a database `keymint_test`.
pub(crate) struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    running: bool,
}

impl PrivatePostgres {
    pub(crate) fn start() -> Self {
        let bin = pg_bin();
        let dir = scratch_dir("pg");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown the scratch directory");
            assert!(status.success());
        }
        let data = dir.join("data");
        run_pg(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        let mut server = Self {
            bin,
            dir,
            port: free_port(),
            running: false,
        };
        server.resume();
        run_pg(
            &server.bin.join("psql"),
            &[
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE keymint_test",
                "postgres",
            ],
        );
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/keymint_test", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected, open
    /// transactions rolled back) and waits until it is down.
    pub(crate) fn stop(&mut self) {
        let data = self.dir.join("data");
        run_pg(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
        self.running = false;
    }

    /// Starts the server again on the same port and data, and waits until it accepts
    /// connections.
    pub(crate) fn resume(&mut self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.to_str().unwrap()
        );
        let log = self.dir.join("server.log");
        run_pg(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
        self.running = true;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.join("data");
            let _ = Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c"])
                .arg(format!(
                    "{} -D {} -m immediate -w stop",
                    shell_quote(self.bin.join("pg_ctl").to_str().unwrap()),
                    shell_quote(data.to_str().unwrap())
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !is_root() {
                let _ = Command::new(self.bin.join("pg_ctl"))
                    .args([
                        "-D",
                        data.to_str().unwrap(),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server of the test's own (no persistence), a child process of the test.
pub(crate) struct PrivateRedis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub(crate) fn start() -> Self {
        let mut server = Self {
            dir: scratch_dir("redis"),
            port: free_port(),
            child: None,
        };
        server.resume();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers `PING`.
    pub(crate) fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start redis-server ({e}): install it (`apt-get install redis-server`)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url().as_str())
                && let Ok(mut conn) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
