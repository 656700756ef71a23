//! The call's recording, written as the call goes: one mono 16 kHz track per party on the
//! call's clock.
//!
//! A track lives either in memory (no `LiveConfig::record_to`: tests and benchmarks read it
//! from [`LiveOutcome`](super::LiveOutcome)) or in a WAV file. A file track keeps at most about
//! a second of audio in memory, the part a later frame may still be mixed into; everything
//! older is on disk, so a call's memory does not grow with its length. While the call runs the
//! file's header says "data up to the end" (size 0, as streaming writers leave it); at the end
//! both tracks are padded to the same length and their headers are fixed up.
//! [`write_mixes`] then streams the two tracks into the mixed and the two-channel WAV.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::speech::CALL_RATE;
use crate::speech::wav::{WAV_HEADER_LEN, wav_header};

/// Audio behind a track's newest frame that stays open to mixing before it goes to disk.
const OPEN_SAMPLES: usize = 16_000;
/// Samples per read and write when streaming (silence, mixes).
const CHUNK: usize = 8_192;

/// The two track files of a finished call (mono 16-bit 16 kHz WAV, the same length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTracks {
    pub caller: PathBuf,
    pub agent: PathBuf,
    /// Samples in each track.
    pub samples: u64,
}

impl RecordedTracks {
    pub fn duration_ms(&self) -> u64 {
        self.samples * 1000 / u64::from(CALL_RATE)
    }
}

/// One party's audio on the call's clock.
pub(crate) enum Track {
    Memory(Vec<i16>),
    File(FileTrack),
}

pub(crate) struct FileTrack {
    path: PathBuf,
    /// `None` once writing failed: the track then only counts its length.
    file: Option<File>,
    /// Samples on disk.
    written: u64,
    /// The samples from `written` on, still open to mixing.
    open: Vec<i16>,
    scratch: Vec<u8>,
    error: Option<String>,
}

fn to_bytes(samples: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

impl FileTrack {
    fn create(path: PathBuf) -> Self {
        let mut t = FileTrack { path, file: None, written: 0, open: Vec::with_capacity(OPEN_SAMPLES * 2), scratch: Vec::new(), error: None };
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&t.path)
            .and_then(|mut f| f.write_all(&wav_header(0, CALL_RATE, 1)).map(|_| f))
        {
            Ok(f) => t.file = Some(f),
            Err(e) => t.error = Some(format!("cannot create {}: {e}", t.path.display())),
        }
        t
    }

    fn fail(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(format!("cannot write {}: {e}", self.path.display()));
        }
        self.file = None;
    }

    fn len(&self) -> u64 {
        self.written + self.open.len() as u64
    }

    /// Append samples to the file, after what is on disk.
    fn write_out(&mut self, samples: &[i16]) {
        if let Some(f) = self.file.as_mut() {
            to_bytes(samples, &mut self.scratch);
            if let Err(e) = f.write_all(&self.scratch) {
                self.fail(e);
            }
        }
        self.written += samples.len() as u64;
    }

    /// The first `n` open samples are final: write them out.
    fn flush(&mut self, n: usize) {
        let n = n.min(self.open.len());
        if n == 0 {
            return;
        }
        let done: Vec<i16> = self.open.drain(..n).collect();
        self.write_out(&done);
    }

    fn silence(&mut self, mut n: u64) {
        let zeros = [0i16; CHUNK];
        while n > 0 {
            let k = n.min(CHUNK as u64) as usize;
            self.write_out(&zeros[..k]);
            n -= k as u64;
        }
    }

    /// Mix `frame` into samples already on disk (a frame that arrived out of clock order).
    fn mix_on_disk(&mut self, pos: u64, frame: &[i16]) {
        let Some(f) = self.file.as_mut() else { return };
        let at = (WAV_HEADER_LEN as u64) + pos * 2;
        let mut old = vec![0u8; frame.len() * 2];
        let r = (|| {
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut old)?;
            let mixed: Vec<u8> = old.chunks_exact(2).zip(frame).flat_map(|(b, s)| i16::from_le_bytes([b[0], b[1]]).saturating_add(*s).to_le_bytes()).collect();
            f.seek(SeekFrom::Start(at))?;
            f.write_all(&mixed)?;
            f.seek(SeekFrom::End(0))?;
            Ok(())
        })();
        if let Err(e) = r {
            self.fail(e);
        }
    }

    fn place(&mut self, mut pos: u64, mut frame: &[i16]) {
        if pos < self.written {
            let n = frame.len().min((self.written - pos) as usize);
            self.mix_on_disk(pos, &frame[..n]);
            frame = &frame[n..];
            pos = self.written;
            if frame.is_empty() {
                return;
            }
        }
        if pos > self.len() {
            // A gap: what is open is final, and the gap is silence (streamed, not held).
            self.flush(self.open.len());
            self.silence(pos - self.written);
        }
        let rel = (pos - self.written) as usize;
        if self.open.len() < rel + frame.len() {
            self.open.resize(rel + frame.len(), 0);
        }
        for (slot, s) in self.open[rel..].iter_mut().zip(frame) {
            *slot = slot.saturating_add(*s);
        }
        // Frames come in clock order: what lies before this one's start is final.
        if rel > OPEN_SAMPLES {
            self.flush(rel);
        }
    }

    /// Pad to `len`, write everything out and fix the header up.
    fn finish(mut self, len: u64) -> Result<PathBuf, String> {
        if len > self.len() {
            self.flush(self.open.len());
            self.silence(len - self.written);
        }
        self.flush(self.open.len());
        if let Some(mut f) = self.file.take() {
            let data = u32::try_from(self.written * 2).unwrap_or(u32::MAX);
            let r = f.seek(SeekFrom::Start(0)).and_then(|_| f.write_all(&wav_header(data, CALL_RATE, 1))).and_then(|_| f.flush());
            if let Err(e) = r {
                self.fail(e);
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.path),
        }
    }
}

