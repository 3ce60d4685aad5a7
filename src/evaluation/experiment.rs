//! The paper's protocol, piece by piece: cut clips into 5 s mono 16 kHz segments, degrade
//! each with every task's operator, restore with every method, and gather the LSDs into
//! the paper's table (methods down, tasks across). Two setups ([`Protocol`]): the official
//! code's operators, to reproduce its table, or the ones `restore` uses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::audio::{resample, AudioClip, ResampleError};
use crate::dsp::stft::Window;
use crate::dsp::MODEL_SAMPLE_RATE;
use crate::restore::operators::{cutoff_for_factor, Degradation, Gap, ImpulseResponse, TaskKind};

/// Segments quieter than this RMS (−80 dBFS) are skipped: the LSD of near-silence measures
/// nothing but the noise floor.
const SILENCE_RMS: f64 = 1e-4;

/// The column heading of the paper's table.
pub fn heading(task: TaskKind) -> &'static str {
    match task {
        TaskKind::Inpaint => "Inpainting",
        TaskKind::SuperResolution => "Super-res",
        TaskKind::Dereverb => "Dereverb",
        TaskKind::Phase => "Phase retr.",
        TaskKind::Declip => "Declipping",
    }
}

/// Which setup an experiment runs (DESIGN.md §2, §2a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The official code's: super-resolution resamples to 8 kHz (torchaudio), the room is
    /// a random walk redrawn at every guidance step, phase retrieval has no window, DITTO's
    /// chain runs with eta 1, 500 steps, and the LSD of its `eval.py` comes first.
    Paper,
    /// `restore`'s: a low-pass at the cutoff, a fixed synthetic room, a Hann window.
    Ours,
}

impl Protocol {
    /// The steps of the paper's runs.
    pub const PAPER_STEPS: usize = 500;

    pub fn name(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Ours => "ours",
        }
    }

    /// The operator of `task` on a 16 kHz segment of `seconds`: inpainting silences the
    /// middle fifth (2–3 s of 5 s, as the paper's box), super-resolution keeps the band of
    /// 8 kHz audio (×2), dereverberation adds a room (ours: seeded, of `rt60`), phase
    /// retrieval keeps |STFT|.
    pub fn degradation(self, task: TaskKind, seconds: f64, rt60: f64, room_seed: u64) -> Degradation {
        match (self, task) {
            (_, TaskKind::Inpaint) => Degradation::Inpaint { gaps: vec![Gap { start: 0.4 * seconds, end: 0.6 * seconds }] },
            (Self::Paper, TaskKind::SuperResolution) => Degradation::Downsample { factor: 2 },
            (Self::Ours, TaskKind::SuperResolution) => Degradation::SuperResolution { cutoff_hz: cutoff_for_factor(MODEL_SAMPLE_RATE, 2) },
            (Self::Paper, TaskKind::Dereverb) => Degradation::Dereverb { response: ImpulseResponse::RandomWalk { seed: room_seed } },
            (Self::Ours, TaskKind::Dereverb) => Degradation::Dereverb { response: ImpulseResponse::Synthetic { rt60, seed: room_seed } },
            (Self::Paper, TaskKind::Phase) => Degradation::PhaseRetrieval { window: Window::Rectangular },
            (Self::Ours, TaskKind::Phase) => Degradation::PHASE_RETRIEVAL,
            // Not one of the paper's: clipped at −12 dBFS, as `degrade --gain 12` does to a
            // segment at full scale.
            (_, TaskKind::Declip) => Degradation::Declip { level: 0.25 },
        }
    }

    /// The eta of DITTO's chain.
    pub fn ditto_eta(self) -> f64 {
        match self {
            Self::Paper => 1.0,
            Self::Ours => 0.0,
        }
    }

    /// What the setup is, for the results' header.
    pub fn description(self) -> &'static str {
        match self {
            Self::Paper => {
                "the official code's operators: super-resolution resamples to 8 kHz (torchaudio) and measures the 16 kHz mel of that, \
                 dereverberation convolves with a 5000-tap random walk redrawn at every guidance step, phase retrieval takes |STFT| \
                 without a window, DITTO's chain runs with eta 1"
            }
            Self::Ours => {
                "`restore`'s operators: super-resolution low-passes at 4 kHz, dereverberation removes one seeded synthetic room, \
                 phase retrieval takes |STFT| with a Hann window, DITTO's chain is deterministic"
            }
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "paper" => Ok(Self::Paper),
            "ours" => Ok(Self::Ours),
            _ => Err(format!("unknown protocol '{s}': use paper (the official code's operators) or ours (restore's)")),
        }
    }
}

