//! The RIFF header: walked chunk by chunk up to the data chunk, every kind of bad input
//! with its own error.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::io_err;
use crate::audio::{AudioError, WavFormat, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};

pub(super) const TAG_PCM: u16 = 0x0001;
pub(super) const TAG_FLOAT: u16 = 0x0003;
pub(super) const TAG_EXTENSIBLE: u16 = 0xFFFE;
/// The bytes after the leading format tag in every `KSDATAFORMAT_SUBTYPE_*` GUID.
pub(super) const KSDATAFORMAT_TAIL: [u8; 14] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];

/// What the header scan learned about a file that looks readable.
#[derive(Debug)]
pub(super) struct Header {
    pub format: WavFormat,
    pub channels: u16,
    pub sample_rate: u32,
    pub frames: u64,
    /// Where the samples start in the file.
    pub data_offset: u64,
}

/// Read as many bytes as available into `buf` (up to its length); returns the count.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walk the RIFF chunks up to the data chunk and classify the file.
pub(super) fn scan_header<R: Read + Seek>(r: &mut R, file_len: u64, path: &Path) -> Result<Header, AudioError> {
    let p = || path.to_owned();
    let read_err = |e| io_err(path, "read", e);
    let truncated = |detail: &str| AudioError::Truncated { path: p(), detail: detail.to_owned() };
    let malformed = |detail: String| AudioError::Malformed { path: p(), detail };
    let unsupported = |encoding: String| AudioError::UnsupportedEncoding { path: p(), encoding };

    let mut head = [0u8; 64];
    let n = read_up_to(r, &mut head).map_err(read_err)?;
    let head = &head[..n];
    match head.get(..4) {
        Some(b"RIFF") => {}
        Some(b"RIFX") => return Err(unsupported("big-endian RIFX".into())),
        Some(b"RF64") | Some(b"BW64") => return Err(unsupported("RF64/BW64 (WAV over 4 GiB)".into())),
        _ if n < 4 && b"RIFF".starts_with(head) && n > 0 => return Err(truncated("the file ends inside the RIFF header")),
        _ => return Err(AudioError::NotWav { path: p(), what: describe_non_wav(head) }),
    }
    if n < 12 {
        return Err(truncated("the file ends inside the RIFF header"));
    }
    if &head[8..12] != b"WAVE" {
        let kind = String::from_utf8_lossy(&head[8..12]).into_owned();
        return Err(AudioError::NotWav { path: p(), what: format!("a RIFF file of type {kind:?}, not WAVE") });
    }

    let mut pos: u64 = 12;
    let mut fmt: Option<(WavFormat, u16, u32, u16)> = None; // format, channels, rate, block align
    loop {
        if pos >= file_len {
            return Err(if fmt.is_none() {
                truncated("the file ends before its format (fmt) chunk")
            } else {
                truncated("the file ends before its audio data chunk")
            });
        }
        if pos + 8 > file_len {
            return Err(truncated("the file ends inside a chunk header"));
        }
        r.seek(SeekFrom::Start(pos)).map_err(read_err)?;
        let mut ch = [0u8; 8];
        r.read_exact(&mut ch).map_err(read_err)?;
        let id = [ch[0], ch[1], ch[2], ch[3]];
        let len = u64::from(le32(&ch, 4));
        let body = pos + 8;
        match &id {
            b"fmt " => {
                if body + len > file_len {
                    return Err(truncated("the file ends inside the format (fmt) chunk"));
                }
                if len < 16 {
                    return Err(malformed(format!("format (fmt) chunk of only {len} bytes")));
                }
                let mut b = vec![0u8; len.min(64) as usize];
                r.read_exact(&mut b).map_err(read_err)?;
                fmt = Some(parse_fmt(&b, path)?);
            }
            b"data" => {
                let Some((format, channels, sample_rate, block_align)) = fmt else {
                    return Err(malformed("the audio data chunk comes before the format (fmt) chunk".into()));
                };
                if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
                    return Err(AudioError::BadSampleRate { path: p(), rate: sample_rate });
                }
                let align = u64::from(block_align);
                let available = file_len - body;
                if len > available {
                    let secs = |bytes: u64| bytes / align;
                    return Err(AudioError::Truncated {
                        path: p(),
                        detail: format!(
                            "the header promises {} sample frames ({:.3} s) but the file holds only {} ({:.3} s)",
                            secs(len),
                            secs(len) as f64 / f64::from(sample_rate),
                            secs(available),
                            secs(available) as f64 / f64::from(sample_rate),
                        ),
                    });
                }
                if len % align != 0 {
                    return Err(malformed(format!("the audio data chunk is {len} bytes, not a whole number of {align}-byte sample frames")));
                }
                let frames = len / align;
                if frames == 0 {
                    return Err(AudioError::Empty { path: p() });
                }
                return Ok(Header { format, channels, sample_rate, frames, data_offset: body });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        pos = body + len + (len & 1);
    }
}

/// Parse a fmt chunk body (at least 16 bytes; at most the first 64 are given).
fn parse_fmt(b: &[u8], path: &Path) -> Result<(WavFormat, u16, u32, u16), AudioError> {
    let unsupported = |encoding: String| AudioError::UnsupportedEncoding { path: path.to_owned(), encoding };
    let malformed = |detail: String| AudioError::Malformed { path: path.to_owned(), detail };
    let mut tag = le16(b, 0);
    let channels = le16(b, 2);
    let rate = le32(b, 4);
    let block_align = le16(b, 12);
    let bits = le16(b, 14);
    let mut valid_bits = bits;
    if tag == TAG_EXTENSIBLE {
        if b.len() < 40 || le16(b, 16) < 22 {
            return Err(malformed("WAVE_FORMAT_EXTENSIBLE header is too short".into()));
        }
        let v = le16(b, 18);
        if v != 0 {
            valid_bits = v;
        }
        if b[26..40] != KSDATAFORMAT_TAIL {
            return Err(unsupported("an unknown WAVE_FORMAT_EXTENSIBLE sub-format".into()));
        }
        tag = le16(b, 24);
    }
    let float = match tag {
        TAG_PCM => false,
        TAG_FLOAT => true,
        other => return Err(unsupported(format_tag_name(other))),
    };
    if channels == 0 {
        return Err(malformed("the header says the file has 0 channels".into()));
    }
    let kind = if float { "float" } else { "integer PCM" };
    let supported_bits = if float { bits == 32 } else { matches!(bits, 8 | 16 | 24 | 32) };
    if !supported_bits {
        return Err(unsupported(format!("{bits}-bit {kind}")));
    }
    if valid_bits != bits {
        return Err(unsupported(format!("{valid_bits}-bit {kind} samples in {bits}-bit containers")));
    }
    let bytes = u32::from(bits / 8);
    if u32::from(block_align) != bytes * u32::from(channels) {
        if block_align.is_multiple_of(channels) && u32::from(block_align / channels) > bytes {
            return Err(unsupported(format!("{bits}-bit {kind} samples in {}-bit containers", block_align / channels * 8)));
        }
        return Err(malformed(format!("block size of {block_align} bytes does not fit {channels} channels of {bits} bits")));
    }
    Ok((WavFormat { bits_per_sample: bits, float }, channels, rate, block_align))
}

fn format_tag_name(tag: u16) -> String {
    let name = match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x0161..=0x0163 => "Windows Media Audio",
        0x2000 => "AC-3",
        0xF1AC => "FLAC",
        _ => return format!("compression format 0x{tag:04X}"),
    };
    format!("{name}, format 0x{tag:04X}")
}

/// A short guess at what a non-WAV file is, from its first bytes.
fn describe_non_wav(head: &[u8]) -> String {
    if head.is_empty() {
        return "the file is empty".into();
    }
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        return "it looks like an MP3/MPEG audio file".into();
    }
    if starts(b"fLaC") {
        return "it looks like a FLAC file".into();
    }
    if starts(b"OggS") {
        return "it looks like an Ogg (Vorbis/Opus) file".into();
    }
    if starts(b"FORM") {
        return "it looks like an AIFF file".into();
    }
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return "it looks like an MP4/M4A file".into();
    }
    if starts(b"MThd") {
        return "it looks like a MIDI file".into();
    }
    if starts(&[0x30, 0x26, 0xB2, 0x75]) {
        return "it looks like a WMA/ASF file".into();
    }
    let texty = head.iter().all(|&c| matches!(c, b'\t' | b'\n' | b'\r' | 0x20..=0x7E | 0x80..=0xFF));
    if texty {
        return "it looks like a text file".into();
    }
    let hex: Vec<String> = head.iter().take(4).map(|b| format!("{b:02X}")).collect();
    format!("unrecognised content starting with bytes {}", hex.join(" "))
}
