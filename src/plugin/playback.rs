//! Playing a clip at its place on the host timeline.
//!
//! Stateless per block: the output of a block depends only on the block's timeline position,
//! so playback stays sample-accurate through any block size, seek or loop jump. Inside the
//! clip's span the clip replaces the input (as much as the mix says); over `fade` frames at
//! each edge of the span the two are crossfaded, so entering and leaving the region does not
//! click.

use super::capture::Take;

/// Crossfade length at the region's edges.
pub const EDGE_FADE_SECONDS: f64 = 0.005;

/// The edge fade in frames at `sample_rate`.
pub fn edge_fade(sample_rate: f32) -> usize {
    (EDGE_FADE_SECONDS * sample_rate as f64).round().max(1.0) as usize
}

/// How much of the clip is heard at its frame `k` (of `len`): 1 inside, rising linearly
/// over the first `fade` frames and falling over the last `fade`.
fn gain(k: usize, len: usize, fade: usize) -> f32 {
    let from_edge = k.min(len - 1 - k) + 1;
    if from_edge >= fade {
        1.0
    } else {
        from_edge as f32 / fade as f32
    }
}

/// Writes `take` over `block` (which holds the input) for the frames whose timeline
/// positions, starting at `pos`, fall inside the take; `mix` holds, per frame, how much of
/// the take replaces the input (at 1 the take exactly). A take with fewer channels than the
/// block feeds its last channel to the rest. Never allocates.
pub fn play<S: AsMut<[f32]>>(take: &Take, fade: usize, pos: i64, block: &mut [S], mix: &[f32]) {
    let len = take.len();
    if len == 0 {
        return;
    }
    let frames = block.first_mut().map_or(0, |c| c.as_mut().len()) as i64;
    let (from, to) = ((take.start - pos).max(0), (take.start + len as i64 - pos).min(frames));
    for (c, channel) in block.iter_mut().enumerate() {
        let source = &take.clip.channels[c.min(take.clip.num_channels() - 1)];
        let channel = channel.as_mut();
        for n in from..to {
            let k = (pos + n - take.start) as usize;
            let g = gain(k, len, fade) * mix.get(n as usize).or(mix.last()).copied().unwrap_or(1.0);
            let out = &mut channel[n as usize];
            // At full gain the clip itself, bit for bit (x + (s − x) need not round to s).
            *out = if g >= 1.0 { source[k] } else { *out + g * (source[k] - *out) };
        }
    }
}

/// Replaces every subnormal sample of `block` with zero. The input passes through, and
/// captured audio plays back, bit for bit otherwise: a subnormal is far below hearing, but
/// hosts and validators refuse it, and the next plugin's arithmetic on it can be slow.
pub fn flush_subnormals<S: AsMut<[f32]>>(block: &mut [S]) {
    for channel in block {
        for x in channel.as_mut() {
            if x.is_subnormal() {
                *x = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioClip;

    fn clip(start: i64, len: usize) -> Take {
        let ramp: Vec<f32> = (0..len).map(|k| 1.0 + k as f32).collect();
        Take::new(AudioClip::new(48_000, vec![ramp.clone(), ramp.iter().map(|v| -v).collect()]), start)
    }

    /// Plays `clip` over silence from `pos` in blocks of `sizes` (cycled) and returns the output.
    fn render(clip: &Take, fade: usize, mut pos: i64, total: usize, sizes: &[usize]) -> Vec<Vec<f32>> {
        let mut out = vec![Vec::new(), Vec::new()];
        let mut done = 0;
        for &size in sizes.iter().cycle() {
            if done == total {
                break;
            }
            let n = size.min(total - done);
            let mut block = vec![vec![0.0f32; n]; 2];
            play(clip, fade, pos, &mut block, &vec![1.0; n]);
            for (o, b) in out.iter_mut().zip(block) {
                o.extend(b);
            }
            pos += n as i64;
            done += n;
        }
        out
    }

    #[test]
    fn the_clip_sounds_at_its_positions_whatever_the_block_size() {
        let c = clip(1_000, 500);
        let reference = render(&c, 1, 900, 800, &[800]);
        for sizes in [&[1][..], &[7, 64, 333], &[512]] {
            assert_eq!(render(&c, 1, 900, 800, sizes), reference, "blocks {sizes:?}");
        }
        // Before and after the span the input (silence) stays; inside, the clip, exactly.
        assert!(reference[0][..100].iter().chain(&reference[0][600..]).all(|&v| v == 0.0));
        for n in 0..500 {
            assert_eq!(reference[0][100 + n], 1.0 + n as f32);
            assert_eq!(reference[1][100 + n], -(1.0 + n as f32));
        }
    }

    #[test]
    fn a_seek_or_loop_jump_lands_on_the_right_sample() {
        let c = clip(0, 1_000);
        // A block straddling the end, then a jump back into the middle.
        let mut block = vec![vec![0.0f32; 64]; 2];
        play(&c, 1, 960, &mut block, &[1.0; 64]);
        assert_eq!(&block[0][..40], &c.clip.channels[0][960..]);
        assert!(block[0][40..].iter().all(|&v| v == 0.0));
        let mut block = vec![vec![0.0f32; 64]; 2];
        play(&c, 1, 123, &mut block, &[1.0; 64]);
        assert_eq!(&block[0][..], &c.clip.channels[0][123..187]);
    }

    #[test]
    fn edges_crossfade_with_the_input() {
        let c = clip(100, 50);
        let mut block = vec![vec![10.0f32; 300]; 2];
        play(&c, 10, 0, &mut block, &[1.0; 300]);
        let out = &block[0];
        assert_eq!(out[99], 10.0, "before the clip: the input");
        assert_eq!(out[100], 10.0 + 0.1 * (1.0 - 10.0), "first frame: a tenth of the clip");
        assert_eq!(out[109], 10.0, "clip at full gain from the fade's end");
        assert_eq!(out[120], 21.0);
        assert_eq!(out[149], 10.0 + 0.1 * (50.0 - 10.0), "last frame: a tenth again");
        assert_eq!(out[150], 10.0, "after the clip: the input");
    }

    #[test]
    fn a_mono_clip_feeds_every_channel() {
        let c = Take::new(AudioClip::new(44_100, vec![vec![0.5; 10]]), 0);
        let mut block = vec![vec![0.0f32; 10]; 2];
        play(&c, 1, 0, &mut block, &[1.0; 10]);
        assert!(block.iter().all(|ch| ch.iter().all(|&v| v == 0.5)));
    }

    #[test]
    fn the_mix_blends_clip_and_input_frame_by_frame() {
        let c = Take::new(AudioClip::new(48_000, vec![vec![1.0; 8]]), 0);
        let mut block = vec![vec![-1.0f32; 8]];
        let mix = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0];
        play(&c, 1, 0, &mut block, &mix);
        assert_eq!(block[0], [-1.0, -0.5, 0.0, 0.5, 1.0, 1.0, 0.0, -1.0]);
    }

    #[test]
    fn subnormals_are_flushed_and_nothing_else_changes() {
        let tiny = f32::MIN_POSITIVE / 2.0;
        let mut block = vec![vec![tiny, -tiny, 0.25, f32::MIN_POSITIVE], vec![-0.0, 1e-45, -1.0, f32::MAX]];
        flush_subnormals(&mut block);
        assert_eq!(block, vec![vec![0.0, 0.0, 0.25, f32::MIN_POSITIVE], vec![-0.0, 0.0, -1.0, f32::MAX]]);
        assert!(block.iter().flatten().all(|x| !x.is_subnormal()));
    }
}
