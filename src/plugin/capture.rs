//! Recording the track into a preallocated clip, with where it sits on the host timeline.
//!
//! [`Recorder::process`] runs on the audio thread: it records into a buffer reserved off
//! that thread and never waits. A take starts at the first playing block after
//! [`Recorder::arm`] and ends on transport stop, on any jump of the timeline (a loop wrap or
//! a seek) and when the buffer is full. A take that recorded nothing is not handed over, so
//! arming without playing never replaces a clip.

use serde::{Deserialize, Serialize, Serializer};

use crate::audio::{read_wav, AudioClip, AudioError};
use std::path::{Path, PathBuf};

/// Why a take ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeEnd {
    /// The transport stopped (or the host reset the plugin).
    Stopped,
    /// The timeline jumped: a loop wrapped or the user moved the playhead.
    Jumped,
    /// The buffer's maximum length was reached.
    Full,
}

/// A clip on the host timeline: audio recorded from the track (or its restoration) at the
/// host's rate, and the timeline position of its first frame.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Saved")]
pub struct Take {
    pub clip: AudioClip,
    /// Timeline position (samples at the clip's rate) of frame 0.
    pub start: i64,
}

/// Why a file could not become the take.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("{}: {channels} channels; the plugin takes mono or stereo: split the file first", .path.display())]
    Channels { path: PathBuf, channels: usize },
}

/// A WAV file as a take's audio (the editor's *Import WAV*, the standalone's `--clip`):
/// mono or stereo, at its own rate, held whole.
pub fn import_wav(path: &Path) -> Result<AudioClip, ImportError> {
    let (clip, _) = read_wav(path)?;
    match clip.num_channels() {
        1 | 2 => Ok(clip),
        channels => Err(ImportError::Channels { path: path.to_owned(), channels }),
    }
}

/// A take as projects save it: the fields it had before it held an [`AudioClip`] (the rate
/// a float), so projects open both ways.
#[derive(Deserialize)]
struct Saved {
    sample_rate: f32,
    start: i64,
    #[serde(with = "pcm")]
    channels: Vec<Vec<f32>>,
}

/// [`Saved`] borrowing the take's audio, for writing.
#[derive(Serialize)]
struct SavedRef<'a> {
    sample_rate: f32,
    start: i64,
    #[serde(serialize_with = "pcm::serialize")]
    channels: &'a [Vec<f32>],
}

impl From<Saved> for Take {
    fn from(saved: Saved) -> Self {
        Self { clip: AudioClip::new(saved.sample_rate.round() as u32, saved.channels), start: saved.start }
    }
}

impl Serialize for Take {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SavedRef { sample_rate: self.clip.sample_rate as f32, start: self.start, channels: &self.clip.channels }.serialize(s)
    }
}

