//! Sample-rate conversion of mono 16-bit PCM: a windowed-sinc (Blackman) polyphase
//! interpolator. When downsampling (22050 → 16000, 24000 → 16000, 16000 → 8000) the kernel is
//! stretched so that it also low-passes below the new Nyquist frequency, which keeps speech
//! free of aliasing; when upsampling it interpolates band-limited. The ratio is reduced to
//! lowest terms (22050:16000 = 441:320) and one set of taps is precomputed per output phase,
//! so a sample costs a short dot product (about 24 multiply-adds for 22050 → 16000).
//!
//! [`Resampler`] works on a stream chunk by chunk (no clicks at chunk boundaries; its output
//! equals the one-shot [`resample`] of the whole signal); [`resample`] converts a whole buffer.

/// Zero crossings of the sinc on each side of the centre (at the lower of the two rates).
const ZERO_CROSSINGS: f64 = 16.0;
/// Zero crossings of [`Resampler::phone`].
const PHONE_ZERO_CROSSINGS: f64 = 4.0;
/// The pass band ends at this fraction of the lower Nyquist frequency (the rest is the
/// transition band of the filter).
const ROLLOFF: f64 = 0.9;
/// More output phases than this share quantised taps (only for odd rate pairs).
const MAX_PHASES: u64 = 1024;

/// Convert mono 16-bit PCM from `from` Hz to `to` Hz (`ceil(len · to / from)` samples out).
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    let mut r = Resampler::new(from, to);
    let mut out = r.process(samples);
    out.extend(r.flush());
    out
}