impl Track {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Track::Memory(v) => v.len() as u64,
            Track::File(f) => f.len(),
        }
    }

    /// Write `frame` at sample `pos`, mixing over what is there.
    pub(crate) fn place(&mut self, pos: u64, frame: &[i16]) {
        match self {
            Track::Memory(track) => {
                let pos = pos as usize;
                if track.len() < pos + frame.len() {
                    track.resize(pos + frame.len(), 0);
                }
                for (i, s) in frame.iter().enumerate() {
                    track[pos + i] = track[pos + i].saturating_add(*s);
                }
            }
            Track::File(f) => f.place(pos, frame),
        }
    }
}

/// Both parties' tracks.
pub(crate) struct Recorder {
    pub(crate) caller: Track,
    pub(crate) agent: Track,
}

/// What a recorder leaves: the tracks in memory, or the files.
pub(crate) enum Recorded {
    Memory { caller: Vec<i16>, agent: Vec<i16> },
    Files(Result<RecordedTracks, String>),
}

impl Recorder {
    /// In memory, or two files in `dir` (`caller.wav`, `agent.wav`; the directory is created).
    pub(crate) fn new(dir: Option<&Path>) -> Self {
        match dir {
            None => Recorder { caller: Track::Memory(vec![]), agent: Track::Memory(vec![]) },
            Some(dir) => {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "recording directory not created");
                }
                Recorder { caller: Track::File(FileTrack::create(dir.join("caller.wav"))), agent: Track::File(FileTrack::create(dir.join("agent.wav"))) }
            }
        }
    }

    /// Pad both tracks to the same length and close them.
    pub(crate) fn finish(self) -> Recorded {
        let len = self.caller.len().max(self.agent.len());
        match (self.caller, self.agent) {
            (Track::Memory(mut c), Track::Memory(mut a)) => {
                c.resize(len as usize, 0);
                a.resize(len as usize, 0);
                Recorded::Memory { caller: c, agent: a }
            }
            (Track::File(c), Track::File(a)) => {
                let caller = c.finish(len);
                let agent = a.finish(len);
                Recorded::Files(caller.and_then(|caller| agent.map(|agent| RecordedTracks { caller, agent, samples: len })))
            }
            _ => Recorded::Files(Err("mixed track kinds".into())),
        }
    }
}

