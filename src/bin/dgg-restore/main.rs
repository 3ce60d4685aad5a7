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
mod task;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dgg-restore", version, about = "Zero-shot music restoration with Diffusion Geodesic Guidance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Restore(restore::RestoreArgs),
    Degrade(degrade::DegradeArgs),
    /// Speed and memory figures (not a test): `bench model`.
    Bench(bench::BenchArgs),
    Lsd(lsd::LsdArgs),
    Eval(eval::EvalArgs),
    Experiment(experiment::ExperimentArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Restore(args) => restore::run(args),
        Command::Degrade(args) => degrade::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Lsd(args) => lsd::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Experiment(args) => experiment::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
