//! Progress of a restoration and of a model download: a bar on a terminal, plain log lines
//! when stderr is a file or a pipe; a signal stops a restoration ([`crate::signals`]).

use dgg_restore::engine::Progress;
use dgg_restore::model::hub::DownloadProgress;
use dgg_restore::restore::guidance::Stage;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::ops::ControlFlow;

use crate::signals::Cancellable;

const TICKS: u64 = 1000;

pub enum Reporter {
    Bar(ProgressBar),
    Lines { next: f64, started: std::time::Instant },
}

fn describe(p: &Progress) -> String {
    let loss = p.step.loss.map(|l| format!(" · loss {l:.4}")).unwrap_or_default();
    let retry = if p.step.attempt > 0 { format!(" · restart {}", p.step.attempt) } else { String::new() };
    let first = (p.window + 1).min(p.windows);
    let windows = match p.batch {
        0 | 1 => format!("window {first}/{}", p.windows),
        n => format!("windows {first}–{}/{}", (p.window + n).min(p.windows), p.windows),
    };
    format!("{windows} · step {}/{}{loss}{retry}", p.step.step, p.step.total)
}

impl Reporter {
    pub fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(TICKS);
            bar.set_style(ProgressStyle::with_template("{bar:30} {percent:>3}% {msg} · ETA {eta}").expect("a valid template").progress_chars("█▉ "));
            Reporter::Bar(bar)
        } else {
            Reporter::Lines { next: 0.0, started: std::time::Instant::now() }
        }
    }

    pub fn update(&mut self, p: &Progress) {
        let fraction = p.fraction();
        match self {
            Reporter::Bar(bar) => {
                bar.set_position((fraction * TICKS as f64) as u64);
                bar.set_message(describe(p));
            }
            Reporter::Lines { next, started } => {
                if fraction >= *next {
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = if fraction > 0.0 { elapsed * (1.0 - fraction) / fraction } else { f64::NAN };
                    eprintln!("{:3.0}% {} · ETA {eta:.0} s", fraction * 100.0, describe(p));
                    // Every 5 %, and 100 % once.
                    *next = if fraction >= 1.0 { f64::INFINITY } else { (fraction + 0.05).min(1.0) };
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }

    /// Shows `p` when a step is done, and says whether to go on (asked after every stage of
    /// a step, so a signal does not wait for a whole step).
    pub fn observe(&mut self, p: &Progress, work: &Cancellable) -> ControlFlow<()> {
        if p.step.stage == Stage::Step {
            self.update(p);
        }
        if work.stop_requested() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// One file of a model download: a byte bar on a terminal, else a line per file (and per
/// quarter of a large one).
pub enum DownloadReporter {
    Bar(ProgressBar),
    Lines { file: String, size: usize, done: usize, next: usize },
}

impl DownloadReporter {
    pub fn new() -> Self {
        if std::io::stderr().is_terminal() {
            DownloadReporter::Bar(ProgressBar::new(0))
        } else {
            DownloadReporter::Lines { file: String::new(), size: 0, done: 0, next: 0 }
        }
    }
}

impl DownloadProgress for DownloadReporter {
    fn init(&mut self, size: usize, filename: &str) {
        match self {
            DownloadReporter::Bar(bar) => {
                bar.set_length(size as u64);
                bar.set_style(
                    ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} · ETA {eta} · {msg}")
                        .expect("a valid template")
                        .progress_chars("█▉ "),
                );
                bar.set_message(filename.to_string());
            }
            // hf-hub announces a file again when it starts its transfer: say it once.
            DownloadReporter::Lines { file, .. } if file == filename => {}
            DownloadReporter::Lines { file, size: total, done, next } => {
                eprintln!("downloading {filename} ({:.1} MB)", size as f64 / 1e6);
                // Quarter lines only where a file takes a while.
                let first = if size >= 10_000_000 { size / 4 } else { usize::MAX };
                (*file, *total, *done, *next) = (filename.to_string(), size, 0, first);
            }
        }
    }

    fn update(&mut self, bytes: usize) {
        match self {
            DownloadReporter::Bar(bar) => bar.inc(bytes as u64),
            DownloadReporter::Lines { file, size, done, next } => {
                *done += bytes;
                if *done >= *next && *done < *size {
                    eprintln!("  {file}: {:.0} %", 100.0 * *done as f64 / *size as f64);
                    *next += (*size / 4).max(1);
                }
            }
        }
    }

    fn finish(&mut self) {
        match self {
            DownloadReporter::Bar(bar) => bar.finish_and_clear(),
            DownloadReporter::Lines { file, .. } => eprintln!("  {file}: done"),
        }
    }
}