/// The paper's own table (MoisesDB, 500 steps): LSD and FAD per method and task, in the
/// order of [`TaskKind::PAPER`].
pub const PAPER_TABLE: [(&str, [(f64, f64); 4]); 4] = [
    ("DPS", [(0.796, 0.485), (1.102, 0.579), (1.199, 0.648), (0.697, 0.533)]),
    ("MPGD", [(1.719, 0.611), (1.742, 0.610), (1.739, 0.601), (1.720, 0.602)]),
    ("DITTO", [(1.125, 0.728), (1.161, 0.886), (1.216, 0.915), (0.855, 0.835)]),
    ("DGG", [(0.636, 0.290), (0.890, 0.434), (1.058, 0.444), (0.706, 0.467)]),
];

/// [`PAPER_TABLE`] in Markdown, the columns of `tasks` that it has.
pub fn paper_table_markdown(tasks: &[TaskKind]) -> String {
    let columns: Vec<(usize, TaskKind)> = tasks.iter().filter_map(|&t| TaskKind::PAPER.iter().position(|&p| p == t).map(|i| (i, t))).collect();
    let mut out = String::from("| MoisesDB (LSD / FAD) |");
    for (_, task) in &columns {
        write!(out, " {} |", heading(*task)).unwrap();
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    for (method, cells) in PAPER_TABLE {
        write!(out, "\n| {method} |").unwrap();
        for &(i, _) in &columns {
            write!(out, " {:.3} / {:.3} |", cells[i].0, cells[i].1).unwrap();
        }
    }
    out.push('\n');
    out
}

/// A 16 kHz mono piece of a clip, named `<clip>_<index>` after where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: String,
    pub samples: Vec<f32>,
}

impl Segment {
    pub fn clip(&self) -> AudioClip {
        AudioClip::new(MODEL_SAMPLE_RATE, vec![self.samples.clone()])
    }
}

/// Which parts of each clip an experiment scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Excerpts {
    /// One segment starting this many seconds in, as the official loader takes (10 s for
    /// MoisesDB, 0 for MusicCaps); clips too short for it are left out.
    At(f64),
    /// Consecutive segments, at most `limit` per clip; near-silent ones are left out.
    All { limit: Option<usize> },
}

/// The segments of `seconds` that `excerpts` takes from `clip`, downmixed to mono at 16 kHz.
pub fn segments(name: &str, clip: &AudioClip, seconds: f64, excerpts: Excerpts) -> Result<Vec<Segment>, ResampleError> {
    let mono = mono_16k(clip)?;
    let len = (seconds * MODEL_SAMPLE_RATE as f64).round() as usize;
    let limit = match excerpts {
        Excerpts::At(at) => {
            let start = (at * MODEL_SAMPLE_RATE as f64).round() as usize;
            let excerpt = start.checked_add(len).and_then(|end| mono.get(start..end));
            let excerpt = excerpt.map(|s| Segment { name: format!("{name}_at{at}s"), samples: s.to_vec() });
            return Ok(excerpt.into_iter().collect());
        }
        Excerpts::All { limit } => limit,
    };
    let loud = |s: &[f32]| (s.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / s.len() as f64).sqrt() >= SILENCE_RMS;
    Ok(mono
        .chunks_exact(len.max(1))
        .enumerate()
        .filter(|(_, s)| loud(s))
        .take(limit.unwrap_or(usize::MAX))
        .map(|(k, s)| Segment { name: format!("{name}_{k:03}"), samples: s.to_vec() })
        .collect())
}

