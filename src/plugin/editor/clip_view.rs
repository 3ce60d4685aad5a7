//! The clip view: the captured clip's waveform, its restoration's below it for A/B, and a
//! spectrogram, on one time axis. It is also where the user marks what to restore: dragging
//! over the waveform marks a gap (a right-click on a gap removes it), and for
//! super-resolution dragging on the spectrogram moves the cutoff line.

use egui::{pos2, vec2, Align2, Color32, FontId, Rect, Response, Sense, Stroke, TextureHandle, TextureOptions, Ui};
use std::sync::Arc;

use super::analysis::{spectrogram, Peaks};
use crate::plugin::capture::Take;
use crate::plugin::clips::Role;
use crate::plugin::settings::Marks;
use crate::restore::operators::TaskKind;

const WAVE_HEIGHT: f32 = 150.0;
const SPECTRUM_HEIGHT: f32 = 170.0;
const RULER_HEIGHT: f32 = 16.0;
/// Resolution the peaks and the spectrogram are computed at (the view scales them).
const COLUMNS: usize = 1_024;
const SPECTRUM_ROWS: usize = 256;
/// A drag shorter than this is a click, not a gap.
const MIN_GAP_SECONDS: f64 = 0.01;
/// The narrowest band a dragged region keeps.
const MIN_REGION_HZ: f64 = 50.0;

const ORIGINAL_COLOUR: Color32 = Color32::from_rgb(150, 156, 168);
const RESTORED_COLOUR: Color32 = Color32::from_rgb(64, 200, 180);
const GAP_COLOUR: Color32 = Color32::from_rgba_premultiplied(90, 24, 24, 90);
const GAP_EDGE: Color32 = Color32::from_rgb(230, 90, 80);
const CUTOFF_COLOUR: Color32 = Color32::from_rgb(255, 200, 60);

/// A clip as drawn: the clip it was computed from, its peaks and its spectrogram.
struct Drawn {
    take: Arc<Take>,
    peaks: Peaks,
    spectrogram: TextureHandle,
}

impl Drawn {
    fn of(ui: &Ui, take: &Arc<Take>, name: &str) -> Self {
        let image = spectrogram(&take.clip.channels, COLUMNS, SPECTRUM_ROWS);
        let spectrogram = ui.ctx().load_texture(name, image, TextureOptions::LINEAR);
        Self { take: take.clone(), peaks: Peaks::of(&take.clip.channels, COLUMNS), spectrogram }
    }

    /// This drawing if it is of `take`, else a new one.
    fn refresh(slot: &mut Option<Drawn>, ui: &Ui, take: Option<&Arc<Take>>, name: &str) {
        match take {
            Some(t) if slot.as_ref().is_some_and(|d| Arc::ptr_eq(&d.take, t)) => {}
            Some(t) => *slot = Some(Drawn::of(ui, t, name)),
            None => *slot = None,
        }
    }
}

/// Maps clip time to the view's x and back.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub left: f32,
    pub width: f32,
    pub seconds: f64,
}

impl TimeAxis {
    pub fn x(&self, t: f64) -> f32 {
        self.left + (t / self.seconds) as f32 * self.width
    }

    /// The time under `x`, inside the clip.
    pub fn t(&self, x: f32) -> f64 {
        (((x - self.left) / self.width) as f64 * self.seconds).clamp(0.0, self.seconds)
    }
}

/// Maps frequency to the spectrogram's y (0 Hz at the bottom, linear) and back.
#[derive(Debug, Clone, Copy)]
pub struct FrequencyAxis {
    pub bottom: f32,
    pub height: f32,
    pub nyquist: f64,
}

impl FrequencyAxis {
    pub fn y(&self, hz: f64) -> f32 {
        self.bottom - (hz / self.nyquist) as f32 * self.height
    }

