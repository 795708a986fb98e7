//! Secrets at rest: values the server must read back (today the authenticator apps' TOTP secrets)
//! are stored sealed with XChaCha20-Poly1305, never in plain text.
//!
//! The key is derived from `GUESTPASS_SECRET` with HKDF-SHA256, so a copy of the database alone
//! (a backup, a replica, a leaked dump) gives no authenticator secret. Each sealed value is stored
//! with the **key id** of the key that sealed it (derived from the same secret with another HKDF
//! label, so it tells nothing about the key), which is how rotation works: with the new secret as
//! `GUESTPASS_SECRET` and the old one as `GUESTPASS_SECRET_PREVIOUS`, values sealed under either
//! open, new values are sealed under the current key only, and `guestpass rotate-secrets`
//! re-seals the old ones.
//!
//! A sealed value is a random 24-byte nonce followed by the ciphertext and its tag. The owner's id
//! is the associated data: a sealed value copied into another person's row does not open.

use crate::error::{AppError, AppResult};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use uuid::Uuid;

/// HKDF label of the sealing key.
const KEY_INFO: &[u8] = b"guestpass totp-secret v1";
/// HKDF label of the key id (another output of the same secret: it reveals nothing of the key).
const KEY_ID_INFO: &[u8] = b"guestpass totp-secret key-id v1";
const NONCE_LEN: usize = 24;

/// One sealing key, derived from a server secret.
#[derive(Clone)]
pub struct Key {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl Key {
    /// The key a server secret (`GUESTPASS_SECRET` or `GUESTPASS_SECRET_PREVIOUS`) stands for.
    pub fn derive(secret: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(None, secret.as_bytes());
        let mut key = [0u8; 32];
        let mut id = [0u8; 8];
        hk.expand(KEY_INFO, &mut key)
            .and_then(|()| hk.expand(KEY_ID_INFO, &mut id))
            .expect("HKDF-SHA256 expands up to 8160 bytes");
        let cipher = XChaCha20Poly1305::new(&key.into());
        key.fill(0);
        Self {
            cipher,
            id: hex::encode(id),
        }
    }

    /// The id stored beside every value this key sealed (16 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// The keys a process seals and opens with: new values always use `current`; values sealed under
/// `previous` still open until `guestpass rotate-secrets` re-seals them.
#[derive(Clone, Debug)]
pub struct SecretKeys {
    current: Key,
    previous: Option<Key>,
}

impl SecretKeys {
    /// From `GUESTPASS_SECRET` and, during a rotation, `GUESTPASS_SECRET_PREVIOUS`.
    pub fn new(current: &str, previous: Option<&str>) -> Self {
        let current = Key::derive(current);
        // The same secret twice is no rotation: keep one key.
        let previous = previous.map(Key::derive).filter(|p| p.id != current.id);
        Self { current, previous }
    }

    /// From the configuration, when `GUESTPASS_SECRET` is set.
    pub fn from_config(config: &crate::config::Config) -> Option<Self> {
        let current = config.secret.as_ref()?;
        Some(Self::new(
            &current.0,
            // An empty value (a compose file's `${GUESTPASS_SECRET_PREVIOUS:-}`) means none.
            config
                .secret_previous
                .as_ref()
                .map(|s| s.0.as_str())
                .filter(|s| !s.is_empty()),
        ))
    }

    /// The id new values are sealed under.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// The id of the previous key, when one is configured.
    pub fn previous_id(&self) -> Option<&str> {
        self.previous.as_ref().map(Key::id)
    }

    /// Seals `plaintext` belonging to `owner` under the current key: the sealed bytes and the key id
    /// to store beside them.
    pub fn seal(&self, owner: Uuid, plaintext: &[u8]) -> AppResult<(Vec<u8>, String)> {
        let nonce = XNonce::try_generate()
            .map_err(|e| AppError::internal(format!("no randomness for a nonce: {e}")))?;
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| AppError::internal("sealing a secret failed"))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok((sealed, self.current.id.clone()))
    }