fn mono_16k(clip: &AudioClip) -> Result<Vec<f32>, ResampleError> {
    let channels = clip.num_channels().max(1) as f32;
    let mono: Vec<f32> = (0..clip.num_frames()).map(|n| clip.channels.iter().map(|c| c[n]).sum::<f32>() / channels).collect();
    Ok(resample(&[mono], clip.sample_rate, MODEL_SAMPLE_RATE)?.remove(0))
}

/// The row of the table that scores the degraded input itself, the bar to beat.
pub const DEGRADED_ROW: &str = "degraded";

/// The two LSDs every segment is scored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lsd {
    /// Ours ([`crate::dsp::lsd`]): hop 160, reflect padding.
    Hop160,
    /// The official `eval.py`'s ([`crate::dsp::lsd::lsd_eval_py`]): hop 512, zero padding.
    Hop512,
}

impl Lsd {
    /// Its column in the CSV files.
    pub fn column(self) -> &'static str {
        match self {
            Self::Hop160 => "lsd_hop160",
            Self::Hop512 => "lsd_hop512",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Hop160 => "LSD (ours: hop 160, reflect padding)",
            Self::Hop512 => "LSD (the paper's eval.py: hop 512, zero padding)",
        }
    }

    /// The protocol's own first.
    pub fn in_order(protocol: Protocol) -> [Self; 2] {
        match protocol {
            Protocol::Paper => [Self::Hop512, Self::Hop160],
            Protocol::Ours => [Self::Hop160, Self::Hop512],
        }
    }
}

/// One segment's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub segment: String,
    pub task: TaskKind,
    /// A method's name, or [`DEGRADED_ROW`].
    pub row: String,
    pub lsd: f64,
    pub lsd_hop512: f64,
}

impl Score {
    pub fn value(&self, lsd: Lsd) -> f64 {
        match lsd {
            Lsd::Hop160 => self.lsd,
            Lsd::Hop512 => self.lsd_hop512,
        }
    }
}

/// Every score of a run, and the paper's table of their means.
#[derive(Debug, Clone, Default)]
pub struct Results {
    rows: Vec<String>,
    tasks: Vec<TaskKind>,
    scores: Vec<Score>,
}

impl Results {
    /// A table with `rows` (the degraded input first is customary) and `tasks` as columns.
    pub fn new(rows: Vec<String>, tasks: Vec<TaskKind>) -> Self {
        Self { rows, tasks, scores: Vec::new() }
    }

    pub fn add(&mut self, score: Score) {
        self.scores.push(score);
    }

    /// Mean `lsd` and number of segments of one cell.
    pub fn mean(&self, row: &str, task: TaskKind, lsd: Lsd) -> Option<(f64, usize)> {
        let values: Vec<f64> = self.scores.iter().filter(|s| s.row == row && s.task == task).map(|s| s.value(lsd)).collect();
        (!values.is_empty()).then(|| (values.iter().sum::<f64>() / values.len() as f64, values.len()))
    }

    fn cells(&self, lsd: Lsd) -> BTreeMap<(usize, usize), String> {
        let mut cells = BTreeMap::new();
        for (r, row) in self.rows.iter().enumerate() {
            for (c, &task) in self.tasks.iter().enumerate() {
                cells.insert((r, c), self.mean(row, task, lsd).map_or(String::new(), |(m, _)| format!("{m:.3}")));
            }
        }
        cells
    }

    /// The paper's layout in Markdown: mean `lsd` per method and task (lower is better).
    pub fn markdown(&self, title: &str, lsd: Lsd) -> String {
        let cells = self.cells(lsd);
        let mut out = format!("| {title} |");
        for task in &self.tasks {
            write!(out, " {} |", heading(*task)).unwrap();
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(self.tasks.len()));
        for (r, row) in self.rows.iter().enumerate() {
            write!(out, "\n| {} |", display_row(row)).unwrap();
            for c in 0..self.tasks.len() {
                let cell = &cells[&(r, c)];
                write!(out, " {} |", if cell.is_empty() { "–" } else { cell }).unwrap();
            }
        }
        out.push('\n');
        out
    }

