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

    /// The next `n` frames, or [`AudioError::Ended`] when the source has fewer left than
    /// it announced (a file changed while it was read): a loop that waits for frames
    /// never spins on an empty source.
    fn read_exact(&mut self, n: usize) -> Result<Vec<Vec<f32>>, AudioError> {
        let block = self.read(n)?;
        match block.first().map_or(0, Vec::len) == n {
            true => Ok(block),
            false => Err(AudioError::Ended { frames: self.frames() }),
        }
    }

    /// The next block of at most `max` frames; `None` at the end.
    fn next_block(&mut self, max: usize) -> Result<Option<Vec<Vec<f32>>>, AudioError> {
        let block = self.read(max)?;
        Ok(block.first().is_some_and(|c| !c.is_empty()).then_some(block))
    }
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

/// Planar blocks collected into a clip in memory: the [`BlockSink`] of work on a clip.
pub struct ClipWriter {
    channels: Vec<Vec<f32>>,
}

impl ClipWriter {
    /// For `channels` channels of about `frames` frames.
    pub fn new(channels: usize, frames: usize) -> Self {
        Self { channels: vec![Vec::with_capacity(frames); channels] }
    }

    pub fn push(&mut self, block: &[Vec<f32>]) {
        self.channels.iter_mut().zip(block).for_each(|(c, b)| c.extend_from_slice(b));
    }

    pub fn into_clip(self, sample_rate: u32) -> AudioClip {
        AudioClip::new(sample_rate, self.channels)
    }
}
