//! Driving the plugin's capture and playback through the host, and checking that what it
//! plays is sample-accurate against the host timeline; shared by the CLAP host tests.

use dgg_restore::plugin::playback::edge_fade;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{run_blocks, test_signal, Bundle, Param, Plugin, Transport, PLUGIN_ID};

/// The plugin library built with allocation checks on the audio thread.
pub fn alloc_checked() -> Bundle {
    let name = format!("{}dgg_restore{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/alloc-check/debug").join(name);
    assert!(path.is_file(), "{} is missing: cargo build --lib --features assert_process_allocs --target-dir target/alloc-check", path.display());
    Bundle::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub const RATE: f64 = 48_000.0;
pub const MAX_BLOCK: usize = 512;
pub const BLOCKS: &[usize] = &[1, 64, 333, 512, 7, 255];
pub const TEMPO: f64 = 120.0;
/// Where the take starts on the timeline, and how long it is.
pub const START: i64 = 96_000;
pub const TAKE: usize = 24_000;

pub struct Rig {
    pub plugin: Plugin,
    pub capture: Param,
    pub listen: Param,
    pub restore: Param,
}

/// The plain value of a Listen mode, as the host sees the enum parameter.
pub fn listen_value(p: Param, mode: &str) -> f64 {
    let index = ["Restored", "Original", "Input"].iter().position(|m| *m == mode).unwrap() as f64;
    p.min + index * (p.max - p.min) / 2.0
}

impl Rig {
    /// A stereo instance activated at `rate` for real-time rendering.
    pub fn new(bundle: &Bundle, rate: f64) -> Self {
        Self::rendering(bundle, rate, false)
    }

    /// A stereo instance activated at `rate`, rendering offline (a bounce) if `offline`.
    pub fn rendering(bundle: &Bundle, rate: f64, offline: bool) -> Self {
        let mut plugin = bundle.instantiate(PLUGIN_ID);
        if offline {
            plugin.set_render_mode(true).unwrap();
        }
        plugin.activate(rate, MAX_BLOCK, 2).unwrap();
        let capture = plugin.param("Capture").unwrap();
        let listen = plugin.param("Listen").unwrap();
        let restore = plugin.param("Restore").unwrap();
        Self { plugin, capture, listen, restore }
    }

    pub fn listen(&mut self, mode: &str) {
        let value = listen_value(self.listen, mode);
        self.plugin.set_param(self.listen, value);
    }

    /// One block of silence at `pos` with the transport playing or stopped.
    pub fn tick(&mut self, pos: i64, playing: bool, frames: usize) -> Vec<Vec<f32>> {
        let t = if playing { Transport::playing(RATE, TEMPO) } else { Transport::stopped(RATE, TEMPO) }.at(pos);
        let silence = vec![0.0f32; frames];
        self.plugin.process(&[&silence, &silence], Some(&t)).unwrap().audio
    }

    /// Records `signal` from `START` with the Capture switch, then stops the transport and
    /// waits until the take plays back (the background thread filed it).
    pub fn capture(&mut self, signal: &[Vec<f32>]) {
        self.plugin.set_param(self.capture, self.capture.max);
        let mut transport = Transport::playing(RATE, TEMPO).at(START);
        run_blocks(&mut self.plugin, signal, BLOCKS, &mut transport, |_, _| {});
        self.tick(transport.pos_samples, false, 64);
        self.plugin.set_param(self.capture, self.capture.min);
        self.listen("Original");
        let deadline = Instant::now() + Duration::from_secs(5);
        // The plugin outputs subnormals as zeros.
        let expected: Vec<f32> = signal[0][1_000..1_064].iter().map(|&x| if x.is_subnormal() { 0.0 } else { x }).collect();
        while self.tick(START + 1_000, true, 64)[0] != expected {
            assert!(Instant::now() < deadline, "the take never came back to play");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A take as it should sound: its audio at the host `rate`, from timeline position `start`.
pub struct Placed<'a> {
    pub take: &'a [Vec<f32>],
    pub start: i64,
    pub rate: f64,
}

/// A stretch of playback: `frames` from `pos`, optionally looping and with resets.
pub struct Play {
    pub pos: i64,
    pub frames: usize,
    pub looped: Option<(i64, i64)>,
    pub reset_every: Option<usize>,
}

impl Play {
    pub fn at(pos: i64, frames: usize) -> Self {
        Self { pos, frames, looped: None, reset_every: None }
    }
}

/// Plays fresh input as `play` says, in odd blocks, and checks every output frame against
/// where it is on the timeline: the take exactly inside it (past the edge fades), the input
/// exactly outside it, a mix of the two in the fades.
#[track_caller]
pub fn assert_synced(rig: &mut Rig, expected: &Placed, play: Play) {
    let Placed { take, start, rate } = *expected;
    let Play { pos, frames, looped, reset_every } = play;
    let input = test_signal(2, frames, rate, pos as u64);
    let mut transport = Transport::playing(rate, TEMPO).at(pos);
    transport.loop_samples = looped;
    let mut positions = Vec::with_capacity(frames);
    let mut t = transport;
    for _ in 0..frames {
        positions.push(t.pos_samples);
        t.advance(1);
    }
    let out = run_blocks(&mut rig.plugin, &input, BLOCKS, &mut transport, |block, plugin| {
        if reset_every.is_some_and(|k| block % k == k - 1) {
            plugin.reset();
        }
    });
    let (len, fade) = (take[0].len() as i64, edge_fade(rate as f32) as i64);
    for (c, (o, x)) in out.iter().zip(&input).enumerate() {
        for (n, &p) in positions.iter().enumerate() {
            let k = p - start;
            let what = format!("channel {c}, frame {n} at timeline {p} (take frame {k})");
            if !(0..len).contains(&k) {
                assert_eq!(o[n].to_bits(), x[n].to_bits(), "{what}: expected the input");
            } else if (fade..len - fade).contains(&k) {
                assert_eq!(o[n].to_bits(), take[c][k as usize].to_bits(), "{what}: expected the take");
            } else {
                let (lo, hi) = (x[n].min(take[c][k as usize]), x[n].max(take[c][k as usize]));
                assert!((lo - 1e-6..=hi + 1e-6).contains(&o[n]), "{what}: {} outside the fade's range {lo}..{hi}", o[n]);
            }
        }
    }
}
