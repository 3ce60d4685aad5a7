//! The clips the plugin holds — the captured take and, later, its restoration — and how
//! they travel between the audio thread and the rest.
//!
//! The [`ClipStore`] is the plugin's record of them: what the editor and the worker read and
//! what is saved with the project. The audio thread never touches it. It owns a [`Deck`]
//! instead, and the two sides exchange clips through lock-free [`Mailboxes`]: finished
//! takes go out, empty record buffers and clips to play come in, and clips the deck lets go
//! of go back out to be freed, so the audio thread neither allocates, frees nor locks.

use crossbeam::queue::ArrayQueue;
use nice_plug::params::persist::PersistentField;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use super::capture::{Recorder, Take, TakeEnd};
use super::playback;
use crate::audio::{resample, AudioClip};

/// `take` at the host's `rate`: the same clip if it was recorded at that rate, else a
/// resampled copy whose start is moved to the same time. A take that cannot be resampled
/// (a rate outside 8–384 kHz) is kept as it is rather than lost.
pub fn at_rate(take: Arc<Take>, rate: f32) -> Arc<Take> {
    let (from, to) = (take.clip.sample_rate, rate.round() as u32);
    if from == to {
        return take;
    }
    match resample(&take.clip.channels, from, to) {
        Ok(channels) => {
            let start = (take.start as f64 * f64::from(to) / f64::from(from)).round() as i64;
            Arc::new(Take::new(AudioClip::new(to, channels), start))
        }
        Err(_) => take,
    }
}

/// What the recorder is doing, for the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecorderState {
    /// The Capture switch is off (as the audio thread last saw it).
    Idle,
    /// Waiting for the transport to play.
    Armed,
    Recording,
    /// The switch is still on, but its take is done.
    Finished,
}

/// Which of the plugin's clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The take captured from the track.
    Original,
    /// Its restoration, at the same place on the timeline.
    Restored,
}

/// The clips as the rest of the plugin sees them; saved with the project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClipStore {
    /// The last take captured from the track.
    pub original: Option<Arc<Take>>,
    /// The restoration of `original` (a new capture clears it).
    #[serde(default)]
    pub restored: Option<Arc<Take>>,
}

impl ClipStore {
    pub fn get(&self, role: Role) -> Option<&Arc<Take>> {
        match role {
            Role::Original => self.original.as_ref(),
            Role::Restored => self.restored.as_ref(),
        }
    }
}

/// The non-realtime side of the clips: the [`ClipStore`] (a persistent field of the plugin
/// state, shared as `Arc<Clips>` with the restorer) and the mailboxes to the audio thread's
/// [`Deck`].
#[derive(Default)]
pub struct Clips {
    store: RwLock<ClipStore>,
    mail: Mailboxes,
    /// The host rate the deck plays at (f32 bits; 0 before the first activation).
    deck_rate: AtomicU32,
    /// The shape of the record buffers: channels and frames (the longest take).
    buffer_shape: (AtomicUsize, AtomicUsize),
}