/// Channels saved as base64 of little-endian `f32`: bit-exact, and a third of the size of
/// JSON numbers in the host's project file.
mod pcm {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(channels: &[Vec<f32>], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<String> = channels.iter().map(|c| STANDARD.encode(c.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
        let encoded = Vec::<String>::deserialize(d)?;
        let channels = encoded
            .iter()
            .map(|e| {
                let bytes = STANDARD.decode(e).map_err(|e| D::Error::custom(format!("a saved clip is damaged: {e}")))?;
                if bytes.len() % 4 != 0 {
                    return Err(D::Error::custom("a saved clip is damaged: its length is not whole samples"));
                }
                Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<f32>>())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if channels.windows(2).any(|w| w[0].len() != w[1].len()) {
            return Err(D::Error::custom("a saved clip is damaged: its channels differ in length"));
        }
        Ok(channels)
    }
}

impl Take {
    pub fn new(clip: AudioClip, start: i64) -> Self {
        Self { clip, start }
    }

    /// An empty take with room for `capacity` frames of `channels` channels.
    pub fn with_capacity(channels: usize, capacity: usize) -> Self {
        Self::new(AudioClip::new(0, (0..channels).map(|_| Vec::with_capacity(capacity)).collect()), 0)
    }

    pub fn len(&self) -> usize {
        self.clip.num_frames()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The timeline range the take covers, `[start, start + len)`.
    pub fn span(&self) -> std::ops::Range<i64> {
        self.start..self.start + self.len() as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Armed,
    /// Recording; the timeline position the next block must start at.
    Recording {
        next: i64,
    },
}

/// Timeline positions derived from seconds or beats may round a sample either way from
/// block to block; a difference this small is not a jump.
const JITTER: i64 = 1;

/// Records takes into a buffer it is lent: [`Recorder::finished`] hands a take over (a move,
/// no copy), and [`Recorder::lend`] gives it the next empty buffer. Buffers are made and
/// freed off the audio thread, so recording neither allocates nor frees.
pub struct Recorder {
    buffer: Option<Take>,
    finished: Option<Take>,
    state: State,
}

impl Default for Recorder {
    fn default() -> Self {
        Self { buffer: None, finished: None, state: State::Idle }
    }
}

impl Recorder {
    /// Gives the recorder an empty buffer to record the next take into; the buffer's
    /// capacity is the take's maximum length. Returns a buffer it no longer needs (one lent
    /// before and not yet used), to be freed off the audio thread.
    pub fn lend(&mut self, buffer: Take) -> Option<Take> {
        if self.is_recording() {
            return Some(buffer);
        }
        self.buffer.replace(buffer)
    }

    /// Whether a buffer is ready for the next take.
    pub fn has_buffer(&self) -> bool {
        self.buffer.is_some() && !self.is_recording()
    }

    /// The last take that ended, if it recorded anything and was not collected yet.
    pub fn finished(&mut self) -> Option<Take> {
        self.finished.take()
    }

    /// Record the next playing stretch of the timeline.
    pub fn arm(&mut self) {
        if self.state == State::Idle {
            self.state = State::Armed;
        }
    }

    /// Stop waiting for the transport; a take in progress ends as if the transport stopped.
    pub fn disarm(&mut self) -> Option<TakeEnd> {
        match self.state {
            State::Recording { .. } => Some(self.end(TakeEnd::Stopped)),
            _ => {
                self.state = State::Idle;
                None
            }
        }
    }

    pub fn is_armed(&self) -> bool {
        self.state == State::Armed
    }

    pub fn is_recording(&self) -> bool {
        matches!(self.state, State::Recording { .. })
    }

    /// One block of the track: `block` holds its channels, `pos` is the timeline position of
    /// its first frame (`None` when the host gives none: nothing can be placed, so nothing
    /// starts; nor without a buffer). Returns how the take ended if it ended here.
    pub fn process<S: AsRef<[f32]>>(&mut self, block: &[S], sample_rate: f32, playing: bool, pos: Option<i64>) -> Option<TakeEnd> {
        match (self.state, pos, &mut self.buffer) {
            (State::Armed, Some(pos), Some(buffer)) if playing => {
                buffer.clip.channels.iter_mut().for_each(Vec::clear);
                buffer.start = pos;
                buffer.clip.sample_rate = sample_rate.round() as u32;
                self.state = State::Recording { next: pos };
                self.append(block)
            }
            (State::Recording { .. }, _, _) if !playing => Some(self.end(TakeEnd::Stopped)),
            (State::Recording { next }, Some(pos), _) if (pos - next).abs() <= JITTER => self.append(block),
            (State::Recording { .. }, _, _) => Some(self.end(TakeEnd::Jumped)),
            _ => None,
        }
    }

    fn append<S: AsRef<[f32]>>(&mut self, block: &[S]) -> Option<TakeEnd> {
        let buffer = self.buffer.as_mut().expect("recording into a buffer");
        let frames = block.first().map_or(0, |c| c.as_ref().len());
        let capacity = buffer.clip.channels.first().map_or(0, Vec::capacity);
        let n = frames.min(capacity - buffer.len());
        for (c, channel) in buffer.clip.channels.iter_mut().enumerate() {
            // A block with fewer channels than the buffer repeats its last channel.
            let source = block.get(c).or(block.last()).map_or(&[][..], AsRef::as_ref);
            channel.extend_from_slice(&source[..n]);
        }
        let full = buffer.len() == capacity;
        if let State::Recording { next } = &mut self.state {
            *next += frames as i64;
        }
        full.then(|| self.end(TakeEnd::Full))
    }

    fn end(&mut self, why: TakeEnd) -> TakeEnd {
        self.state = State::Idle;
        if self.buffer.as_ref().is_some_and(|b| !b.is_empty()) {
            // The take is handed over by moving its buffer. If the previous take was never
            // collected, its storage becomes the next buffer (no allocation, no free).
            let take = self.buffer.take().expect("checked");
            if let Some(older) = self.finished.replace(take) {
                self.buffer = Some(older);
            }
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = 48_000.0;

    fn lent(capacity: usize) -> Recorder {
        let mut r = Recorder::default();
        assert!(r.lend(Take::with_capacity(2, capacity)).is_none());
        r
    }

    /// Feeds a stereo ramp (left n, right −n by timeline position n) in blocks of `size`
    /// frames from `pos`, `blocks` times; returns the first end.
    fn feed(r: &mut Recorder, pos: i64, size: usize, blocks: usize) -> Option<TakeEnd> {
        let mut end = None;
        for b in 0..blocks {
            let at = pos + (b * size) as i64;
            let left: Vec<f32> = (0..size).map(|k| (at + k as i64) as f32).collect();
            let right: Vec<f32> = left.iter().map(|v| -v).collect();
            end = end.or(r.process(&[left, right], RATE, true, Some(at)));
        }
        end
    }

    #[test]
    fn a_take_records_what_played_where_it_played_until_the_transport_stops() {
        let mut r = lent(10_000);
        assert_eq!(feed(&mut r, 0, 64, 3), None, "not armed: nothing recorded");
        assert!(r.finished().is_none());
        r.arm();
        assert_eq!(r.process(&[[0.5f32; 8]], RATE, true, None), None, "no position: wait");
        assert!(r.is_armed());
        assert_eq!(feed(&mut r, 1_000, 100, 5), None);
        assert!(r.is_recording() && r.finished().is_none());
        assert_eq!(r.process(&[[0.0f32; 100], [0.0; 100]], RATE, false, Some(1_500)), Some(TakeEnd::Stopped));
        let take = r.finished().unwrap();
        assert_eq!((take.start, take.len(), take.clip.sample_rate), (1_000, 500, RATE as u32));
        assert_eq!(take.span(), 1_000..1_500);
        assert!(take.clip.channels[0].iter().enumerate().all(|(k, &v)| v == (1_000 + k) as f32));
        assert!(take.clip.channels[1].iter().enumerate().all(|(k, &v)| v == -((1_000 + k) as f32)));
        assert!(!r.is_recording() && !r.is_armed(), "one take per arm");
        assert!(!r.has_buffer(), "the buffer left with the take");
    }

    #[test]
    fn a_loop_wrap_or_seek_ends_the_take_but_rounding_jitter_does_not() {
        let mut r = lent(10_000);
        r.arm();
        feed(&mut r, 0, 100, 2);
        // Positions derived from seconds may be a sample off.
        assert_eq!(feed(&mut r, 201, 100, 1), None);
        assert_eq!(feed(&mut r, 0, 100, 1), Some(TakeEnd::Jumped), "the loop wrapped");
        assert_eq!(r.finished().unwrap().len(), 300);
    }

    #[test]
    fn the_take_stops_at_the_buffers_capacity() {
        let mut r = lent(250);
        r.arm();
        assert_eq!(feed(&mut r, 0, 100, 3), Some(TakeEnd::Full));
        let take = r.finished().unwrap();
        assert_eq!(take.len(), 250);
        assert_eq!(take.clip.channels[0][249], 249.0);
    }

    #[test]
    fn without_a_buffer_an_armed_recorder_waits_and_an_empty_take_is_not_handed_over() {
        let mut r = Recorder::default();
        r.arm();
        assert_eq!(feed(&mut r, 0, 100, 2), None);
        assert!(r.is_armed(), "still waiting for a buffer");
        assert!(r.lend(Take::with_capacity(2, 1_000)).is_none());
        assert!(r.has_buffer());
        assert_eq!(r.disarm(), None, "armed, never played");
        assert!(r.finished().is_none());
        r.arm();
        feed(&mut r, 0, 100, 1);
        let spare = r.lend(Take::with_capacity(2, 1_000));
        assert!(spare.is_some(), "a buffer lent while recording is given back");
        assert_eq!(r.disarm(), Some(TakeEnd::Stopped));
        assert_eq!(r.finished().unwrap().len(), 100);
    }

    #[test]
    fn a_saved_take_loads_bit_exactly_and_damage_is_an_error() {
        let take = Take::new(AudioClip::new(44_100, vec![vec![0.1, -0.0, f32::MIN_POSITIVE, 1e-40], vec![1.0, 2.0, 3.0, 4.0]]), -3);
        let json = serde_json::to_string(&take).unwrap();
        let back: Take = serde_json::from_str(&json).unwrap();
        assert!(back.clip.channels.iter().flatten().zip(take.clip.channels.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(back, take);
        // The fields and the float rate projects saved before the take held an AudioClip.
        assert!(json.starts_with(r#"{"sample_rate":44100.0,"start":-3,"channels":["#), "{json}");
        let ragged = json.replacen("\"AACAPwAAAEAAAEBAAACAQA==\"", "\"AACAPw==\"", 1);
        assert_ne!(ragged, json);
        let err = serde_json::from_str::<Take>(&ragged).unwrap_err().to_string();
        assert!(err.contains("channels differ in length"), "{err}");
        let garbled = json.replacen("AACAPw", "!!!", 1);
        assert!(serde_json::from_str::<Take>(&garbled).unwrap_err().to_string().contains("damaged"));
    }

    #[test]
    fn an_uncollected_take_is_replaced_by_the_newer_one_and_its_buffer_reused() {
        let mut r = lent(1_000);
        r.arm();
        feed(&mut r, 0, 100, 1);
        r.disarm();
        assert!(r.lend(Take::with_capacity(2, 1_000)).is_none());
        r.arm();
        feed(&mut r, 5_000, 50, 1);
        r.disarm();
        assert_eq!(r.finished().unwrap().span(), 5_000..5_050);
        assert!(r.finished().is_none());
        assert!(r.has_buffer(), "the older take's storage records the next one");
    }
}
