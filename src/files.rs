//! Files in and out, so that nothing is ever half-written or silently replaced.
//!
//! - [`write_atomic`]: a temporary sibling is written (on Linux unnamed until complete),
//!   flushed to disk and renamed over the target; on any error (or panic) it is removed and
//!   an existing target is untouched.
//!   The temporaries in flight are listed, so a signal handler can remove them
//!   ([`remove_temporaries`]) before the process exits.
//! - [`check_output`]: before hours of work, whether the output can be written at all.
//! - [`open_regular`]: inputs and configs must be regular files (a FIFO would block
//!   forever, a device could be endless), no larger than the caller's bound.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The largest JSON file read (configs, weight indices, tokenizers): the biggest real one,
/// Flan-T5's `tokenizer.json`, is 2.4 MB.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// The operating system refused `action` on `path`.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot {action}: {source}", .path.display())]
pub struct FileError {
    pub path: PathBuf,
    /// What was being attempted, e.g. "open the file for reading".
    pub action: &'static str,
    pub source: io::Error,
}

fn error(path: &Path, action: &'static str, source: io::Error) -> FileError {
    FileError { path: path.to_owned(), action, source }
}

fn invalid(path: &Path, action: &'static str, why: String) -> FileError {
    error(path, action, io::Error::new(io::ErrorKind::InvalidInput, why))
}

/// The temporaries [`write_atomic`] is writing. Its lock is held across the final rename,
/// so [`remove_temporaries`] either removes a temporary before its rename (which then
/// fails, leaving the target untouched) or finds it already renamed and gone from here.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Files [`write_atomic`] has renamed into place, counted under [`TEMPORARIES`]' lock.
static COMMITTED: AtomicU64 = AtomicU64::new(0);

/// Files [`write_atomic`] has written completely so far.
pub fn committed() -> u64 {
    COMMITTED.load(Ordering::SeqCst)
}

/// What [`remove_temporaries`] found, at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned {
    /// Temporaries removed (writes in flight).
    pub removed: usize,
    /// Files written completely so far.
    pub committed: u64,
}

/// Removes every temporary file [`write_atomic`] has in flight (for a signal handler about
/// to exit the process). Later renames of those files fail.
pub fn remove_temporaries() -> Abandoned {
    let mut list = temporaries();
    let removed = list.len();
    for tmp in list.drain(..) {
        let _ = fs::remove_file(tmp);
    }
    Abandoned { removed, committed: COMMITTED.load(Ordering::SeqCst) }
}

/// What [`describe`] calls a file that is not a regular one.
fn kind(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The file an output path names: itself, or the final target when it is a symbolic link
/// (the link is kept and its target replaced, as other audio tools do).
fn resolve_output(path: &Path) -> Result<PathBuf, FileError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(target) => Ok(target),
            // A dangling link: write where it points.
            Err(_) => {
                let target = fs::read_link(path).map_err(|e| error(path, "read the symbolic link", e))?;
                Ok(path.parent().map_or(target.clone(), |dir| dir.join(&target)))
            }
        },
        _ => Ok(path.to_owned()),
    }
}

/// Refuses an output that exists and is not a regular file: renaming over a FIFO, a device
/// or a directory would replace it.
fn refuse_special(path: &Path) -> Result<(), FileError> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(invalid(path, "write the output", format!("it is {}; name a regular file", kind(&meta)))),
        _ => Ok(()),
    }
}

/// The temporary sibling of `path` that [`write_atomic`] writes: `.NAME.tmp-PID-N`, with
/// NAME shortened where the whole would exceed the 255 bytes a file name may have.
fn temporary_for(path: &Path) -> Result<PathBuf, FileError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const NAME_MAX: usize = 255;
    let Some(name) = path.file_name() else {
        return Err(invalid(path, "write", "the path does not name a file".into()));
    };
    let suffix = format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let room = NAME_MAX - 1 - suffix.len();
    let mut tmp = OsString::from(".");
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        tmp.push(std::ffi::OsStr::from_bytes(&bytes[..bytes.len().min(room)]));
    }
    #[cfg(not(unix))]
    {
        let name: String = name.to_string_lossy().chars().take(room / 4).collect();
        tmp.push(name);
    }
    tmp.push(suffix);
    Ok(match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(tmp),
        _ => PathBuf::from(tmp),
    })
}