impl Clips {
    pub fn with_store(store: ClipStore) -> Self {
        Self { store: RwLock::new(store), ..Self::default() }
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, ClipStore> {
        self.store.read()
    }

    pub fn mail(&self) -> &Mailboxes {
        &self.mail
    }

    /// Off the audio thread, when the plugin is activated: the deck plays at `rate` from now.
    pub fn set_deck_rate(&self, rate: f32) {
        self.deck_rate.store(rate.to_bits(), Ordering::Release);
    }

    /// Off the audio thread: a new empty record buffer of `channels` × `frames`, and the
    /// shape of those lent after each take. Sent to the deck, which swaps it in unless it is
    /// recording (then the next take gets it).
    pub fn reserve_capture(&self, channels: usize, frames: usize) -> Take {
        self.buffer_shape.0.store(channels, Ordering::Release);
        self.buffer_shape.1.store(frames, Ordering::Release);
        Take::with_capacity(channels, frames)
    }

    /// Off the audio thread, when the longest take is changed to `seconds`: lends the deck
    /// a buffer of that length for the next take (once the plugin was activated).
    pub fn resize_capture(&self, seconds: f32) {
        let channels = self.buffer_shape.0.load(Ordering::Acquire);
        let rate = f32::from_bits(self.deck_rate.load(Ordering::Acquire));
        if channels > 0 && rate > 0.0 {
            let buffer = self.reserve_capture(channels, (seconds * rate) as usize);
            // A full queue holds a buffer already: the next collect lends one of the new shape.
            let _ = self.mail.buffers.force_push(buffer);
        }
    }

    /// A clip, brought to the deck's rate.
    pub fn for_deck(&self, role: Role) -> Option<Arc<Take>> {
        let rate = f32::from_bits(self.deck_rate.load(Ordering::Acquire));
        self.store.read().get(role).cloned().map(|take| if rate > 0.0 { at_rate(take, rate) } else { take })
    }

    /// Off the audio thread: files `restored` as the restoration of `original` and sends it
    /// to the deck, if `original` is still the captured take (checked, filed and sent in one
    /// step, so a take filed meanwhile never gets another take's restoration). Returns
    /// whether it was filed.
    pub fn file_restored(&self, original: &Arc<Take>, restored: Take) -> bool {
        let restored = Arc::new(restored);
        let rate = f32::from_bits(self.deck_rate.load(Ordering::Acquire));
        let for_deck = if rate > 0.0 { at_rate(restored.clone(), rate) } else { restored.clone() };
        let mut store = self.store.write();
        if !store.original.as_ref().is_some_and(|o| Arc::ptr_eq(o, original)) {
            return false;
        }
        store.restored = Some(restored);
        self.mail.send(Role::Restored, Some(for_deck));
        true
    }

    /// Off the audio thread: `take` becomes the original (a file the user imported), with
    /// no restoration yet; the deck plays it from the next block.
    pub fn set_original(&self, take: Take) {
        let take = Arc::new(take);
        let mut store = self.store.write();
        store.original = Some(take.clone());
        store.restored = None;
        let rate = f32::from_bits(self.deck_rate.load(Ordering::Acquire));
        self.mail.send(Role::Original, Some(if rate > 0.0 { at_rate(take, rate) } else { take }));
        self.mail.send(Role::Restored, None);
    }

    /// Where the host's playhead last was, on the timeline at the deck's rate (samples, and
    /// the rate), once a block was placed.
    pub fn playhead(&self) -> Option<(i64, f32)> {
        let (pos, rate) = (self.mail.playhead.load(Ordering::Acquire), f32::from_bits(self.deck_rate.load(Ordering::Acquire)));
        (pos != NO_PLAYHEAD && rate > 0.0).then_some((pos, rate))
    }

    /// Off the audio thread: frees what the deck let go of.
    pub fn free_retired(&self) {
        while self.mail.retired.pop().is_some() {}
    }

    /// Off the audio thread: files the takes the deck finished (see [`Mailboxes::collect`]).
    pub fn collect(&self) -> bool {
        let shape = (self.buffer_shape.0.load(Ordering::Acquire), self.buffer_shape.1.load(Ordering::Acquire));
        self.mail.collect(&mut self.store.write(), shape)
    }
}

/// A state load replaces the store on the main thread without re-activating the plugin, so
/// the new clips go straight to the deck from here.
impl<'a> PersistentField<'a, ClipStore> for Clips {
    fn set(&self, new_value: ClipStore) {
        *self.store.write() = new_value;
        for role in [Role::Original, Role::Restored] {
            self.mail.send(role, self.for_deck(role));
        }
        self.mail.reloaded.store(true, Ordering::Release);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&ClipStore) -> R,
    {
        f(&self.store.read())
    }
}

impl<'a> PersistentField<'a, ClipStore> for Arc<Clips> {
    fn set(&self, new_value: ClipStore) {
        self.as_ref().set(new_value);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&ClipStore) -> R,
    {
        self.as_ref().map(f)
    }
}

/// The queues between the audio thread and the housekeeping side. Fixed capacity: pushing
/// into a full queue fails rather than allocates.
pub struct Mailboxes {
    finished: ArrayQueue<Take>,
    buffers: ArrayQueue<Take>,
    clips: ArrayQueue<(Role, Option<Arc<Take>>)>,
    retired: ArrayQueue<Retired>,
    /// A restoration of the current original is being made: an offline bounce waits for it.
    restoring: AtomicBool,
    /// A state was loaded since the audio thread last asked.
    reloaded: AtomicBool,
    /// The recorder's [`RecorderState`] after the last block.
    recorder: AtomicU8,
    /// The timeline position of the last block the host placed ([`NO_PLAYHEAD`] before).
    playhead: AtomicI64,
}

const NO_PLAYHEAD: i64 = i64::MIN;

/// Something the audio thread let go of, held only to be dropped off the audio thread.
#[allow(dead_code, reason = "held only to be dropped off the audio thread")]
enum Retired {
    Clip(Arc<Take>),
    Buffer(Take),
}

impl Default for Mailboxes {
    fn default() -> Self {
        Self {
            finished: ArrayQueue::new(2),
            buffers: ArrayQueue::new(2),
            clips: ArrayQueue::new(8),
            retired: ArrayQueue::new(32),
            restoring: AtomicBool::new(false),
            reloaded: AtomicBool::new(false),
            recorder: AtomicU8::new(0),
            playhead: AtomicI64::new(NO_PLAYHEAD),
        }
    }
}

impl Mailboxes {
    /// Off the audio thread: files a finished take in `store`, sends it to the deck to play
    /// and lends the recorder a fresh buffer of `(channels, frames)` (the take's own shape
    /// if none was reserved); frees what the deck let go of. Returns whether a take was filed.
    fn collect(&self, store: &mut ClipStore, (channels, frames): (usize, usize)) -> bool {
        let mut filed = false;
        while let Some(take) = self.finished.pop() {
            let shape = match channels {
                0 => (take.clip.num_channels(), take.clip.channels.first().map_or(0, Vec::capacity)),
                _ => (channels, frames),
            };
            let _ = self.buffers.push(Take::with_capacity(shape.0, shape.1));
            let take = Arc::new(take);
            store.original = Some(take.clone());
            store.restored = None;
            self.send(Role::Original, Some(take));
            self.send(Role::Restored, None);
            filed = true;
        }
        while self.retired.pop().is_some() {}
        filed
    }