    /// Opens a value `owner`'s row holds, under whichever configured key `key_id` names. An unknown
    /// key id or a value that does not open (altered, or moved from another row) is an internal
    /// error, logged with what to do.
    pub fn open(&self, owner: Uuid, sealed: &[u8], key_id: &str) -> AppResult<Vec<u8>> {
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == key_id);
        let Some(key) = key else {
            tracing::error!(
                key_id,
                current = self.current.id.as_str(),
                previous = self.previous_id().unwrap_or("none"),
                %owner,
                "a stored secret is sealed under a key this process does not have: set \
                 GUESTPASS_SECRET_PREVIOUS to the secret it was sealed with (then run \
                 `guestpass rotate-secrets`)"
            );
            return Err(AppError::internal(format!(
                "a stored secret is sealed under key {key_id}, which is neither GUESTPASS_SECRET's \
                 nor GUESTPASS_SECRET_PREVIOUS's: set GUESTPASS_SECRET_PREVIOUS to the secret it \
                 was sealed with"
            )));
        };
        let opened = (sealed.len() > NONCE_LEN)
            .then(|| sealed.split_at(NONCE_LEN))
            .and_then(|(nonce, ciphertext)| {
                let nonce = XNonce::try_from(nonce).ok()?;
                key.cipher
                    .decrypt(
                        &nonce,
                        Payload {
                            msg: ciphertext,
                            aad: owner.as_bytes(),
                        },
                    )
                    .ok()
            });
        opened.ok_or_else(|| {
            tracing::error!(
                key_id,
                %owner,
                "a stored secret does not open under its key: it was altered or belongs to another row"
            );
            AppError::internal(format!("stored secret of {owner} does not open"))
        })
    }

    /// True when a value sealed under `key_id` should be re-sealed under the current key.
    pub fn is_stale(&self, key_id: &str) -> bool {
        key_id != self.current.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "secret-a-secret-a-secret-a-secret-a-0001";
    const B: &str = "secret-b-secret-b-secret-b-secret-b-0002";

    #[test]
    fn sealed_values_open_for_their_owner_only() {
        let keys = SecretKeys::new(A, None);
        let owner = Uuid::new_v4();
        let (sealed, id) = keys.seal(owner, b"twenty bytes secret!").unwrap();
        assert_eq!(id, keys.current_id());
        assert_eq!(id.len(), 16);
        assert_eq!(sealed.len(), 24 + 20 + 16);
        assert!(
            !sealed.windows(20).any(|w| w == b"twenty bytes secret!"),
            "the plaintext does not show"
        );
        assert_eq!(
            keys.open(owner, &sealed, &id).unwrap(),
            b"twenty bytes secret!"
        );
        // Another row's owner, a changed byte, a truncated value: none opens.
        assert!(keys.open(Uuid::new_v4(), &sealed, &id).is_err());
        let mut altered = sealed.clone();
        altered[30] ^= 1;
        assert!(keys.open(owner, &altered, &id).is_err());
        assert!(keys.open(owner, &sealed[..24], &id).is_err());
        assert!(keys.open(owner, &[], &id).is_err());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let keys = SecretKeys::new(A, None);
        let owner = Uuid::new_v4();
        let (a, _) = keys.seal(owner, b"same").unwrap();
        let (b, _) = keys.seal(owner, b"same").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[..24], b[..24]);
    }

    #[test]
    fn key_ids_are_stable_and_differ_per_secret() {
        let a = SecretKeys::new(A, None);
        assert_eq!(a.current_id(), SecretKeys::new(A, Some(B)).current_id());
        assert_ne!(a.current_id(), SecretKeys::new(B, None).current_id());
        assert!(a.current_id().chars().all(|c| c.is_ascii_hexdigit()));
        // The id is not the key's beginning.
        let hk = Hkdf::<Sha256>::new(None, A.as_bytes());
        let mut key = [0u8; 32];
        hk.expand(KEY_INFO, &mut key).unwrap();
        assert_ne!(a.current_id(), hex::encode(&key[..8]));
    }

    #[test]
    fn rotation_opens_old_values_and_seals_new_ones_under_the_current_key() {
        let owner = Uuid::new_v4();
        let old = SecretKeys::new(A, None);
        let (sealed, old_id) = old.seal(owner, b"secret").unwrap();

        let rotating = SecretKeys::new(B, Some(A));
        assert_eq!(rotating.previous_id(), Some(old_id.as_str()));
        assert!(rotating.is_stale(&old_id));
        assert_eq!(rotating.open(owner, &sealed, &old_id).unwrap(), b"secret");
        let (resealed, new_id) = rotating.seal(owner, b"secret").unwrap();
        assert_eq!(new_id, rotating.current_id());
        assert!(!rotating.is_stale(&new_id));

        let rotated = SecretKeys::new(B, None);
        assert_eq!(rotated.open(owner, &resealed, &new_id).unwrap(), b"secret");
        // The old value under a key nobody configures any more: an error, not a panic.
        assert!(matches!(
            rotated.open(owner, &sealed, &old_id),
            Err(AppError::Internal(_))
        ));
        // A value claiming the wrong (configured) key id does not open either.
        assert!(rotating.open(owner, &sealed, &new_id).is_err());
    }

    #[test]
    fn the_same_secret_as_previous_is_no_second_key() {
        let keys = SecretKeys::new(A, Some(A));
        assert_eq!(keys.previous_id(), None);
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let keys = SecretKeys::new(A, Some(B));
        let shown = format!("{keys:?}");
        assert!(shown.contains(keys.current_id()), "{shown}");
        assert!(!shown.contains("secret-"), "{shown}");
    }
}