/// Checks, before any work, that [`write_atomic`] can write `path`: its folder exists and
/// takes a new file of the temporary's name (created and removed here), and `path` is absent
/// or a regular file (through a symbolic link, its target).
pub fn check_output(path: &Path) -> Result<(), FileError> {
    let path = resolve_output(path)?;
    if path.file_name().is_some_and(|n| n.len() > 255) {
        return Err(invalid(&path, "write", "its file name is longer than 255 bytes; choose a shorter one".into()));
    }
    refuse_special(&path)?;
    let tmp = temporary_for(&path)?;
    OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| error(&path, "create a file next to it", e))?;
    let _ = fs::remove_file(&tmp);
    Ok(())
}

/// Creates a temporary sibling of `path`, lets `write` fill it, flushes it to disk and
/// renames it over `path` (through a symbolic link, over its target). The temporary is
/// removed on every error path, on a panic, and by [`remove_temporaries`].
///
/// On Linux the temporary has no name until it is complete (`O_TMPFILE`, linked just before
/// the rename), so not even SIGKILL, a crash or a power cut during hours of work leaves a
/// file behind; elsewhere, or where the filesystem cannot, it is a named `.NAME.tmp-PID-N`.
pub fn write_atomic<E, F>(path: &Path, write: F) -> Result<(), E>
where
    E: From<FileError>,
    F: FnOnce(&mut BufWriter<File>) -> Result<(), E>,
{
    let target = resolve_output(path)?;
    refuse_special(&target)?;
    let tmp = temporary_for(&target)?;
    let (file, unnamed) = match unnamed::open(&tmp) {
        Some(file) => (file, true),
        None => (OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| error(path, "create a temporary file next to it", e))?, false),
    };
    let guard = Temporary::new(tmp);
    let mut out = BufWriter::with_capacity(1 << 16, file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| error(path, "write", e.into_error()))?;
    file.sync_all().map_err(|e| error(path, "flush the file to disk", e))?;
    guard.rename_to(&target, unnamed.then_some(&file)).map_err(|e| error(path, "replace the file (rename)", e))?;
    drop(file);
    // Make the rename itself durable; failure here does not un-write the file.
    #[cfg(unix)]
    if let Some(Ok(dir)) = target.parent().map(|d| File::open(if d.as_os_str().is_empty() { Path::new(".") } else { d })) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Files without a name until they are complete.
#[cfg(target_os = "linux")]
mod unnamed {
    use std::ffi::CString;
    use std::fs::{File, OpenOptions};
    use std::io::{self, Seek, SeekFrom};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    /// An unnamed file in the folder of `tmp`; `None` where the kernel or filesystem
    /// cannot make one.
    pub fn open(tmp: &Path) -> Option<File> {
        let dir = tmp.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        OpenOptions::new().read(true).write(true).mode(0o666).custom_flags(libc::O_TMPFILE).open(dir).ok()
    }

    /// Gives `file` the name `to` (which must not exist); where linking is not allowed
    /// (no /proc, no CAP_DAC_READ_SEARCH), a copy of it.
    pub fn link(file: &File, to: &Path) -> io::Result<()> {
        if link_only(file, to).is_ok() {
            return Ok(());
        }
        let mut copy = OpenOptions::new().write(true).create_new(true).open(to)?;
        let mut from = file;
        from.seek(SeekFrom::Start(0))?;
        io::copy(&mut from, &mut copy)?;
        copy.sync_all()
    }