    /// Off the audio thread: tells the deck to play `clip` in `role`.
    pub fn send(&self, role: Role, clip: Option<Arc<Take>>) {
        // The deck drains this queue every block; a full queue means it is not processing,
        // and the deck is rebuilt from the store on the next activation anyway.
        let _ = self.clips.force_push((role, clip));
    }

    /// Whether a restoration of the current original is under way (set by the restorer,
    /// cleared after its result was sent).
    pub fn is_restoring(&self) -> bool {
        self.restoring.load(Ordering::Acquire)
    }

    pub fn set_restoring(&self, restoring: bool) {
        self.restoring.store(restoring, Ordering::Release);
    }

    /// What the recorder was doing after the last block.
    pub fn recorder_state(&self) -> RecorderState {
        match self.recorder.load(Ordering::Acquire) {
            1 => RecorderState::Armed,
            2 => RecorderState::Recording,
            3 => RecorderState::Finished,
            _ => RecorderState::Idle,
        }
    }

    /// Whether a state was loaded since the last call: the switches it holds were saved,
    /// not switched, and start nothing.
    pub fn take_reloaded(&self) -> bool {
        self.reloaded.swap(false, Ordering::AcqRel)
    }
}

/// The audio thread's side: the recorder and the clips it plays.
pub struct Deck {
    recorder: Recorder,
    /// A finished take the mailbox had no room for yet.
    unsent: Option<Take>,
    /// Whether a take went into the mailbox since [`Deck::take_posted`] was last asked.
    posted: bool,
    /// Armed since the last disarm (the Capture switch is on, as this deck saw it).
    switched_on: bool,
    original: Option<Arc<Take>>,
    restored: Option<Arc<Take>>,
}

impl Deck {
    /// Off the audio thread: a deck recording into `buffer` (its capacity is the longest
    /// take; see [`Clips::reserve_capture`]), playing `original` and `restored`.
    pub fn new(buffer: Take, original: Option<Arc<Take>>, restored: Option<Arc<Take>>) -> Self {
        let mut recorder = Recorder::default();
        recorder.lend(buffer);
        Self { recorder, unsent: None, posted: false, switched_on: false, original, restored }
    }