    /// The same tables as CSV: `method,<task>_lsd_hop160,<task>_lsd_hop512,…` with mean
    /// LSDs (empty where not run).
    pub fn csv(&self) -> String {
        let both = [Lsd::Hop160, Lsd::Hop512].map(|lsd| (lsd, self.cells(lsd)));
        let mut out = String::from("method");
        for task in &self.tasks {
            for (lsd, _) in &both {
                write!(out, ",{}_{}", task.name(), lsd.column()).unwrap();
            }
        }
        for (r, row) in self.rows.iter().enumerate() {
            write!(out, "\n{row}").unwrap();
            for c in 0..self.tasks.len() {
                for (_, cells) in &both {
                    write!(out, ",{}", cells[&(r, c)]).unwrap();
                }
            }
        }
        out.push('\n');
        out
    }

    /// Every segment's score as CSV: `segment,task,method,lsd_hop160,lsd_hop512`.
    pub fn scores_csv(&self) -> String {
        let mut out = format!("segment,task,method,{},{}\n", Lsd::Hop160.column(), Lsd::Hop512.column());
        for s in &self.scores {
            writeln!(out, "{},{},{},{:.6},{:.6}", s.segment, s.task.name(), s.row, s.lsd, s.lsd_hop512).unwrap();
        }
        out
    }
}

