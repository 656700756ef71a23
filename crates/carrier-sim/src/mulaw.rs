//! G.711 μ-law (the carrier's wire codec), written here so the sim never shares a codec with
//! the server under test: a bug in a shared codec would cancel out and go unnoticed.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// One 16-bit PCM sample → one μ-law byte.
pub fn encode_sample(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(CLIP) + BIAS;
    // x is in 132..=32767, so its top bit is bit 7..=14: that is the segment (exponent).
    let exponent = (31 - (x as u32).leading_zeros()) as i32 - 7;
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// One μ-law byte → one 16-bit PCM sample.
pub fn decode_sample(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode_sample(s)).collect()
}

pub fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode_sample(b)).collect()
}

/// μ-law silence.
pub const SILENCE: u8 = 0xFF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x80), 32124);
        assert_eq!(decode_sample(0x00), -32124);
        assert_eq!(decode_sample(0x7F), 0);
    }

    #[test]
    fn round_trip_is_within_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = decode_sample(encode_sample(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            // The quantisation step doubles per segment: 8 near zero, 1024 at the top.
            let allowed = (i32::from(s).abs() / 16).max(8) + 16;
            assert!(err <= allowed, "{s} → {back} (err {err})");
        }
        for b in 0..=255u8 {
            let s = decode_sample(b);
            // Every code except the negative zero (0x7F) maps back to itself.
            if b != 0x7F {
                assert_eq!(encode_sample(s), b, "byte {b:#x} → {s}");
            }
        }
    }
}
