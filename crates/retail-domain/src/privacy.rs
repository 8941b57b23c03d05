//! The rules of the GDPR erasure (ADR 0013): which values name a customer, and the keyed
//! hash that identifies an erased customer without holding the id.
//!
//! A customer is named by a structured field whose normalised value
//! ([`crate::field::normalise_customer_id`]) equals the id, or by free text (a malformed row's
//! raw line, the unknown columns kept as JSON, a parse error) that holds the id as a whole
//! token: an occurrence not preceded or followed by a letter or digit. The rule errs towards
//! erasing: a malformed row mentioning `17850.5` names customer `17850` too.

use sha2::{Digest as _, Sha256};

/// Whether `text` holds `id` as a whole token (see the module's rule). An empty id names
/// nothing.
///
/// ```
/// use retail_domain::privacy::mentions;
/// assert!(mentions("536365,85123A,HEART,6,2010-12-01 08:26,2.55,17850.0,United Kingdom", "17850"));
/// assert!(!mentions("178501,x", "17850"));
/// assert!(!mentions("A17850", "17850"));
/// ```
pub fn mentions(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(found) = text[from..].find(id) {
        let start = from + found;
        let end = start + id.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        if boundary(before) && boundary(after) {
            return true;
        }
        // Go on after the first character of this occurrence (occurrences may overlap).
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Whether a structured customer-id field (as it arrived, `17850.0`, or as silver keeps it)
/// names the customer `id`.
pub fn names_customer(field: &str, id: &str) -> bool {
    crate::field::normalise_customer_id(field) == Some(id)
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`, as 32 bytes.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The erased customer's identifier in the platform's records (the erasure reports in the
/// audit trail): HMAC-SHA-256 under the privacy key of `erasure:` followed by the id, in lower
/// case hex. The same customer gets the same value under one key; without the key it cannot
/// be recomputed from a list of candidate ids.
pub fn subject_hash(key: &[u8], id: &str) -> String {
    let mut message = Vec::with_capacity(8 + id.len());
    message.extend_from_slice(b"erasure:");
    message.extend_from_slice(id.as_bytes());
    hex::encode(hmac_sha256(key, &message))
}

/// The pseudonym of `value` in `column` for callers whose role sees that column masked
/// (ADR 0015): `p` and the first 16 lower-case hex digits of HMAC-SHA-256 under the privacy
/// key of `pseudonym:<column>:<value>`, the value as the contract reads it (a customer id
/// normalised: `17850.0` is `17850`; other values trimmed). The same value gets the same
/// pseudonym in every answer; without the key it cannot be recomputed from candidate values.
///
/// ```
/// use retail_domain::privacy::pseudonym;
/// let key = b"a privacy key of at least thirty-two bytes";
/// let p = pseudonym(key, "customer_id", "17850");
/// assert_eq!(p, pseudonym(key, "customer_id", " 17850.0"));
/// assert_eq!(p.len(), 17);
/// assert_ne!(p, pseudonym(key, "customer_id", "17851"));
/// ```
pub fn pseudonym(key: &[u8], column: &str, value: &str) -> String {
    let value = if column == "customer_id" {
        crate::field::normalise_customer_id(value).unwrap_or("")
    } else {
        value.trim()
    };
    let message = format!("pseudonym:{column}:{value}");
    let digest = hmac_sha256(key, message.as_bytes());
    format!("p{}", hex::encode(&digest[..8]))
}

/// What one caller sees of identifying columns: the columns their role pseudonymises and the
/// key of the pseudonyms. Without a key, masked values are withheld (`None`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Masker {
    key: Option<std::sync::Arc<[u8]>>,
    columns: Vec<String>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Masker")
            .field("keyed", &self.key.is_some())
            .field("columns", &self.columns)
            .finish()
    }
}

impl Masker {
    /// Masks `columns` under `key` (none: withholds them).
    pub fn new(key: Option<std::sync::Arc<[u8]>>, columns: Vec<String>) -> Self {
        Self { key, columns }
    }

    /// Whether anything is masked.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether `column` is masked.
    pub fn masks(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }

    /// The masked columns.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// What the caller sees of `value` in masked `column`: its pseudonym, or nothing without
    /// a key.
    pub fn mask(&self, column: &str, value: &str) -> Option<String> {
        self.key.as_deref().map(|key| pseudonym(key, column, value))
    }
}

/// The customers erased so far, as their [`subject_hash`]es under one key: what ingestion
/// checks arriving records against, so an erased customer's data is erased again on arrival
/// (ADR 0013). Holds no id.
#[derive(Debug, Clone, Default)]
pub struct ErasedSubjects {
    key: Vec<u8>,
    subjects: std::collections::HashSet<String>,
}

impl ErasedSubjects {
    /// No subject yet, under `key`.
    pub fn new(key: Vec<u8>) -> Self {
        Self {
            key,
            subjects: std::collections::HashSet::new(),
        }
    }

    /// Adds one erased subject (a hash from an erasure's report).
    pub fn insert(&mut self, subject: String) {
        self.subjects.insert(subject);
    }

    /// How many subjects.
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// Whether a record names an erased customer: its customer field (normalised), or a token
    /// of its free text (a malformed row's raw line, unknown columns, a parse error). A token
    /// here is a maximal run of letters and digits, so free text is matched for ids made of
    /// letters and digits (every id of the real data); the customer field for any id.
    pub fn names_erased<'a>(
        &self,
        field: Option<&str>,
        free: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        if self.subjects.is_empty() {
            return false;
        }
        let erased = |id: &str| self.subjects.contains(&subject_hash(&self.key, id));
        if field
            .and_then(crate::field::normalise_customer_id)
            .is_some_and(erased)
        {
            return true;
        }
        free.into_iter().any(|text| {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|token| !token.is_empty())
                .any(erased)
        })
    }
}