/// A streaming resampler: feed chunks with [`Resampler::process`], then [`Resampler::flush`]
/// once at the end of the stream for the last few samples (the filter looks a dozen input
/// samples ahead, well under a millisecond).
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Reduced ratio: output n sits at input position n·down/up.
    up: u64,
    down: u64,
    /// Taps per side; the taps of one phase cover input offsets -(half-1)..=half around floor(position).
    half: usize,
    phases: usize,
    /// `phases × 2·half` taps, row by row.
    table: Vec<f32>,
    /// Input samples from absolute index `buf_start` on (may be negative: leading zeros).
    buf: Vec<f32>,
    buf_start: i64,
    /// Input samples seen, and the next output sample's index.
    consumed: u64,
    next_out: u64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Self {
        Self::with_zero_crossings(from, to, ZERO_CROSSINGS)
    }

    /// A shorter filter for live phone audio (8 ↔ 16 kHz on every call, twice): a quarter of
    /// the multiply-adds of [`Resampler::new`] for a wider transition band, which the
    /// telephone band (300–3400 Hz) never reaches.
    pub fn phone(from: u32, to: u32) -> Self {
        Self::with_zero_crossings(from, to, PHONE_ZERO_CROSSINGS)
    }

    fn with_zero_crossings(from: u32, to: u32, zero_crossings: f64) -> Self {
        let (from_u, to_u) = (u64::from(from.max(1)), u64::from(to.max(1)));
        let g = gcd(from_u, to_u);
        let (up, down) = (to_u / g, from_u / g);
        // Cutoff in cycles per input sample.
        let ratio = (to_u as f64 / from_u as f64).min(1.0);
        let fc = 0.5 * ratio * ROLLOFF;
        let half = (zero_crossings / ratio).ceil() as usize;
        let phases = up.min(MAX_PHASES) as usize;
        let width = 2 * half;
        let mut table = vec![0f32; phases * width];
        for p in 0..phases {
            let frac = p as f64 / phases as f64;
            let row = &mut table[p * width..(p + 1) * width];
            let mut sum = 0.0;
            let mut taps = vec![0f64; width];
            for (k, tap) in taps.iter_mut().enumerate() {
                // Input index i + k - (half - 1); distance from the output position i + frac.
                let d = frac - (k as f64 - (half as f64 - 1.0));
                *tap = kernel(d, fc, half as f64);
                sum += *tap;
            }
            for (dst, tap) in row.iter_mut().zip(&taps) {
                *dst = (tap / sum) as f32;
            }
        }
        Resampler { from, to, up, down, half, phases, table, buf: vec![0.0; half], buf_start: -(half as i64), consumed: 0, next_out: 0 }
    }

    pub fn from_rate(&self) -> u32 {
        self.from
    }

    pub fn to_rate(&self) -> u32 {
        self.to
    }

    fn passthrough(&self) -> bool {
        self.from == self.to || self.from == 0 || self.to == 0
    }

    /// Resample the next chunk; returns the output samples that are complete so far.
    pub fn process(&mut self, samples: &[i16]) -> Vec<i16> {
        if self.passthrough() {
            return samples.to_vec();
        }
        self.buf.extend(samples.iter().map(|&s| f32::from(s)));
        self.consumed += samples.len() as u64;
        let mut out = Vec::with_capacity((samples.len() as u64 * self.up / self.down + 2) as usize);
        self.produce(&mut out);
        out
    }

    /// The end of the stream: the remaining samples (the input is treated as followed by silence).
    pub fn flush(&mut self) -> Vec<i16> {
        if self.passthrough() {
            return Vec::new();
        }
        self.buf.extend(std::iter::repeat_n(0.0, self.half + 1));
        let mut out = Vec::new();
        self.produce(&mut out);
        // Ready for another stream.
        self.buf.clear();
        self.buf.extend(std::iter::repeat_n(0.0, self.half));
        self.buf_start = -(self.half as i64);
        self.consumed = 0;
        self.next_out = 0;
        out
    }

    fn produce(&mut self, out: &mut Vec<i16>) {
        let width = 2 * self.half;
        let end = self.buf_start + self.buf.len() as i64;
        loop {
            let n = self.next_out;
            // No output past the end of the signal: ceil(consumed · up / down) samples in all.
            if n * self.down >= self.consumed * self.up {
                break;
            }
            let pos = n * self.down;
            let i = (pos / self.up) as i64;
            if i + self.half as i64 >= end {
                break;
            }
            let rem = pos % self.up;
            let phase = if self.phases as u64 == self.up { rem as usize } else { (rem * self.phases as u64 / self.up) as usize };
            let first = (i - (self.half as i64 - 1) - self.buf_start) as usize;
            let taps = &self.table[phase * width..(phase + 1) * width];
            let window = &self.buf[first..first + width];
            let acc: f32 = taps.iter().zip(window).map(|(t, x)| t * x).sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.next_out += 1;
        }
        // Drop input that no later output needs.
        let next_i = (self.next_out * self.down / self.up) as i64;
        let keep_from = next_i - (self.half as i64 - 1);
        if keep_from > self.buf_start {
            let drop = ((keep_from - self.buf_start) as usize).min(self.buf.len());
            self.buf.drain(..drop);
            self.buf_start += drop as i64;
        }
    }
}

