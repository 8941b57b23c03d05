//! Encryption at rest of the personal data in the metadata store (ADR 0017): a
//! [`SealedStore`] wraps either adapter and seals, with AES-256-GCM under the lake's data keys,
//! the fields that name or locate a person before they reach the database:
//!
//! - the consent log's `customer_id`, sealed *deterministically* (the nonce is a keyed hash of
//!   the value), so that the database can still find and group a customer's rows by equality;
//!   always under data key 1, whose lookups must stay equal across rotations;
//! - the audit trail's `target` (routes and records named, often a customer), `source` (the
//!   client's address) and `detail` (erasure reports, exports), sealed with random nonces under
//!   the current data key.
//!
//! A sealed value is `enc1:<data key id>:<hex of nonce ‖ ciphertext ‖ tag>`; the additional
//! data is the column's name, so a value moved to another column does not open. The audit
//! chain's hashes cover the values as stored, so `retail audit verify` (or any tool reading the
//! table) checks the chain without the key, and the hashes reveal nothing of the sealed fields.
//! Values written before sealing was turned on are read as they are.
//!
//! The keys are not this crate's: [`FieldKeys`] hands out data keys (the lake's keyring
//! implements it in the composition root); each is stretched with HKDF-SHA256 into a field key
//! and a lookup key of its own, so no key is used both for lake objects and for fields.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retail_domain::audit::{AuditEntry, AuditEvent};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::{hkdf, hmac};

use chrono::{DateTime, Utc};

use crate::{
    ApiKeyRecord, AuditFilter, Claim, ConsentRecord, Error, Lease, MetadataStore, PartitionFilter,
    PartitionState, PartitionStatus, RefreshTokenRecord, Result, Rotation, RunFilter, RunKind,
    RunRecord, UserRecord,
};

/// The start of every sealed value.
pub(crate) const PREFIX: &str = "enc1:";

/// The data key lookups are sealed under: the first, which is never replaced.
const LOOKUP_KEY: u32 = 1;

/// Where a [`SealedStore`] gets its data keys.
#[async_trait]
pub trait FieldKeys: Send + Sync + fmt::Debug {
    /// The data key new values are sealed under, and its id.
    async fn current(&self) -> std::result::Result<(u32, [u8; 32]), String>;

    /// Data key `id`.
    async fn key(&self, id: u32) -> std::result::Result<[u8; 32], String>;
}

/// The two keys stretched from one data key.
struct Derived {
    fields: LessSafeKey,
    lookups: hmac::Key,
}

impl Derived {
    fn new(data_key: &[u8; 32]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"retail-metadata").extract(data_key);
        let fields: UnboundKey = prk
            .expand(&[b"field-key"], &AES_256_GCM)
            .expect("a 32-byte output")
            .into();
        let lookups: hmac::Key = prk
            .expand(&[b"lookup-key"], hmac::HMAC_SHA256)
            .expect("a 32-byte output")
            .into();
        Self {
            fields: LessSafeKey::new(fields),
            lookups,
        }
    }
}

/// Seals and opens field values under the data keys of a [`FieldKeys`].
struct Sealer {
    keys: Arc<dyn FieldKeys>,
    derived: Mutex<HashMap<u32, Arc<Derived>>>,
}

impl Sealer {
    /// The keys stretched from data key `id`, `key`, kept for the next time.
    fn stretched(&self, id: u32, key: &[u8; 32]) -> Arc<Derived> {
        Arc::clone(
            self.derived
                .lock()
                .expect("not poisoned")
                .entry(id)
                .or_insert_with(|| Arc::new(Derived::new(key))),
        )
    }

    async fn derived(&self, id: u32) -> Result<Arc<Derived>> {
        if let Some(derived) = self.derived.lock().expect("not poisoned").get(&id) {
            return Ok(Arc::clone(derived));
        }
        let key = self.keys.key(id).await.map_err(Error::Sealing)?;
        Ok(self.stretched(id, &key))
    }