    fn link_only(file: &File, to: &Path) -> io::Result<()> {
        let to = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: valid descriptors and NUL-terminated paths.
        if unsafe { libc::linkat(file.as_raw_fd(), c"".as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_EMPTY_PATH) } == 0 {
            return Ok(());
        }
        // Without CAP_DAC_READ_SEARCH, through /proc.
        let proc = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        // SAFETY: as above.
        if unsafe { libc::linkat(libc::AT_FDCWD, proc.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) } == 0 {
            return Ok(());
        }
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
mod unnamed {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn open(_tmp: &Path) -> Option<File> {
        None
    }

    pub fn link(_file: &File, _to: &Path) -> io::Result<()> {
        Err(io::Error::other("unnamed files are a Linux feature"))
    }
}

/// A temporary file in flight: listed in [`TEMPORARIES`] while it lives, removed when
/// dropped unless renamed. An unnamed one ([`unnamed`]) gets its name in [`Self::rename_to`].
struct Temporary(PathBuf);

impl Temporary {
    fn new(path: PathBuf) -> Self {
        temporaries().push(path.clone());
        Self(path)
    }

    /// Renames the file to `target` (an unnamed `file` is first linked under the
    /// temporary's name); it is then no longer a temporary.
    fn rename_to(self, target: &Path, unnamed: Option<&File>) -> io::Result<()> {
        let mut list = temporaries();
        let listed = list.iter().position(|p| *p == self.0);
        let Some(index) = listed else {
            // A signal handler removed it: the target stays as it was.
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted by a signal"));
        };
        if let Some(file) = unnamed {
            unnamed::link(file, &self.0)?;
        }
        fs::rename(&self.0, target)?;
        COMMITTED.fetch_add(1, Ordering::SeqCst);
        list.swap_remove(index);
        drop(list);
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
        temporaries().retain(|p| *p != self.0);
    }
}

/// Opens `path` for reading when it is a regular file of at most `max_bytes` (through
/// symbolic links); a FIFO, a device or a directory is refused by name.
pub fn open_regular(path: &Path, what: &str, max_bytes: u64) -> Result<(File, u64), FileError> {
    let meta = fs::metadata(path).map_err(|e| error(path, "open the file for reading", e))?;
    if !meta.is_file() {
        return Err(invalid(path, "read", format!("it is {}, not a {what} file", kind(&meta))));
    }
    if meta.len() > max_bytes {
        return Err(invalid(path, "read", format!("{} bytes is more than any {what} file should be ({max_bytes} at most)", meta.len())));
    }
    let file = File::open(path).map_err(|e| error(path, "open the file for reading", e))?;
    Ok((file, meta.len()))
}

/// [`open_regular`], then the whole file as text.
pub fn read_text(path: &Path, what: &str, max_bytes: u64) -> Result<String, FileError> {
    let (mut file, _) = open_regular(path, what, max_bytes)?;
    let mut text = String::new();
    io::Read::read_to_string(&mut file, &mut text).map_err(|e| error(path, "read", e))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn write(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
        write_atomic(path, |out| out.write_all(bytes).map_err(|e| error(path, "write", e)))
    }

    #[test]
    fn outputs_are_checked_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        check_output(&dir.path().join("new.wav")).unwrap();
        assert!(listing(dir.path()).is_empty(), "the check leaves nothing behind");
        let e = check_output(&dir.path().join("missing/x.wav")).unwrap_err();
        assert!(e.to_string().contains("x.wav"), "{e}");
        // A legal name of 252 bytes: its temporary's name is shortened to fit.
        let long = dir.path().join(format!("{}.wav", "n".repeat(248)));
        check_output(&long).unwrap();
        write(&long, b"long").unwrap();
        assert_eq!(fs::read(&long).unwrap(), b"long");
        let too_long = dir.path().join(format!("{}.wav", "n".repeat(252)));
        let e = check_output(&too_long).unwrap_err();
        assert!(e.to_string().contains("longer than 255 bytes"), "{e}");
        fs::create_dir(dir.path().join("folder.wav")).unwrap();
        let e = check_output(&dir.path().join("folder.wav")).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn special_outputs_are_refused_and_links_write_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.wav");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for e in [check_output(&fifo).unwrap_err(), write(&fifo, b"x").unwrap_err()] {
            assert!(e.to_string().contains("a FIFO"), "{e}");
        }
        let e = check_output(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");

        let target = dir.path().join("target.wav");
        fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is kept");
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(listing(dir.path()), ["link.wav", "pipe.wav", "target.wav"]);
    }

    /// A signal handler's removal makes the final rename fail and leaves the target as it was.
    #[test]
    fn removed_temporaries_never_replace_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.wav");
        fs::write(&target, b"before").unwrap();
        let e = write_atomic(&target, |out| {
            out.write_all(b"after").unwrap();
            remove_temporaries();
            Ok::<(), FileError>(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("interrupted"), "{e}");
        assert_eq!(fs::read(&target).unwrap(), b"before");
        assert_eq!(listing(dir.path()), ["out.wav"]);
    }

    #[cfg(unix)]
    #[test]
    fn inputs_must_be_regular_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("config.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = read_text(&fifo, "config", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("a FIFO") && e.to_string().contains("config.json"), "{e}");
        let e = read_text(Path::new("/dev/zero"), "config", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let big = dir.path().join("big.json");
        fs::write(&big, vec![b' '; 2000]).unwrap();
        let e = read_text(&big, "config", 1000).unwrap_err();
        assert!(e.to_string().contains("2000 bytes"), "{e}");
        assert_eq!(read_text(&big, "config", 2000).unwrap().len(), 2000);
    }

    /// While it is written, the temporary has no name: a process killed outright leaves
    /// nothing (Linux; elsewhere the named temporary is there).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_in_progress_has_no_name_on_linux() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.wav");
        write_atomic(&target, |out| {
            out.write_all(b"data").unwrap();
            assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
            Ok::<(), FileError>(())
        })
        .unwrap();
        assert_eq!(listing(dir.path()), ["out.wav"]);
        assert_eq!(fs::read(&target).unwrap(), b"data");
    }
}
