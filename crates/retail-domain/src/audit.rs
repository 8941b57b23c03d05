//! The audit trail's chain: how an entry is sealed with the hash of the one before it, and how a
//! reader proves that no entry was altered, removed or slipped in.
//!
//! Entry `n` (numbered from 1) is sealed with
//! `hash(n) = hex(SHA-256(field(seq) ‖ field(at) ‖ field(actor) ‖ field(action) ‖ field(target)
//! ‖ field(source) ‖ field(outcome) ‖ field(detail) ‖ field(hash(n − 1))))`, where
//! `field(v)` is the UTF-8 byte length of `v` in decimal, a colon, then `v`'s bytes, `seq` is
//! written in decimal and `hash(0)` is [`GENESIS`]. Any tool can recompute it:
//!
//! ```python
//! field = lambda v: f"{len(v.encode())}:{v}".encode()
//! sha256(b"".join(field(v) for v in [str(seq), at, actor, action, target, source,
//!                                   outcome, detail, prev_hash])).hexdigest()
//! ```
//!
//! Changing any field of an entry changes its hash, and the next entry names the old one: an
//! alteration shows at the altered entry, a removal at the entry after the gap. Rewriting every
//! hash after an alteration is possible for whoever can write the store, which is why a
//! verification ends with the head (last number and hash): kept elsewhere (a ticket, a signed
//! e-mail), a later verification with `expect_head` proves nothing before it changed.

use sha2::{Digest as _, Sha256};

/// The hash an entry 1 names as the one before it.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was attempted and failed (bad input, an error).
    Failure,
    /// It was refused: no or bad credentials, or a role without the right.
    Denied,
}

impl Outcome {
    /// Its name in entries: `success`, `failure`, `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    /// The outcome of a name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }

    /// The outcome of an HTTP status: `401` and `403` were refusals, other `4xx` and `5xx`
    /// failures.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Denied,
            400.. => Self::Failure,
            _ => Self::Success,
        }
    }
}

/// What happened, as a caller records it: who, what, to what, from where, with what outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Who: `user:alice`, `key:<id>`, `cli:<os user>`, `anonymous`, `system`.
    pub actor: String,
    /// What, as `area.verb`: `auth.login`, `http.write`, `gdpr.forget`, ...
    pub action: String,
    /// To what: a route with its method, a run, a user, a customer.
    pub target: String,
    /// From where: the client's address, `cli@<host>`, `serve@<host>`.
    pub source: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Anything else, as one JSON object (`{}` when nothing).
    pub detail: String,
}

/// One sealed entry of the trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Its number: 1, 2, 3, ... with no gap.
    pub seq: i64,
    /// When it was recorded: RFC 3339 in UTC with microseconds (`2026-12-02T11:30:24.123456Z`).
    pub at: String,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The hash of the entry before it ([`GENESIS`] for entry 1).
    pub prev_hash: String,
    /// Its own hash (see the module's documentation).
    pub hash: String,
}

impl AuditEntry {
    /// Seals `event` as entry `seq`, recorded `at`, after the entry whose hash is `prev_hash`.
    pub fn seal(seq: i64, at: String, event: AuditEvent, prev_hash: String) -> Self {
        let hash = hash_of(seq, &at, &event, &prev_hash);
        Self {
            seq,
            at,
            event,
            prev_hash,
            hash,
        }
    }

    /// The hash its fields give now.
    pub fn expected_hash(&self) -> String {
        hash_of(self.seq, &self.at, &self.event, &self.prev_hash)
    }
}

/// The most bytes of a target the trail keeps.
pub const MAX_TARGET_BYTES: usize = 512;