    async fn current(&self) -> Result<(u32, Arc<Derived>)> {
        let (id, key) = self.keys.current().await.map_err(Error::Sealing)?;
        Ok((id, self.stretched(id, &key)))
    }

    /// `value` sealed under the current data key with a random nonce.
    async fn seal(&self, column: &str, value: &str) -> Result<String> {
        let (id, derived) = self.current().await?;
        let mut nonce = [0; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Sealing("the system's random generator failed".to_owned()))?;
        seal_with(&derived, id, nonce, column, value)
    }

    /// `value` sealed under the lookup key with a nonce that is a keyed hash of it: equal
    /// values give equal sealed values.
    async fn seal_for_lookup(&self, column: &str, value: &str) -> Result<String> {
        let derived = self.derived(LOOKUP_KEY).await?;
        let tag = hmac::sign(
            &derived.lookups,
            &[column.as_bytes(), &[0], value.as_bytes()].concat(),
        );
        let nonce: [u8; NONCE_LEN] = tag.as_ref()[..NONCE_LEN].try_into().expect("12 bytes");
        seal_with(&derived, LOOKUP_KEY, nonce, column, value)
    }

    /// The value `stored` holds: opened when sealed, as it is otherwise.
    ///
    /// # Errors
    ///
    /// When its data key cannot be had, or it does not open (altered, or moved from another
    /// column).
    async fn open(&self, column: &str, stored: String) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored);
        };
        let bad = |why: &str| Error::Sealing(format!("a sealed {column} {why}"));
        let (id, hex_text) = rest
            .split_once(':')
            .ok_or_else(|| bad("has no data key id"))?;
        let id: u32 = id.parse().map_err(|_| bad("has no data key id"))?;
        let bytes = hex::decode(hex_text).map_err(|_| bad("is not hex"))?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(bad("is too short"));
        }
        let derived = self.derived(id).await?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad("has no nonce"))?;
        let opened = derived
            .fields
            .open_in_place(nonce, Aad::from(column.as_bytes()), &mut sealed)
            .map_err(|_| bad("does not open: it was altered or belongs to another column"))?;
        String::from_utf8(opened.to_vec()).map_err(|_| bad("is not text"))
    }
}

fn seal_with(
    derived: &Derived,
    id: u32,
    nonce: [u8; NONCE_LEN],
    column: &str,
    value: &str,
) -> Result<String> {
    let mut sealed = value.as_bytes().to_vec();
    derived
        .fields
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(column.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| Error::Sealing(format!("a {column} could not be sealed")))?;
    Ok(format!(
        "{PREFIX}{id}:{}",
        hex::encode([nonce.as_slice(), &sealed].concat())
    ))
}

const CONSENT_CUSTOMER: &str = "consent_log.customer_id";
const AUDIT_TARGET: &str = "audit_log.target";
const AUDIT_SOURCE: &str = "audit_log.source";
const AUDIT_DETAIL: &str = "audit_log.detail";

/// How many entries a target search reads at a time.
const SEARCH_PAGE: usize = 1_000;

/// A metadata store whose personal fields are sealed (see the module's documentation).
pub struct SealedStore {
    inner: Arc<dyn MetadataStore>,
    sealer: Sealer,
}

impl fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStore")
            .field("inner", &self.inner)
            .field("keys", &self.sealer.keys)
            .finish_non_exhaustive()
    }
}

