//! What a restoration in the plugin is asked to do: the host parameters (task, method,
//! strength, steps) plus what the user marked on the clip, turned into an engine request.

use nice_plug::prelude::Enum;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::engine::RestoreRequest;
use crate::restore::guidance::ditto::DittoSettings;
use crate::restore::guidance::{Method, MethodKind};
use crate::restore::operators::{Degradation, Gap, ImpulseResponse, Region, TaskKind};
use crate::restore::sampler::SamplerSettings;

/// nice-plug's `Enum` for a kind with an `ALL` list, under the names the editor shows.
/// The index in `ALL` is the saved parameter's value: append kinds, never reorder them.
macro_rules! host_choices {
    ($kind:ty, $labels:expr) => {
        impl Enum for $kind {
            fn variants() -> &'static [&'static str] {
                &$labels
            }

            fn ids() -> Option<&'static [&'static str]> {
                None
            }

            fn to_index(self) -> usize {
                Self::ALL.iter().position(|&k| k == self).expect("every kind is in ALL")
            }

            fn from_index(index: usize) -> Self {
                Self::ALL.get(index).copied().unwrap_or(Self::ALL[0])
            }
        }
    };
}

// The plugin's *Task* and *Method* parameters.
host_choices!(TaskKind, ["Fill gaps", "Restore highs", "Remove reverb", "Rebuild phase", "Repair clipping"]);
host_choices!(MethodKind, ["DGG", "DPS", "MPGD", "DSG", "DITTO (slow)", "DDIM (unguided)"]);

/// What the user still has to mark on the clip before the task can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unmarked {
    #[error("drag over the gaps to fill first (or a rectangle on the spectrogram, to repair only a region)")]
    Gaps,
    #[error("gaps and regions are both marked: clear one kind, a restoration fills gaps or repairs regions")]
    GapsAndRegions,
    #[error("set the cutoff line where the highs end first")]
    Cutoff,
    #[error("no clip level found: the loudest samples do not pile up at one level; set the level the take was clipped at")]
    ClipLevel,
}

/// Reads a settings lock. The plugin's one way with a poisoned lock: use the value, since
/// every write leaves the settings whole and a panic elsewhere must not lose them.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes a settings lock, as [`read`] does.
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// What the user marked on the captured clip and the settings that are not automatable;
/// saved with the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Marks {
    /// Inpainting: gaps as (start, end) in seconds from the clip's start.
    pub gaps: Vec<(f64, f64)>,
    /// Spectral repair: regions as [start, end] in seconds and [low, high] in Hz.
    pub regions: Vec<[f64; 4]>,
    /// Super-resolution: the band below this is intact (proposed from the spectrum).
    pub cutoff_hz: Option<f64>,
    /// Dereverberation: reverberation time of the room to remove.
    pub rt60: f64,
    /// Declipping: the level the take was clipped at (proposed from its samples).
    pub clip_level: Option<f64>,
    /// Gap fills and super-resolution: synthesise the band above the prior's reach from
    /// the audio around it ([`RestoreRequest::full_band`]).
    pub full_band: bool,
    pub seed: u64,
    /// Text prompt for the prior (empty: none, as the paper).
    pub prompt: String,
}

impl Default for Marks {
    fn default() -> Self {
        Self { gaps: Vec::new(), regions: Vec::new(), cutoff_hz: None, rt60: 0.8, clip_level: None, full_band: true, seed: 0, prompt: String::new() }
    }
}

/// Settings of the plugin itself rather than of a restoration; saved with the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// The longest take; its buffer is reserved off the audio thread.
    pub max_capture_seconds: f32,
    /// The model directory the user chose (looked at before the default places).
    pub model_dir: Option<PathBuf>,
}

impl Preferences {
    pub const MAX_CAPTURE_RANGE: std::ops::RangeInclusive<f32> = 1.0..=600.0;
}

impl Default for Preferences {
    fn default() -> Self {
        Self { max_capture_seconds: 60.0, model_dir: None }
    }
}

/// The host-parameter side of a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choices {
    pub task: TaskKind,
    pub method: MethodKind,
    /// A multiple of the method's paper strength (1 = the paper's).
    pub strength: f64,
    pub steps: usize,
}

