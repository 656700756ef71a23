//! G.711 μ-law, the phone network's 8 kHz codec (ITU-T G.711, the segment/bias form).

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// One 16-bit linear sample → one μ-law byte.
pub fn encode_sample(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// One μ-law byte → one 16-bit linear sample.
pub fn decode_sample(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode_sample(s)).collect()
}

pub fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode_sample(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        assert_eq!(decode_sample(0x80), 32_124);
        assert_eq!(decode_sample(0x00), -32_124);
    }

    #[test]
    fn round_trip_is_within_a_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = decode_sample(encode_sample(s));
            let err = (i32::from(s) - i32::from(back)).abs();
            // The quantisation step doubles per segment: about 3% of the magnitude, at least 8.
            let allowed = (i32::from(s).abs() / 16).max(8) + 4;
            assert!(err <= allowed, "{s} → {back} (error {err} > {allowed})");
        }
        for b in 0..=255u8 {
            // Decoding then encoding is the identity, except negative zero (0x7F) which is zero.
            let again = encode_sample(decode_sample(b));
            assert!(again == b || (b == 0x7F && again == 0xFF), "{b:#x} → {again:#x}");
        }
    }
}