impl SealedStore {
    /// Seals the personal fields of `inner` under `keys`, after sealing the consent log's
    /// customer ids written before sealing was turned on (each customer's rows change in one
    /// statement; a run that stops half way is finished by the next). Returns the store and
    /// how many customers' rows were sealed now.
    ///
    /// # Errors
    ///
    /// When a data key cannot be had or the consent log cannot be read or changed.
    pub async fn open(
        inner: Arc<dyn MetadataStore>,
        keys: Arc<dyn FieldKeys>,
    ) -> Result<(Self, usize)> {
        let store = Self {
            inner,
            sealer: Sealer {
                keys,
                derived: Mutex::new(HashMap::new()),
            },
        };
        let mut sealed = 0;
        for customer in store.inner.consent_customers().await? {
            if customer.starts_with(PREFIX) {
                continue;
            }
            let token = store
                .sealer
                .seal_for_lookup(CONSENT_CUSTOMER, &customer)
                .await?;
            store
                .inner
                .rename_consent_customer(&customer, &token)
                .await?;
            sealed += 1;
        }
        Ok((store, sealed))
    }

    async fn open_entry(&self, mut entry: AuditEntry) -> Result<AuditEntry> {
        let event = &mut entry.event;
        event.target = self
            .sealer
            .open(AUDIT_TARGET, std::mem::take(&mut event.target))
            .await?;
        event.source = self
            .sealer
            .open(AUDIT_SOURCE, std::mem::take(&mut event.source))
            .await?;
        event.detail = self
            .sealer
            .open(AUDIT_DETAIL, std::mem::take(&mut event.detail))
            .await?;
        Ok(entry)
    }

    async fn customer_token(&self, customer_id: &str) -> Result<String> {
        self.sealer
            .seal_for_lookup(CONSENT_CUSTOMER, customer_id)
            .await
    }
}

#[async_trait]
impl MetadataStore for SealedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn location(&self) -> String {
        format!("{} (personal fields sealed)", self.inner.location())
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn claim(&self, operation: &'static str) -> Result<Claim> {
        self.inner.claim(operation).await
    }

    async fn save_run(&self, run: &RunRecord) -> Result<()> {
        self.inner.save_run(run).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.inner.list_runs(filter).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.inner.run(run_id).await
    }

    async fn run_by_idempotency_key(&self, digest: &str) -> Result<Option<RunRecord>> {
        self.inner.run_by_idempotency_key(digest).await
    }