    /// The frequency under `y`, rounded to 10 Hz, inside 100 Hz .. 98 % of Nyquist.
    pub fn hz(&self, y: f32) -> f64 {
        let hz = ((self.bottom - y) / self.height) as f64 * self.nyquist;
        (hz.clamp(100.0, 0.98 * self.nyquist) / 10.0).round() * 10.0
    }
}

#[derive(Default)]
pub struct ClipView {
    original: Option<Drawn>,
    restored: Option<Drawn>,
    /// Where the gap being dragged started, in seconds.
    drag_from: Option<f64>,
    /// Where the region being dragged on the spectrogram started: seconds and Hz.
    region_from: Option<(f64, f64)>,
}

impl ClipView {
    /// Draws `original` (with `restored` over it, and the spectrogram of the clip in
    /// `spectrum`) and lets the user edit the marks `task` uses. Returns whether the marks
    /// changed.
    pub fn show(&mut self, ui: &mut Ui, original: &Arc<Take>, restored: Option<&Arc<Take>>, spectrum: Role, task: TaskKind, marks: &mut Marks) -> bool {
        Drawn::refresh(&mut self.original, ui, Some(original), "dgg-original");
        Drawn::refresh(&mut self.restored, ui, restored, "dgg-restored");
        let width = ui.available_width();
        let seconds = original.len() as f64 / original.clip.sample_rate as f64;
        let mut changed = false;

        let (wave_rect, wave) = ui.allocate_exact_size(vec2(width, WAVE_HEIGHT), Sense::click_and_drag());
        let axis = TimeAxis { left: wave_rect.left(), width: wave_rect.width(), seconds };
        self.paint_waveforms(ui, wave_rect);
        if task == TaskKind::Inpaint {
            changed |= self.edit_gaps(&wave, axis, marks);
            paint_gaps(ui, wave_rect, axis, &marks.gaps, self.drag_preview(&wave, axis));
        }

        let (ruler_rect, _) = ui.allocate_exact_size(vec2(width, RULER_HEIGHT), Sense::hover());
        paint_ruler(ui, ruler_rect, axis);

        let (spec_rect, spec) = ui.allocate_exact_size(vec2(width, SPECTRUM_HEIGHT), Sense::click_and_drag());
        let shown = match spectrum {
            Role::Restored => self.restored.as_ref().or(self.original.as_ref()),
            Role::Original => self.original.as_ref(),
        };
        let freq = FrequencyAxis { bottom: spec_rect.bottom(), height: spec_rect.height(), nyquist: original.clip.sample_rate as f64 / 2.0 };
        if let Some(d) = shown {
            ui.painter().image(d.spectrogram.id(), spec_rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
            paint_frequencies(ui, spec_rect, freq);
        }
        if task == TaskKind::Inpaint {
            changed |= self.edit_regions(&spec, axis, freq, marks);
            paint_regions(ui, spec_rect, axis, freq, &marks.regions, self.region_preview(&spec, axis, freq));
            spec.clone().on_hover_text("Drag a rectangle over a sound to repair only it (spectral repair); right-click one to remove it");
        }
        if task == TaskKind::SuperResolution {
            if let Some(pos) = spec.interact_pointer_pos().filter(|_| spec.dragged() || spec.clicked()) {
                marks.cutoff_hz = Some(freq.hz(pos.y));
                changed = true;
            }
            if let Some(cutoff) = marks.cutoff_hz {
                paint_cutoff(ui, spec_rect, freq, cutoff);
            }
            spec.on_hover_text("Drag to set where the intact band ends: the highs above it are restored");
        }
        changed
    }

    /// The captured clip's waveform, and below it the restoration's once there is one.
    fn paint_waveforms(&self, ui: &Ui, rect: Rect) {
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, Color32::from_gray(24));
        let lanes: Vec<(&Drawn, Color32, &str)> =
            [(self.original.as_ref(), ORIGINAL_COLOUR, "captured"), (self.restored.as_ref(), RESTORED_COLOUR, "restored")]
                .into_iter()
                .filter_map(|(d, colour, name)| d.map(|d| (d, colour, name)))
                .collect();
        let height = rect.height() / lanes.len().max(1) as f32;
        for (k, (drawn, colour, name)) in lanes.iter().enumerate() {
            let lane = Rect::from_x_y_ranges(rect.x_range(), rect.top() + k as f32 * height..=rect.top() + (k + 1) as f32 * height);
            paint_peaks(&painter, lane, &drawn.peaks, *colour);
            painter.text(lane.left_top() + vec2(4.0, 2.0), Align2::LEFT_TOP, *name, FontId::proportional(11.0), colour.gamma_multiply(0.9));
            if k > 0 {
                painter.hline(rect.x_range(), lane.top(), Stroke::new(1.0, Color32::from_gray(60)));
            }
        }
    }

