//! `dgg-restore-standalone`: the plugin as an application of its own (nice-plug's standalone
//! host), for trying the editor without a DAW and for its screenshot
//! (`tools/screenshot/editor.sh`). Built with `--features standalone`.

use anyhow::Result;
use clap::Parser;
use dgg_restore::plugin::capture::{import_wav, Take};
use dgg_restore::plugin::clips::ClipStore;
use dgg_restore::plugin::session;
use dgg_restore::plugin::settings::Marks;
use dgg_restore::restore::operators::Gap;
use dgg_restore::DggRestore;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "dgg-restore-standalone", version, about = "DGG Restore as a standalone application")]
struct Args {
    /// Open with this WAV as the captured clip (at the start of the timeline).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// ...and this WAV as its restoration.
    #[arg(long, requires = "clip")]
    restored: Option<PathBuf>,
    /// A gap marked on the clip, START-END in seconds; repeat for several.
    #[arg(long = "gap", value_name = "START-END")]
    gaps: Vec<Gap>,
    /// Options of the standalone host, after `--` (`-- --help` lists them), e.g.
    /// `-- --backend dummy`.
    #[arg(last = true)]
    host: Vec<String>,
}

/// A file as a take at the start of the timeline, as the editor's *Import WAV* reads it.
fn take(path: &Path) -> Result<Arc<Take>> {
    Ok(Arc::new(Take::new(import_wav(path)?, 0)))
}

fn open(args: &Args) -> Result<()> {
    let original = args.clip.as_deref().map(take).transpose()?;
    let restored = args.restored.as_deref().map(take).transpose()?;
    let mut marks = Marks::default();
    for gap in &args.gaps {
        marks.add_gap(gap.start, gap.end);
    }
    session::open_with(ClipStore { original, restored }, marks);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = open(&args) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let program = std::env::args().next().unwrap_or_default();
    if nice_plug::prelude::nice_export_standalone_with_args::<DggRestore, _>(std::iter::once(program).chain(args.host)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
