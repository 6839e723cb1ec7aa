//! Child processes for the tests that run programs: the crate's example binaries (built on
//! demand, so one test target can run alone) and, in `tests/interop.rs`, outside peers.
//! Every wait here has a time limit, and every child is killed when its guard drops.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The examples this test process has already had cargo build (or found up to date).
static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The path of example binary `name`, built first by this test's cargo
/// (`cargo build --example NAME`, same profile) the first time a test asks for it. A full
/// `cargo test` has built every example already, and then that build is a no-op; a run of
/// one test target (`cargo test --test interop`) builds only the test, and this builds
/// (or refreshes) the examples it needs.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target profile dir above deps/");
    let path = profile_dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashSet::new);
    if !built.contains(name) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // Not the variables cargo (or nextest) sets for this test process: a build script
        // that watches one (ring's watches CARGO_MANIFEST_DIR) would see it change, and
        // this build, then the next `cargo test`, would rebuild half the tree (~40 s here).
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            let set_for_tests = [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&key)
                || key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_EXE_")
                || key.starts_with("NEXTEST");
            if set_for_tests {
                cargo.env_remove(key);
            }
        }
        // target/release holds `cargo test --release` builds; anything else is the dev
        // profile's target/debug (or a custom profile's own directory).
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(other) => {
                cargo.args(["--profile", other]);
            }
        }
        let out = output_within(&mut cargo, Duration::from_secs(600));
        assert!(
            out.status.success(),
            "cargo build --example {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        built.insert(name.to_owned());
    }
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// A child process, killed (and reaped) when dropped.
pub struct ChildGuard {
    child: std::process::Child,
    /// Ask it to stop with SIGTERM first (and wait up to 5 s), before SIGKILL.
    terminate_first: bool,
}

impl ChildGuard {
    /// Killed with SIGKILL when dropped.
    pub fn new(child: std::process::Child) -> ChildGuard {
        ChildGuard {
            child,
            terminate_first: false,
        }
    }

    /// Sent SIGTERM when dropped, then SIGKILL if it still runs 5 s later: for programs
    /// that clean up their own children (a browser).
    pub fn terminate_on_drop(child: std::process::Child) -> ChildGuard {
        ChildGuard {
            child,
            terminate_first: true,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, to take its pipes or kill it by hand.
    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    /// Sends `sig` (`-TERM`, `-INT`, ...) with the POSIX `kill` command.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {}: {status:?}", self.id());
    }

    /// Waits at most `limit` for the child to exit; kills it and panics if it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_exit(&mut self.child, limit)
    }

    /// Sends `sig` and asserts that the child exits with status 0 within 20 s.
    pub fn signal_and_expect_clean_exit(&mut self, sig: &str) {
        self.signal(sig);
        let status = self.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "exit status after {sig}: {status:?}");
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if self.terminate_first {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits at most `limit` for `child` to exit; kills it and panics if it does not.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("process {} did not exit within {limit:?}", child.id());
}

/// Runs `command` to its end like `Command::output`, but for at most `limit`: past it the
/// process is killed and the test fails.
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the process exits (unless it left children holding them: the
    // threads are then abandoned, not waited on forever).
    let join = |h: std::thread::JoinHandle<Vec<u8>>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    }
}

/// The stdout of a program that ran to its end, after asserting that it exited with
/// status 0; a failure names `what` and shows both of its outputs.
pub fn stdout_of_success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}): {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Reads the first line of a child's stdout, waiting at most `limit`.
pub fn first_line(stdout: std::process::ChildStdout, limit: Duration) -> String {
    first_lines(stdout, 1, limit).remove(0)
}

/// Reads the first `n` lines of a child's stdout, waiting at most `limit` for them all.
pub fn first_lines(stdout: std::process::ChildStdout, n: usize, limit: Duration) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut lines = Vec::new();
        for _ in 0..n {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            lines.push(line);
        }
        let _ = tx.send(lines);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("not {n} lines on stdout within {limit:?}"))
}

/// Starts example `name` with `args` and returns it with the address it prints as its
/// first line, `listening on <addr>` (30 s at most).
pub fn start_example(name: &str, args: &[&str]) -> (ChildGuard, String) {
    let (guard, addr, _) = start_example_lines(name, args, 0);
    (guard, addr)
}

/// [`start_example`], also returning the `more` lines the example prints after its
/// `listening on` line.
pub fn start_example_lines(
    name: &str,
    args: &[&str],
    more: usize,
) -> (ChildGuard, String, Vec<String>) {
    let mut child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard::new(child);
    let mut lines = first_lines(stdout, 1 + more, Duration::from_secs(30));
    let line = lines.remove(0);
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name} prints `listening on <addr>`, got {line:?}"))
        .to_owned();
    (
        guard,
        addr,
        lines.into_iter().map(|l| l.trim().to_owned()).collect(),
    )
}

/// Starts example `name` on a free loopback port (unless `extra` gives its own `--addr`:
/// a later `--addr` wins) and returns it with the address it listens on.
pub fn start_listening_example(name: &str, extra: &[&str]) -> (ChildGuard, String) {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    start_example(name, &args)
}

/// A directory for one test's files, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory `getty-<tag>-<pid>` in the temp dir (emptied if it exists).
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("getty-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    /// The path of file `name` in the directory.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// Writes `contents` to file `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Test certificates from the `tls_cert` example, written into a new temp dir: a CA
/// (`ca.pem`) and a server certificate for localhost and 127.0.0.1 (`cert.pem`, `key.pem`).
pub fn tls_cert_files(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let made = output_within(
        Command::new(example("tls_cert")).arg("--dir").arg(&dir.0),
        Duration::from_secs(60),
    );
    assert!(made.status.success(), "tls_cert: {made:?}");
    dir
}
