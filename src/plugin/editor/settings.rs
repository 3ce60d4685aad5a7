//! The settings panel: task, method, strength, steps, what the task needs marked, seed
//! and prompt; the host parameters among them are set through the host.

use egui::{RichText, Ui};
use nice_plug::prelude::{Enum, EnumParam, Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;
use std::sync::Arc;

use super::{set, DggEditor};
use crate::dsp::bandwidth::detect_cutoff;
use crate::dsp::clipping::detect_clip_level;
use crate::plugin::capture::Take;
use crate::restore::operators::TaskKind;

impl DggEditor {
    pub(super) fn settings(&mut self, ui: &mut Ui, setter: &ParamSetter, original: Option<&Arc<Take>>) {
        let params = self.params.clone();
        egui::Grid::new("settings").num_columns(4).spacing([12.0, 6.0]).show(ui, |ui| {
            ui.label("Task");
            enum_buttons(ui, setter, &params.task);
            ui.label("Listen");
            enum_buttons(ui, setter, &params.listen);
            ui.end_row();

            ui.label("Method");
            enum_combo(ui, setter, &params.method);
            ui.label("Mix");
            ui.add(ParamSlider::for_param(&params.mix, setter));
            ui.end_row();

            ui.label("Guidance strength");
            ui.horizontal(|ui| {
                ui.add(ParamSlider::for_param(&params.strength, setter));
                let kind = params.method.value();
                let value = kind.default_strength() * params.strength.value() as f64;
                ui.label(RichText::new(format!("{} strength {value:.4}", kind.name().to_uppercase())).weak()).on_hover_text(
                    "A multiple of the method's value in the paper (DGG: γ = 0.08). Stronger follows the recording more closely; weaker leans on the prior.",
                );
            });
            ui.label("Steps");
            ui.add(ParamSlider::for_param(&params.steps, setter));
            ui.end_row();

            ui.label(task_marks_label(params.task.value()));
            self.task_marks(ui, params.task.value(), original);
            ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.marks().seed).speed(1.0));
            ui.end_row();

            ui.label("Prompt");
            ui.add(egui::TextEdit::singleline(&mut self.marks().prompt).hint_text("optional, e.g. \"solo piano\"").desired_width(260.0));
            ui.end_row();
        });
    }

    /// What the task needs marked on the clip.
    pub(super) fn task_marks(&mut self, ui: &mut Ui, task: TaskKind, original: Option<&Arc<Take>>) {
        let mut marks = self.marks();
        ui.horizontal(|ui| match task {
            TaskKind::Inpaint => {
                let total: f64 = marks.gaps.iter().map(|(s, e)| e - s).sum();
                ui.label(format!("{} marked, {total:.2} s", plural(marks.gaps.len(), "gap")))
                    .on_hover_text("Drag over the waveform to mark a gap; right-click a gap to remove it");
                if ui.add_enabled(!marks.gaps.is_empty(), egui::Button::new("Clear")).clicked() {
                    marks.gaps.clear();
                }
                full_band(ui, &mut marks.full_band);
            }
            TaskKind::SuperResolution => {
                match marks.cutoff_hz {
                    Some(hz) => ui.label(format!("{:.2} kHz", hz / 1_000.0)),
                    None => ui.label("not set"),
                }
                .on_hover_text("Drag on the spectrogram to move the cutoff line");
                if let Some(o) = original {
                    if ui.button("Detect").on_hover_text("Find where the captured spectrum ends").clicked() {
                        marks.cutoff_hz = detect_cutoff(&o.clip.channels, o.clip.sample_rate).or(marks.cutoff_hz);
                    }
                }
                full_band(ui, &mut marks.full_band);
            }
            TaskKind::Dereverb => {
                ui.add(egui::DragValue::new(&mut marks.rt60).range(0.1..=5.0).speed(0.01).suffix(" s RT60"))
                    .on_hover_text("Reverberation time of the room to remove");
            }
            TaskKind::Phase => {
                ui.label(RichText::new("nothing to mark: the phase is rebuilt from the magnitude").weak());
            }
            TaskKind::Declip => {
                match marks.clip_level {
                    Some(level) => ui.add(egui::DragValue::new(marks.clip_level.get_or_insert(level)).range(0.001..=1.0).speed(0.001)),
                    None => ui.label("not found"),
                }
                .on_hover_text("The level the loudest samples were clipped at; samples at it are restored, the others kept");
                if let Some(o) = original {
                    if ui.button("Detect").on_hover_text("Find the level the captured samples pile up at").clicked() {
                        marks.clip_level = detect_clip_level(&o.clip.channels).or(marks.clip_level);
                    }
                }
            }
        });
    }
}

/// The switch for the band above the prior's 8 kHz.
fn full_band(ui: &mut Ui, on: &mut bool) {
    ui.checkbox(on, "Full band").on_hover_text(
        "The prior hears up to 8 kHz. On: the band above is rebuilt from the audio around the gap, or continued from the spectrum below the cutoff. Off: it stays as the prior leaves it.",
    );
}

fn task_marks_label(task: TaskKind) -> &'static str {
    match task {
        TaskKind::Inpaint => "Gaps",
        TaskKind::SuperResolution => "Cutoff",
        TaskKind::Dereverb => "Room",
        TaskKind::Phase => "Marks",
        TaskKind::Declip => "Clip level",
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A row of buttons, one per value of an enum parameter.
fn enum_buttons<T: Enum + PartialEq + Copy + 'static>(ui: &mut Ui, setter: &ParamSetter, param: &EnumParam<T>) {
    ui.horizontal(|ui| enum_choices(ui, setter, param));
}

/// A drop-down of the values of an enum parameter.
fn enum_combo<T: Enum + PartialEq + Copy + 'static>(ui: &mut Ui, setter: &ParamSetter, param: &EnumParam<T>) {
    let current = T::variants()[param.value().to_index()];
    egui::ComboBox::from_id_salt(param.name()).selected_text(current).show_ui(ui, |ui| enum_choices(ui, setter, param));
}

/// One selectable label per value of an enum parameter; a click sets it.
fn enum_choices<T: Enum + PartialEq + Copy + 'static>(ui: &mut Ui, setter: &ParamSetter, param: &EnumParam<T>) {
    let current = param.value().to_index();
    for (i, name) in T::variants().iter().enumerate() {
        if ui.selectable_label(current == i, *name).clicked() && current != i {
            set(setter, param, T::from_index(i));
        }
    }
}
