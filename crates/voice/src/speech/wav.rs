//! A small WAV (RIFF, PCM) writer and reader: for the OpenAI transcription upload, `wav`
//! answers from speech endpoints, recordings and test fixtures.
//!
//! Written files are canonical 44-byte-header PCM. The reader accepts 8-, 16-, 24- and 32-bit
//! integer PCM (`WAVE_FORMAT_PCM` or `WAVE_FORMAT_EXTENSIBLE` with the PCM subformat), skips
//! unknown chunks (`LIST`, `fact`, ...), and takes a data size of `0` or `0xFFFFFFFF` (left so
//! by streaming writers) as "up to the end".

/// Length of the header [`wav_header`] writes.
pub const WAV_HEADER_LEN: usize = 44;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad WAV: {0}")]
pub struct WavError(pub String);

/// The format of a WAV file's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    pub rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
}

/// A decoded WAV file: 16-bit samples (interleaved when `channels` is 2 or more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub samples: Vec<i16>,
    pub rate: u32,
    pub channels: u16,
}

impl Wav {
    /// The samples folded to mono (channels averaged).
    pub fn mono(&self) -> Vec<i16> {
        to_mono(&self.samples, self.channels)
    }

    /// The duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        let frames = self.samples.len() as u64 / u64::from(self.channels.max(1));
        frames * 1000 / u64::from(self.rate.max(1))
    }
}

/// A whole 16-bit PCM WAV file. `samples` are interleaved when `channels` is 2 (left, right, ...).
pub fn wav_bytes(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
    let data_len = samples.len() * 2;
    let mut out = Vec::with_capacity(WAV_HEADER_LEN + data_len);
    out.extend_from_slice(&wav_header(u32::try_from(data_len).unwrap_or(u32::MAX), rate, channels));
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The 44-byte header of a 16-bit PCM WAV file whose data is `data_len` bytes (for writers
/// that stream the samples after it, or patch the sizes in when done).
pub fn wav_header(data_len: u32, rate: u32, channels: u16) -> [u8; WAV_HEADER_LEN] {
    let channels = channels.max(1);
    let block_align = channels * 2;
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Interleave two mono tracks into stereo (the shorter one padded with silence).
pub fn interleave(left: &[i16], right: &[i16]) -> Vec<i16> {
    let n = left.len().max(right.len());
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        out.push(left.get(i).copied().unwrap_or(0));
        out.push(right.get(i).copied().unwrap_or(0));
    }
    out
}

/// Fold interleaved samples to mono by averaging the channels.
pub fn to_mono(samples: &[i16], channels: u16) -> Vec<i16> {
    let c = usize::from(channels.max(1));
    if c == 1 {
        return samples.to_vec();
    }
    samples.chunks_exact(c).map(|f| (f.iter().map(|&s| i32::from(s)).sum::<i32>() / c as i32) as i16).collect()
}

/// Read the header of a WAV file from its first bytes: `Ok(None)` when more bytes are needed,
/// else the format, the offset of the first sample and the data length (`None`: up to the end).
pub fn parse_header(bytes: &[u8]) -> Result<Option<(WavFormat, usize, Option<usize>)>, WavError> {
    if bytes.len() < 12 {
        return if b"RIFF".starts_with(&bytes[..bytes.len().min(4)]) { Ok(None) } else { Err(WavError("not a RIFF file".into())) };
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError("not a RIFF/WAVE file".into()));
    }
    let mut at = 12;
    let mut format: Option<WavFormat> = None;
    loop {
        if bytes.len() < at + 8 {
            return Ok(None);
        }
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        let body = at + 8;
        if id == b"data" {
            let format = format.ok_or_else(|| WavError("data chunk before the fmt chunk".into()))?;
            let len = if size == 0 || size == 0xFFFF_FFFF { None } else { Some(size) };
            return Ok(Some((format, body, len)));
        }
        if size > 1 << 24 {
            return Err(WavError(format!("implausible chunk size {size}")));
        }
        if bytes.len() < body + size {
            return Ok(None);
        }
        if id == b"fmt " {
            if size < 16 {
                return Err(WavError("short fmt chunk".into()));
            }
            let f = &bytes[body..body + size];
            let tag = u16::from_le_bytes([f[0], f[1]]);
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let bits = u16::from_le_bytes([f[14], f[15]]);
            let pcm = match tag {
                1 => true,
                // WAVE_FORMAT_EXTENSIBLE: the subformat GUID starts with the format tag.
                0xFFFE => size >= 26 && u16::from_le_bytes([f[24], f[25]]) == 1,
                _ => false,
            };
            if !pcm {
                return Err(WavError(format!("format tag {tag:#x} is not integer PCM")));
            }
            if channels == 0 || rate == 0 || !matches!(bits, 8 | 16 | 24 | 32) {
                return Err(WavError(format!("unsupported format: {channels} channels, {rate} Hz, {bits} bits")));
            }
            format = Some(WavFormat { rate, channels, bits_per_sample: bits });
        }
        at = body + size + (size & 1);
    }
}

/// Decode a whole WAV file to 16-bit samples.
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    let (format, start, len) = parse_header(bytes)?.ok_or_else(|| WavError("truncated header".into()))?;
    let end = match len {
        Some(len) => (start + len).min(bytes.len()),
        None => bytes.len(),
    };
    let samples = decode_pcm(&bytes[start..end], format.bits_per_sample);
    Ok(Wav { samples, rate: format.rate, channels: format.channels })
}