    /// Dragging marks a gap; a right-click removes the gap under the pointer.
    fn edit_gaps(&mut self, wave: &Response, axis: TimeAxis, marks: &mut Marks) -> bool {
        let at = |r: &Response| r.interact_pointer_pos().map(|p| axis.t(p.x));
        if wave.drag_started() {
            // From where the button went down, not where the drag was recognised.
            let origin = wave.ctx.input(|i| i.pointer.press_origin());
            self.drag_from = origin.map(|p| axis.t(p.x)).or_else(|| at(wave));
        }
        if wave.drag_stopped() {
            if let (Some(from), Some(to)) = (self.drag_from.take(), at(wave)) {
                if (to - from).abs() >= MIN_GAP_SECONDS {
                    marks.add_gap(from, to);
                    return true;
                }
            }
        }
        if wave.secondary_clicked() {
            return at(wave).is_some_and(|t| marks.remove_gap_at(t));
        }
        false
    }

    /// Dragging a rectangle on the spectrogram marks a region; a right-click removes the
    /// region under the pointer.
    fn edit_regions(&mut self, spec: &Response, axis: TimeAxis, freq: FrequencyAxis, marks: &mut Marks) -> bool {
        let at = |p: egui::Pos2| (axis.t(p.x), freq.hz(p.y));
        if spec.drag_started() {
            let origin = spec.ctx.input(|i| i.pointer.press_origin());
            self.region_from = origin.or_else(|| spec.interact_pointer_pos()).map(at);
        }
        if spec.drag_stopped() {
            if let (Some(from), Some(to)) = (self.region_from.take(), spec.interact_pointer_pos().map(at)) {
                if (to.0 - from.0).abs() >= MIN_GAP_SECONDS && (to.1 - from.1).abs() >= MIN_REGION_HZ {
                    marks.regions.push([from.0.min(to.0), from.0.max(to.0), from.1.min(to.1), from.1.max(to.1)]);
                    return true;
                }
            }
        }
        if spec.secondary_clicked() {
            if let Some((t, hz)) = spec.interact_pointer_pos().map(at) {
                let before = marks.regions.len();
                marks.regions.retain(|r| !((r[0]..=r[1]).contains(&t) && (r[2]..=r[3]).contains(&hz)));
                return marks.regions.len() != before;
            }
        }
        false
    }

    fn region_preview(&self, spec: &Response, axis: TimeAxis, freq: FrequencyAxis) -> Option<[f64; 4]> {
        let to = spec.interact_pointer_pos()?;
        let (t, hz) = (axis.t(to.x), freq.hz(to.y));
        self.region_from.filter(|_| spec.dragged()).map(|(t0, f0)| [t0.min(t), t0.max(t), f0.min(hz), f0.max(hz)])
    }

    fn drag_preview(&self, wave: &Response, axis: TimeAxis) -> Option<(f64, f64)> {
        let to = axis.t(wave.interact_pointer_pos()?.x);
        self.drag_from.filter(|_| wave.dragged()).map(|from| (from.min(to), from.max(to)))
    }
}