/// Blackman-windowed sinc low-pass at `fc` cycles per sample, `d` samples from the centre.
fn kernel(d: f64, fc: f64, half: f64) -> f64 {
    if d.abs() >= half {
        return 0.0;
    }
    let x = 2.0 * fc * d;
    let sinc = if x.abs() < 1e-12 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
    let t = (d / half + 1.0) / 2.0; // 0..1 across the window
    let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * t).cos() + 0.08 * (4.0 * std::f64::consts::PI * t).cos();
    2.0 * fc * sinc * w
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<i16> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n).map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()).round() as i16).collect()
    }

    /// Amplitude of the `freq` component (least squares against sin and cos), skipping the edges.
    fn amplitude(samples: &[i16], rate: u32, freq: f64) -> f64 {
        let skip = samples.len() / 10;
        let (mut s, mut c) = (0.0, 0.0);
        let body = &samples[skip..samples.len() - skip];
        for (k, &x) in body.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * freq * (k + skip) as f64 / f64::from(rate);
            s += f64::from(x) * ph.sin();
            c += f64::from(x) * ph.cos();
        }
        2.0 * (s * s + c * c).sqrt() / body.len() as f64
    }

    #[test]
    fn lengths_and_identity() {
        let x = sine(440.0, 22050, 1.0, 8000.0);
        assert_eq!(resample(&x, 22050, 16000).len(), 16000);
        assert_eq!(resample(&x[..1000], 22050, 16000).len(), 726); // ceil(1000 · 320 / 441)
        assert_eq!(resample(&x, 22050, 22050), x);
        assert_eq!(resample(&[], 24000, 16000), Vec::<i16>::new());
        assert_eq!(resample(&sine(440.0, 8000, 0.5, 8000.0), 8000, 16000).len(), 8000);
        assert_eq!(resample(&sine(440.0, 24000, 0.5, 8000.0), 24000, 16000).len(), 8000);
    }

    #[test]
    fn keeps_dc_and_speech_band_tones() {
        let dc = vec![1000i16; 4000];
        let y = resample(&dc, 22050, 16000);
        assert!(y[100..y.len() - 100].iter().all(|&v| (v - 1000).abs() <= 1), "DC kept");
        for (from, to) in [(22050, 16000), (24000, 16000), (16000, 8000), (8000, 16000), (16000, 22050), (44100, 16000)] {
            for f in [300.0, 1000.0, 3000.0] {
                let y = resample(&sine(f, from, 1.0, 10000.0), from, to);
                let a = amplitude(&y, to, f);
                assert!((a - 10000.0).abs() < 300.0, "{from}→{to} {f} Hz: amplitude {a}");
            }
        }
    }

    #[test]
    fn removes_what_the_new_rate_cannot_carry() {
        // 10 kHz at 22050 Hz would alias to 6 kHz at 16 kHz; 11 kHz at 24 kHz to 5 kHz.
        for (from, f, alias) in [(22050, 10000.0, 6000.0), (24000, 11000.0, 5000.0), (22050, 8500.0, 7500.0)] {
            let y = resample(&sine(f, from, 1.0, 10000.0), from, 16000);
            let a = amplitude(&y, 16000, alias);
            assert!(a < 10000.0 * 0.03, "{from}: {f} Hz leaks as {alias} Hz with amplitude {a}");
        }
        // Linear interpolation alone would leak most of it: check the test sees aliasing at all.
        let x = sine(10000.0, 22050, 1.0, 10000.0);
        let naive: Vec<i16> = (0..16000).map(|i| x[(i as f64 * 22050.0 / 16000.0) as usize]).collect();
        assert!(amplitude(&naive, 16000, 6000.0) > 5000.0);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let x: Vec<i16> = sine(523.0, 22050, 0.7, 9000.0).iter().zip(sine(2100.0, 22050, 0.7, 4000.0)).map(|(a, b)| a.saturating_add(b)).collect();
        for (from, to) in [(22050, 16000), (24000, 16000), (8000, 16000), (16000, 8000), (44100, 16001)] {
            let whole = resample(&x, from, to);
            let mut r = Resampler::new(from, to);
            let mut parts = Vec::new();
            for chunk in x.chunks(1024).chain(x.chunks(1).take(0)) {
                parts.extend(r.process(chunk));
            }
            parts.extend(r.flush());
            assert_eq!(parts, whole, "{from}→{to}");
            // Odd chunk sizes, including empty ones.
            let mut parts = Vec::new();
            let mut rest = &x[..];
            for size in [0usize, 1, 7, 333, 0, 2048].iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*size).min(rest.len()));
                parts.extend(r.process(a));
                rest = b;
            }
            parts.extend(r.flush());
            assert_eq!(parts, whole, "{from}→{to}, odd chunks, reused resampler");
        }
    }

    #[test]
    fn clips_instead_of_wrapping() {
        let square: Vec<i16> = (0..2000).map(|i| if (i / 20) % 2 == 0 { 32767 } else { -32768 }).collect();
        let y = resample(&square, 22050, 16000);
        assert!(y.contains(&32767) && y.contains(&-32768));
    }

    #[test]
    fn is_fast() {
        let x = sine(440.0, 22050, 60.0, 8000.0);
        let t = std::time::Instant::now();
        let y = resample(&x, 22050, 16000);
        let took = t.elapsed();
        assert_eq!(y.len(), 960_000);
        // Debug builds are ~10× slower than release; a minute of audio is still well under a second.
        assert!(took.as_secs_f64() < 5.0, "60 s of 22050 Hz audio took {took:?}");
    }
}