/// Little-endian integer PCM of `bits` per sample → 16-bit samples (a trailing partial sample is ignored).
pub fn decode_pcm(data: &[u8], bits: u16) -> Vec<i16> {
    match bits {
        8 => data.iter().map(|&b| (i16::from(b) - 128) << 8).collect(),
        16 => data.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect(),
        24 => data.chunks_exact(3).map(|c| i16::from_le_bytes([c[1], c[2]])).collect(),
        32 => data.chunks_exact(4).map(|c| i16::from_le_bytes([c[2], c[3]])).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mono_and_stereo() {
        let mono: Vec<i16> = (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let bytes = wav_bytes(&mono, 16000, 1);
        assert_eq!(bytes.len(), 44 + 2000);
        assert_eq!(&bytes[0..4], b"RIFF");
        let w = parse_wav(&bytes).unwrap();
        assert_eq!(w, Wav { samples: mono.clone(), rate: 16000, channels: 1 });
        assert_eq!(w.duration_ms(), 62);

        let stereo = interleave(&mono, &mono[..500]);
        assert_eq!(stereo.len(), 2000);
        let w = parse_wav(&wav_bytes(&stereo, 8000, 2)).unwrap();
        assert_eq!((w.rate, w.channels, w.samples.len()), (8000, 2, 2000));
        assert_eq!(w.duration_ms(), 125);
        assert_eq!(w.mono()[..500], mono[..500]);
        assert_eq!(w.mono()[600], mono[600] / 2);
    }

    #[test]
    fn reads_other_writers() {
        // Extensible format, a LIST chunk with an odd size (padded), 8-bit and streaming sizes.
        let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0");
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&40u32.to_le_bytes());
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&0xFFFEu16.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes());
        fmt.extend_from_slice(&22050u32.to_le_bytes());
        fmt.extend_from_slice(&44100u32.to_le_bytes());
        fmt.extend_from_slice(&2u16.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        fmt.extend_from_slice(&4u32.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes());
        fmt.extend_from_slice(&[0u8; 14]);
        assert_eq!(fmt.len(), 40);
        b.extend_from_slice(&fmt);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        for s in [1i16, -2, 300] {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b.push(7); // a partial sample
        let w = parse_wav(&b).unwrap();
        assert_eq!((w.rate, w.channels, w.samples.clone()), (22050, 1, vec![1, -2, 300]));

        // Incremental header parsing: more bytes needed until the data chunk's header.
        let data_at = b.len() - 7;
        for cut in [0, 3, 11, 20, 40, data_at - 1] {
            assert_eq!(parse_header(&b[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse_header(&b[..data_at]).unwrap(), Some((WavFormat { rate: 22050, channels: 1, bits_per_sample: 16 }, data_at, None)));

        assert_eq!(decode_pcm(&[0, 128, 255], 8), vec![-32768, 0, 32512]);
        assert_eq!(decode_pcm(&[0xAA, 0x34, 0x12], 24), vec![0x1234]);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse_wav(b"ID3 not a wav file at all").is_err());
        assert!(parse_wav(b"RIFF\0\0\0\0WAVEdata\x04\0\0\0abcd").is_err(), "data before fmt");
        let mut float = wav_bytes(&[0, 0], 16000, 1);
        float[20] = 3; // IEEE float
        assert!(parse_wav(&float).unwrap_err().0.contains("not integer PCM"));
        assert!(parse_wav(&wav_bytes(&[1, 2], 16000, 1)[..30]).is_err());
    }
}