/// A waveform from its peaks, one vertical line per point of width.
fn paint_peaks(painter: &egui::Painter, rect: Rect, peaks: &Peaks, colour: Color32) {
    painter.hline(rect.x_range(), rect.center().y, Stroke::new(1.0, Color32::from_gray(45)));
    if peaks.is_empty() {
        return;
    }
    let half = rect.height() / 2.0 - 2.0;
    for px in 0..rect.width() as usize {
        let c = (px * peaks.len() / rect.width().max(1.0) as usize).min(peaks.len() - 1);
        let y = |v: f32| rect.center().y - v.clamp(-1.0, 1.0) * half;
        let (top, bottom) = (y(peaks.max[c]), y(peaks.min[c]));
        painter.vline(rect.left() + px as f32 + 0.5, top..=bottom.max(top + 1.0), Stroke::new(1.0, colour));
    }
}

fn paint_gaps(ui: &Ui, rect: Rect, axis: TimeAxis, gaps: &[(f64, f64)], dragging: Option<(f64, f64)>) {
    let painter = ui.painter_at(rect);
    for &(start, end) in gaps.iter().chain(&dragging) {
        let (left, right) = (axis.x(start), axis.x(end).max(axis.x(start) + 1.0));
        painter.rect_filled(Rect::from_x_y_ranges(left..=right, rect.y_range()), 0.0, GAP_COLOUR);
        for x in [left, right] {
            painter.vline(x, rect.y_range(), Stroke::new(1.0, GAP_EDGE));
        }
    }
}

/// The regions to repair, as rectangles over the spectrogram.
fn paint_regions(ui: &Ui, rect: Rect, axis: TimeAxis, freq: FrequencyAxis, regions: &[[f64; 4]], dragging: Option<[f64; 4]>) {
    let painter = ui.painter_at(rect);
    for &[start, end, low, high] in regions.iter().chain(&dragging) {
        let area = Rect::from_x_y_ranges(axis.x(start)..=axis.x(end), freq.y(high)..=freq.y(low));
        painter.rect_filled(area, 0.0, GAP_COLOUR);
        painter.rect_stroke(area, 0.0, Stroke::new(1.0, GAP_EDGE), egui::StrokeKind::Inside);
    }
}

/// Frequency labels along the spectrogram's right edge, every few kHz.
fn paint_frequencies(ui: &Ui, rect: Rect, freq: FrequencyAxis) {
    let painter = ui.painter_at(rect);
    let step_khz = [1.0, 2.0, 4.0, 5.0, 10.0, 20.0, 50.0].into_iter().find(|&s| freq.nyquist / 1_000.0 / s <= 6.0).unwrap_or(100.0);
    let colour = Color32::from_white_alpha(150);
    for k in 1..=(freq.nyquist / 1_000.0 / step_khz) as usize {
        let hz = k as f64 * step_khz * 1_000.0;
        let y = freq.y(hz);
        painter.hline(rect.left()..=rect.left() + 5.0, y, Stroke::new(1.0, colour));
        painter.text(pos2(rect.left() + 7.0, y), Align2::LEFT_CENTER, format!("{} kHz", k as f64 * step_khz), FontId::proportional(10.0), colour);
    }
}

fn paint_cutoff(ui: &Ui, rect: Rect, freq: FrequencyAxis, cutoff: f64) {
    let painter = ui.painter_at(rect);
    let y = freq.y(cutoff);
    painter.hline(rect.x_range(), y, Stroke::new(2.0, CUTOFF_COLOUR));
    painter.text(
        pos2(rect.right() - 6.0, y - 3.0),
        Align2::RIGHT_BOTTOM,
        format!("cutoff {:.1} kHz", cutoff / 1_000.0),
        FontId::proportional(12.0),
        CUTOFF_COLOUR,
    );
}

