//! The instance's housekeeping thread: it does what the audio thread asks for but must not
//! do itself — filing a finished take, starting and cancelling restorations, and freeing
//! what the deck let go of — and takes in what the restorer's worker reports, so a
//! finished restoration is filed with the editor closed.
//!
//! The audio thread raises flags ([`Requests`]), which never allocates, locks or waits; the
//! thread looks at them every few milliseconds. It is the instance's own thread rather than
//! nice-plug's background tasks: nice-plug shares one task thread between all instances and
//! ends it for all of them when a task arrives after the instance that posted it is gone
//! (a take that ends just before the plugin is removed would do it).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::params::DggParams;
use super::restorer::Restorer;

/// How often the thread looks at the flags.
const TICK: Duration = Duration::from_millis(5);

/// What the audio thread asks for.
#[derive(Default)]
pub struct Requests {
    collect: AtomicBool,
    /// The last edge of the Restore switch not yet acted on: [`RESTORE`] or [`CANCEL`].
    switch: AtomicU8,
}

const NOTHING: u8 = 0;
const RESTORE: u8 = 1;
const CANCEL: u8 = 2;

impl Requests {
    /// A take ended: file it and lend the recorder a new buffer.
    pub fn collect_take(&self) {
        self.collect.store(true, Ordering::Release);
    }

    /// The Restore switch went on: restore with the current settings. (Pending until the
    /// job is under way, so an offline bounce can wait from this block on.)
    pub fn restore(&self) {
        self.switch.store(RESTORE, Ordering::Release);
    }

    /// The Restore switch went off: cancel the restoration under way.
    pub fn cancel(&self) {
        self.switch.store(CANCEL, Ordering::Release);
    }
}

pub struct Housekeeper {
    requests: Arc<Requests>,
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeper {
    /// Starts the thread that serves `params`' clips and `restorer`. (Should the thread not
    /// start, takes are still filed when the plugin is next activated or deactivated.)
    pub fn spawn(params: Arc<DggParams>, restorer: Arc<Restorer>) -> Self {
        let (requests, closing) = (Arc::new(Requests::default()), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (requests, closing) = (requests.clone(), closing.clone());
            std::thread::Builder::new().name("dgg-restore housekeeping".into()).spawn(move || {
                while !closing.load(Ordering::Acquire) {
                    serve(&requests, &params, &restorer);
                    std::thread::park_timeout(TICK);
                }
            })
        };
        Self { requests, closing, thread: thread.ok() }
    }

    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// Whether a Restore asked for has not been acted on yet (never, without the thread).
    pub fn restore_pending(&self) -> bool {
        self.thread.is_some() && self.requests.switch.load(Ordering::Acquire) == RESTORE
    }
}

/// Acts on the flags raised since the last call.
fn serve(requests: &Requests, params: &DggParams, restorer: &Restorer) {
    if requests.collect.swap(false, Ordering::AcqRel) {
        params.clips.collect();
    }
    params.clips.free_retired();
    // Cleared only once acted on, so a pending Restore and the restorer's `restoring` flag
    // overlap; an edge that came meanwhile stays for the next call.
    let switch = requests.switch.load(Ordering::Acquire);
    match switch {
        // An error becomes the restorer's status, which the editor shows.
        RESTORE => drop(restorer.start(params.restore_request(), params.prompt())),
        CANCEL => restorer.cancel(),
        _ => {}
    }
    let _ = requests.switch.compare_exchange(switch, NOTHING, Ordering::AcqRel, Ordering::Relaxed);
    restorer.pump();
}

impl Drop for Housekeeper {
    /// Tells the thread to end, wakes it, and does not wait: removing the plugin never
    /// waits on a thread that may be busy (the thread holds what it serves, and the library
    /// is never unloaded: `-z nodelete` in `build.rs`).
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
        }
    }
}
