//! The paper's protocol, piece by piece: cut clips into 5 s mono 16 kHz segments, degrade
//! each with every task's operator, restore with every method, and gather the LSDs into
//! the paper's table (methods down, tasks across).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::audio::{resample, AudioClip, ResampleError};
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

/// The paper's operator of `task` on a 16 kHz segment of `seconds`: inpainting silences the
/// middle fifth (1 s of 5 s), super-resolution keeps the band of 8 kHz audio (×2),
/// dereverberation convolves with a seeded synthetic room of `rt60`, phase retrieval keeps
/// |STFT|.
pub fn degradation(task: TaskKind, seconds: f64, rt60: f64, room_seed: u64) -> Degradation {
    match task {
        TaskKind::Inpaint => Degradation::Inpaint { gaps: vec![Gap { start: 0.4 * seconds, end: 0.6 * seconds }] },
        TaskKind::SuperResolution => Degradation::SuperResolution { cutoff_hz: cutoff_for_factor(MODEL_SAMPLE_RATE, 2) },
        TaskKind::Dereverb => Degradation::Dereverb { response: ImpulseResponse::Synthetic { rt60, seed: room_seed } },
        TaskKind::Phase => Degradation::PHASE_RETRIEVAL,
        // Not one of the paper's: clipped at −12 dBFS, as `degrade --gain 12` does to a
        // segment at full scale.
        TaskKind::Declip => Degradation::Declip { level: 0.25 },
    }
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

/// `clip` downmixed to mono at 16 kHz and cut into consecutive segments of `seconds`,
/// at most `limit` of them; a shorter tail and near-silent segments are left out.
pub fn segments(name: &str, clip: &AudioClip, seconds: f64, limit: Option<usize>) -> Result<Vec<Segment>, ResampleError> {
    let channels = clip.num_channels().max(1) as f32;
    let mono: Vec<f32> = (0..clip.num_frames()).map(|n| clip.channels.iter().map(|c| c[n]).sum::<f32>() / channels).collect();
    let mono = resample(&[mono], clip.sample_rate, MODEL_SAMPLE_RATE)?.remove(0);
    let len = (seconds * MODEL_SAMPLE_RATE as f64).round() as usize;
    let loud = |s: &[f32]| (s.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / s.len() as f64).sqrt() >= SILENCE_RMS;
    Ok(mono
        .chunks_exact(len.max(1))
        .enumerate()
        .filter(|(_, s)| loud(s))
        .take(limit.unwrap_or(usize::MAX))
        .map(|(k, s)| Segment { name: format!("{name}_{k:03}"), samples: s.to_vec() })
        .collect())
}

/// The row of the table that scores the degraded input itself, the bar to beat.
pub const DEGRADED_ROW: &str = "degraded";

/// One segment's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub segment: String,
    pub task: TaskKind,
    /// A method's name, or [`DEGRADED_ROW`].
    pub row: String,
    pub lsd: f64,
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

    /// Mean LSD and number of segments of one cell.
    pub fn mean(&self, row: &str, task: TaskKind) -> Option<(f64, usize)> {
        let values: Vec<f64> = self.scores.iter().filter(|s| s.row == row && s.task == task).map(|s| s.lsd).collect();
        (!values.is_empty()).then(|| (values.iter().sum::<f64>() / values.len() as f64, values.len()))
    }

    fn cells(&self) -> BTreeMap<(usize, usize), String> {
        let mut cells = BTreeMap::new();
        for (r, row) in self.rows.iter().enumerate() {
            for (c, &task) in self.tasks.iter().enumerate() {
                cells.insert((r, c), self.mean(row, task).map_or(String::new(), |(m, _)| format!("{m:.3}")));
            }
        }
        cells
    }

    /// The paper's layout in Markdown: mean LSD per method and task (lower is better).
    pub fn markdown(&self, title: &str) -> String {
        let cells = self.cells();
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

    /// The same table as CSV: `method,<task>,…` with mean LSDs (empty where not run).
    pub fn csv(&self) -> String {
        let cells = self.cells();
        let mut out = String::from("method");
        for task in &self.tasks {
            write!(out, ",{}", task.name()).unwrap();
        }
        for (r, row) in self.rows.iter().enumerate() {
            write!(out, "\n{row}").unwrap();
            for c in 0..self.tasks.len() {
                write!(out, ",{}", cells[&(r, c)]).unwrap();
            }
        }
        out.push('\n');
        out
    }

    /// Every segment's score as CSV: `segment,task,method,lsd`.
    pub fn scores_csv(&self) -> String {
        let mut out = String::from("segment,task,method,lsd\n");
        for s in &self.scores {
            writeln!(out, "{},{},{},{:.6}", s.segment, s.task.name(), s.row, s.lsd).unwrap();
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
        let segs = segments("song", &clip, 1.0, None).unwrap();
        let names: Vec<&str> = segs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["song_000", "song_002"]);
        assert!(segs.iter().all(|s| s.samples.len() == 16_000));
        // The ±0.2 offsets cancel in the downmix; the resampled sine remains.
        let mean: f32 = segs[0].samples[100..15_900].iter().sum::<f32>() / 15_800.0;
        assert!(mean.abs() < 0.01, "{mean}");
        assert_eq!(segments("song", &clip, 1.0, Some(1)).unwrap().len(), 1);
    }

    #[test]
    fn inpainting_gap_is_the_middle_fifth() {
        let Degradation::Inpaint { gaps } = degradation(TaskKind::Inpaint, 5.0, 0.8, 0) else { panic!() };
        assert_eq!(gaps, vec![Gap { start: 2.0, end: 3.0 }]);
        assert_eq!("superres".parse::<TaskKind>(), Ok(TaskKind::SuperResolution));
        assert!("reverb".parse::<TaskKind>().unwrap_err().contains("inpaint, superres, dereverb, phase"));
    }

    #[test]
    fn table_has_the_papers_layout_with_means() {
        let tasks = vec![TaskKind::Inpaint, TaskKind::Phase];
        let mut results = Results::new(vec![DEGRADED_ROW.into(), "dgg".into(), "dps".into()], tasks);
        let score = |segment: &str, task, row: &str, lsd| Score { segment: segment.into(), task, row: row.into(), lsd };
        results.add(score("a_000", TaskKind::Inpaint, "dgg", 0.5));
        results.add(score("a_001", TaskKind::Inpaint, "dgg", 0.75));
        results.add(score("a_000", TaskKind::Inpaint, DEGRADED_ROW, 2.0));
        results.add(score("a_000", TaskKind::Phase, "dps", 0.25));
        assert_eq!(results.mean("dgg", TaskKind::Inpaint), Some((0.625, 2)));
        assert_eq!(
            results.markdown("clips"),
            "| clips | Inpainting | Phase retr. |\n|---|---|---|\n| (degraded input) | 2.000 | – |\n| DGG | 0.625 | – |\n| DPS | – | 0.250 |\n"
        );
        assert_eq!(results.csv(), "method,inpaint,phase\ndegraded,2.000,\ndgg,0.625,\ndps,,0.250\n");
        assert_eq!(results.scores_csv().lines().count(), 5);
        assert!(results.scores_csv().contains("a_001,inpaint,dgg,0.750000"));
    }
}