/// Seconds ticks at a step that leaves room for the labels.
fn paint_ruler(ui: &Ui, rect: Rect, axis: TimeAxis) {
    let painter = ui.painter_at(rect);
    let per_label = 60.0 / axis.width.max(1.0) as f64 * axis.seconds;
    let step = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0].into_iter().find(|&s| s >= per_label).unwrap_or(120.0);
    let colour = ui.visuals().weak_text_color();
    for k in 0..=(axis.seconds / step) as usize {
        let t = k as f64 * step;
        let x = axis.x(t);
        painter.vline(x, rect.top()..=rect.top() + 4.0, Stroke::new(1.0, colour));
        painter.text(
            pos2(x + 2.0, rect.top() + 2.0),
            Align2::LEFT_TOP,
            format!("{t:.2}").trim_end_matches('0').trim_end_matches('.').to_string() + " s",
            FontId::proportional(10.0),
            colour,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioClip;
    use egui::{Event, PointerButton, RawInput};

    #[test]
    fn the_axes_map_both_ways() {
        let axis = TimeAxis { left: 10.0, width: 400.0, seconds: 4.0 };
        assert_eq!(axis.x(1.0), 110.0);
        assert_eq!(axis.t(110.0), 1.0);
        assert_eq!((axis.t(0.0), axis.t(1_000.0)), (0.0, 4.0), "clamped to the clip");
        let freq = FrequencyAxis { bottom: 200.0, height: 100.0, nyquist: 24_000.0 };
        assert_eq!(freq.y(12_000.0), 150.0);
        assert_eq!(freq.hz(150.0), 12_000.0);
        assert_eq!(freq.hz(300.0), 100.0, "not below 100 Hz");
        assert_eq!(freq.hz(0.0), 23_520.0, "not at Nyquist");
    }

    /// Runs the view for one frame of `events` on a 1000-point-wide screen.
    fn frame(ctx: &egui::Context, view: &mut ClipView, take: &Arc<Take>, task: TaskKind, marks: &mut Marks, events: Vec<Event>) {
        let input = RawInput { screen_rect: Some(Rect::from_min_size(pos2(0.0, 0.0), vec2(1_000.0, 600.0))), events, ..RawInput::default() };
        let _ = ctx.run_ui(input, |ui| {
            egui::Frame::NONE.show(ui, |ui| {
                view.show(ui, take, None, Role::Original, task, marks);
            });
        });
    }

    fn press(at: egui::Pos2, button: PointerButton, pressed: bool) -> Event {
        Event::PointerButton { pos: at, button, pressed, modifiers: Default::default() }
    }

    #[test]
    fn dragging_over_the_waveform_marks_a_gap_and_a_right_click_removes_it() {
        let take = Arc::new(Take::new(AudioClip::new(1_000, vec![(0..10_000).map(|n| (n as f32 * 0.1).sin()).collect()]), 0));
        let ctx = egui::Context::default();
        let (mut view, mut marks) = (ClipView::default(), Marks::default());
        let run = |view: &mut ClipView, marks: &mut Marks, events| frame(&ctx, view, &take, TaskKind::Inpaint, marks, events);
        run(&mut view, &mut marks, vec![]);
        // The waveform spans the screen's width: 10 s over 1000 points.
        let y = 60.0;
        run(&mut view, &mut marks, vec![Event::PointerMoved(pos2(200.0, y)), press(pos2(200.0, y), PointerButton::Primary, true)]);
        for x in [230.0, 260.0, 300.0] {
            run(&mut view, &mut marks, vec![Event::PointerMoved(pos2(x, y))]);
        }
        run(&mut view, &mut marks, vec![press(pos2(300.0, y), PointerButton::Primary, false)]);
        run(&mut view, &mut marks, vec![]);
        assert_eq!(marks.gaps.len(), 1, "{:?}", marks.gaps);
        let (start, end) = marks.gaps[0];
        assert!((start - 2.0).abs() < 0.05 && (end - 3.0).abs() < 0.05, "{start}..{end}");

        run(&mut view, &mut marks, vec![Event::PointerMoved(pos2(250.0, y)), press(pos2(250.0, y), PointerButton::Secondary, true)]);
        run(&mut view, &mut marks, vec![press(pos2(250.0, y), PointerButton::Secondary, false)]);
        run(&mut view, &mut marks, vec![]);
        assert!(marks.gaps.is_empty(), "{:?}", marks.gaps);
    }

    /// For inpainting, a rectangle dragged on the spectrogram marks a region to repair; a
    /// right-click inside it removes it.
    #[test]
    fn dragging_a_rectangle_on_the_spectrogram_marks_a_region() {
        let take = Arc::new(Take::new(AudioClip::new(48_000, vec![vec![0.0; 480_000]]), 0));
        let ctx = egui::Context::default();
        let (mut view, mut marks) = (ClipView::default(), Marks::default());
        let run = |view: &mut ClipView, marks: &mut Marks, events| frame(&ctx, view, &take, TaskKind::Inpaint, marks, events);
        run(&mut view, &mut marks, vec![]);
        // 10 s over 1000 points; 24 kHz over the spectrogram's height.
        let top = WAVE_HEIGHT + RULER_HEIGHT + 2.0 * ctx.global_style().spacing.item_spacing.y;
        let y = |hz: f32| top + SPECTRUM_HEIGHT * (1.0 - hz / 24_000.0);
        let (from, to) = (pos2(200.0, y(6_000.0)), pos2(300.0, y(1_500.0)));
        run(&mut view, &mut marks, vec![Event::PointerMoved(from), press(from, PointerButton::Primary, true)]);
        for x in [230.0, 260.0, 300.0] {
            run(&mut view, &mut marks, vec![Event::PointerMoved(pos2(x, to.y))]);
        }
        run(&mut view, &mut marks, vec![press(to, PointerButton::Primary, false)]);
        run(&mut view, &mut marks, vec![]);
        assert_eq!(marks.regions.len(), 1, "{:?}", marks.regions);
        let [start, end, low, high] = marks.regions[0];
        assert!((start - 2.0).abs() < 0.05 && (end - 3.0).abs() < 0.05, "{start}..{end}");
        assert!((low - 1_500.0).abs() < 200.0 && (high - 6_000.0).abs() < 200.0, "{low}..{high} Hz");
        assert!(marks.gaps.is_empty(), "the spectrogram marks regions, not gaps");

        let inside = pos2(250.0, y(3_000.0));
        run(&mut view, &mut marks, vec![Event::PointerMoved(inside), press(inside, PointerButton::Secondary, true)]);
        run(&mut view, &mut marks, vec![press(inside, PointerButton::Secondary, false)]);
        run(&mut view, &mut marks, vec![]);
        assert!(marks.regions.is_empty(), "{:?}", marks.regions);
    }

    #[test]
    fn dragging_on_the_spectrogram_sets_the_cutoff_for_super_resolution() {
        let take = Arc::new(Take::new(AudioClip::new(48_000, vec![vec![0.0; 48_000]]), 0));
        let ctx = egui::Context::default();
        let (mut view, mut marks) = (ClipView::default(), Marks::default());
        frame(&ctx, &mut view, &take, TaskKind::SuperResolution, &mut marks, vec![]);
        // The spectrogram starts below the waveform and the ruler: 150 points for 24 kHz.
        let top = WAVE_HEIGHT + RULER_HEIGHT + 2.0 * ctx.global_style().spacing.item_spacing.y;
        let at = pos2(500.0, top + SPECTRUM_HEIGHT / 2.0);
        frame(&ctx, &mut view, &take, TaskKind::SuperResolution, &mut marks, vec![Event::PointerMoved(at), press(at, PointerButton::Primary, true)]);
        frame(&ctx, &mut view, &take, TaskKind::SuperResolution, &mut marks, vec![press(at, PointerButton::Primary, false)]);
        let cutoff = marks.cutoff_hz.expect("set by the click");
        assert!((cutoff - 12_000.0).abs() < 400.0, "{cutoff}");
    }
}
