//! SIGINT, SIGTERM and SIGHUP for every subcommand: nothing half-written is ever left.
//!
//! Outside a restoration a signal removes the temporary files in flight
//! ([`dgg_restore::files::remove_temporaries`]: an existing output stays as it was) and
//! exits at once with 128 + the signal's number (130, 143, 129), as a shell reports it.
//! During a restoration ([`Signals::cancellable`]) the first signal only asks the sampler
//! to stop at its next stage boundary; the command then returns and `main` exits with
//! that status. A second signal exits at once.
//!
//! The handler itself only writes the signal's number to a pipe (async-signal-safe); a
//! thread reads it and does the rest.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first signal received, 0 before.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Whether the running work stops by itself when asked ([`Signals::cancellable`]).
static CANCELLABLE: AtomicBool = AtomicBool::new(false);
/// Whether the command's one output is the next file written ([`Signals::one_output`]).
static ONE_OUTPUT: AtomicBool = AtomicBool::new(false);

/// The exit status for signal `signal`.
pub fn status(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

/// The signal received so far, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Acts on signal `signal` (on the watcher thread, not in the handler).
fn on_signal(signal: i32) {
    let first = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
    if first && CANCELLABLE.load(Ordering::SeqCst) {
        if finished() {
            // Too late: the result is in place and the command is ending by itself.
            return;
        }
        eprintln!("\nstopping at the next stage (signal {signal}; again to quit at once)");
        return;
    }
    let abandoned = dgg_restore::files::remove_temporaries();
    if ONE_OUTPUT.load(Ordering::SeqCst) && abandoned.removed == 0 && abandoned.committed > 0 {
        // The output was renamed into place just before: a success, reported as one.
        return;
    }
    std::process::exit(status(signal).into());
}

/// Whether a command with [`Signals::one_output`] has written it: it then ends successfully
/// even if a signal came after the file was in place.
pub fn finished() -> bool {
    ONE_OUTPUT.load(Ordering::SeqCst) && dgg_restore::files::committed() > 0
}

/// While alive, the first signal asks the work to stop instead of exiting.
pub struct Cancellable(());

impl Cancellable {
    /// Whether a signal asked the work to stop.
    pub fn stop_requested(&self) -> bool {
        received().is_some()
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        CANCELLABLE.store(false, Ordering::SeqCst);
    }
}

pub struct Signals;

impl Signals {
    /// Marks the work from here to the guard's drop as stopping by itself on a signal.
    pub fn cancellable() -> Cancellable {
        CANCELLABLE.store(true, Ordering::SeqCst);
        Cancellable(())
    }

    /// Declares that the command writes one file, its result: a signal that comes once it
    /// is in place no longer counts (the file is complete, the exit status 0).
    pub fn one_output() {
        ONE_OUTPUT.store(true, Ordering::SeqCst);
    }

    /// Installs the handlers (once, at start).
    pub fn install() -> Result<()> {
        imp::install().context("installing the signal handlers")
    }
}

#[cfg(unix)]
mod imp {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The write end of the pipe the handler writes to.
    static PIPE: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn handler(signal: libc::c_int) {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local.
        unsafe { libc::write(PIPE.load(Ordering::SeqCst), (&byte as *const u8).cast(), 1) };
    }

    pub fn install() -> std::io::Result<()> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        PIPE.store(fds[1], Ordering::SeqCst);
        // SAFETY: `fds[0]` is a fresh descriptor this File takes over.
        let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut byte = [0u8];
            while reader.read_exact(&mut byte).is_ok() {
                super::on_signal(i32::from(byte[0]));
            }
        })?;
        // Past a file-size limit (a quota, `ulimit -f`) a write then fails with EFBIG, which
        // is reported and cleaned up, instead of killing the process mid-write.
        // SAFETY: ignoring a signal installs no code.
        if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a plain handler that only calls write(2).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    /// Ctrl-C and the console's close and shutdown events, all reported as SIGINT.
    pub fn install() -> std::io::Result<()> {
        ctrlc::set_handler(|| super::on_signal(2)).map_err(std::io::Error::other)
    }
}
