//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod rtsp_server;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the `finprint` binary with a time limit (logs at `warn`), so a hang fails the test
/// instead of blocking CI; returns its output whatever its exit status.
pub fn run_finprint(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_finprint"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn finprint");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "finprint {:?} did not finish within {:?} (hang). stderr:\n{}",
                args,
                limit,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
