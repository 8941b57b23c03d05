//! Encryption at rest of the lake (ADR 0016): every object a table writes (data files, log
//! entries, checkpoints) is sealed with AES-256-GCM before it reaches the disk or the bucket,
//! under data keys that are themselves wrapped by a master key the lake never stores.
//!
//! **Keys.** The keyring `_encryption/keyring.json` at the lake's root holds the data keys,
//! each wrapped (AES-256-GCM) by a master key and named by that master key's fingerprint. The
//! master key (32 bytes, given as 64 hex digits) comes from `lake.encryption.master_key`, a
//! secret setting (a file, a variable or a secret manager). One data key is current: new
//! objects are sealed under it; older ones stay readable under theirs.
//!
//! **Objects.** An object is a 51-byte header — `RDPENC01`, the data key's id (u32, big
//! endian), a 32-byte random salt and a 7-byte random nonce prefix — then the plaintext in
//! 64 KiB segments, each sealed with AES-256-GCM and followed by its 16-byte tag. The object's
//! key is HKDF-SHA256 of the data key with the salt (info: the magic and the key id); segment
//! `i`'s nonce is the prefix, `i` (u32, big endian) and a byte that is 1 on the last segment
//! only, so segments cannot be reordered, dropped or cut off unnoticed (the construction of
//! Tink's AES-GCM-HKDF streaming AEAD, not byte-compatible with it). Segments let a reader
//! decrypt the byte range it asks for (a Parquet footer, a column chunk) without the rest.
//!
//! **Rotation.** `rotate_data_key` adds a data key and makes it current (running processes
//! learn it from the first object they meet under it); `rewrap` wraps every data key under
//! the current master key, after which the previous master key can be retired. Neither
//! rewrites a data file.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, RenameOptions, UploadPart,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};

/// The first bytes of every encrypted object.
const MAGIC: &[u8; 8] = b"RDPENC01";
const SALT: usize = 32;
const PREFIX: usize = 7;
/// The header's length: magic, key id, salt, nonce prefix.
pub const HEADER: usize = MAGIC.len() + 4 + SALT + PREFIX;
/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;
/// Where the keyring lives, relative to the lake's root.
pub const KEYRING: &str = "_encryption/keyring.json";
/// Headers remembered per encrypted store, so that ranged reads of a file (a Parquet footer,
/// then its column chunks) fetch its header once.
const CACHED_HEADERS: usize = 4096;

/// Why a key, the keyring or an object could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A master key is not 64 hex digits.
    #[error("{setting} must be 32 bytes written as 64 hex digits (openssl rand -hex 32)")]
    BadMasterKey {
        /// The setting that holds it.
        setting: String,
    },
    /// A data key is wrapped by a master key that is not configured.
    #[error(
        "data key {id} of the lake is wrapped by master key {master}, which is neither \
         lake.encryption.master_key ({current}) nor one of lake.encryption.previous_master_keys"
    )]
    UnknownMaster {
        /// The data key.
        id: u32,
        /// The fingerprint it names.
        master: String,
        /// The configured master key's fingerprint.
        current: String,
    },
    /// A wrapped data key failed authentication.
    #[error("data key {id} does not open under master key {master}: the keyring was altered")]
    Unwrap {
        /// The data key.
        id: u32,
        /// The master key's fingerprint.
        master: String,
    },
    /// The keyring is not what this version writes.
    #[error("the lake's keyring {KEYRING} cannot be read: {0}")]
    Keyring(String),
    /// Encryption is configured for a lake that already holds unencrypted tables.
    #[error(
        "lake.encryption.master_key is set but the lake already holds unencrypted tables \
         ({0}): encryption is switched on for a new, empty lake root"
    )]
    Unencrypted(String),
    /// The lake is encrypted and no master key is configured.
    #[error("the lake is encrypted (it has {KEYRING}) and lake.encryption.master_key is not set")]
    NoMasterKey,
    /// An object names a data key the keyring does not hold.
    #[error("{0} is sealed under data key {1}, which the lake's keyring does not hold")]
    MissingDataKey(String, u32),
    /// An object is not an encrypted object of the lake, or fails authentication.
    #[error("{0} is not an intact encrypted object of this lake: {1}")]
    Corrupt(String, &'static str),
    /// The random generator failed.
    #[error("the system's random generator failed")]
    Random,
}

impl From<KeyError> for object_store::Error {
    fn from(error: KeyError) -> Self {
        Self::Generic {
            store: "encryption",
            source: Box::new(error),
        }
    }
}

