//! `dgg-restore`: the offline side of DGG Restore.

mod bench;
mod degrade;
mod eval;
mod experiment;
mod kernel_bench;
mod lsd;
mod prior;
mod progress;
mod restore;
mod signals;
mod task;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dgg-restore", version, about = "Zero-shot music restoration with Diffusion Geodesic Guidance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Negative numbers are values, so that `--noise-std -1` gets the range check's message.
#[derive(Subcommand)]
enum Command {
    #[command(allow_negative_numbers = true)]
    Restore(restore::RestoreArgs),
    #[command(allow_negative_numbers = true)]
    Degrade(degrade::DegradeArgs),
    /// Speed and memory figures (not a test): `bench model`.
    Bench(bench::BenchArgs),
    Lsd(lsd::LsdArgs),
    Eval(eval::EvalArgs),
    #[command(allow_negative_numbers = true)]
    Experiment(experiment::ExperimentArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = signals::Signals::install() {
        eprintln!("error: {}", describe(&err));
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Restore(args) => restore::run(args),
        Command::Degrade(args) => degrade::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Lsd(args) => lsd::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Experiment(args) => experiment::run(args),
    };
    if let Err(err) = &result {
        eprintln!("error: {}", describe(err));
    }
    match (result, signals::received()) {
        // The result was in place before the signal came.
        (Ok(()), Some(_)) if signals::finished() => ExitCode::SUCCESS,
        // Stopped by a signal: the shell's status for it (130 for SIGINT, 143 for SIGTERM).
        (_, Some(signal)) => ExitCode::from(signals::status(signal)),
        (Ok(()), None) => ExitCode::SUCCESS,
        (Err(_), None) => ExitCode::FAILURE,
    }
}

/// The error and its causes, as `{:#}` prints them, but a cause whose text the message
/// before it already holds (errors that quote their source) is not repeated.
fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1).map(ToString::to_string) {
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