/// What a customer's data may be used for, each with its own consent (ADR 0014).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Customer-level analytics: recorded and exported; the platform's aggregates count every
    /// customer (they are not personal data once aggregated).
    Analytics,
    /// Marketing: the marketing audience export leaves out customers without it.
    Marketing,
    /// Profiling: lifetime value scores and personal recommendations; a customer without it
    /// gets neither.
    Profiling,
}

impl Purpose {
    /// Every purpose, in order.
    pub const ALL: [Self; 3] = [Self::Analytics, Self::Marketing, Self::Profiling];

    /// Its name: `analytics`, `marketing`, `profiling`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Analytics => "analytics",
            Self::Marketing => "marketing",
            Self::Profiling => "profiling",
        }
    }

    /// The purpose of this name.
    ///
    /// # Errors
    ///
    /// A message naming the known purposes.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|purpose| purpose.as_str() == text)
            .ok_or_else(|| {
                format!("unknown purpose {text:?}: use analytics, marketing or profiling")
            })
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may be processed for one purpose right now: everyone but the customers whose latest
/// choice differs from the default (opt-out: those who withdrew; opt-in: everyone but those
/// who granted it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentView {
    /// Whether a customer with no recorded choice may be processed (opt-out).
    pub granted_by_default: bool,
    /// Customers (normalised ids) whose latest choice is the opposite of the default.
    pub exceptions: std::collections::HashSet<String>,
}

impl ConsentView {
    /// Everyone may be processed: no consent is recorded or required.
    pub fn everyone() -> Self {
        Self {
            granted_by_default: true,
            exceptions: std::collections::HashSet::new(),
        }
    }