/// Read up to `out.len()` samples; fewer only at the end of the stream.
fn read_samples(r: &mut impl Read, bytes: &mut [u8], out: &mut [i16]) -> io::Result<usize> {
    let want = out.len() * 2;
    let mut got = 0;
    while got < want {
        match r.read(&mut bytes[got..want]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = got / 2;
    for (i, s) in out[..n].iter_mut().enumerate() {
        *s = i16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    }
    Ok(n)
}

/// Stream the two tracks into the mixed WAV (caller + agent, one channel) and the two-channel
/// WAV (caller left, agent right), through buffers of a few KiB whatever the call's length.
/// The headers are written first, with the sizes the tracks give.
pub fn write_mixes(tracks: &RecordedTracks, mixed: &mut impl Write, stereo: &mut impl Write) -> io::Result<()> {
    let open = |p: &Path| -> io::Result<BufReader<File>> {
        let mut f = File::open(p)?;
        f.seek(SeekFrom::Start(WAV_HEADER_LEN as u64))?;
        Ok(BufReader::with_capacity(64 * 1024, f))
    };
    let mut caller = open(&tracks.caller)?;
    let mut agent = open(&tracks.agent)?;
    let n = tracks.samples;
    mixed.write_all(&wav_header(u32::try_from(n * 2).unwrap_or(u32::MAX), CALL_RATE, 1))?;
    stereo.write_all(&wav_header(u32::try_from(n * 4).unwrap_or(u32::MAX), CALL_RATE, 2))?;
    let mut bytes = vec![0u8; CHUNK * 2];
    let (mut c, mut a) = (vec![0i16; CHUNK], vec![0i16; CHUNK]);
    let mut m_out = Vec::with_capacity(CHUNK * 2);
    let mut s_out = Vec::with_capacity(CHUNK * 4);
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK as u64) as usize;
        // A track shorter than it says (it should not be) reads as silence.
        let got = read_samples(&mut caller, &mut bytes, &mut c[..k])?;
        c[got..k].fill(0);
        let got = read_samples(&mut agent, &mut bytes, &mut a[..k])?;
        a[got..k].fill(0);
        m_out.clear();
        s_out.clear();
        for i in 0..k {
            m_out.extend_from_slice(&c[i].saturating_add(a[i]).to_le_bytes());
            s_out.extend_from_slice(&c[i].to_le_bytes());
            s_out.extend_from_slice(&a[i].to_le_bytes());
        }
        mixed.write_all(&m_out)?;
        stereo.write_all(&s_out)?;
        left -= k as u64;
    }
    mixed.flush()?;
    stereo.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::wav::parse_wav;

    fn memory_and_file(ops: &[(u64, Vec<i16>)]) -> (Vec<i16>, Vec<i16>) {
        let dir = std::env::temp_dir().join(format!("dialnexa-rec-{}-{}", std::process::id(), ops.len()));
        let mut m = Track::Memory(vec![]);
        let mut f = Track::File(FileTrack::create({
            std::fs::create_dir_all(&dir).unwrap();
            dir.join("t.wav")
        }));
        for (pos, frame) in ops {
            m.place(*pos, frame);
            f.place(*pos, frame);
            assert_eq!(m.len(), f.len());
        }
        let len = m.len() + 5;
        let Track::Memory(mut mem) = m else { unreachable!() };
        mem.resize(len as usize, 0);
        let Track::File(f) = f else { unreachable!() };
        let path = f.finish(len).unwrap();
        let w = parse_wav(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (mem, w.samples)
    }

    #[test]
    fn a_file_track_holds_what_a_memory_track_holds() {
        let tone = |n: usize, k: i16| (0..n).map(|i| (i as i16 % 100) * k).collect::<Vec<i16>>();
        let mut ops = vec![];
        let mut pos = 0u64;
        for i in 0..200u64 {
            // 20 ms frames with jitter (overlaps and gaps), a long gap, and big frames.
            pos += 320 + (i % 3) * 7;
            pos -= i % 5;
            ops.push((pos, tone(320, 3)));
            if i == 100 {
                pos += 40_000;
            }
            if i == 150 {
                ops.push((pos, tone(16_000, 1)));
            }
        }
        // One frame far behind the open window (mixed into what is on disk).
        ops.push((1000, tone(500, 2)));
        let (mem, file) = memory_and_file(&ops);
        assert_eq!(mem.len(), file.len());
        assert!(mem == file, "the file track differs from the memory track");
    }

    #[test]
    fn a_file_track_keeps_little_in_memory() {
        let dir = std::env::temp_dir().join(format!("dialnexa-rec-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = FileTrack::create(dir.join("t.wav"));
        for i in 0..10_000u64 {
            t.place(i * 320, &[7i16; 320]);
            assert!(t.open.len() <= OPEN_SAMPLES + 2 * 320, "{} samples open", t.open.len());
        }
        t.place(10_000 * 320 + 16_000 * 3600, &[1i16; 320]);
        assert!(t.open.len() <= OPEN_SAMPLES + 320);
        let path = t.finish(0).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 44 + 2 * (10_001 * 320 + 16_000 * 3600));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mixes_stream_both_forms() {
        let dir = std::env::temp_dir().join(format!("dialnexa-rec-mix-{}", std::process::id()));
        let mut r = Recorder::new(Some(&dir));
        let caller: Vec<i16> = (0..20_000).map(|i| (i % 50) as i16).collect();
        let agent: Vec<i16> = (0..30_000).map(|i| -((i % 70) as i16)).collect();
        r.caller.place(0, &caller);
        r.agent.place(1_000, &agent);
        let Recorded::Files(Ok(t)) = r.finish() else { panic!("no files") };
        assert_eq!(t.samples, 31_000);
        let (mut m, mut s) = (vec![], vec![]);
        write_mixes(&t, &mut m, &mut s).unwrap();
        let m = parse_wav(&m).unwrap();
        let s = parse_wav(&s).unwrap();
        assert_eq!((m.channels, m.samples.len(), s.channels, s.samples.len()), (1, 31_000, 2, 62_000));
        for i in 0..31_000usize {
            let c = caller.get(i).copied().unwrap_or(0);
            let a = if i >= 1_000 { agent.get(i - 1_000).copied().unwrap_or(0) } else { 0 };
            assert_eq!((m.samples[i], s.samples[2 * i], s.samples[2 * i + 1]), (c.saturating_add(a), c, a), "sample {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
