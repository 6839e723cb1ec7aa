//! The README's option tables state the defaults the code really has (LESSONS.md #8).

use std::time::Duration;

use getty::SessionConfig;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

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
    let text = readme();
    for row in rows {
        assert!(
            text.lines().any(|line| line.starts_with(&row)),
            "README lacks the row starting {row:?}"
        );
    }
}

#[test]
fn readme_shows_the_two_setup_commands() {
    let text = readme();
    assert!(text.contains("cargo run --release --example echo "));
    assert!(text.contains("\ncargo test "));
    let ci =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).expect(".ci/run");
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
            ms(getty::DEFAULT_RECONNECT_INTERVAL)
        ),
        format!(
            "| `max_reconnect_interval` | {} |",
            ms(getty::DEFAULT_MAX_RECONNECT_INTERVAL)
        ),
        format!(
            "| `connect_timeout` | {} |",
            ms(getty::DEFAULT_CONNECT_TIMEOUT)
        ),
        format!(
            "| `handshake_timeout` | {} |",
            ms(getty::tls::DEFAULT_HANDSHAKE_TIMEOUT)
        ),
        format!(
            "| `memory_budget` | {} MiB |",
            getty::DEFAULT_MEMORY_BUDGET >> 20
        ),
    ];
    let text = readme();
    for row in rows {
        assert!(
            text.lines().any(|line| line.starts_with(&row)),
            "README lacks the row starting {row:?}"
        );
    }
}