    /// Record the next playing stretch of the timeline.
    pub fn arm(&mut self) {
        self.recorder.arm();
        self.switched_on = true;
    }

    /// Stop waiting, or end the take in progress (posted to `mail`).
    pub fn disarm(&mut self, mail: &Mailboxes) -> Option<TakeEnd> {
        let end = self.recorder.disarm();
        self.switched_on = false;
        self.post(mail);
        end
    }

    pub fn is_armed(&self) -> bool {
        self.recorder.is_armed()
    }

    pub fn is_recording(&self) -> bool {
        self.recorder.is_recording()
    }

    /// Whether a finished take went into the mailbox since the last call: time to collect.
    pub fn take_posted(&mut self) -> bool {
        std::mem::take(&mut self.posted)
    }

    /// Posts a finished take to `mail`, and what the recorder is doing now.
    fn post(&mut self, mail: &Mailboxes) {
        if let Some(take) = self.unsent.take().or_else(|| self.recorder.finished()) {
            self.unsent = mail.finished.push(take).err();
            self.posted |= self.unsent.is_none();
        }
        let state = match (self.recorder.is_armed(), self.recorder.is_recording(), self.switched_on) {
            (true, _, _) => RecorderState::Armed,
            (_, true, _) => RecorderState::Recording,
            (_, _, true) => RecorderState::Finished,
            _ => RecorderState::Idle,
        };
        mail.recorder.store(state as u8, Ordering::Release);
    }

    /// Takes in what the mailboxes hold for the audio thread. What it replaces goes out to
    /// be freed elsewhere, so while that queue is full (housekeeping is behind) the rest
    /// waits in the mailboxes rather than be freed here.
    pub fn receive(&mut self, mail: &Mailboxes) {
        while !mail.retired.is_full() {
            let Some(buffer) = mail.buffers.pop() else { break };
            if let Some(spare) = self.recorder.lend(buffer) {
                let _ = mail.retired.push(Retired::Buffer(spare));
            }
        }
        while !mail.retired.is_full() {
            let Some((role, clip)) = mail.clips.pop() else { break };
            let slot = match role {
                Role::Original => &mut self.original,
                Role::Restored => &mut self.restored,
            };
            if let Some(old) = std::mem::replace(slot, clip) {
                let _ = mail.retired.push(Retired::Clip(old));
            }
        }
    }

    /// Records a block (see [`Recorder::process`]); a take that ended is posted to `mail`.
    pub fn record<S: AsRef<[f32]>>(&mut self, mail: &Mailboxes, block: &[S], sample_rate: f32, playing: bool, pos: Option<i64>) -> Option<TakeEnd> {
        if let Some(pos) = pos {
            mail.playhead.store(pos, Ordering::Release);
        }
        let end = self.recorder.process(block, sample_rate, playing, pos);
        self.post(mail);
        end
    }

    /// Plays the clip in `role` (if there is one) at the block's timeline position `pos`,
    /// mixed into the input as `mix` says frame by frame (see [`playback::play`]).
    pub fn play<S: AsMut<[f32]>>(&self, role: Role, fade: usize, pos: i64, block: &mut [S], mix: &[f32]) {
        if let Some(clip) = self.clip(role) {
            playback::play(clip, fade, pos, block, mix);
        }
    }