impl Marks {
    /// Marks the gap between `a` and `b` (seconds, either order), merged with the gaps it
    /// overlaps or touches; the gaps stay sorted.
    pub fn add_gap(&mut self, a: f64, b: f64) {
        let (mut start, mut end) = (a.min(b), a.max(b));
        self.gaps.retain(|&(s, e)| {
            let apart = e < start || s > end;
            if !apart {
                (start, end) = (start.min(s), end.max(e));
            }
            apart
        });
        let at = self.gaps.partition_point(|&(s, _)| s < start);
        self.gaps.insert(at, (start, end));
    }

    /// Removes the gap that holds time `t`; returns whether there was one.
    pub fn remove_gap_at(&mut self, t: f64) -> bool {
        let before = self.gaps.len();
        self.gaps.retain(|&(s, e)| !(s..=e).contains(&t));
        self.gaps.len() != before
    }

    /// The engine request for `choices`, or what the user still has to mark.
    pub fn request(&self, choices: Choices) -> Result<RestoreRequest, Unmarked> {
        let degradation = match choices.task {
            TaskKind::Inpaint if !self.regions.is_empty() && !self.gaps.is_empty() => return Err(Unmarked::GapsAndRegions),
            TaskKind::Inpaint if !self.regions.is_empty() => Degradation::SpectralRepair {
                regions: self.regions.iter().map(|&[start, end, low_hz, high_hz]| Region { start, end, low_hz, high_hz }).collect(),
            },
            TaskKind::Inpaint if self.gaps.is_empty() => return Err(Unmarked::Gaps),
            TaskKind::Inpaint => Degradation::Inpaint { gaps: self.gaps.iter().map(|&(start, end)| Gap { start, end }).collect() },
            TaskKind::SuperResolution => match self.cutoff_hz {
                Some(cutoff_hz) => Degradation::SuperResolution { cutoff_hz },
                None => return Err(Unmarked::Cutoff),
            },
            TaskKind::Dereverb => Degradation::Dereverb { response: ImpulseResponse::Synthetic { rt60: self.rt60, seed: self.seed } },
            TaskKind::Phase => Degradation::PHASE_RETRIEVAL,
            TaskKind::Declip => Degradation::Declip { level: self.clip_level.ok_or(Unmarked::ClipLevel)? },
        };
        let kind = choices.method;
        let method = match kind.with_strength(Some(kind.default_strength() * choices.strength)) {
            Method::Ditto(d) => Method::Ditto(DittoSettings { chain_steps: choices.steps.min(d.chain_steps), ..d }),
            other => other,
        };
        let mut request = RestoreRequest::new(degradation, SamplerSettings::new(method, choices.steps.max(1), self.seed));
        request.full_band = self.full_band;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The saved *Task* and *Method* values are indexes into these lists: the names and
    /// their order stay as they were when the parameters had their own enums.
    #[test]
    fn the_parameters_choices_keep_their_names_and_order() {
        let names = |variants: &[&str]| variants.join(", ");
        assert_eq!(names(TaskKind::variants()), "Fill gaps, Restore highs, Remove reverb, Rebuild phase, Repair clipping");
        assert_eq!(names(MethodKind::variants()), "DGG, DPS, MPGD, DSG, DITTO (slow), DDIM (unguided)");
        for (i, task) in TaskKind::ALL.into_iter().enumerate() {
            assert_eq!((task.to_index(), TaskKind::from_index(i)), (i, task));
        }
        for (i, method) in MethodKind::ALL.into_iter().enumerate() {
            assert_eq!((method.to_index(), MethodKind::from_index(i)), (i, method));
        }
        assert_eq!((TaskKind::from_index(99), MethodKind::from_index(99)), (TaskKind::Inpaint, MethodKind::Dgg));
    }

    fn choices(task: TaskKind, method: MethodKind, strength: f64) -> Choices {
        Choices { task, method, strength, steps: 50 }
    }

    #[test]
    fn marks_and_choices_make_the_engine_request() {
        let marks = Marks { gaps: vec![(1.0, 1.5)], cutoff_hz: Some(4_000.0), seed: 9, ..Marks::default() };
        let r = marks.request(choices(TaskKind::Inpaint, MethodKind::Dgg, 2.0)).unwrap();
        assert_eq!(r.degradation, Degradation::Inpaint { gaps: vec![Gap { start: 1.0, end: 1.5 }] });
        assert_eq!(r.sampler.method, Method::Dgg { strength: 0.16 });
        assert_eq!((r.sampler.steps, r.sampler.seed), (50, 9));
        let r = marks.request(choices(TaskKind::SuperResolution, MethodKind::Dps, 1.0)).unwrap();
        assert_eq!(r.degradation, Degradation::SuperResolution { cutoff_hz: 4_000.0 });
        assert_eq!(r.sampler.method, MethodKind::Dps.with_strength(None));
        let r = marks.request(choices(TaskKind::Dereverb, MethodKind::Ditto, 1.0)).unwrap();
        assert_eq!(r.degradation, Degradation::Dereverb { response: ImpulseResponse::Synthetic { rt60: 0.8, seed: 9 } });
        assert!(matches!(r.sampler.method, Method::Ditto(d) if d.chain_steps == 20));
        assert!(r.full_band, "the band above the prior is extended unless switched off");
        let dull = Marks { full_band: false, ..marks };
        assert!(!dull.request(choices(TaskKind::Inpaint, MethodKind::Dgg, 1.0)).unwrap().full_band);
    }

    #[test]
    fn missing_marks_say_what_to_do() {
        let none = Marks::default();
        assert_eq!(none.request(choices(TaskKind::Inpaint, MethodKind::Dgg, 1.0)).unwrap_err(), Unmarked::Gaps);
        assert_eq!(none.request(choices(TaskKind::SuperResolution, MethodKind::Dgg, 1.0)).unwrap_err(), Unmarked::Cutoff);
        assert_eq!(none.request(choices(TaskKind::Declip, MethodKind::Dgg, 1.0)).unwrap_err(), Unmarked::ClipLevel);
        let regions = Marks { regions: vec![[1.0, 1.5, 500.0, 2_000.0]], ..Marks::default() };
        let expected = Degradation::SpectralRepair { regions: vec![Region { start: 1.0, end: 1.5, low_hz: 500.0, high_hz: 2_000.0 }] };
        assert_eq!(regions.request(choices(TaskKind::Inpaint, MethodKind::Dgg, 1.0)).unwrap().degradation, expected);
        let both = Marks { gaps: vec![(0.1, 0.2)], ..regions };
        assert_eq!(both.request(choices(TaskKind::Inpaint, MethodKind::Dgg, 1.0)).unwrap_err(), Unmarked::GapsAndRegions);
        let clipped = Marks { clip_level: Some(0.5), ..Marks::default() };
        assert_eq!(clipped.request(choices(TaskKind::Declip, MethodKind::Dgg, 1.0)).unwrap().degradation, Degradation::Declip { level: 0.5 });
        assert!(none.request(choices(TaskKind::Phase, MethodKind::Dgg, 1.0)).is_ok());
    }

    #[test]
    fn gaps_merge_stay_sorted_and_are_removed_by_a_time_inside() {
        let mut marks = Marks::default();
        marks.add_gap(3.0, 2.0);
        marks.add_gap(0.5, 1.0);
        marks.add_gap(4.0, 4.5);
        assert_eq!(marks.gaps, [(0.5, 1.0), (2.0, 3.0), (4.0, 4.5)]);
        marks.add_gap(2.5, 4.2);
        assert_eq!(marks.gaps, [(0.5, 1.0), (2.0, 4.5)], "overlapping gaps merge");
        marks.add_gap(1.0, 1.25);
        assert_eq!(marks.gaps, [(0.5, 1.25), (2.0, 4.5)], "touching gaps merge");
        assert!(marks.remove_gap_at(3.0));
        assert!(!marks.remove_gap_at(1.5));
        assert_eq!(marks.gaps, [(0.5, 1.25)]);
    }

    #[test]
    fn older_saved_marks_load_with_defaults() {
        let marks: Marks = serde_json::from_str(r#"{"gaps":[[0.5,0.75]]}"#).unwrap();
        assert_eq!(marks, Marks { gaps: vec![(0.5, 0.75)], ..Marks::default() });
        assert!(marks.full_band, "projects saved before the switch keep the extension on");
        // Regions, a clip level and the band switch are saved and loaded like the rest.
        let marked = Marks { regions: vec![[1.0, 1.5, 500.0, 2_000.0]], clip_level: Some(0.7), full_band: false, ..Marks::default() };
        assert_eq!(serde_json::from_str::<Marks>(&serde_json::to_string(&marked).unwrap()).unwrap(), marked);
    }
}
