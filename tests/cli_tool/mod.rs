//! The `dgg-restore` binary, for the command-line tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;

/// The tool with no model configured and the hub switched off (`tests/cli_hub.rs` tests
/// the download against a local stand-in).
pub fn dgg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dgg-restore"));
    c.env_remove("DGG_MODEL_DIR").env("HF_HUB_OFFLINE", "1");
    c
}

/// Runs `command`, failing the test with its error output unless it succeeds; returns
/// that output (progress and notices).
pub fn run(command: &mut Command) -> String {
    let o = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    stderr
}
