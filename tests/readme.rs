//! The README states what the code really does: the option tables' defaults (every
//! default is documented where it is set and in the README, so users need not guess
//! heartbeat, timeout or reconnect limits), the commands that run the two test suites,
//! and that `cargo test` needs only cargo.

use std::time::Duration;

use getty::SessionConfig;

/// The README, whose statements these tests hold to the code.
fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The CI script, whose commands must match the ones the README shows.
fn ci_script() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).expect(".ci/run")
}

/// Asserts that the README has a line starting with each of `rows` (an options table's
/// row up to its default, so the description after it may change freely).
fn assert_readme_has_rows(rows: &[String]) {
    let text = readme();
    for row in rows {
        assert!(
            text.lines().any(|line| line.starts_with(row.as_str())),
            "README lacks the row starting {row:?}"
        );
    }
}

/// A duration as the README writes whole seconds: `30 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

#[test]
fn session_defaults_in_the_readme_match_the_code() {
    let c = SessionConfig::default();
    let rows = [
        format!("| `max_frame_length` | {} bytes |", c.max_frame_length),
        format!(
            "| `read_timeout` | {} |",
            c.read_timeout.map_or("none".to_owned(), secs)
        ),
        format!(
            "| `write_timeout` | {} |",
            c.write_timeout.map_or("none".to_owned(), secs)
        ),
        format!("| `cron_period` | {} |", secs(c.cron_period)),
        format!("| `wait_time` | {} |", secs(c.wait_time)),
        format!("| `read_queue` | {} batches |", c.read_queue),
        format!("| `handoff_queue` | {} frames |", c.handoff_queue),
        format!("| `write_high_water` | {} bytes |", c.write_high_water),
        format!("| `write_low_water` | {} bytes |", c.write_low_water),
    ];
    assert_readme_has_rows(&rows);
}

#[test]
fn readme_shows_the_two_setup_commands() {
    let text = readme();
    assert!(text.contains("cargo run --release --example echo "));
    assert!(text.contains("\ncargo test "));
    let ci = ci_script();
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test"),
        "CI runs the README's test command"
    );
}

#[test]
fn client_defaults_in_the_readme_match_the_code() {
    let ms = |d: Duration| {
        if d.as_millis() % 1000 == 0 {
            format!("{} s", d.as_secs())
        } else {
            format!("{} ms", d.as_millis())
        }
    };
    let rows = [
        format!(
            "| `reconnect_interval` | {} |",
            ms(getty::defaults::DEFAULT_RECONNECT_INTERVAL)
        ),
        format!(
            "| `max_reconnect_interval` | {} |",
            ms(getty::defaults::DEFAULT_MAX_RECONNECT_INTERVAL)
        ),
        format!(
            "| `connect_timeout` | {} |",
            ms(getty::defaults::DEFAULT_CONNECT_TIMEOUT)
        ),
        format!(
            "| `handshake_timeout` | {} |",
            ms(getty::defaults::DEFAULT_HANDSHAKE_TIMEOUT)
        ),
        format!(
            "| `memory_budget` | {} MiB |",
            getty::defaults::DEFAULT_MEMORY_BUDGET >> 20
        ),
    ];
    assert_readme_has_rows(&rows);
}

#[test]
fn readme_and_ci_run_the_interop_suite_after_the_default_one() {
    let command = "cargo test --test interop -- --ignored";
    assert!(
        readme().contains(&format!("\n{command}")),
        "README shows {command:?}"
    );
    let ci = ci_script();
    let lines: Vec<&str> = ci.lines().map(str::trim).collect();
    let default = lines.iter().position(|l| *l == "cargo test");
    let interop = lines.iter().position(|l| *l == command);
    assert!(
        matches!((default, interop), (Some(d), Some(i)) if d < i),
        ".ci/run runs `cargo test`, then `{command}`"
    );
}

/// The default suite passes on a machine with only the Rust toolchain: outside
/// `tests/interop.rs` (and its modules in `tests/interop/`), a test may start only
/// `kill`, `sh`, cargo and the crate's examples, and every test of the interop suite is
/// ignored with what it needs.
#[test]
fn only_the_ignored_interop_suite_runs_programs_from_outside_cargo() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let mut files = Vec::new();
    for sub in ["", "/common", "/interop"] {
        for entry in std::fs::read_dir(format!("{dir}{sub}")).expect("tests dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "found the test files: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        // tests/interop.rs and its modules in tests/interop/.
        let interop = path.ends_with("interop.rs")
            || path.parent().is_some_and(|p| p.ends_with("tests/interop"));
        if interop {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                let test_attr = line.ends_with("test]") || line.contains("::test(");
                if line.starts_with("#[") && test_attr {
                    assert!(
                        lines[i + 1].starts_with("#[ignore = \"interop: needs "),
                        "interop.rs line {}: a test without #[ignore = \"interop: needs ...\"]",
                        i + 1
                    );
                }
            }
            continue;
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("Command::new(\"") {
            rest = &rest[at + "Command::new(\"".len()..];
            let program = &rest[..rest.find('"').expect("closing quote")];
            assert!(
                ["kill", "sh"].contains(&program),
                "{} starts `{program}`, which a fresh machine may lack: \
                 move that test to tests/interop.rs",
                path.display()
            );
        }
    }
}
