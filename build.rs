//! Link-time settings for the plugin library.

fn main() {
    // Hosts dlclose plugins, but Rust's std registers per-thread TLS destructors that point
    // into the library; a host thread that exits after the unload would jump into unmapped
    // code (rust-lang/rust#91979). `-z nodelete` keeps the library mapped for the process's
    // lifetime, as most native plugins effectively are.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