/// `text` cut to at most `max_bytes` bytes, at a character boundary (targets, actors).
pub fn truncated(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The time format of [`AuditEntry::at`].
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn hash_of(seq: i64, at: &str, event: &AuditEvent, prev_hash: &str) -> String {
    let mut hasher = Sha256::new();
    let seq = seq.to_string();
    for field in [
        seq.as_str(),
        at,
        &event.actor,
        &event.action,
        &event.target,
        &event.source,
        event.outcome.as_str(),
        &event.detail,
        prev_hash,
    ] {
        hasher.update(field.len().to_string().as_bytes());
        hasher.update(b":");
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What is wrong with a chain, at the first entry where it shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The entry's fields no longer give its hash: it was altered.
    Altered {
        /// The entry.
        seq: i64,
    },
    /// Entries are missing: the number `expected` came next, `found` came instead.
    Missing {
        /// The first missing number.
        expected: i64,
        /// The number found in its place (`None`: the trail ends before `expected`, which only
        /// an expected head can tell).
        found: Option<i64>,
    },
    /// The entry names another hash than its predecessor's: an entry before it was replaced
    /// with its hash recomputed, or entries were removed and the rest renumbered.
    Broken {
        /// The entry.
        seq: i64,
    },
    /// The chain holds together but its entry at the expected head's number has another hash:
    /// it was rewritten since that head was taken.
    HeadMismatch {
        /// The expected head's number.
        seq: i64,
        /// The hash found there.
        found: String,
    },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { seq } => write!(
                f,
                "entry {seq} was altered: its fields no longer give its hash"
            ),
            Self::Missing {
                expected,
                found: Some(found),
            } => write!(
                f,
                "entries are missing: entry {expected} should come next, entry {found} does"
            ),
            Self::Missing {
                expected,
                found: None,
            } => write!(
                f,
                "entries are missing: the trail ends before entry {expected}, the expected head"
            ),
            Self::Broken { seq } => write!(
                f,
                "the chain is broken at entry {seq}: it names another hash than entry {}'s",
                seq - 1
            ),
            Self::HeadMismatch { seq, found } => write!(
                f,
                "entry {seq} is not the expected head: its hash is now {found} (the trail was \
                 rewritten from there or earlier)"
            ),
        }
    }
}

/// A verification's verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainCheck {
    /// Entries checked before the first problem (all of them when there is none).
    pub verified: u64,
    /// The last entry checked: its number and hash, to keep for the next verification.
    pub head: Option<(i64, String)>,
    /// The first problem; `None` when the chain is intact.
    pub problem: Option<ChainProblem>,
}

impl ChainCheck {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Checks a chain read in order of number, page after page, without holding it all.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
    verified: u64,
    problem: Option<ChainProblem>,
    expect_head: Option<(i64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new(None)
    }
}

impl ChainVerifier {
    /// A verifier of a whole chain, which must hold `expect_head` (number and hash) when given.
    pub fn new(expect_head: Option<(i64, String)>) -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS.to_owned(),
            verified: 0,
            problem: None,
            expect_head,
        }
    }

    /// Checks the next entry. Returns `false` once a problem is found (later entries are not
    /// looked at).
    pub fn push(&mut self, entry: &AuditEntry) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let problem = if entry.seq != self.next_seq {
            Some(ChainProblem::Missing {
                expected: self.next_seq,
                found: Some(entry.seq),
            })
        } else if entry.expected_hash() != entry.hash {
            Some(ChainProblem::Altered { seq: entry.seq })
        } else if entry.prev_hash != self.prev_hash {
            Some(ChainProblem::Broken { seq: entry.seq })
        } else {
            match &self.expect_head {
                Some((seq, hash)) if *seq == entry.seq && *hash != entry.hash => {
                    Some(ChainProblem::HeadMismatch {
                        seq: *seq,
                        found: entry.hash.clone(),
                    })
                }
                _ => None,
            }
        };
        if problem.is_some() {
            self.problem = problem;
            return false;
        }
        self.next_seq += 1;
        self.prev_hash.clone_from(&entry.hash);
        self.verified += 1;
        true
    }

    /// The verdict after the last entry.
    pub fn finish(mut self) -> ChainCheck {
        if self.problem.is_none()
            && let Some((seq, _)) = &self.expect_head
            && *seq >= self.next_seq
        {
            self.problem = Some(ChainProblem::Missing {
                expected: self.next_seq,
                found: None,
            });
        }
        ChainCheck {
            verified: self.verified,
            head: (self.verified > 0).then(|| (self.next_seq - 1, self.prev_hash.clone())),
            problem: self.problem,
        }
    }
}

/// Checks a whole chain held in memory.
pub fn verify<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    expect_head: Option<(i64, String)>,
) -> ChainCheck {
    let mut verifier = ChainVerifier::new(expect_head);
    for entry in entries {
        if !verifier.push(entry) {
            break;
        }
    }
    verifier.finish()
}

