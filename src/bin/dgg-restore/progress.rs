//! Progress of a restoration: a bar with step, loss and ETA on a terminal, plain log lines
//! (every 5 %) when stderr is a file or a pipe; and Ctrl-C, which stops it.

use anyhow::{Context, Result};
use dgg_restore::engine::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const TICKS: u64 = 1000;

pub enum Reporter {
    Bar(ProgressBar),
    Lines { next: f64, started: std::time::Instant },
}

fn describe(p: &Progress) -> String {
    let loss = p.step.loss.map(|l| format!(" · loss {l:.4}")).unwrap_or_default();
    let retry = if p.step.attempt > 0 { format!(" · restart {}", p.step.attempt) } else { String::new() };
    format!("window {}/{} · step {}/{}{loss}{retry}", p.window + 1, p.windows, p.step.step, p.step.total)
}

impl Reporter {
    pub fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(TICKS);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {percent:>3}% {msg} · ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("█▉ "),
            );
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
                    *next = (fraction + 0.05).min(1.0);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// A flag Ctrl-C raises; the observers below turn it into a cancelled restoration.
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the process's Ctrl-C handler (once per process).
    pub fn install() -> Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let raised = flag.clone();
        ctrlc::set_handler(move || raised.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
        Ok(Self(flag))
    }

    /// Shows `p` on `reporter` and says whether to go on.
    pub fn observe(&self, reporter: &mut Reporter, p: &Progress) -> ControlFlow<()> {
        reporter.update(p);
        if self.0.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}