    /// Whether `customer` may be processed (`17850.0` is customer `17850`).
    pub fn allows(&self, customer: &str) -> bool {
        let id = crate::field::normalise_customer_id(customer).unwrap_or(customer);
        self.granted_by_default != self.exceptions.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_per_column() {
        let key = b"a privacy key of at least thirty-two bytes";
        let p = pseudonym(key, "customer_id", "17850");
        // Reproducible elsewhere: hmac(key, "pseudonym:customer_id:17850", sha256)[:8] as hex.
        let expected = hex::encode(&hmac_sha256(key, b"pseudonym:customer_id:17850")[..8]);
        assert_eq!(p, format!("p{expected}"));
        assert_ne!(
            p,
            pseudonym(
                b"another key of at least thirty-two bytes",
                "customer_id",
                "17850"
            )
        );
        assert_ne!(p, pseudonym(key, "invoice", "17850"));
        let masker = Masker::new(
            Some(std::sync::Arc::from(&key[..])),
            vec!["customer_id".into()],
        );
        assert!(masker.masks("customer_id") && !masker.masks("invoice"));
        assert_eq!(masker.mask("customer_id", "17850.0"), Some(p));
        let withheld = Masker::new(None, vec!["customer_id".into()]);
        assert_eq!(withheld.mask("customer_id", "17850"), None);
        assert!(Masker::default().is_empty());
    }

    #[test]
    fn a_consent_view_allows_by_its_default_except_its_exceptions() {
        let mut opt_out = ConsentView::everyone();
        opt_out.exceptions.insert("17850".to_owned());
        assert!(!opt_out.allows("17850"));
        assert!(!opt_out.allows(" 17850.0"));
        assert!(opt_out.allows("12346"));
        let opt_in = ConsentView {
            granted_by_default: false,
            exceptions: opt_out.exceptions.clone(),
        };
        assert!(opt_in.allows("17850"));
        assert!(!opt_in.allows("12346"));
        for purpose in Purpose::ALL {
            assert_eq!(Purpose::parse(purpose.as_str()), Ok(purpose));
        }
        assert!(
            Purpose::parse("Marketing")
                .unwrap_err()
                .contains("analytics, marketing")
        );
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1 and 2 of RFC 4231.
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_token_is_bounded_by_anything_but_letters_and_digits() {
        for text in [
            "17850",
            "17850.0",
            "x,17850,y",
            "\"17850\"",
            "{\"CustomerID\":\"17850\"}",
            "id 17850; rest",
        ] {
            assert!(mentions(text, "17850"), "{text}");
        }
        // Accented letters are letters too.
        for text in ["178500", "017850", "A17850", "17850B", "é17850", "1785", ""] {
            assert!(!mentions(text, "17850"), "{text}");
        }
        // A later occurrence counts when an earlier one is inside a longer token.
        assert!(mentions("178501 17850", "17850"));
        assert!(mentions("1717850 17850", "17850"));
        assert!(!mentions("anything", ""));
        // Ids that are not digits.
        assert!(mentions("guest C-1, C-12", "C-12"));
        assert!(!mentions("guest C-123", "C-12"));
    }

    #[test]
    fn a_field_names_a_customer_after_normalisation() {
        assert!(names_customer("17850.0", "17850"));
        assert!(names_customer(" 17850 ", "17850"));
        assert!(!names_customer("178500", "17850"));
        assert!(!names_customer("", "17850"));
    }

    #[test]
    fn erased_subjects_are_recognised_in_fields_and_free_text() {
        let key = b"a privacy key of at least thirty-two bytes".to_vec();
        let mut erased = ErasedSubjects::new(key.clone());
        assert!(!erased.names_erased(Some("17850"), []));
        erased.insert(subject_hash(&key, "17850"));
        assert_eq!(erased.len(), 1);
        assert!(erased.names_erased(Some("17850.0"), []));
        assert!(erased.names_erased(Some(" 17850 "), []));
        assert!(!erased.names_erased(Some("17851"), []));
        assert!(!erased.names_erased(None, ["178501,x", "A17850"]));
        assert!(erased.names_erased(None, ["536365,85123A,6,17850.0,United Kingdom"]));
        assert!(erased.names_erased(Some("12347"), ["{\"CustomerID\":\"17850\"}"]));
        // Under another key the same id is another subject.
        let other = ErasedSubjects {
            key: b"another key".to_vec(),
            subjects: erased.subjects.clone(),
        };
        assert!(!other.names_erased(Some("17850"), []));
    }

    #[test]
    fn subject_hashes_depend_on_the_key_and_the_id() {
        let a = subject_hash(b"key one", "17850");
        assert_eq!(a.len(), 64);
        assert_eq!(a, subject_hash(b"key one", "17850"));
        assert_ne!(a, subject_hash(b"key two", "17850"));
        assert_ne!(a, subject_hash(b"key one", "17851"));
    }
}
