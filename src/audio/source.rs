//! Audio read block by block, from a WAV file or from memory: what lets a long file go
//! through the engine, the degradations and the scores in bounded memory.

use super::{AudioClip, AudioError, WavReader};

/// Planar audio read in blocks.
pub trait FrameSource {
    fn sample_rate(&self) -> u32;
    fn channels(&self) -> usize;
    /// Frames in all.
    fn frames(&self) -> usize;
    /// The next `max` frames, planar (fewer at the end, none after it).
    fn read(&mut self, max: usize) -> Result<Vec<Vec<f32>>, AudioError>;
}

/// Opens a new [`FrameSource`] at the start of the same audio: work that needs two passes,
/// or the original beside its restoration, opens it more than once.
pub type OpenSource<'a> = dyn Fn() -> Result<Box<dyn FrameSource + 'a>, AudioError> + 'a;

/// Where planar blocks of audio go as they are made (a WAV file's sink, a clip in memory).
pub type BlockSink<'a> = dyn FnMut(&[Vec<f32>]) -> Result<(), AudioError> + 'a;

impl FrameSource for WavReader {
    fn sample_rate(&self) -> u32 {
        WavReader::sample_rate(self)
    }

    fn channels(&self) -> usize {
        WavReader::channels(self)
    }

    fn frames(&self) -> usize {
        WavReader::frames(self)
    }

    fn read(&mut self, max: usize) -> Result<Vec<Vec<f32>>, AudioError> {
        WavReader::read(self, max)
    }
}

/// A clip in memory as a [`FrameSource`].
pub struct ClipReader<'a> {
    clip: &'a AudioClip,
    position: usize,
}

impl<'a> ClipReader<'a> {
    pub fn new(clip: &'a AudioClip) -> Self {
        Self { clip, position: 0 }
    }
}

impl FrameSource for ClipReader<'_> {
    fn sample_rate(&self) -> u32 {
        self.clip.sample_rate
    }

    fn channels(&self) -> usize {
        self.clip.num_channels()
    }

    fn frames(&self) -> usize {
        self.clip.num_frames()
    }

    fn read(&mut self, max: usize) -> Result<Vec<Vec<f32>>, AudioError> {
        let range = self.position..(self.position + max).min(self.frames());
        self.position = range.end;
        Ok(self.clip.channels.iter().map(|c| c[range.clone()].to_vec()).collect())
    }
}