/// A master key and its fingerprint (the first 8 bytes of a SHA-256 of it, in hex: names the
/// key in the keyring without revealing it).
#[derive(Clone)]
pub struct MasterKey {
    fingerprint: String,
    key: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl MasterKey {
    /// Reads a master key written as 64 hex digits; `setting` names it in the error.
    ///
    /// # Errors
    ///
    /// [`KeyError::BadMasterKey`] when `text` is not 64 hex digits.
    pub fn parse(setting: &str, text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadMasterKey {
            setting: setting.to_owned(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"retail-lake-master-key:".as_slice(), &key].concat(),
        );
        Ok(Self {
            fingerprint: hex::encode(&digest.as_ref()[..8]),
            key,
        })
    }

    /// A new random master key, as 64 hex digits.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] when the system's random generator fails.
    pub fn generate() -> Result<String, KeyError> {
        Ok(hex::encode(random::<32>()?))
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.key).expect("32 bytes"))
    }

    fn wrap(&self, id: u32, data_key: &[u8; 32]) -> Result<String, KeyError> {
        let nonce = random::<NONCE_LEN>()?;
        let mut sealed = data_key.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(id)),
                &mut sealed,
            )
            .map_err(|_| KeyError::Random)?;
        Ok(hex::encode([nonce.as_slice(), &sealed].concat()))
    }

    fn unwrap(&self, id: u32, wrapped: &str) -> Result<[u8; 32], KeyError> {
        let fail = || KeyError::Unwrap {
            id,
            master: self.fingerprint.clone(),
        };
        let bytes = hex::decode(wrapped).map_err(|_| fail())?;
        if bytes.len() != NONCE_LEN + 32 + TAG {
            return Err(fail());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let opened = self
            .aead()
            .open_in_place(nonce, Aad::from(wrap_aad(id)), &mut sealed)
            .map_err(|_| fail())?;
        opened.try_into().map_err(|_| fail())
    }
}

fn wrap_aad(id: u32) -> Vec<u8> {
    format!("retail-lake-data-key:{id}").into_bytes()
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Random)?;
    Ok(bytes)
}

/// The keyring file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyringFile {
    format: u32,
    /// The data key new objects are sealed under.
    current: u32,
    keys: Vec<WrappedKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedKey {
    id: u32,
    /// When it was made (RFC 3339).
    created: String,
    /// The fingerprint of the master key that wraps it.
    master: String,
    /// Nonce, sealed key and tag, in hex.
    wrapped: String,
}

/// What the keyring says, for `retail lake keys status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyringStatus {
    /// The data key new objects are sealed under.
    pub current: u32,
    /// Every data key: id, when made, and the fingerprint of the master key wrapping it.
    pub keys: Vec<(u32, String, String)>,
    /// The configured master key's fingerprint.
    pub master: String,
}

#[derive(Default)]
struct Loaded {
    file: Option<KeyringFile>,
    keys: HashMap<u32, [u8; 32]>,
}

