//! Link-time settings for the plugin library, and the commit the build comes from.

fn main() {
    // Hosts dlclose plugins, but Rust's std registers per-thread TLS destructors that point
    // into the library; a host thread that exits after the unload would jump into unmapped
    // code (rust-lang/rust#91979). `-z nodelete` keeps the library mapped for the process's
    // lifetime, as most native plugins effectively are.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
    commit();
}

/// The commit the build comes from, as `DGG_COMMIT` ("unknown" outside a git checkout),
/// for the experiment's results; rebuilt when HEAD or its branch moves.
fn commit() {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    println!("cargo:rustc-env=DGG_COMMIT={}", git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into()));
    // Only files that exist: a missing one would make cargo rerun this on every build.
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"]), git(&["rev-parse", "--git-path", "packed-refs"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}
