//! The last step of the model lookup: fetching `cvssp/audioldm2-music` from the Hugging Face
//! hub. A local stand-in for the hub's HTTP API (the two routes hf-hub uses: the repo
//! listing and `resolve/`, with ranges, ETags and the commit header) serves the fixture's
//! tiny model; `HF_ENDPOINT` points the tool at it.

mod golden;

use golden::Golden;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const REPO: &str = "cvssp/audioldm2-music";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `root` as the hub would serve `REPO` at `COMMIT`, recording every path asked for.
struct StandInHub {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().to_str().unwrap().to_string());
        }
    }
}

impl StandInHub {
    fn serve(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (root, log) = (root.clone(), log.clone());
                std::thread::spawn(move || answer(stream.unwrap(), &root, &log));
            }
        });
        Self { endpoint, requests }
    }
}

fn answer(mut stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = value.trim().strip_prefix("bytes=").map(str::to_string);
            }
        }
    }
    log.lock().unwrap().push(path.clone());
    let respond = |stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]| {
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        head += "\r\n";
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
    };
    if path == format!("/api/models/{REPO}/revision/main") {
        let mut files = Vec::new();
        files_under(root, root, &mut files);
        let siblings: Vec<String> = files.iter().map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
        let body = format!("{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}", siblings.join(","));
        return respond(&mut stream, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes());
    }
    let Some(file) = path.strip_prefix(&format!("/{REPO}/resolve/main/")).map(|f| root.join(f)).filter(|f| f.is_file()) else {
        return respond(&mut stream, "404 Not Found", &[], b"not found");
    };
    let bytes = std::fs::read(&file).unwrap();
    let etag = format!("\"{:016x}{:08x}\"", bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)), bytes.len());
    let (start, end) = match range.as_deref().and_then(|r| r.split_once('-')) {
        Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(bytes.len() - 1)),
        None => (0, bytes.len() - 1),
    };
    let headers = [
        ("ETag".to_string(), etag),
        ("X-Repo-Commit".to_string(), COMMIT.to_string()),
        ("Content-Range".to_string(), format!("bytes {start}-{end}/{}", bytes.len())),
    ];
    respond(&mut stream, "206 Partial Content", &headers, &bytes[start..=end]);
}

/// 1 s of a tone at 16 kHz with 0.4–0.6 s silenced.
fn gapped_wav(path: &Path) {
    let spec = hound::WavSpec { channels: 1, sample_rate: 16_000, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..16_000 {
        let v = if (6_400..9_600).contains(&n) { 0.0 } else { 0.3 * (n as f32 * 0.08).sin() };
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
}

/// `restore` in `work` with no model configured, the hub cache in `hf_home`, asking `endpoint`.
fn restore(work: &Path, hf_home: &Path, endpoint: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dgg-restore"))
        .current_dir(work)
        .env_remove("DGG_MODEL_DIR")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env("XDG_DATA_HOME", work.join("data"))
        .args(["restore", "--task", "inpaint", "--gap", "0.4-0.6", "--steps", "2", "in.wav", "out.wav"])
        .output()
        .unwrap()
}

/// An endpoint where nothing listens.
fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[test]
fn the_model_is_fetched_once_then_found_in_the_cache_offline() {
    let g = Golden::load();
    let hub = StandInHub::serve(g.dir.clone());
    let work = tempfile::tempdir().unwrap();
    let hf_home = work.path().join("hf");
    gapped_wav(&work.path().join("in.wav"));

    let o = restore(work.path(), &hf_home, &hub.endpoint);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    for needle in [
        "fetching cvssp/audioldm2-music from the Hugging Face hub",
        "CC-BY-NC-SA 4.0",
        "downloading unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.safetensors: done",
    ] {
        assert!(stderr.contains(needle), "missing '{needle}' in: {stderr}");
    }
    assert!(work.path().join("out.wav").is_file());

    // The snapshot holds the loader's files, byte for byte, and nothing it does not read.
    let snapshot = hf_home.join("hub/models--cvssp--audioldm2-music/snapshots").join(COMMIT);
    for file in [
        "model_index.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vocoder/model.safetensors",
        "tokenizer_2/tokenizer.json",
        "scheduler/scheduler_config.json",
    ] {
        assert_eq!(std::fs::read(snapshot.join(file)).unwrap(), std::fs::read(g.dir.join(file)).unwrap(), "{file}");
    }
    for absent in ["golden.safetensors", "vocoder_bin", "feature_extractor"] {
        assert!(!snapshot.join(absent).exists(), "{absent} was fetched");
    }
    let asked = hub.requests.lock().unwrap().clone();
    assert!(!asked.iter().any(|p| p.ends_with("golden.safetensors")), "{asked:?}");

    // Offline afterwards: the cache is enough, the dead endpoint is never needed.
    std::fs::remove_file(work.path().join("out.wav")).unwrap();
    let o = restore(work.path(), &hf_home, &dead_endpoint());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("fetching"), "{stderr}");
    assert!(stderr.contains(&snapshot.display().to_string()), "loads from the snapshot: {stderr}");
    assert!(work.path().join("out.wav").is_file());
}

#[test]
fn an_unreachable_hub_says_how_to_put_the_weights_in_place() {
    let work = tempfile::tempdir().unwrap();
    gapped_wav(&work.path().join("in.wav"));
    let o = restore(work.path(), &work.path().join("hf"), &dead_endpoint());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    for needle in ["CC-BY-NC-SA 4.0", "fetching from the hub failed", "huggingface-cli download cvssp/audioldm2-music", "--model DIR"] {
        assert!(stderr.contains(needle), "missing '{needle}' in: {stderr}");
    }
    assert!(!work.path().join("out.wav").exists());
}