/// The lake's data keys, opened with the configured master keys; loaded (or, on an empty
/// lake, created) on first use.
pub struct Keyring {
    masters: Vec<MasterKey>,
    /// The lake's root.
    store: Arc<dyn ObjectStore>,
    loaded: tokio::sync::RwLock<Loaded>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("masters", &self.masters)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The keyring of the lake whose root is `store`, under `masters` (the current master
    /// key first, then the previous ones).
    pub fn new(store: Arc<dyn ObjectStore>, masters: Vec<MasterKey>) -> Self {
        assert!(!masters.is_empty(), "a keyring needs a master key");
        Self {
            masters,
            store,
            loaded: tokio::sync::RwLock::new(Loaded::default()),
        }
    }

    fn path() -> Path {
        Path::from(KEYRING)
    }

    /// Reads the keyring file (`None`: there is none) with its version for a conditional
    /// update.
    async fn read(&self) -> Result<Option<(KeyringFile, Option<String>)>, KeyError> {
        match self.store.get(&Self::path()).await {
            Ok(result) => {
                let e_tag = result.meta.e_tag.clone();
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|error| KeyError::Keyring(error.to_string()))?;
                let file: KeyringFile = serde_json::from_slice(&bytes)
                    .map_err(|error| KeyError::Keyring(error.to_string()))?;
                if file.format != 1 {
                    return Err(KeyError::Keyring(format!(
                        "format {} is not 1 (written by a newer version?)",
                        file.format
                    )));
                }
                Ok(Some((file, e_tag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(KeyError::Keyring(error.to_string())),
        }
    }

    /// Writes the keyring; `false` when another process wrote it first (it exists, or it
    /// changed since it was read). A store that cannot update conditionally (a local disk)
    /// replaces the file atomically instead.
    async fn write(&self, file: &KeyringFile, mode: PutMode) -> Result<bool, KeyError> {
        let bytes = serde_json::to_vec_pretty(file).expect("a keyring serialises");
        let path = Self::path();
        let put = |mode: PutMode| {
            self.store
                .put_opts(&path, bytes.clone().into(), mode.into())
        };
        let written = match put(mode.clone()).await {
            Err(object_store::Error::NotImplemented { .. })
                if matches!(mode, PutMode::Update(_)) =>
            {
                put(PutMode::Overwrite).await
            }
            other => other,
        };
        match written {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(error) => Err(KeyError::Keyring(error.to_string())),
        }
    }

    fn open(&self, file: &KeyringFile) -> Result<HashMap<u32, [u8; 32]>, KeyError> {
        file.keys
            .iter()
            .map(|key| {
                let master = self
                    .masters
                    .iter()
                    .find(|master| master.fingerprint == key.master)
                    .ok_or_else(|| KeyError::UnknownMaster {
                        id: key.id,
                        master: key.master.clone(),
                        current: self.masters[0].fingerprint.clone(),
                    })?;
                Ok((key.id, master.unwrap(key.id, &key.wrapped)?))
            })
            .collect()
    }

    fn new_key(&self, id: u32) -> Result<WrappedKey, KeyError> {
        let master = &self.masters[0];
        Ok(WrappedKey {
            id,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            master: master.fingerprint.clone(),
            wrapped: master.wrap(id, &random::<32>()?)?,
        })
    }

    /// Reads the keyring again, creating it on a lake that has none and holds no table.
    async fn reload(&self) -> Result<(), KeyError> {
        let file = match self.read().await? {
            Some((file, _)) => file,
            None => {
                if let Some(table) = self.unencrypted_table().await? {
                    return Err(KeyError::Unencrypted(table));
                }
                let file = KeyringFile {
                    format: 1,
                    current: 1,
                    keys: vec![self.new_key(1)?],
                };
                if self.write(&file, PutMode::Create).await? {
                    file
                } else {
                    // Another process made it first: use theirs.
                    self.read()
                        .await?
                        .ok_or_else(|| KeyError::Keyring("it vanished while read".to_owned()))?
                        .0
                }
            }
        };
        let keys = self.open(&file)?;
        *self.loaded.write().await = Loaded {
            file: Some(file),
            keys,
        };
        Ok(())
    }

    /// The first table log found under the root, if any. A sealed one means the keyring of
    /// an encrypted lake was lost, which is an error of its own.
    async fn unencrypted_table(&self) -> Result<Option<String>, KeyError> {
        let failed = |error: object_store::Error| KeyError::Keyring(error.to_string());
        let mut listing = self.store.list(None);
        while let Some(meta) = listing.try_next().await.map_err(failed)? {
            let path = meta.location.as_ref();
            if let Some((table, _)) = path.split_once("/_delta_log/") {
                let start = self
                    .store
                    .get_range(&meta.location, 0..(MAGIC.len() as u64).min(meta.size))
                    .await
                    .map_err(failed)?;
                if start.as_ref() == MAGIC {
                    return Err(KeyError::Keyring(format!(
                        "it is missing, yet table {table} is encrypted: restore {KEYRING} from \
                         a backup (without it the lake cannot be read)"
                    )));
                }
                return Ok(Some(table.to_owned()));
            }
        }
        Ok(None)
    }

    /// Makes sure the keyring is loaded and every data key opens.
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read or made, or a data key does not open.
    pub async fn check(&self) -> Result<(), KeyError> {
        if self.loaded.read().await.file.is_none() {
            self.reload().await?;
        }
        Ok(())
    }

    /// The current data key and its id.
    async fn current(&self) -> Result<(u32, [u8; 32]), KeyError> {
        self.check().await?;
        let loaded = self.loaded.read().await;
        let current = loaded.file.as_ref().map_or(1, |file| file.current);
        let key = loaded
            .keys
            .get(&current)
            .ok_or_else(|| KeyError::MissingDataKey(KEYRING.to_owned(), current))?;
        Ok((current, *key))
    }

    /// Data key `id`, reading the keyring again when it is new to this process.
    async fn key(&self, object: &Path, id: u32) -> Result<[u8; 32], KeyError> {
        self.check().await?;
        if let Some(key) = self.loaded.read().await.keys.get(&id) {
            return Ok(*key);
        }
        self.reload().await?;
        self.loaded
            .read()
            .await
            .keys
            .get(&id)
            .copied()
            .ok_or_else(|| KeyError::MissingDataKey(object.to_string(), id))
    }

    /// The current data key and its id, for another part of the platform that seals its own
    /// data under the lake's keys (the metadata store's personal fields). Callers stretch it
    /// into keys of their own (HKDF with their own label) and never use it as it is.
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read or opened.
    pub async fn current_data_key(&self) -> Result<(u32, [u8; 32]), KeyError> {
        self.current().await
    }

    /// Data key `id` (see [`Keyring::current_data_key`]), reading the keyring again when it
    /// is new to this process.
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read or opened, or has no key `id`.
    pub async fn data_key(&self, id: u32) -> Result<[u8; 32], KeyError> {
        self.key(&Path::from(KEYRING), id).await
    }

    /// `plain` sealed as a whole object of the lake's format under the current data key, for
    /// files the lake does not write itself (the embedded search index).
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read or opened.
    pub async fn seal_bytes(&self, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (id, key) = self.current().await?;
        seal(id, &key, plain)
    }

    /// The plaintext of a whole object sealed by [`Keyring::seal_bytes`] (or by the lake);
    /// `name` names it in errors.
    ///
    /// # Errors
    ///
    /// When it is not sealed, its data key is unknown, or it fails authentication.
    pub async fn open_bytes(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let object = Path::from(name);
        let header = Header::parse(&object, sealed)?;
        let key = self.key(&object, header.key_id).await?;
        if plain_len(sealed.len() as u64).is_none() {
            return Err(KeyError::Corrupt(name.to_owned(), "it is cut short"));
        }
        open_segments(
            &object,
            &header,
            &key,
            0,
            &sealed[HEADER..],
            sealed.len() as u64,
        )
    }

    /// What the keyring holds.
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read or opened.
    pub async fn status(&self) -> Result<KeyringStatus, KeyError> {
        self.reload().await?;
        let loaded = self.loaded.read().await;
        let file = loaded.file.as_ref().expect("loaded");
        Ok(KeyringStatus {
            current: file.current,
            keys: file
                .keys
                .iter()
                .map(|key| (key.id, key.created.clone(), key.master.clone()))
                .collect(),
            master: self.masters[0].fingerprint.clone(),
        })
    }

    /// Adds a data key under the current master key and makes it current: objects written
    /// from now on are sealed under it. Returns its id.
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read, opened or written.
    pub async fn rotate_data_key(&self) -> Result<u32, KeyError> {
        self.update(|keyring, file| {
            let id = file.keys.iter().map(|key| key.id).max().unwrap_or(0) + 1;
            file.keys.push(keyring.new_key(id)?);
            file.current = id;
            Ok(id)
        })
        .await
    }

    /// Wraps every data key under the current master key, so that the previous ones can be
    /// retired. Returns how many keys were wrapped anew.
    ///
    /// # Errors
    ///
    /// When the keyring cannot be read, opened or written.
    pub async fn rewrap(&self) -> Result<usize, KeyError> {
        self.update(|keyring, file| {
            let keys = keyring.open(file)?;
            let master = &keyring.masters[0];
            let mut rewrapped = 0;
            for key in &mut file.keys {
                if key.master != master.fingerprint {
                    key.wrapped = master.wrap(key.id, &keys[&key.id])?;
                    key.master.clone_from(&master.fingerprint);
                    rewrapped += 1;
                }
            }
            Ok(rewrapped)
        })
        .await
    }

    /// Changes the keyring with `change` and writes it back only if no one else wrote it in
    /// between (an object store's conditional update; a local file is replaced atomically).
    async fn update<T>(
        &self,
        change: impl Fn(&Self, &mut KeyringFile) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        self.check().await?;
        let (mut file, e_tag) = self
            .read()
            .await?
            .ok_or_else(|| KeyError::Keyring("it is missing".to_owned()))?;
        let answer = change(self, &mut file)?;
        let mode = match e_tag {
            Some(e_tag) => PutMode::Update(object_store::UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
            None => PutMode::Overwrite,
        };
        let written = self.write(&file, mode).await?;
        if !written {
            return Err(KeyError::Keyring(
                "another process changed it at the same time; run the command again".to_owned(),
            ));
        }
        self.reload().await?;
        Ok(answer)
    }
}

/// An object's header.
#[derive(Debug, Clone, Copy)]
struct Header {
    key_id: u32,
    salt: [u8; SALT],
    prefix: [u8; PREFIX],
}

impl Header {
    fn parse(object: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            return Err(KeyError::Corrupt(
                object.to_string(),
                "it does not start with the lake's encryption header",
            ));
        }
        let id = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        Ok(Self {
            key_id: id,
            salt: bytes[12..12 + SALT].try_into().expect("salt"),
            prefix: bytes[12 + SALT..HEADER].try_into().expect("prefix"),
        })
    }

    fn bytes(&self) -> Vec<u8> {
        [
            MAGIC.as_slice(),
            &self.key_id.to_be_bytes(),
            &self.salt,
            &self.prefix,
        ]
        .concat()
    }

    /// The object's own key, derived from the data key and the salt.
    fn object_key(&self, data_key: &[u8; 32]) -> LessSafeKey {
        let info = [MAGIC.as_slice(), &self.key_id.to_be_bytes()].concat();
        let info = [info.as_slice()];
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &self.salt).extract(data_key);
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        LessSafeKey::new(UnboundKey::from(okm))
    }

    fn nonce(&self, segment: u64, last: bool) -> Nonce {
        let mut nonce = [0; NONCE_LEN];
        nonce[..PREFIX].copy_from_slice(&self.prefix);
        let index = u32::try_from(segment).expect("fewer than 2^32 segments");
        nonce[PREFIX..PREFIX + 4].copy_from_slice(&index.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        Nonce::assume_unique_for_key(nonce)
    }
}

/// How many segments `plain` bytes make (an empty object is one empty segment).
fn segments(plain: u64) -> u64 {
    plain.div_ceil(SEGMENT as u64).max(1)
}

/// The plaintext length of an encrypted object of `sealed` bytes.
pub fn plain_len(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(HEADER as u64)?;
    let count = body.div_ceil((SEGMENT + TAG) as u64).max(1);
    body.checked_sub(count * TAG as u64)
}

/// The sealed bytes of segments `first..=last` of an object of `sealed` bytes.
fn sealed_span(first: u64, last: u64, sealed: u64) -> Range<u64> {
    let width = (SEGMENT + TAG) as u64;
    let start = HEADER as u64 + first * width;
    start..(HEADER as u64 + (last + 1) * width).min(sealed)
}

/// Seals `plain` under data key `id`.
fn seal(id: u32, data_key: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let header = Header {
        key_id: id,
        salt: random()?,
        prefix: random()?,
    };
    let key = header.object_key(data_key);
    let count = segments(plain.len() as u64);
    let mut out = Vec::with_capacity(HEADER + plain.len() + count as usize * TAG);
    out.extend(header.bytes());
    let mut chunks: Vec<&[u8]> = plain.chunks(SEGMENT).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (index, chunk) in chunks.into_iter().enumerate() {
        let index = index as u64;
        let mut segment = chunk.to_vec();
        key.seal_in_place_append_tag(
            header.nonce(index, index + 1 == count),
            Aad::empty(),
            &mut segment,
        )
        .map_err(|_| KeyError::Random)?;
        out.extend(segment);
    }
    Ok(out)
}

/// Opens segments `first..` of an object of `sealed` bytes from `span` (their sealed bytes).
fn open_segments(
    object: &Path,
    header: &Header,
    data_key: &[u8; 32],
    first: u64,
    span: &[u8],
    sealed: u64,
) -> Result<Vec<u8>, KeyError> {
    let key = header.object_key(data_key);
    let last_index = segments(plain_len(sealed).unwrap_or(0)) - 1;
    let mut plain = Vec::with_capacity(span.len());
    for (offset, chunk) in span.chunks(SEGMENT + TAG).enumerate() {
        let index = first + offset as u64;
        let mut segment = chunk.to_vec();
        let opened = key
            .open_in_place(
                header.nonce(index, index == last_index),
                Aad::empty(),
                &mut segment,
            )
            .map_err(|_| {
                KeyError::Corrupt(
                    object.to_string(),
                    "a segment fails authentication (altered, truncated or under another key)",
                )
            })?;
        plain.extend_from_slice(opened);
    }
    Ok(plain)
}

/// An object store that seals what it writes and opens what it reads (see the module).
pub struct EncryptedStore {
    inner: Arc<dyn ObjectStore>,
    keyring: Arc<Keyring>,
    /// Object → (its sealed length, its header).
    headers: Mutex<HashMap<Path, (u64, Header)>>,
}

impl fmt::Debug for EncryptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for EncryptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encrypted({})", self.inner)
    }
}

impl EncryptedStore {
    /// Seals and opens the objects of `inner` with the keys of `keyring`.
    pub fn new(inner: Arc<dyn ObjectStore>, keyring: Arc<Keyring>) -> Self {
        Self {
            inner,
            keyring,
            headers: Mutex::new(HashMap::new()),
        }
    }

    fn forget(&self, object: &Path) {
        self.headers
            .lock()
            .expect("header cache lock")
            .remove(object);
    }

    /// An object's sealed length and header: remembered, or read with `options`' conditions.
    async fn header(
        &self,
        object: &Path,
        options: &GetOptions,
    ) -> object_store::Result<(u64, Header)> {
        if let Some(known) = self.headers.lock().expect("header cache lock").get(object) {
            return Ok(*known);
        }
        let request = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER as u64)),
            head: false,
            ..options.clone()
        };
        let result = self.inner.get_opts(object, request).await?;
        let sealed = result.meta.size;
        let header = Header::parse(object, &result.bytes().await?)?;
        let mut headers = self.headers.lock().expect("header cache lock");
        if headers.len() >= CACHED_HEADERS {
            headers.clear();
        }
        headers.insert(object.clone(), (sealed, header));
        Ok((sealed, header))
    }

    /// `read` with the object's sealed length and header; when it fails, once more with both
    /// read again (a header remembered from an object since replaced fails authentication).
    async fn with_header<T, Answer>(
        &self,
        location: &Path,
        options: &GetOptions,
        read: impl Fn((u64, Header)) -> Answer,
    ) -> object_store::Result<T>
    where
        Answer: std::future::Future<Output = object_store::Result<T>>,
    {
        let known = self.header(location, options).await?;
        if let Ok(answer) = read(known).await {
            return Ok(answer);
        }
        self.forget(location);
        let known = self.header(location, options).await?;
        read(known).await
    }

    /// Plaintext bytes `range` of `object`, given its sealed length and header; an object
    /// whose length is no longer `sealed` changed since its header was read.
    async fn read_range(
        &self,
        object: &Path,
        options: &GetOptions,
        (sealed, header): (u64, Header),
        range: Range<u64>,
    ) -> object_store::Result<(Bytes, ObjectMeta)> {
        let data_key = self.keyring.key(object, header.key_id).await?;
        let take = (range.end.saturating_sub(range.start)) as usize;
        // An empty range still reads a byte, for the object's metadata.
        let range = range.start..range.end.max(range.start + 1);
        let first = range.start / SEGMENT as u64;
        let last = (range.end - 1) / SEGMENT as u64;
        let request = GetOptions {
            range: Some(GetRange::Bounded(sealed_span(first, last, sealed))),
            head: false,
            ..options.clone()
        };
        let result = self.inner.get_opts(object, request).await?;
        let meta = result.meta.clone();
        if meta.size != sealed {
            return Err(
                KeyError::Corrupt(object.to_string(), "it changed while it was read").into(),
            );
        }
        let span = result.bytes().await?;
        let plain = open_segments(object, &header, &data_key, first, &span, meta.size)?;
        let skip = (range.start - first * SEGMENT as u64) as usize;
        let plain = Bytes::from(plain);
        Ok((
            plain.slice(skip.min(plain.len())..(skip + take).min(plain.len())),
            meta,
        ))
    }

    /// Opens a whole sealed object.
    async fn open_all(&self, object: &Path, sealed: &[u8]) -> object_store::Result<Bytes> {
        let header = Header::parse(object, sealed)?;
        let data_key = self.keyring.key(object, header.key_id).await?;
        let plain = open_segments(
            object,
            &header,
            &data_key,
            0,
            &sealed[HEADER..],
            sealed.len() as u64,
        )?;
        Ok(Bytes::from(plain))
    }

    async fn seal(&self, payload: &PutPayload) -> object_store::Result<PutPayload> {
        let plain: Vec<u8> = payload
            .iter()
            .flat_map(|chunk| chunk.iter().copied())
            .collect();
        let (id, key) = self.keyring.current().await?;
        Ok(seal(id, &key, &plain)?.into())
    }
}

