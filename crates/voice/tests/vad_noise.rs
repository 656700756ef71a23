//! The voice activity detectors against phone-line noise: scripted caller audio (real speech,
//! libfvad's test recording, see tests/data/README.md) mixed with generated street noise, office
//! chatter and line hiss at several signal-to-noise ratios. Counts false barge-ins (speech
//! onsets while only noise plays) and missed, split and merged caller turns, for the energy
//! detector the turn loop used before, the WebRTC detector alone, and the cascade.
//!
//! Run with `--no-capture` to see the tables.

use std::f64::consts::PI;

use dialnexa_voice::live::vad::{FRAME, Vad, VadConfig, VadEvent, VadKind};
use dialnexa_voice::speech::parse_wav;

const RATE: f64 = 16_000.0;
const SNRS: [f64; 3] = [20.0, 10.0, 5.0];

/// Deterministic noise (xorshift64*), so every run hears the same audio.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Roughly Gaussian, unit variance.
    fn gauss(&mut self) -> f64 {
        (0..4).map(|_| self.unit()).sum::<f64>().mul_add(3f64.sqrt(), -2.0 * 3f64.sqrt())
    }
}

/// An RBJ biquad.
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    x: [f64; 2],
    y: [f64; 2],
}

impl Biquad {
    fn new(kind: &str, f0: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f0 / RATE;
        let (s, c) = w.sin_cos();
        let alpha = s / (2.0 * q);
        let (b, a0) = match kind {
            "lp" => ([(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0], 1.0 + alpha),
            "hp" => ([(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0], 1.0 + alpha),
            _ => unreachable!(),
        };
        Biquad { b: b.map(|v| v / a0), a: [-2.0 * c / a0, (1.0 - alpha) / a0], x: [0.0; 2], y: [0.0; 2] }
    }
    fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1] - self.a[0] * self.y[0] - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn ms(n: usize) -> u64 {
    (n as f64 * 1000.0 / RATE) as u64
}

fn samples(ms: f64) -> usize {
    (ms * RATE / 1000.0) as usize
}

/// The speech of libfvad's recording (its first 3.25 s; the rest is not speech), as f64.
fn speech() -> Vec<f64> {
    let wav = parse_wav(include_bytes!("data/audio_tiny16.wav")).unwrap();
    assert_eq!(wav.rate, 16_000);
    wav.mono()[samples(100.0)..samples(3250.0)].iter().map(|s| f64::from(*s)).collect()
}

/// `len` samples of the recording from `from`, with 10 ms fades.
fn utterance(speech: &[f64], from: usize, len: usize) -> Vec<f64> {
    let fade = samples(10.0) as f64;
    (0..len).map(|i| speech[(from + i) % speech.len()] * (i as f64 / fade).min(1.0).min((len - i) as f64 / fade)).collect()
}

#[derive(Clone, Copy, Debug)]
enum Noise {
    /// Traffic: low rumble, cars passing (slow swells of band-limited noise), broadband bursts.
    Street,
    /// Office chatter: babble of six time-shifted, differently scaled copies of the speech.
    Office,
    /// Line hiss: white noise band-limited to 300-3400 Hz, with a click now and then.
    Hiss,
}

fn noise(kind: Noise, n: usize, rng: &mut Rng, speech: &[f64]) -> Vec<f64> {
    match kind {
        Noise::Street => {
            let (mut lp1, mut lp2) = (Biquad::new("lp", 120.0, 0.7), Biquad::new("lp", 120.0, 0.7));
            let mut rumble: Vec<f64> = (0..n).map(|_| lp2.run(lp1.run(rng.gauss()))).collect();
            let r = rms(&rumble);
            rumble.iter_mut().for_each(|v| *v /= r);
            let (mut hp, mut lp) = (Biquad::new("hp", 150.0, 0.7), Biquad::new("lp", 1800.0, 0.7));
            let car: Vec<f64> = (0..n).map(|_| lp.run(hp.run(rng.gauss()))).collect();
            let rc = rms(&car);
            let mut out = rumble;
            // A car every 3-7 s, swelling over 2-4 s to 2-4x the rumble.
            let mut t = rng.range(0.0, 2.0) * RATE;
            while (t as usize) < n {
                let (len, peak) = (rng.range(2.0, 4.0) * RATE, rng.range(2.0, 4.0));
                for i in 0..len as usize {
                    let j = t as usize + i;
                    if j >= n {
                        break;
                    }
                    let env = (PI * i as f64 / len).sin().powi(2);
                    out[j] += car[j] / rc * peak * env;
                }
                t += rng.range(3.0, 7.0) * RATE;
            }
            // A broadband burst (a door, a truck's brakes) every 2-6 s: 80-300 ms at 3-6x.
            let mut t = rng.range(0.5, 3.0) * RATE;
            while (t as usize) < n {
                let (len, amp) = (rng.range(0.08, 0.3) * RATE, rng.range(3.0, 6.0));
                let ramp = samples(5.0) as f64;
                for i in 0..len as usize {
                    let j = t as usize + i;
                    if j < n {
                        out[j] += rng.gauss() * amp * (i as f64 / ramp).min(1.0).min((len - i as f64) / ramp);
                    }
                }
                t += rng.range(2.0, 6.0) * RATE;
            }
            out
        }
        Noise::Office => {
            let mut out = vec![0.0; n];
            for _ in 0..6 {
                let shift = rng.next() as usize % speech.len();
                let gain = rng.range(0.5, 1.0);
                for (i, o) in out.iter_mut().enumerate() {
                    *o += speech[(i + shift) % speech.len()] * gain;
                }
            }
            out
        }
        Noise::Hiss => {
            let (mut hp1, mut hp2) = (Biquad::new("hp", 300.0, 0.7), Biquad::new("hp", 300.0, 0.7));
            let (mut lp1, mut lp2) = (Biquad::new("lp", 3400.0, 0.7), Biquad::new("lp", 3400.0, 0.7));
            let mut out: Vec<f64> = (0..n).map(|_| lp2.run(lp1.run(hp2.run(hp1.run(rng.gauss()))))).collect();
            let r = rms(&out);
            out.iter_mut().for_each(|v| *v /= r);
            // A click (2 ms, decaying) every 0.5-3 s, at 20x the hiss.
            let mut t = samples(rng.range(200.0, 1500.0));
            while t < n {
                let sign = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                for i in 0..samples(2.0) {
                    if t + i < n {
                        out[t + i] += sign * 20.0 * (-(i as f64) / 6.0).exp();
                    }
                }
                t += samples(rng.range(500.0, 3000.0));
            }
            out
        }
    }
}

/// Noise scaled so that the speech's RMS is `snr` dB above it.
fn at_snr(mut noise: Vec<f64>, speech_rms: f64, snr: f64) -> Vec<f64> {
    let k = speech_rms / 10f64.powf(snr / 20.0) / rms(&noise);
    noise.iter_mut().for_each(|v| *v *= k);
    noise
}

fn pcm(x: &[f64]) -> Vec<i16> {
    x.iter().map(|v| v.round().clamp(-32768.0, 32767.0) as i16).collect()
}

/// The caller's turns as the detector reported them: (start, end) in ms.
fn run(vad: &mut Vad, audio: &[i16]) -> Vec<(u64, u64)> {
    let mut turns = vec![];
    let mut start = None;
    for (i, frame) in audio.chunks(FRAME).enumerate() {
        let now = ms((i + 1) * FRAME);
        for e in vad.feed(frame) {
            match e {
                VadEvent::SpeechStarted => start = Some(now),
                VadEvent::TurnEnded => turns.push((start.take().unwrap_or(0), now)),
            }
        }
    }
    if let Some(s) = start {
        turns.push((s, ms(audio.len())));
    }
    turns
}

#[derive(Default, Debug, Clone, Copy)]
struct Score {
    false_barge_ins: usize,
    missed: usize,
    split: usize,
    merged: usize,
    spurious: usize,
    frames: u64,
    neural: u64,
}

fn detectors(cfg: &VadConfig) -> [(&'static str, Vad); 3] {
    [("energy", Vad::energy(cfg.clone())), ("webrtc", Vad::webrtc(cfg.clone())), ("cascade", Vad::new(cfg.clone()))]
}

/// Scores the three detectors on one noise at one SNR.
fn scenario(kind: Noise, snr: f64, speech: &[f64], rng: &mut Rng) -> [Score; 3] {
    let cfg = VadConfig::default();
    let srms = rms(speech);
    let mut scores = [Score::default(); 3];
    // (a) 30 s of noise alone (the agent is talking): every speech onset is a false barge-in.
    let n = samples(30_000.0);
    let only = pcm(&at_snr(noise(kind, n, rng, speech), srms, snr));
    for (score, (_, mut vad)) in scores.iter_mut().zip(detectors(&cfg)) {
        score.false_barge_ins = run(&mut vad, &only).len();
        let (f, w) = vad.stats();
        score.frames += f;
        score.neural += w;
    }
    // (b) 8 caller utterances of 1-3 s, 2-4 s apart, over the noise.
    let mut clean = vec![0.0; samples(1500.0)];
    let mut utterances = vec![];
    for _ in 0..8 {
        let len = samples(rng.range(1000.0, 3000.0)).min(speech.len());
        let from = rng.next() as usize % (speech.len() - len + 1);
        utterances.push((ms(clean.len()), ms(clean.len() + len)));
        clean.extend(utterance(speech, from, len));
        clean.extend(vec![0.0; samples(rng.range(2000.0, 4000.0))]);
    }
    let noise = at_snr(noise(kind, clean.len(), rng, speech), srms, snr);
    let mixed = pcm(&clean.iter().zip(&noise).map(|(s, n)| s + n).collect::<Vec<_>>());
    for (score, (_, mut vad)) in scores.iter_mut().zip(detectors(&cfg)) {
        let turns = run(&mut vad, &mixed);
        let overlaps = |(a, b): (u64, u64), (c, d): (u64, u64)| a < d && c < b;
        for u in &utterances {
            match turns.iter().filter(|t| overlaps(**t, *u)).count() {
                0 => score.missed += 1,
                1 => {}
                _ => score.split += 1,
            }
        }
        for t in &turns {
            match utterances.iter().filter(|u| overlaps(*t, **u)).count() {
                0 => score.spurious += 1,
                1 => {}
                _ => score.merged += 1,
            }
        }
        let (f, w) = vad.stats();
        score.frames += f;
        score.neural += w;
    }
    scores
}

/// Prints one noise's table and returns its scores per SNR.
fn table(kind: Noise, seed: u64) -> Vec<(f64, [Score; 3])> {
    let speech = speech();
    let mut rng = Rng(seed);
    let rows: Vec<(f64, [Score; 3])> = SNRS.iter().map(|snr| (*snr, scenario(kind, *snr, &speech, &mut rng))).collect();
    let mut out = format!(
        "\n{kind:?} noise. Each cell: false barge-ins in 30 s of noise alone | of 8 utterances over the noise: missed/split/merged turns, spurious turns\n\
         {:>6} | {:^18} | {:^18} | {:^18} | cascade neural share\n",
        "SNR", "energy (old)", "webrtc alone", "cascade"
    );
    for (snr, s) in &rows {
        out.push_str(&format!("{snr:>3} dB"));
        for d in s {
            let cell = format!("{:>3} | {}/{}/{}, {}", d.false_barge_ins, d.missed, d.split, d.merged, d.spurious);
            out.push_str(&format!(" | {cell:<18}"));
        }
        let c = s[2];
        out.push_str(&format!(" | {:.0}%\n", 100.0 * c.neural as f64 / (c.frames as f64 * FRAME as f64 / 512.0)));
    }
    println!("{out}");
    rows
}

fn assert_better(rows: &[(f64, [Score; 3])], strict_from_snr: Option<f64>) {
    for (snr, [energy, _, cascade]) in rows {
        assert!(cascade.missed <= energy.missed, "{snr} dB: the cascade missed {} turns, the energy detector {}", cascade.missed, energy.missed);
        if strict_from_snr.is_some_and(|min| *snr >= min) {
            assert!(cascade.false_barge_ins <= 1, "{snr} dB: {} false barge-ins", cascade.false_barge_ins);
            assert!(cascade.missed == 0, "{snr} dB: {} missed turns", cascade.missed);
        }
    }
}

fn cascade_loaded() {
    assert_eq!(Vad::new(VadConfig::default()).kind(), VadKind::Cascade, "the Silero model loads");
}

#[test]
fn line_hiss() {
    cascade_loaded();
    assert_better(&table(Noise::Hiss, 1), Some(10.0));
}

#[test]
fn street_noise() {
    cascade_loaded();
    assert_better(&table(Noise::Street, 2), Some(10.0));
}

#[test]
fn office_chatter() {
    cascade_loaded();
    // Babble is speech: no detector can tell the caller from it at low SNR; the cascade must
    // only not be worse than the energy detector.
    assert_better(&table(Noise::Office, 3), None);
}

/// Neural share on a normal call pattern (1.5 s of speech, 3 s of silence, over faint hiss), on
/// digital silence and on steady line hiss (Silero runs for its first half second or so, until
/// it has learnt the hiss's level, then never again).
#[test]
fn neural_share() {
    let speech = speech();
    let mut rng = Rng(4);
    let mut clean = vec![];
    for i in 0..10 {
        clean.extend(vec![0.0; samples(3000.0)]);
        clean.extend(utterance(&speech, (i * 7919) % (speech.len() - samples(1500.0)), samples(1500.0)));
    }
    clean.extend(vec![0.0; samples(3000.0)]);
    let hiss = at_snr(noise(Noise::Hiss, clean.len(), &mut rng, &speech), rms(&speech), 35.0);
    let call = pcm(&clean.iter().zip(&hiss).map(|(s, n)| s + n).collect::<Vec<_>>());
    // Steady hiss loud enough to pass min_rms (-35 dBFS), with no clicks.
    let mut lp = Biquad::new("lp", 3400.0, 0.7);
    let mut hp = Biquad::new("hp", 300.0, 0.7);
    let steady: Vec<f64> = (0..samples(30_000.0)).map(|_| lp.run(hp.run(rng.gauss()))).collect();
    let steady = pcm(&at_snr(steady, 32768.0 * 10f64.powf(-35.0 / 20.0), 0.0));
    let silence = vec![0i16; samples(30_000.0)];
    let mut report = String::from("\nneural share (Silero windows run / 32 ms windows of audio):\n");
    let mut shares = vec![];
    for (name, audio) in [("call: 1.5 s speech, 3 s silence", &call), ("digital silence", &silence), ("steady hiss at -35 dBFS", &steady)] {
        let mut vad = Vad::new(VadConfig::default());
        let turns = run(&mut vad, audio);
        let (frames, neural) = vad.stats();
        let share = neural as f64 / (frames as f64 * FRAME as f64 / 512.0);
        report.push_str(&format!("  {name:<34} {frames:>5} frames, {neural:>4} windows: {:.1}%, {} turns\n", share * 100.0, turns.len()));
        shares.push((share, turns.len()));
    }
    println!("{report}");
    assert_eq!(shares[0].1, 10, "each utterance is a turn");
    assert!(shares[0].0 <= 0.35, "neural share on a call: {:.1}%", shares[0].0 * 100.0);
    assert!(shares[1].0 == 0.0 && shares[1].1 == 0);
    assert!(shares[2].0 <= 0.03 && shares[2].1 == 0, "steady hiss: {:.1}%", shares[2].0 * 100.0);
}