fn display_row(row: &str) -> String {
    if row == DEGRADED_ROW {
        "(degraded input)".to_string()
    } else {
        row.to_uppercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_mono_16k_skip_silence_and_drop_the_tail() {
        // 3.5 s stereo at 32 kHz: loud, silent (with margins for the resampler's ringing),
        // loud, then half a segment.
        let rate = 32_000;
        let channel = |sign: f32| -> Vec<f32> {
            (0..rate as usize * 7 / 2)
                .map(|n| {
                    let silent = (rate as usize * 9 / 10..rate as usize * 21 / 10).contains(&n);
                    if silent {
                        0.0
                    } else {
                        sign * 0.2 + 0.3 * (n as f32 * 0.05).sin()
                    }
                })
                .collect()
        };
        let clip = AudioClip::new(rate, vec![channel(1.0), channel(-1.0)]);
        let segs = segments("song", &clip, 1.0, Excerpts::All { limit: None }).unwrap();
        let names: Vec<&str> = segs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["song_000", "song_002"]);
        assert!(segs.iter().all(|s| s.samples.len() == 16_000));
        // The ±0.2 offsets cancel in the downmix; the resampled sine remains.
        let mean: f32 = segs[0].samples[100..15_900].iter().sum::<f32>() / 15_800.0;
        assert!(mean.abs() < 0.01, "{mean}");
        assert_eq!(segments("song", &clip, 1.0, Excerpts::All { limit: Some(1) }).unwrap().len(), 1);
        // One excerpt at an offset, silent or not, as the official loader takes it; none
        // where the clip ends too soon.
        let at = segments("song", &clip, 1.0, Excerpts::At(1.0)).unwrap();
        assert_eq!((at.len(), at[0].name.as_str()), (1, "song_at1s"));
        assert_eq!(at[0].samples, mono_16k(&clip).unwrap()[16_000..32_000]);
        assert!(segments("song", &clip, 1.0, Excerpts::At(3.0)).unwrap().is_empty());
        assert!(segments("song", &clip, 1.0, Excerpts::At(1e300)).unwrap().is_empty());
    }

    #[test]
    fn inpainting_gap_is_the_middle_fifth() {
        for protocol in [Protocol::Paper, Protocol::Ours] {
            let Degradation::Inpaint { gaps } = protocol.degradation(TaskKind::Inpaint, 5.0, 0.8, 0) else { panic!() };
            assert_eq!(gaps, vec![Gap { start: 2.0, end: 3.0 }]);
        }
        assert_eq!("superres".parse::<TaskKind>(), Ok(TaskKind::SuperResolution));
        assert!("reverb".parse::<TaskKind>().unwrap_err().contains("inpaint, superres, dereverb, phase"));
    }

    #[test]
    fn table_has_the_papers_layout_with_means() {
        let tasks = vec![TaskKind::Inpaint, TaskKind::Phase];
        let mut results = Results::new(vec![DEGRADED_ROW.into(), "dgg".into(), "dps".into()], tasks);
        let score = |segment: &str, task, row: &str, lsd| Score { segment: segment.into(), task, row: row.into(), lsd, lsd_hop512: 2.0 * lsd };
        results.add(score("a_000", TaskKind::Inpaint, "dgg", 0.5));
        results.add(score("a_001", TaskKind::Inpaint, "dgg", 0.75));
        results.add(score("a_000", TaskKind::Inpaint, DEGRADED_ROW, 2.0));
        results.add(score("a_000", TaskKind::Phase, "dps", 0.25));
        assert_eq!(results.mean("dgg", TaskKind::Inpaint, Lsd::Hop160), Some((0.625, 2)));
        assert_eq!(results.mean("dgg", TaskKind::Inpaint, Lsd::Hop512), Some((1.25, 2)));
        assert_eq!(
            results.markdown("clips", Lsd::Hop160),
            "| clips | Inpainting | Phase retr. |\n|---|---|---|\n| (degraded input) | 2.000 | – |\n| DGG | 0.625 | – |\n| DPS | – | 0.250 |\n"
        );
        assert_eq!(
            results.csv(),
            "method,inpaint_lsd_hop160,inpaint_lsd_hop512,phase_lsd_hop160,phase_lsd_hop512\n\
             degraded,2.000,4.000,,\ndgg,0.625,1.250,,\ndps,,,0.250,0.500\n"
        );
        assert_eq!(results.scores_csv().lines().count(), 5);
        assert!(results.scores_csv().contains("a_001,inpaint,dgg,0.750000,1.500000"));
    }

    #[test]
    fn the_paper_protocol_has_the_official_codes_operators_and_its_table() {
        use crate::dsp::stft::Window;
        assert_eq!(Protocol::Paper.degradation(TaskKind::SuperResolution, 5.0, 0.8, 3), Degradation::Downsample { factor: 2 });
        assert_eq!(Protocol::Paper.degradation(TaskKind::Dereverb, 5.0, 0.8, 3), Degradation::Dereverb { response: ImpulseResponse::RandomWalk { seed: 3 } });
        assert_eq!(Protocol::Paper.degradation(TaskKind::Phase, 5.0, 0.8, 3), Degradation::PhaseRetrieval { window: Window::Rectangular });
        assert_eq!(Protocol::Ours.degradation(TaskKind::Phase, 5.0, 0.8, 3), Degradation::PHASE_RETRIEVAL);
        assert_eq!((Protocol::Paper.ditto_eta(), Protocol::Ours.ditto_eta()), (1.0, 0.0));
        let measured_from_clean =
            |d: &Degradation| crate::restore::operators::Operator::new(d, 16_000, 80_000, &candle_core::Device::Cpu).unwrap().applies_to_observed();
        assert!(TaskKind::PAPER.iter().all(|&t| measured_from_clean(&Protocol::Paper.degradation(t, 5.0, 0.8, 0))
            == matches!(t, TaskKind::SuperResolution | TaskKind::Dereverb | TaskKind::Phase)));
        let table = paper_table_markdown(&[TaskKind::Inpaint, TaskKind::Declip, TaskKind::Phase]);
        assert!(table.starts_with("| MoisesDB (LSD / FAD) | Inpainting | Phase retr. |\n|---|---|---|\n| DPS | 0.796 / 0.485 | 0.697 / 0.533 |"), "{table}");
        assert!(table.ends_with("| DGG | 0.636 / 0.290 | 0.706 / 0.467 |\n"), "{table}");
        assert_eq!("ours".parse::<Protocol>(), Ok(Protocol::Ours));
        assert!("theirs".parse::<Protocol>().unwrap_err().contains("paper"));
    }
}