fn plain_meta(mut meta: ObjectMeta) -> ObjectMeta {
    meta.size = plain_len(meta.size).unwrap_or(0);
    meta
}

fn one(bytes: Bytes) -> GetResultPayload {
    GetResultPayload::Stream(
        futures::stream::once(async { Ok::<_, object_store::Error>(bytes) }).boxed(),
    )
}

#[async_trait::async_trait]
impl ObjectStore for EncryptedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let sealed = self.seal(&payload).await?;
        self.forget(location);
        self.inner.put_opts(location, sealed, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.forget(location);
        let (id, key) = self.keyring.current().await?;
        Ok(Box::new(SealedUpload {
            inner: Arc::clone(&self.inner),
            location: location.clone(),
            opts: Some(opts),
            key: (id, key),
            parts: Vec::new(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            let mut result = self.inner.get_opts(location, options).await?;
            result.meta = plain_meta(result.meta);
            result.range = 0..result.meta.size;
            return Ok(result);
        }
        let Some(range) = options.range.clone() else {
            let result = self
                .inner
                .get_opts(
                    location,
                    GetOptions {
                        range: None,
                        ..options
                    },
                )
                .await?;
            let meta = result.meta.clone();
            let attributes = result.attributes.clone();
            let sealed = result.bytes().await?;
            let plain = self.open_all(location, &sealed).await?;
            let len = plain.len() as u64;
            return Ok(GetResult {
                payload: one(plain),
                meta: ObjectMeta { size: len, ..meta },
                range: 0..len,
                attributes,
            });
        };
        self.with_header(location, &options, |known| {
            let range = range.clone();
            let options = &options;
            async move {
                let len = plain_len(known.0)
                    .ok_or_else(|| KeyError::Corrupt(location.to_string(), "it is too short"))?;
                let wanted = range
                    .as_range(len)
                    .map_err(|error| object_store::Error::Generic {
                        store: "encryption",
                        source: Box::new(error),
                    })?;
                let (bytes, meta) = self
                    .read_range(location, options, known, wanted.clone())
                    .await?;
                Ok(GetResult {
                    payload: one(bytes),
                    meta: plain_meta(meta),
                    range: wanted,
                    attributes: Default::default(),
                })
            }
        })
        .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let options = GetOptions::default();
        self.with_header(location, &options, |known| {
            let options = &options;
            async move {
                let len = plain_len(known.0).unwrap_or(0);
                if let Some(range) = ranges
                    .iter()
                    .find(|range| range.end > len || range.start > range.end)
                {
                    return Err(object_store::Error::Generic {
                        store: "encryption",
                        source: format!("range {range:?} of {location} is beyond its {len} bytes")
                            .into(),
                    });
                }
                let mut answers = Vec::with_capacity(ranges.len());
                for range in ranges {
                    let (bytes, _) = self
                        .read_range(location, options, known, range.clone())
                        .await?;
                    answers.push(bytes);
                }
                Ok(answers)
            }
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.headers.lock().expect("header cache lock").clear();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix).map_ok(plain_meta).boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner
            .list_with_offset(prefix, offset)
            .map_ok(plain_meta)
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects = listed.objects.into_iter().map(plain_meta).collect();
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.forget(to);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.forget(from);
        self.forget(to);
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload, sealed whole when it completes (a table's data file is built in
/// memory before it is written, so this holds no more than the writer already did).
struct SealedUpload {
    inner: Arc<dyn ObjectStore>,
    location: Path,
    opts: Option<PutMultipartOptions>,
    key: (u32, [u8; 32]),
    parts: Vec<PutPayload>,
}

impl fmt::Debug for SealedUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedUpload")
            .field("location", &self.location)
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl MultipartUpload for SealedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts.push(data);
        Box::pin(async { Ok(()) })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let plain: Vec<u8> = self
            .parts
            .drain(..)
            .flat_map(|part| {
                part.iter()
                    .flat_map(|chunk| chunk.to_vec())
                    .collect::<Vec<u8>>()
            })
            .collect();
        let sealed = seal(self.key.0, &self.key.1, &plain)?;
        let PutMultipartOptions {
            tags,
            attributes,
            extensions,
            ..
        } = self.opts.take().unwrap_or_default();
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            tags,
            attributes,
            extensions,
        };
        self.inner
            .put_opts(&self.location, sealed.into(), opts)
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.parts.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn master(byte: u8) -> MasterKey {
        MasterKey::parse("test", &hex::encode([byte; 32])).unwrap()
    }

    fn store(masters: Vec<MasterKey>, root: &Arc<dyn ObjectStore>) -> EncryptedStore {
        EncryptedStore::new(
            Arc::clone(root),
            Arc::new(Keyring::new(Arc::clone(root), masters)),
        )
    }

    #[test]
    fn lengths_round_trip_at_segment_boundaries() {
        for plain in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 7,
        ] {
            let sealed = seal(1, &[7; 32], &vec![1; plain]).unwrap();
            assert_eq!(
                plain_len(sealed.len() as u64),
                Some(plain as u64),
                "{plain}"
            );
        }
        assert_eq!(plain_len(HEADER as u64), None, "no room for a tag");
    }

    #[tokio::test]
    async fn objects_are_sealed_and_any_range_reads_back() {
        let root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let encrypted = store(vec![master(1)], &root);
        let plain: Vec<u8> = (0..(3 * SEGMENT + 100)).map(|i| (i % 251) as u8).collect();
        let path = Path::from("silver/t/part-0.parquet");
        encrypted.put(&path, plain.clone().into()).await.unwrap();

        let stored = root.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[..8], MAGIC);
        assert!(
            !stored
                .windows(64)
                .any(|w| plain.windows(64).next() == Some(w)),
            "no plaintext on the store"
        );
        assert_eq!(
            encrypted.head(&path).await.unwrap().size,
            plain.len() as u64
        );
        let whole = encrypted.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole.as_ref(), plain.as_slice());
        for range in [
            0..1,
            10..SEGMENT as u64 + 10,
            SEGMENT as u64 - 3..2 * SEGMENT as u64 + 5,
        ] {
            let got = encrypted.get_range(&path, range.clone()).await.unwrap();
            assert_eq!(
                got.as_ref(),
                &plain[range.start as usize..range.end as usize]
            );
        }
        let suffix = encrypted
            .get_opts(
                &path,
                GetOptions {
                    range: Some(GetRange::Suffix(8)),
                    ..GetOptions::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(suffix.range.end, plain.len() as u64);
        assert_eq!(
            suffix.bytes().await.unwrap().as_ref(),
            &plain[plain.len() - 8..]
        );
        let ranges = encrypted
            .get_ranges(&path, &[0..4, (plain.len() - 4) as u64..plain.len() as u64])
            .await
            .unwrap();
        assert_eq!(ranges[1].as_ref(), &plain[plain.len() - 4..]);
        let listed: Vec<ObjectMeta> = encrypted.list(None).try_collect().await.unwrap();
        let file = listed.iter().find(|meta| meta.location == path).unwrap();
        assert_eq!(file.size, plain.len() as u64);
    }

    #[tokio::test]
    async fn altered_truncated_or_foreign_objects_are_refused() {
        let root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let encrypted = store(vec![master(1)], &root);
        let path = Path::from("t/_delta_log/00000000000000000000.json");
        let plain = vec![42u8; 2 * SEGMENT + 10];
        encrypted.put(&path, plain.into()).await.unwrap();
        let stored = root.get(&path).await.unwrap().bytes().await.unwrap();

        let mut altered = stored.to_vec();
        altered[HEADER + 5] ^= 1;
        root.put(&path, altered.into()).await.unwrap();
        encrypted.forget(&path);
        assert!(encrypted.get(&path).await.is_err());

        // Cut after the first two segments: the second is not the last it claims to be.
        let cut = stored[..HEADER + 2 * (SEGMENT + TAG)].to_vec();
        root.put(&path, cut.into()).await.unwrap();
        let error = encrypted.get(&path).await.unwrap_err().to_string();
        assert!(error.contains("fails authentication"), "{error}");

        // Another lake's master key opens nothing here.
        root.put(&path, stored.into()).await.unwrap();
        let foreign_root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let foreign = store(vec![master(2)], &foreign_root);
        foreign.put(&Path::from("x"), vec![1].into()).await.unwrap();
        let keyring = foreign_root.get(&Keyring::path()).await.unwrap();
        root.put(&Keyring::path(), keyring.bytes().await.unwrap().into())
            .await
            .unwrap();
        let fresh = store(vec![master(1)], &root);
        let error = fresh.get(&path).await.unwrap_err().to_string();
        assert!(error.contains("is wrapped by master key"), "{error}");
    }

    #[tokio::test]
    async fn keys_rotate_without_rewriting_what_was_written() {
        let root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let old = store(vec![master(1)], &root);
        let first = Path::from("t/a.parquet");
        old.put(&first, vec![1; 100].into()).await.unwrap();

        // A new data key: new objects use it, and a process that still has the old keyring
        // learns it from the first object it meets under it.
        assert_eq!(old.keyring.rotate_data_key().await.unwrap(), 2);
        let second = Path::from("t/b.parquet");
        old.put(&second, vec![2; 100].into()).await.unwrap();
        let stored = root.get(&second).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[8..12], &2u32.to_be_bytes());

        // A new master key with the old one as previous: both keys open and are wrapped anew.
        let rotated = store(vec![master(9), master(1)], &root);
        assert_eq!(rotated.keyring.rewrap().await.unwrap(), 2);
        let status = rotated.keyring.status().await.unwrap();
        assert!(
            status
                .keys
                .iter()
                .all(|(_, _, m)| m == master(9).fingerprint())
        );

        // Without the old master key, everything still opens.
        let retired = store(vec![master(9)], &root);
        assert_eq!(
            retired
                .get(&first)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            &[1; 100]
        );
        assert_eq!(
            retired
                .get(&second)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            &[2; 100]
        );
        // The old master key alone opens nothing any more.
        let error = store(vec![master(1)], &root)
            .get(&first)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("neither"), "{error}");
    }

    #[tokio::test]
    async fn a_lost_keyring_is_named_as_such() {
        let root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let encrypted = store(vec![master(1)], &root);
        let log = Path::from("gold/t/_delta_log/00000000000000000000.json");
        encrypted.put(&log, b"{}".to_vec().into()).await.unwrap();
        root.delete(&Keyring::path()).await.unwrap();
        let error = store(vec![master(1)], &root)
            .get(&log)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("restore _encryption/keyring.json"),
            "{error}"
        );
        let beyond = encrypted.get_ranges(&log, &[0..1, 0..100]).await;
        assert!(beyond.is_err(), "a range beyond the object is an error");
    }

    #[tokio::test]
    async fn a_lake_with_unencrypted_tables_is_not_encrypted_half_way() {
        let root: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        root.put(
            &Path::from("bronze/t/_delta_log/00000000000000000000.json"),
            b"{}".to_vec().into(),
        )
        .await
        .unwrap();
        let encrypted = store(vec![master(1)], &root);
        let error = encrypted
            .put(&Path::from("bronze/t/x"), vec![1].into())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("already holds unencrypted tables (bronze/t)"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_parquet_file_on_disk_reads_back_through_the_store() {
        use deltalake::arrow::array::{Int64Array, RecordBatch};
        use deltalake::arrow::datatypes::{DataType, Field, Schema};
        use deltalake::parquet::arrow::ArrowWriter;
        #[allow(deprecated)]
        use deltalake::parquet::arrow::async_reader::{
            ParquetObjectReader, ParquetRecordBatchStreamBuilder,
        };
        let dir = tempfile::tempdir().unwrap();
        let root: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let encrypted: Arc<dyn ObjectStore> = Arc::new(store(vec![master(1)], &root));
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..100_000))],
        )
        .unwrap();
        let mut buffer = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buffer, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let path = Path::from("t/part-0.parquet");
        encrypted.put(&path, buffer.clone().into()).await.unwrap();
        assert_eq!(
            encrypted.head(&path).await.unwrap().size,
            buffer.len() as u64
        );
        let tail = encrypted
            .get_range(&path, buffer.len() as u64 - 8..buffer.len() as u64)
            .await
            .unwrap();
        assert_eq!(tail.as_ref(), &buffer[buffer.len() - 8..]);
        #[allow(deprecated)]
        let reader = ParquetObjectReader::new(Arc::clone(&encrypted), path);
        let stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        assert_eq!(
            batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
            100_000
        );
    }

    #[test]
    fn master_keys_are_64_hex_digits_and_never_printed() {
        assert!(MasterKey::parse("lake.encryption.master_key", "abc").is_err());
        let key = MasterKey::generate().unwrap();
        let parsed = MasterKey::parse("k", &key).unwrap();
        assert!(!format!("{parsed:?}").contains(&key[..16]));
        assert_eq!(parsed.fingerprint().len(), 16);
    }
}
