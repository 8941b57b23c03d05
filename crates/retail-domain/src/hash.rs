//! Non-cryptographic hashing shared by the crates: 64-bit FNV-1a, for identities and content
//! fingerprints that must be the same in every process and release (unlike `std`'s hasher).

/// FNV-1a's 64-bit offset basis: the start of the standard hash.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The 64-bit FNV-1a hash of `bytes`, from `start` ([`FNV_OFFSET`] for the standard hash; a
/// seed mixed into it for a seeded one).
///
/// ```
/// use retail_domain::hash::{FNV_OFFSET, fnv1a};
/// assert_eq!(fnv1a(FNV_OFFSET, *b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a(start: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(start, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
