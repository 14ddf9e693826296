//! `bitcask`: the command-line tool. Talks to a `bitcask-server` through
//! `bitcask-client`, or with `--data-dir` opens a store directly for
//! offline work (check, repair, merge, export, import).
//!
//! Modules: `cli` (the clap definitions), `commands` (each command),
//! `store` (what the key-value commands need, implemented by `remote` and
//! `local`), `transfer` (export/import format), `config` (settings file and
//! precedence), `output` (stdout/stderr, JSON, progress), `failure` (exit
//! codes).

mod cli;
mod commands;
mod config;
mod failure;
mod local;
mod output;
mod remote;
mod store;
mod transfer;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.code)
        }
    }
}
