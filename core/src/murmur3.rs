//! MurmurHash3, x86 32-bit variant: the hash behind Tracee's entity IDs.
//!
//! Entity IDs must be bit-identical to the reference's (detectors compare them with the IDs carried
//! by events), so this is the reference algorithm exactly: 4-byte little-endian blocks, a 1–3 byte
//! tail, the length mixed in, then the 32-bit finaliser. No allocation, no panics, any input length.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// Scrambles one 4-byte block (or the zero-padded tail) before it is mixed into the state.
#[inline]
const fn scramble(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

/// The finaliser: forces every input bit to affect every output bit.
#[inline]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// MurmurHash3_x86_32 of `data` with `seed`, as the reference `MurmurHash3_x86_32` computes it.
///
/// The length is mixed in modulo 2^32, exactly like the reference (which takes an `int` length).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        // `chunks_exact(4)` only yields 4-byte blocks; the pattern states it without indexing.
        let &[b0, b1, b2, b3] = block else {
            continue;
        };
        h ^= scramble(u32::from_le_bytes([b0, b1, b2, b3]));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        // Little-endian assembly of the 1-3 remaining bytes, the rest zero.
        let mut k: u32 = 0;
        for (i, byte) in tail.iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        h ^= scramble(k);
    }
    // Truncation to 32 bits is the reference's behaviour for the length.
    h ^= data.len() as u32;
    fmix32(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published vectors of the reference implementation (SMHasher's MurmurHash3_x86_32, the
    // values every port checks against).
    #[test]
    fn empty_input_depends_only_on_seed() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
    }

    #[test]
    fn every_tail_length() {
        assert_eq!(murmur3_x86_32(&[0x21], 0), 0x7266_1cf4);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43], 0), 0xa0f7_b07a);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65], 0), 0x7e4a_8634);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65, 0x87], 0), 0xf55b_516b);
        assert_eq!(murmur3_x86_32(&[0, 0, 0, 0], 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(&[0xff, 0xff, 0xff, 0xff], 0), 0x7629_3b50);
    }

    #[test]
    fn strings_with_seed() {
        let seed = 0x9747_b28c;
        assert_eq!(murmur3_x86_32(b"a", seed), 0x7fa0_9ea6);
        assert_eq!(murmur3_x86_32(b"aa", seed), 0x5d21_1726);
        assert_eq!(murmur3_x86_32(b"aaa", seed), 0x283e_0130);
        assert_eq!(murmur3_x86_32(b"aaaa", seed), 0x5a97_808a);
        assert_eq!(murmur3_x86_32(b"abc", seed), 0xc84a_62dd);
        assert_eq!(murmur3_x86_32(b"abcd", seed), 0xf047_8627);
        assert_eq!(murmur3_x86_32(b"Hello, world!", seed), 0x2488_4cba);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", seed),
            0x2fa8_26cd
        );
    }

    /// SMHasher's `VerificationTest`: hash keys {}, {0}, {0,1}, ... {0..254} with seed 256 - len,
    /// concatenate the 256 little-endian hashes, hash that with seed 0. The reference value for
    /// MurmurHash3_x86_32 is 0xB0F57EE3. This exercises every length mod 4 and many seeds.
    #[test]
    fn smhasher_verification_value() {
        let mut key = [0u8; 256];
        let mut hashes = [0u8; 1024];
        for i in 0..256usize {
            key[i] = i as u8;
            let h = murmur3_x86_32(&key[..i], 256 - i as u32);
            hashes[i * 4..i * 4 + 4].copy_from_slice(&h.to_le_bytes());
        }
        assert_eq!(murmur3_x86_32(&hashes, 0), 0xb0f5_7ee3);
    }
}
