use super::*;
use crate::audio::{resampled_len, AudioError as E};
use crate::audio::{AudioClip, WavFormat, MAX_CLIP_SAMPLES};
use crate::files::write_atomic;
use header::{KSDATAFORMAT_TAIL, TAG_EXTENSIBLE, TAG_FLOAT, TAG_PCM};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use write::validate_layout;

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Deterministic pseudo-random generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn int(&mut self, bits: u16) -> i32 {
        // Uniform over the full signed range of `bits`, both extremes included.
        let v = (self.next_u64() >> (64 - bits)) as i64 - (1i64 << (bits - 1));
        v as i32
    }
    fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Write interleaved raw samples with hound directly (independent of `write_wav`).
fn hound_write(path: &Path, fmt: WavFormat, channels: u16, rate: u32, ints: &[i32], floats: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: fmt.bits_per_sample,
        sample_format: if fmt.float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    if fmt.float {
        for &s in floats {
            w.write_sample(s).unwrap();
        }
    } else {
        for &s in ints {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A file written by hound with random full-range samples (extremes included) reads back
/// as exactly `sample / 2^(bits-1)`, and write_wav → read_wav reproduces the file bytes
/// (integer formats up to 24 bits, float) and the samples (all formats).
#[test]
fn round_trip_every_format_and_channel_count() {
    let dir = tmpdir();
    let frames = 1000;
    for fmt in WavFormat::ALL {
        for n_ch in [1u16, 2, 6] {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(fmt.bits_per_sample) ^ u64::from(n_ch) << 8);
            let total = frames * usize::from(n_ch);
            let (mut ints, mut floats) = (vec![], vec![]);
            if fmt.float {
                floats = (0..total).map(|_| rng.f32() * 1.5).collect();
                floats[0] = f32::MIN_POSITIVE / 4.0; // subnormal survives
                floats[1] = -3.25; // out of [-1, 1] is kept for float
            } else {
                ints = (0..total).map(|_| rng.int(fmt.bits_per_sample)).collect();
                let b = fmt.bits_per_sample - 1;
                ints[0] = (-(1i64 << b)) as i32;
                ints[1] = ((1i64 << b) - 1) as i32;
                ints[2] = 0;
            }
            let src = dir.path().join(format!("src_{}_{}_{n_ch}.wav", fmt.bits_per_sample, fmt.float));
            hound_write(&src, fmt, n_ch, 44_100, &ints, &floats);

            let (clip, got_fmt) = read_wav(&src).unwrap();
            assert_eq!(got_fmt, fmt);
            assert_eq!(clip.sample_rate, 44_100);
            assert_eq!(clip.num_channels(), usize::from(n_ch));
            assert_eq!(clip.num_frames(), frames);
            let scale = (1u64 << (fmt.bits_per_sample - 1)) as f64;
            for i in 0..total {
                let got = clip.channels[i % usize::from(n_ch)][i / usize::from(n_ch)];
                let want = if fmt.float { floats[i] } else { (f64::from(ints[i]) / scale) as f32 };
                assert_eq!(got.to_bits(), want.to_bits(), "{fmt} {n_ch} ch sample {i}");
            }
            if !fmt.float {
                assert_eq!(clip.channels[0][0], -1.0);
            }

            let dst = dir.path().join(format!("dst_{}_{}_{n_ch}.wav", fmt.bits_per_sample, fmt.float));
            write_wav(&dst, &clip, got_fmt).unwrap();
            let (again, again_fmt) = read_wav(&dst).unwrap();
            assert_eq!(again_fmt, fmt);
            assert_eq!(again.sample_rate, clip.sample_rate);
            for (a, b) in again.channels.iter().zip(&clip.channels) {
                assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{fmt} {n_ch} ch");
            }
            // hound writes the same header layout for both, so the bytes match too —
            // except 32-bit integers, whose low bits do not survive f32 (24-bit mantissa).
            let (a, b) = (fs::read(&src).unwrap(), fs::read(&dst).unwrap());
            if fmt == WavFormat::INT32 {
                assert_eq!(a.len(), b.len());
                assert_ne!(a, b, "random 32-bit samples cannot all be exact in f32");
                // …but a second trip is byte-exact: the f32 values are fixed points.
                let dst2 = dir.path().join(format!("dst2_{n_ch}.wav"));
                write_wav(&dst2, &again, fmt).unwrap();
                assert_eq!(fs::read(&dst2).unwrap(), b);
            } else {
                assert_eq!(a, b, "{fmt} {n_ch} ch: bytes differ");
            }
        }
    }
}

/// Float → integer conversion rounds to nearest and clamps to the integer range.
#[test]
fn write_rounds_and_clamps() {
    let dir = tmpdir();
    let p = dir.path().join("clamp.wav");
    let lsb = 1.0 / 32768.0;
    let clip = AudioClip::new(48_000, vec![vec![1.0, -1.0, 2.0, -2.0, 0.4 * lsb, 0.6 * lsb, -0.6 * lsb, 0.5 - 0.49 * lsb]]);
    write_wav(&p, &clip, WavFormat::INT16).unwrap();
    let got: Vec<i32> = hound::WavReader::open(&p).unwrap().samples::<i32>().map(Result::unwrap).collect();
    assert_eq!(got, vec![32767, -32768, 32767, -32768, 0, 1, -1, 16384]);

    write_wav(&p, &clip, WavFormat::INT8).unwrap();
    let got: Vec<i32> = hound::WavReader::open(&p).unwrap().samples::<i32>().map(Result::unwrap).collect();
    assert_eq!(got[..4], [127, -128, 127, -128]);
    // 8-bit is unsigned on disk: 0x80 is silence.
    assert_eq!(fs::read(&p).unwrap()[44 + 4], 0x80);
}

fn minimal_wav_bytes(fmt_chunk: &[u8], data: &[u8], declared_data_len: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(4 + 8 + fmt_chunk.len() as u32 + 8 + declared_data_len).to_le_bytes());
    v.extend_from_slice(b"WAVE");
    v.extend_from_slice(b"fmt ");
    v.extend_from_slice(&(fmt_chunk.len() as u32).to_le_bytes());
    v.extend_from_slice(fmt_chunk);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&declared_data_len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn fmt_chunk(tag: u16, channels: u16, rate: u32, bits: u16, block_align: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    v.extend_from_slice(&block_align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v
}

fn extensible_chunk(channels: u16, rate: u32, bits: u16, valid: u16, block_align: u16, sub: u16) -> Vec<u8> {
    let mut v = fmt_chunk(TAG_EXTENSIBLE, channels, rate, bits, block_align);
    v.extend_from_slice(&22u16.to_le_bytes());
    v.extend_from_slice(&valid.to_le_bytes());
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&sub.to_le_bytes());
    v.extend_from_slice(&KSDATAFORMAT_TAIL);
    v
}

/// What sox, ffmpeg and Python's `wave` read is read here too: a fmt chunk longer than
/// it needs (with a wrong `byte_rate`), and an odd-sized chunk with its pad byte before
/// the data.
#[test]
fn files_other_readers_accept_are_read() {
    let dir = tmpdir();
    let samples: [i16; 6] = [0, 16384, -16384, 32767, -32768, 1];
    let data: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut fmt = fmt_chunk(TAG_PCM, 2, 44_100, 16, 4);
    fmt[8..12].copy_from_slice(&12_345u32.to_le_bytes()); // byte_rate should be 176400
    fmt.extend_from_slice(&[0, 0, 0xAB, 0xCD]); // cbSize 0 and two stray bytes: 20 bytes
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(b"WAVE");
    b.extend_from_slice(b"fmt ");
    b.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    b.extend_from_slice(&fmt);
    b.extend_from_slice(b"note");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(b"abc\0"); // 3 bytes and the pad byte
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    let riff_len = (b.len() - 8) as u32;
    b[4..8].copy_from_slice(&riff_len.to_le_bytes());
    let p = write_bytes(dir.path(), "lenient.wav", &b);
    let (clip, format) = read_wav(&p).unwrap();
    assert_eq!((clip.sample_rate, format), (44_100, WavFormat::INT16));
    let s = |v: i16| f32::from(v) / 32768.0;
    assert_eq!(clip.channels, vec![vec![s(0), s(-16384), s(-32768)], vec![s(16384), s(32767), s(1)]]);
}

#[test]
fn streaming_read_and_write_give_the_whole_file_in_any_blocks() {
    let dir = tmpdir();
    let (src, dst) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let channels: Vec<Vec<f32>> = (0..2).map(|c| (0..10_007).map(|n| ((n * (c + 3)) % 101) as f32 / 128.0 - 0.4).collect()).collect();
    let clip = AudioClip::new(22_050, channels);
    write_wav(&src, &clip, WavFormat::INT24).unwrap();
    let whole = read_wav(&src).unwrap().0;
    for block in [1, 333, 10_007, 50_000] {
        let mut reader = WavReader::open(&src).unwrap();
        assert_eq!((reader.frames(), reader.channels(), reader.sample_rate()), (10_007, 2, 22_050));
        let layout = WavLayout { sample_rate: 22_050, channels: 2, frames: 10_007, format: WavFormat::INT24 };
        write_wav_with(&dst, layout, |sink| -> Result<(), AudioError> {
            loop {
                let b = reader.read(block)?;
                if b[0].is_empty() {
                    return Ok(());
                }
                sink.write(&b)?;
            }
        })
        .unwrap();
        assert_eq!(read_wav(&dst).unwrap().0, whole, "blocks of {block}");
    }
    // Fewer frames than announced, or a NaN late in the stream: nothing is written.
    let layout = WavLayout { sample_rate: 22_050, channels: 1, frames: 100, format: WavFormat::FLOAT32 };
    let short = write_wav_with(&dst, layout, |sink| sink.write(&[vec![0.5; 99]])).unwrap_err();
    assert!(short.to_string().contains("99 frames were written of the 100"), "{short}");
    let nan = write_wav_with(&dst, layout, |sink| {
        sink.write(&[vec![0.5; 60]])?;
        sink.write(&[[vec![0.5; 10], vec![f32::NAN; 30]].concat()])
    })
    .unwrap_err();
    assert!(matches!(nan, E::NonFinite { frame: 70, .. }), "{nan}");
    assert_eq!(read_wav(&dst).unwrap().0, whole);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary is left");
}

#[test]
fn the_largest_wav_of_the_input_can_be_written_back() {
    // 4 GiB − 52 bytes of 8-bit mono, the largest file with a 44-byte header, fits; one
    // more frame does not, nor does the same data with the 68-byte extensible header.
    let p = Path::new("big.wav");
    let layout = |frames: u64, format| WavLayout { sample_rate: 8_000, channels: 1, frames: frames as usize, format };
    let largest = u64::from(u32::MAX) - 36;
    assert!(validate_layout(p, &layout(largest, WavFormat::INT8)).is_ok());
    assert!(validate_layout(p, &layout(largest + 1, WavFormat::INT8)).is_err());
    assert!(validate_layout(p, &layout(largest / 3, WavFormat::INT24)).is_err());
}

#[test]
fn a_file_too_long_to_hold_whole_is_refused_by_read_wav_but_streams() {
    let dir = tmpdir();
    let frames = (MAX_CLIP_SAMPLES / 2 + 1) as u32;
    // A sparse 8-bit stereo file just over the limit (its zero bytes are −1.0 in 8 bit).
    let mut head = b"RIFF".to_vec();
    head.extend((36 + 2 * frames).to_le_bytes());
    head.extend(b"WAVEfmt ");
    head.extend(16u32.to_le_bytes());
    head.extend([1u16, 2].iter().flat_map(|v| v.to_le_bytes()));
    head.extend([8_000u32, 16_000].iter().flat_map(|v| v.to_le_bytes()));
    head.extend([2u16, 8].iter().flat_map(|v| v.to_le_bytes()));
    head.extend(b"data");
    head.extend((2 * frames).to_le_bytes());
    let p = write_bytes(dir.path(), "long.wav", &head);
    fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(44 + 2 * u64::from(frames)).unwrap();
    let e = read_wav(&p).unwrap_err();
    assert!(matches!(e, E::TooLong { .. }) && e.to_string().contains("cut it into shorter files"), "{e}");
    let mut reader = WavReader::open(&p).unwrap();
    assert_eq!(reader.frames(), frames as usize);
    assert_eq!(reader.read(4).unwrap(), vec![vec![-1.0; 4]; 2]);
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// Runs `read_wav`, checks the message is one line naming the file, returns the error.
fn read_err(p: &Path) -> AudioError {
    let e = read_wav(p).expect_err("bad input must be rejected");
    let msg = e.to_string();
    let name = p.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "message does not name the file: {msg}");
    assert!(!msg.contains('\n'), "message is not one line: {msg}");
    assert_eq!(e.path(), Some(p));
    e
}

#[test]
fn not_wav_inputs() {
    let dir = tmpdir();
    let d = dir.path();
    let text = write_bytes(d, "notes.wav", b"Hello, this is a text file and not audio at all.\n");
    let e = read_err(&text);
    assert!(matches!(&e, E::NotWav { what, .. } if what.contains("text")), "{e}");

    let mut mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    mp3.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64, 0, 0, 0, 0]);
    let e = read_err(&write_bytes(d, "song.mp3.wav", &mp3));
    assert!(matches!(&e, E::NotWav { what, .. } if what.contains("MP3")), "{e}");
    // Raw MPEG frame sync without an ID3 tag.
    let e = read_err(&write_bytes(d, "raw.wav", &[0xFF, 0xFB, 0x90, 0x64, 0, 0, 0, 0, 1, 2, 3, 4]));
    assert!(matches!(&e, E::NotWav { what, .. } if what.contains("MP3")), "{e}");

    let e = read_err(&write_bytes(d, "a.flac.wav", b"fLaC\x00\x00\x00\x22rest"));
    assert!(matches!(&e, E::NotWav { what, .. } if what.contains("FLAC")), "{e}");

    let e = read_err(&write_bytes(d, "empty.wav", b""));
    assert!(matches!(&e, E::NotWav { what, .. } if what.contains("empty")), "{e}");

    let e = read_err(&write_bytes(d, "movie.wav", b"RIFF\x10\x00\x00\x00AVI LIST"));
    assert!(matches!(&e, E::NotWav { what, .. } if what.contains("AVI")), "{e}");

    let e = read_err(&write_bytes(d, "bin.wav", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    assert!(matches!(e, E::NotWav { .. }), "{e}");

    // A missing file is an I/O error, not a panic.
    let e = read_err(&d.join("does-not-exist.wav"));
    assert!(matches!(&e, E::Io { source, .. } if source.kind() == io::ErrorKind::NotFound), "{e}");
    // A directory.
    let sub = d.join("folder.wav");
    fs::create_dir(&sub).unwrap();
    let e = read_wav(&sub).unwrap_err();
    assert!(e.to_string().contains("folder.wav"), "{e}");
}

/// A hound-written file cut short at every kind of place: inside the RIFF header, inside
/// the fmt chunk, inside the data chunk header, mid-sample and at a frame boundary.
#[test]
fn truncated_files() {
    let dir = tmpdir();
    let full = dir.path().join("full.wav");
    let ints: Vec<i32> = (0..2000).map(|i| (i * 37 % 60000) - 30000).collect();
    hound_write(&full, WavFormat::INT16, 2, 48_000, &ints, &[]);
    let bytes = fs::read(&full).unwrap();
    assert_eq!(bytes.len(), 44 + 4000);
    for cut in [2, 8, 20, 38, 44 + 3, 44 + 1001, 44 + 2000, bytes.len() - 1] {
        let p = write_bytes(dir.path(), &format!("cut_{cut}.wav"), &bytes[..cut]);
        let e = read_err(&p);
        assert!(matches!(e, E::Truncated { .. }), "cut at {cut}: {e}");
    }
    // The message gives the promised and the present duration.
    let p = dir.path().join(format!("cut_{}.wav", 44 + 2000));
    let msg = read_wav(&p).unwrap_err().to_string();
    assert!(msg.contains("1000 sample frames") && msg.contains("500"), "{msg}");

    // A data length placeholder left by a recorder that never finished (0xFFFFFFFF).
    let mut b = bytes.clone();
    b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_err(&write_bytes(dir.path(), "unfinished.wav", &b));
    assert!(matches!(e, E::Truncated { .. }), "{e}");

    // The complete file still reads.
    assert_eq!(read_wav(&full).unwrap().0.num_frames(), 1000);
}

#[test]
fn zero_samples() {
    let dir = tmpdir();
    let p = dir.path().join("silence_of_nothing.wav");
    hound_write(&p, WavFormat::INT16, 2, 44_100, &[], &[]);
    let e = read_err(&p);
    assert!(matches!(e, E::Empty { .. }), "{e}");
    let p = dir.path().join("nothing_float.wav");
    hound_write(&p, WavFormat::FLOAT32, 1, 44_100, &[], &[]);
    assert!(matches!(read_err(&p), E::Empty { .. }));
}

#[test]
fn unsupported_encodings() {
    let dir = tmpdir();
    let d = dir.path();
    let data = [0u8; 48];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("twelve_bit.wav", fmt_chunk(TAG_PCM, 1, 44_100, 12, 2), "12-bit"),
        ("double.wav", fmt_chunk(TAG_FLOAT, 1, 44_100, 64, 8), "64-bit float"),
        ("alaw.wav", fmt_chunk(0x0006, 1, 8_000, 8, 1), "A-law"),
        ("ulaw.wav", fmt_chunk(0x0007, 1, 8_000, 8, 1), "law"),
        ("adpcm.wav", fmt_chunk(0x0002, 1, 44_100, 4, 256), "ADPCM"),
        ("mp3_in_wav.wav", fmt_chunk(0x0055, 2, 44_100, 0, 1), "MP3"),
        ("float16.wav", fmt_chunk(TAG_FLOAT, 1, 44_100, 16, 2), "16-bit float"),
        ("ext_alaw.wav", extensible_chunk(2, 44_100, 8, 8, 2, 0x0006), "A-law"),
        ("ext_20in24.wav", extensible_chunk(2, 44_100, 24, 20, 6, TAG_PCM), "20-bit integer PCM samples in 24-bit"),
        ("ext_24in32.wav", extensible_chunk(2, 44_100, 32, 24, 8, TAG_PCM), "24-bit integer PCM samples in 32-bit"),
        ("pcm_24in32.wav", fmt_chunk(TAG_PCM, 2, 44_100, 24, 8), "24-bit integer PCM samples in 32-bit"),
        ("ext_double.wav", extensible_chunk(1, 44_100, 64, 64, 8, TAG_FLOAT), "64-bit float"),
    ];
    for (name, chunk, needle) in cases {
        let p = write_bytes(d, name, &minimal_wav_bytes(&chunk, &data, data.len() as u32));
        let e = read_err(&p);
        assert!(matches!(&e, E::UnsupportedEncoding { encoding, .. } if encoding.contains(needle)), "{name}: {e}");
    }
    // Unknown extensible GUID.
    let mut chunk = extensible_chunk(2, 44_100, 16, 16, 4, TAG_PCM);
    chunk[30] ^= 0xFF;
    let p = write_bytes(d, "ext_guid.wav", &minimal_wav_bytes(&chunk, &data, 48));
    assert!(matches!(read_err(&p), E::UnsupportedEncoding { .. }));
    // Big-endian RIFX and RF64.
    let mut b = minimal_wav_bytes(&fmt_chunk(TAG_PCM, 1, 44_100, 16, 2), &data, 48);
    b[..4].copy_from_slice(b"RF64");
    assert!(matches!(read_err(&write_bytes(d, "big.wav", &b)), E::UnsupportedEncoding { .. }));
    b[..4].copy_from_slice(b"RIFX");
    assert!(matches!(read_err(&write_bytes(d, "rifx.wav", &b)), E::UnsupportedEncoding { .. }));

    // Supported layouts written by hand (not by hound) do read: extensible 24-bit, and
    // an extensible float file — the scan accepts what hound decodes.
    let mut d24 = Vec::new();
    for s in [-8_388_608i32, 8_388_607, 1, -1] {
        d24.extend_from_slice(&s.to_le_bytes()[..3]);
    }
    let p = write_bytes(d, "ext24.wav", &minimal_wav_bytes(&extensible_chunk(2, 96_000, 24, 24, 6, TAG_PCM), &d24, 12));
    let (clip, fmt) = read_wav(&p).unwrap();
    assert_eq!(fmt, WavFormat::INT24);
    assert_eq!(clip.channels, vec![vec![-1.0, 1.0 / 8_388_608.0], vec![8_388_607.0 / 8_388_608.0, -1.0 / 8_388_608.0]]);
    let mut df = Vec::new();
    for s in [0.25f32, -0.5] {
        df.extend_from_slice(&s.to_le_bytes());
    }
    let p = write_bytes(d, "extf.wav", &minimal_wav_bytes(&extensible_chunk(1, 48_000, 32, 32, 4, TAG_FLOAT), &df, 8));
    let (clip, fmt) = read_wav(&p).unwrap();
    assert_eq!(fmt, WavFormat::FLOAT32);
    assert_eq!(clip.channels, vec![vec![0.25, -0.5]]);

    // Writing an unsupported format is refused too.
    let clip = AudioClip::new(44_100, vec![vec![0.0; 10]]);
    let p = d.join("out12.wav");
    let e = write_wav(&p, &clip, WavFormat { bits_per_sample: 12, float: false }).unwrap_err();
    assert!(matches!(e, E::UnsupportedEncoding { .. }) && e.to_string().contains("out12.wav"), "{e}");
    let e = write_wav(&p, &clip, WavFormat { bits_per_sample: 64, float: true }).unwrap_err();
    assert!(matches!(e, E::UnsupportedEncoding { .. }), "{e}");
    assert!(!p.exists());
}

#[test]
fn sample_rate_limits() {
    let dir = tmpdir();
    for (rate, ok) in [(7_999u32, false), (8_000, true), (0, false), (384_000, true), (384_001, false), (1_000_000, false), (22_050, true), (192_000, true)] {
        let p = dir.path().join(format!("rate_{rate}.wav"));
        // hound panics (divide by zero) when asked to write rate 0: patch the header.
        hound_write(&p, WavFormat::INT16, 1, 8_000, &[1, 2, 3], &[]);
        let mut b = fs::read(&p).unwrap();
        b[24..28].copy_from_slice(&rate.to_le_bytes());
        b[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
        fs::write(&p, b).unwrap();
        if ok {
            assert_eq!(read_wav(&p).unwrap().0.sample_rate, rate);
        } else {
            let e = read_err(&p);
            assert!(matches!(e, E::BadSampleRate { rate: r, .. } if r == rate), "{e}");
            assert!(e.to_string().contains(&format!("{rate} Hz")), "{e}");
        }
        let out = dir.path().join(format!("w_{rate}.wav"));
        let res = write_wav(&out, &AudioClip::new(rate, vec![vec![0.1; 4]]), WavFormat::INT16);
        assert_eq!(res.is_ok(), ok, "{res:?}");
        if !ok {
            assert!(matches!(res, Err(E::BadSampleRate { .. })));
        }
    }
}

#[test]
fn non_finite_float_samples() {
    let dir = tmpdir();
    let rate = 48_000;
    for (bad, label) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let mut s = vec![0.1f32; 3 * 96_000];
        // channel 3 (index 2) at frame 72_000 = 1.5 s; a later one in channel 1.
        s[72_000 * 3 + 2] = bad;
        s[80_000 * 3] = f32::NAN;
        let p = dir.path().join(format!("bad_{label}.wav"));
        hound_write(&p, WavFormat::FLOAT32, 3, rate, &[], &s);
        let e = read_err(&p);
        match &e {
            E::NonFinite { channel, frame, seconds, value, .. } => {
                assert_eq!((*channel, *frame), (2, 72_000));
                assert!((seconds - 1.5).abs() < 1e-9);
                assert_eq!(value.to_string(), label);
            }
            other => panic!("wrong variant: {other}"),
        }
        let msg = e.to_string();
        assert!(msg.contains("channel 3") && msg.contains("1.500000 s") && msg.contains(label), "{msg}");
    }
}

#[test]
fn malformed_headers() {
    let dir = tmpdir();
    let d = dir.path();
    let data = [0u8; 8];
    // Zero channels.
    let p = write_bytes(d, "nochan.wav", &minimal_wav_bytes(&fmt_chunk(TAG_PCM, 0, 44_100, 16, 0), &data, 8));
    assert!(matches!(read_err(&p), E::Malformed { .. }));
    // Data before fmt.
    let mut b = b"RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd".to_vec();
    b.extend_from_slice(b"fmt \x10\x00\x00\x00");
    b.extend_from_slice(&fmt_chunk(TAG_PCM, 1, 44_100, 16, 2));
    assert!(matches!(read_err(&write_bytes(d, "order.wav", &b)), E::Malformed { .. }));
    // No data chunk at all: the file ends after fmt.
    let b = &minimal_wav_bytes(&fmt_chunk(TAG_PCM, 1, 44_100, 16, 2), &[], 0)[..36];
    assert!(matches!(read_err(&write_bytes(d, "nodata.wav", b)), E::Truncated { .. }));
    // Data length not a whole number of frames.
    let p = write_bytes(d, "ragged.wav", &minimal_wav_bytes(&fmt_chunk(TAG_PCM, 2, 44_100, 16, 4), &data[..7], 7));
    assert!(matches!(read_err(&p), E::Malformed { .. }));
    // fmt chunk too short.
    let p = write_bytes(d, "shortfmt.wav", &minimal_wav_bytes(&[1, 0, 1, 0, 0x44, 0xAC, 0, 0], &data, 8));
    assert!(matches!(read_err(&p), E::Malformed { .. }));
    // Block align inconsistent with channels × bits.
    let p = write_bytes(d, "align.wav", &minimal_wav_bytes(&fmt_chunk(TAG_PCM, 2, 44_100, 16, 3), &data[..6], 6));
    assert!(matches!(read_err(&p), E::Malformed { .. }));
    // Garbage after a valid RIFF/WAVE header never panics.
    let mut rng = Rng(12345);
    for i in 0..300 {
        let len = 12 + (rng.next_u64() % 120) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        b[..4].copy_from_slice(b"RIFF");
        b[8..12].copy_from_slice(b"WAVE");
        if i % 2 == 0 && len >= 20 {
            b[12..16].copy_from_slice(b"fmt ");
            b[16..20].copy_from_slice(&16u32.to_le_bytes());
        }
        let p = write_bytes(d, "fuzz.wav", &b);
        let _ = read_wav(&p); // must return, Ok or Err
    }
}

/// Chunks before the data chunk (LIST, an odd-length one with its pad byte) are skipped.
#[test]
fn extra_chunks_are_skipped() {
    let dir = tmpdir();
    let fmt = fmt_chunk(TAG_PCM, 1, 44_100, 16, 2);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF\x00\x00\x00\x00WAVE");
    b.extend_from_slice(b"LIST\x04\x00\x00\x00INFO");
    b.extend_from_slice(b"fmt \x10\x00\x00\x00");
    b.extend_from_slice(&fmt);
    b.extend_from_slice(b"data\x04\x00\x00\x00");
    b.extend_from_slice(&[0x00, 0x40, 0x00, 0xC0]);
    b.extend_from_slice(b"id3 \x02\x00\x00\x00xy"); // trailing chunk after data
    let (clip, _) = read_wav(&write_bytes(dir.path(), "list.wav", &b)).unwrap();
    assert_eq!(clip.channels, vec![vec![0.5, -0.5]]);
}

#[test]
fn write_refuses_bad_clips() {
    let dir = tmpdir();
    let p = dir.path().join("out.wav");
    let cases = [AudioClip::new(44_100, vec![]), AudioClip::new(44_100, vec![vec![]]), AudioClip::new(44_100, vec![vec![0.0; 10], vec![0.0; 9]])];
    for clip in &cases {
        let e = write_wav(&p, clip, WavFormat::INT16).unwrap_err();
        assert!(matches!(e, E::InvalidClip { .. }), "{e}");
        assert!(e.to_string().contains("out.wav"), "{e}");
    }
    let many = AudioClip::new(384_000, vec![vec![0.0; 2]; 3000]);
    let e = write_wav(&p, &many, WavFormat::INT32).unwrap_err();
    assert!(matches!(e, E::InvalidClip { .. }), "{e}");
    let e = write_wav(&p, &cases[2], WavFormat::INT16).unwrap_err();
    assert!(e.to_string().contains("channel 2 has 9 samples"), "{e}");
    let mut ch = vec![0.0f32; 4410];
    ch[2205] = f32::NAN;
    let e = write_wav(&p, &AudioClip::new(44_100, vec![vec![0.0; 4410], ch]), WavFormat::FLOAT32).unwrap_err();
    assert!(matches!(e, E::NonFinite { channel: 1, frame: 2205, .. }) && e.to_string().contains("0.050000 s"), "{e}");
    assert!(!p.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file left");
}

fn dir_listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A failing write leaves an existing target byte-identical and no temporary file behind:
/// refused up front (non-finite sample), failing in the middle of writing (injected
/// error after some bytes were written), and failing at the rename (target is a
/// non-empty directory).
#[test]
fn atomic_write_leaves_target_untouched() {
    let dir = tmpdir();
    let target = dir.path().join("mix.wav");
    let good = AudioClip::new(44_100, vec![vec![0.25; 441], vec![-0.25; 441]]);
    write_wav(&target, &good, WavFormat::INT24).unwrap();
    let before = fs::read(&target).unwrap();
    assert_eq!(dir_listing(dir.path()), vec!["mix.wav"]);

    let mut bad = good.clone();
    bad.channels[1][300] = f32::INFINITY;
    let e = write_wav(&target, &bad, WavFormat::INT24).unwrap_err();
    assert!(matches!(e, E::NonFinite { .. }), "{e}");
    assert_eq!(fs::read(&target).unwrap(), before);
    assert_eq!(dir_listing(dir.path()), vec!["mix.wav"]);

    // Error after the temporary file has been created and partly written.
    let mut seen_tmp = None;
    let e = write_atomic(&target, |out| {
        out.write_all(&[0xAB; 100_000]).unwrap();
        out.flush().unwrap();
        // On Linux the temporary has no name until it is complete.
        let listing = dir_listing(dir.path());
        assert_eq!(listing.len(), if cfg!(target_os = "linux") { 1 } else { 2 }, "{listing:?}");
        seen_tmp = listing.into_iter().find(|n| n != "mix.wav");
        Err(io_err(&target, "write", io::Error::other("injected failure")))
    })
    .unwrap_err();
    assert!(e.to_string().contains("injected failure") && e.to_string().contains("mix.wav"));
    if let Some(tmp) = seen_tmp {
        assert!(tmp.starts_with(".mix.wav.tmp-"), "{tmp}");
    }
    assert_eq!(fs::read(&target).unwrap(), before);
    assert_eq!(dir_listing(dir.path()), vec!["mix.wav"]);

    // A panic inside the writer also cleans up.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), E> = write_atomic(&target, |out| {
            out.write_all(b"partial").unwrap();
            panic!("boom");
        });
    }));
    assert!(r.is_err());
    assert_eq!(dir_listing(dir.path()), vec!["mix.wav"]);

    // Rename fails: the target is a non-empty directory.
    let as_dir = dir.path().join("folder.wav");
    fs::create_dir(&as_dir).unwrap();
    fs::write(as_dir.join("keep"), b"x").unwrap();
    let e = write_wav(&as_dir, &good, WavFormat::INT16).unwrap_err();
    assert!(matches!(e, E::Io { .. }) && e.to_string().contains("folder.wav"), "{e}");
    assert_eq!(dir_listing(dir.path()), vec!["folder.wav", "mix.wav"]);

    // Directory does not exist: clear error, nothing created.
    let e = write_wav(&dir.path().join("nope/x.wav"), &good, WavFormat::INT16).unwrap_err();
    assert!(matches!(e, E::Io { .. }) && e.to_string().contains("x.wav"), "{e}");

    // A successful write replaces the target and leaves only it.
    let louder = AudioClip::new(44_100, vec![vec![0.5; 441], vec![-0.5; 441]]);
    write_wav(&target, &louder, WavFormat::INT24).unwrap();
    assert_ne!(fs::read(&target).unwrap(), before);
    assert_eq!(read_wav(&target).unwrap().0, louder);
    assert_eq!(dir_listing(dir.path()), vec!["folder.wav", "mix.wav"]);
}

#[test]
fn clip_helpers() {
    let c = AudioClip::new(16_000, vec![vec![0.0; 8000]; 2]);
    assert_eq!((c.num_channels(), c.num_frames()), (2, 8000));
    assert!((c.duration_secs() - 0.5).abs() < 1e-12);
    assert_eq!(resampled_len(8000, 16_000, 48_000), 24_000);
    assert_eq!(WavFormat::INT24.to_string(), "24-bit integer PCM");
    assert_eq!(WavFormat::FLOAT32.to_string(), "32-bit float");
    assert!(WavFormat::ALL.iter().all(|f| f.is_supported()));
    assert!(!WavFormat { bits_per_sample: 24, float: true }.is_supported());
}