    async fn fail_interrupted_runs(&self, kind: RunKind, error: &str) -> Result<u64> {
        self.inner.fail_interrupted_runs(kind, error).await
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<bool> {
        self.inner.insert_user(user).await
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>> {
        self.inner.user(username).await
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        self.inner.users().await
    }

    async fn disable_user(&self, username: &str) -> Result<bool> {
        self.inner.disable_user(username).await
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<()> {
        self.inner.insert_refresh_token(token).await
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>> {
        self.inner.refresh_token(token_hash).await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        next_expires_at: i64,
        now: i64,
        grace_seconds: i64,
    ) -> Result<Rotation> {
        self.inner
            .rotate_refresh_token(token_hash, next_hash, next_expires_at, now, grace_seconds)
            .await
    }

    async fn revoke_refresh_family(&self, family: &str) -> Result<()> {
        self.inner.revoke_refresh_family(family).await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<()> {
        self.inner.revoke_access_token(jti, expires_at).await
    }

    async fn revoked_access_tokens(&self, now: i64) -> Result<Vec<String>> {
        self.inner.revoked_access_tokens(now).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.inner.insert_api_key(key).await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.inner.api_key_by_hash(key_hash).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.inner.api_keys().await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        self.inner.revoke_api_key(id).await
    }

    async fn alert_state(&self) -> Result<(i64, Option<String>)> {
        self.inner.alert_state().await
    }

    async fn save_alert_state(&self, expected: i64, document: &str) -> Result<bool> {
        self.inner.save_alert_state(expected, document).await
    }

    async fn cursor(&self, name: &str) -> Result<(i64, Option<String>)> {
        self.inner.cursor(name).await
    }

    async fn save_cursor(&self, name: &str, expected: i64, value: &str) -> Result<bool> {
        self.inner.save_cursor(name, expected, value).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<Lease> {
        self.inner.acquire_lease(name, holder, now, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.release_lease(name, holder).await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        self.inner.lease(name).await
    }

    async fn save_partitions(&self, scope: &str, states: &[PartitionState]) -> Result<()> {
        self.inner.save_partitions(scope, states).await
    }

    async fn partitions(
        &self,
        scope: &str,
        filter: &PartitionFilter,
    ) -> Result<Vec<PartitionState>> {
        self.inner.partitions(scope, filter).await
    }

    async fn partition_counts(
        &self,
        scope: &str,
    ) -> Result<std::collections::BTreeMap<PartitionStatus, u64>> {
        self.inner.partition_counts(scope).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry> {
        let sealed = AuditEvent {
            target: self.sealer.seal(AUDIT_TARGET, &event.target).await?,
            source: self.sealer.seal(AUDIT_SOURCE, &event.source).await?,
            detail: self.sealer.seal(AUDIT_DETAIL, &event.detail).await?,
            ..event.clone()
        };
        let mut entry = self.inner.append_audit(&sealed).await?;
        entry.event = event.clone();
        Ok(entry)
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let Some(text) = &filter.target_contains else {
            let mut entries = Vec::new();
            for entry in self.inner.audit_entries(filter).await? {
                entries.push(self.open_entry(entry).await?);
            }
            return Ok(entries);
        };
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        // Sealed targets cannot be searched by the database: read pages in order, open them
        // and keep the matches.
        let mut page = AuditFilter {
            target_contains: None,
            limit: SEARCH_PAGE,
            ..filter.clone()
        };
        let mut found = Vec::new();
        loop {
            let entries = self.inner.audit_entries(&page).await?;
            let Some(last) = entries.last() else { break };
            page.after_seq = last.seq;
            let complete = entries.len() < SEARCH_PAGE;
            for entry in entries {
                let entry = self.open_entry(entry).await?;
                if entry.event.target.contains(text.as_str()) {
                    found.push(entry);
                    if found.len() == filter.limit {
                        return Ok(found);
                    }
                }
            }
            if complete {
                break;
            }
        }
        Ok(found)
    }

    async fn audit_entries_as_stored(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        // The chain covers the sealed values: verified without opening them.
        self.inner.audit_entries_as_stored(filter).await
    }

    async fn append_consent(&self, record: &ConsentRecord) -> Result<()> {
        let sealed = ConsentRecord {
            customer_id: self.customer_token(&record.customer_id).await?,
            ..record.clone()
        };
        self.inner.append_consent(&sealed).await
    }

    async fn consent_history(&self, customer_id: &str) -> Result<Vec<ConsentRecord>> {
        let token = self.customer_token(customer_id).await?;
        let mut history = self.inner.consent_history(&token).await?;
        for record in &mut history {
            record.customer_id = customer_id.to_owned();
        }
        Ok(history)
    }

    async fn latest_consents(&self, purpose: &str) -> Result<Vec<(String, bool)>> {
        let mut latest = Vec::new();
        for (customer, granted) in self.inner.latest_consents(purpose).await? {
            latest.push((self.sealer.open(CONSENT_CUSTOMER, customer).await?, granted));
        }
        // In customer order, as the database gives plain ids.
        latest.sort();
        Ok(latest)
    }

    async fn erase_consent(&self, customer_id: &str) -> Result<u64> {
        let token = self.customer_token(customer_id).await?;
        // Rows written before sealing was turned on and not yet sealed go too.
        Ok(self.inner.erase_consent(&token).await? + self.inner.erase_consent(customer_id).await?)
    }

    async fn consent_customers(&self) -> Result<Vec<String>> {
        let mut customers = Vec::new();
        for customer in self.inner.consent_customers().await? {
            customers.push(self.sealer.open(CONSENT_CUSTOMER, customer).await?);
        }
        customers.sort();
        customers.dedup();
        Ok(customers)
    }

    async fn rename_consent_customer(&self, from: &str, to: &str) -> Result<u64> {
        let from = self.customer_token(from).await?;
        let to = self.customer_token(to).await?;
        self.inner.rename_consent_customer(&from, &to).await
    }
}