/// The years the trail's time filters take.
pub const FILTER_YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// A time in UTC as the trail's filters take it: `YYYY-MM-DDTHH:MM:SS`, an optional fraction
/// of 1 to 6 digits, then `Z`, a real time in [`FILTER_YEARS`] (no leap second).
pub fn parse_utc_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let body = text.strip_suffix('Z')?;
    let (main, fraction) = match body.split_once('.') {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (body, None),
    };
    let bytes = main.as_bytes();
    let shape = bytes.len() == 19
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            17 => (b'0'..=b'5').contains(b),
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let mut at = chrono::NaiveDateTime::parse_from_str(main, "%Y-%m-%dT%H:%M:%S").ok()?;
    if let Some(fraction) = fraction {
        if !(1..=6).contains(&fraction.len()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let micros: i64 = format!("{fraction:0<6}").parse().ok()?;
        at += chrono::Duration::microseconds(micros);
    }
    FILTER_YEARS
        .contains(&chrono::Datelike::year(&at))
        .then(|| at.and_utc())
}

/// Parses an expected head written as `SEQ:HASH` (what a verification prints).
///
/// # Errors
///
/// When the text is not a positive number of at most 15 digits, a colon and 64 lowercase
/// hexadecimal digits.
pub fn parse_head(text: &str) -> Result<(i64, String), String> {
    let problem =
        || format!("{text:?} is not a head: write SEQ:HASH, as `retail audit verify` prints it");
    let (seq, hash) = text.split_once(':').ok_or_else(problem)?;
    // 1 to 15 digits, no sign, no leading zero: the document's pattern.
    let is_number = (1..=15).contains(&seq.len())
        && !seq.starts_with('0')
        && seq.bytes().all(|b| b.is_ascii_digit());
    if !is_number {
        return Err(problem());
    }
    let seq: i64 = seq.parse().map_err(|_| problem())?;
    let is_hash = hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if seq < 1 || !is_hash {
        return Err(problem());
    }
    Ok((seq, hash.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            actor: "user:alice".to_owned(),
            action: action.to_owned(),
            target: "POST /admin/pipeline/run".to_owned(),
            source: "127.0.0.1".to_owned(),
            outcome: Outcome::Success,
            detail: "{}".to_owned(),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = entries
                .last()
                .map_or(GENESIS.to_owned(), |e| e.hash.clone());
            entries.push(AuditEntry::seal(
                seq,
                format!("2026-12-02T11:30:{seq:02}.000000Z"),
                event("http.write"),
                prev,
            ));
        }
        entries
    }

    #[test]
    fn the_hash_is_the_documented_one() {
        // Computed with the module documentation's Python lines.
        let entry = AuditEntry::seal(
            1,
            "2026-12-02T11:30:24.123456Z".to_owned(),
            event("auth.login"),
            GENESIS.to_owned(),
        );
        let mut input = Vec::new();
        for field in [
            "1",
            "2026-12-02T11:30:24.123456Z",
            "user:alice",
            "auth.login",
            "POST /admin/pipeline/run",
            "127.0.0.1",
            "success",
            "{}",
            GENESIS,
        ] {
            input.extend(format!("{}:{field}", field.len()).bytes());
        }
        assert_eq!(entry.hash, hex::encode(Sha256::digest(&input)));
        // A multi-byte character counts by its bytes.
        let mut accented = event("auth.login");
        accented.actor = "user:zoë".to_owned();
        let sealed = AuditEntry::seal(1, "t".to_owned(), accented, GENESIS.to_owned());
        let input = format!(
            "1:11:t9:user:zoë10:auth.login24:POST /admin/pipeline/run9:127.0.0.17:success2:{{}}64:{GENESIS}"
        );
        assert_eq!(sealed.hash, hex::encode(Sha256::digest(input.as_bytes())));
    }

    #[test]
    fn an_intact_chain_verifies_and_gives_its_head() {
        let entries = chain(5);
        let check = verify(&entries, None);
        assert!(check.is_intact());
        assert_eq!(check.verified, 5);
        assert_eq!(check.head, Some((5, entries[4].hash.clone())));
        let head = Some((3, entries[2].hash.clone()));
        assert!(verify(&entries, head).is_intact());
        assert_eq!(verify(&[], None).head, None);
    }

    #[test]
    fn each_kind_of_tampering_is_found_at_its_entry() {
        // Altered: a field changed, the hash left.
        let mut entries = chain(5);
        entries[2].event.outcome = Outcome::Failure;
        let check = verify(&entries, None);
        assert_eq!(check.problem, Some(ChainProblem::Altered { seq: 3 }));
        assert_eq!(check.verified, 2);
        // Removed: a gap in the numbers.
        let mut entries = chain(5);
        entries.remove(1);
        assert_eq!(
            verify(&entries, None).problem,
            Some(ChainProblem::Missing {
                expected: 2,
                found: Some(3)
            })
        );
        // Replaced with its hash recomputed: the next entry no longer names it.
        let mut entries = chain(5);
        entries[1] = AuditEntry::seal(
            2,
            entries[1].at.clone(),
            event("http.read"),
            entries[0].hash.clone(),
        );
        assert_eq!(
            verify(&entries, None).problem,
            Some(ChainProblem::Broken { seq: 3 })
        );
        // Rewritten from entry 2 on, every hash recomputed: only a head kept elsewhere tells.
        let original = chain(5);
        let mut rewritten = vec![original[0].clone()];
        for seq in 2..=5 {
            let prev = rewritten.last().expect("one entry").hash.clone();
            rewritten.push(AuditEntry::seal(seq, "t".to_owned(), event("x.y"), prev));
        }
        assert!(verify(&rewritten, None).is_intact());
        let head = Some((4, original[3].hash.clone()));
        assert!(matches!(
            verify(&rewritten, head).problem,
            Some(ChainProblem::HeadMismatch { seq: 4, .. })
        ));
        // Truncated after the kept head.
        let head = Some((5, original[4].hash.clone()));
        assert_eq!(
            verify(&original[..3], head).problem,
            Some(ChainProblem::Missing {
                expected: 4,
                found: None
            })
        );
    }

    #[test]
    fn filter_times_are_exactly_what_their_pattern_says() {
        let regex = regex::Regex::new(&crate::pattern::utc_time(FILTER_YEARS)).expect("compiles");
        let mut texts: Vec<String> = [
            "2026-12-02T11:30:24Z",
            "2026-12-02T11:30:24.1Z",
            "2026-12-02T11:30:24.123456Z",
            "2026-12-02T11:30:24.1234567Z",
            "2026-12-02T11:30:24.Z",
            "2026-12-02T11:30:24",
            "2026-12-02T11:30:24+00:00",
            "2026-12-02 11:30:24Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T23:59:60Z",
            "2026-12-02T23:60:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "1899-12-31T23:59:59Z",
            "1900-01-01T00:00:00Z",
            "2100-12-31T23:59:59Z",
            "2101-01-01T00:00:00Z",
            "+202-12-02T11:30:24Z",
            "2026-1-02T11:30:24Z",
            "2026-12-02T11:30:24z",
            "",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for month in 1..=12 {
            for day in [28, 29, 30, 31] {
                texts.push(format!("2023-{month:02}-{day:02}T05:06:07Z"));
            }
        }
        for text in &texts {
            assert_eq!(
                regex.is_match(text),
                parse_utc_time(text).is_some(),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_utc_time("2026-12-02T11:30:24.5Z").map(|t| t.timestamp_micros() % 1_000_000),
            Some(500_000)
        );
    }

    #[test]
    fn heads_parse_and_outcomes_follow_statuses() {
        let hash = "a".repeat(64);
        assert_eq!(parse_head(&format!("12:{hash}")), Ok((12, hash.clone())));
        for bad in [
            "12",
            "x:aa",
            &format!("0:{hash}"),
            &format!("01:{hash}"),
            &format!("+1:{hash}"),
            &format!("1234567890123456:{hash}"),
            &format!("3:{}", "A".repeat(64)),
        ] {
            assert!(parse_head(bad).is_err(), "{bad}");
        }
        assert_eq!(Outcome::of_status(202), Outcome::Success);
        assert_eq!(Outcome::of_status(403), Outcome::Denied);
        assert_eq!(Outcome::of_status(422), Outcome::Failure);
        assert_eq!(Outcome::of_status(503), Outcome::Failure);
        assert_eq!(Outcome::parse("denied"), Some(Outcome::Denied));
        assert_eq!(truncated("zoë", 3), "zo");
        assert_eq!(truncated("zoë", 4), "zoë");
    }
}