    pub fn clip(&self, role: Role) -> Option<&Take> {
        match role {
            Role::Original => self.original.as_deref(),
            Role::Restored => self.restored.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = 48_000.0;

    fn ramp(at: i64, n: usize) -> [Vec<f32>; 2] {
        let left: Vec<f32> = (0..n).map(|k| (at + k as i64) as f32).collect();
        let right = left.iter().map(|v| -v).collect();
        [left, right]
    }

    #[test]
    fn a_take_goes_out_is_filed_and_comes_back_to_play() {
        let clips = Clips::default();
        let mut deck = Deck::new(clips.reserve_capture(2, 1_000), None, None);
        deck.arm();
        for b in 0..3 {
            let at = 200 + 100 * b;
            deck.record(clips.mail(), &ramp(at, 100), RATE, true, Some(at));
        }
        assert!(!deck.take_posted());
        assert_eq!(clips.mail().recorder_state(), RecorderState::Recording);
        deck.record(clips.mail(), &ramp(500, 100), RATE, false, Some(500));
        assert!(deck.take_posted() && !deck.take_posted(), "posted once");
        assert_eq!(clips.mail().recorder_state(), RecorderState::Finished);
        deck.disarm(clips.mail());
        assert_eq!(clips.mail().recorder_state(), RecorderState::Idle, "the switch went off");

        assert!(clips.collect());
        let filed = clips.read().original.clone().unwrap();
        assert_eq!((filed.start, filed.len(), filed.clip.sample_rate), (200, 300, RATE as u32));
        assert!(deck.clip(Role::Original).is_none(), "not received yet");
        deck.receive(clips.mail());
        assert_eq!(deck.clip(Role::Original), Some(&*filed));

        // It plays at its place, and a new buffer was lent for the next take.
        let mut block = [vec![0.0f32; 64], vec![0.0; 64]];
        deck.play(Role::Original, 1, 250, &mut block, &[1.0; 64]);
        assert_eq!(block[0], ramp(250, 64)[0]);
        deck.arm();
        deck.record(clips.mail(), &ramp(0, 10), RATE, true, Some(0));
        assert!(deck.is_recording(), "a buffer was there to record into");
    }

    #[test]
    fn replaced_clips_are_freed_off_the_audio_thread() {
        let clips = Clips::default();
        let first = Arc::new(Take::new(AudioClip::new(RATE as u32, vec![vec![1.0; 10]]), 0));
        let mut deck = Deck::new(clips.reserve_capture(1, 100), Some(first.clone()), None);
        clips.mail().send(Role::Original, Some(Arc::new(Take::new(AudioClip::new(RATE as u32, vec![vec![2.0; 10]]), 5))));
        deck.receive(clips.mail());
        assert_eq!(deck.clip(Role::Original).unwrap().start, 5);
        assert_eq!(Arc::strong_count(&first), 2, "the deck's reference waits in the mailbox");
        clips.collect();
        assert_eq!(Arc::strong_count(&first), 1, "freed by housekeeping");
    }

    #[test]
    fn a_loaded_state_reaches_the_deck_at_its_rate() {
        let clips = Clips::default();
        clips.set_deck_rate(48_000.0);
        let mut deck = Deck::new(clips.reserve_capture(1, 100), None, None);
        let saved = Take::new(AudioClip::new(24_000, vec![vec![0.5; 2_400]]), 100);
        let restored = Take::new(AudioClip::new(24_000, vec![vec![0.25; 2_400]]), saved.start);
        clips.set(ClipStore { original: Some(Arc::new(saved.clone())), restored: Some(Arc::new(restored)) });
        assert_eq!(clips.map(|s| s.original.as_deref().cloned()), Some(saved), "stored as saved");
        deck.receive(clips.mail());
        for (role, value) in [(Role::Original, 0.5), (Role::Restored, 0.25)] {
            let playing = deck.clip(role).unwrap();
            assert_eq!((playing.clip.sample_rate, playing.start, playing.len()), (48_000, 200, 4_800));
            assert!((playing.clip.channels[0][2_400] - value).abs() < 1e-3);
        }

        // A new capture replaces the original and clears the restoration of the old one.
        deck.arm();
        deck.record(clips.mail(), &[vec![0.1f32; 10]], RATE, true, Some(0));
        deck.disarm(clips.mail());
        clips.collect();
        deck.receive(clips.mail());
        assert_eq!(deck.clip(Role::Original).unwrap().len(), 10);
        assert!(deck.clip(Role::Restored).is_none() && clips.read().restored.is_none());
    }

    #[test]
    fn a_take_at_another_rate_is_resampled_to_the_same_time() {
        let tone: Vec<f32> = (0..44_100).map(|n| (n as f32 * 0.01).sin()).collect();
        let take = Arc::new(Take::new(AudioClip::new(44_100, vec![tone]), 44_100));
        let same = at_rate(take.clone(), 44_100.0);
        assert!(Arc::ptr_eq(&same, &take));
        let moved = at_rate(take, 48_000.0);
        assert_eq!((moved.start, moved.len(), moved.clip.sample_rate), (48_000, 48_000, 48_000));
    }
}
