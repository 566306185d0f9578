//! The systemd unit: `systemd-analyze verify` accepts it (with ExecStart pointed at the built
//! binary), and it has the settings the service relies on.

use std::process::Command;

const UNIT: &str = include_str!("../systemd/finprint.service");

#[test]
fn unit_has_the_settings_the_daemon_relies_on() {
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=finprint",
        "LogsDirectory=finprint",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "DeviceAllow=char-video4linux rw",
        "ExecStart=/usr/local/bin/finprint run --config /etc/finprint/finprint.toml",
    ] {
        assert!(
            UNIT.lines().any(|l| l.starts_with(line)),
            "unit lacks `{line}`"
        );
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    // scripts/setup.sh installs systemd (and with it systemd-analyze).
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .expect("systemd-analyze not found: run scripts/setup.sh (Debian package systemd)");
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("finprint.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/local/bin/finprint", env!("CARGO_BIN_EXE_finprint")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify also prints warnings without failing: none are expected for our unit.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("finprint.service"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze warnings:\n{}",
        ours.join("\n")
    );
}
