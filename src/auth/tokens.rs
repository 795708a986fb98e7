//! Tokens: random bearer tokens stored only as SHA-256 hashes, and link tokens derived from the server
//! secret (HMAC), so that nothing stored in the database is usable as a token.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a bearer token is, from its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Api,
    Session,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Api => "gp_",
            Self::Session => "gps_",
        }
    }

    pub fn of(token: &str) -> Option<Self> {
        // longest prefix first
        if token.starts_with(Self::Session.prefix()) {
            Some(Self::Session)
        } else if token.starts_with(Self::Api.prefix()) {
            Some(Self::Api)
        } else {
            None
        }
    }
}

/// 16 random bytes (128 bits), e.g. a link token's nonce.
pub fn random_nonce() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A new bearer token (256 random bits behind a recognizable prefix) and the hash to store.
pub fn new_bearer(kind: TokenKind) -> (String, Vec<u8>) {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    let token = format!("{}{}", kind.prefix(), hex::encode(b));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Link tokens for emailed links: `<prefix><id hex><mac hex>`, the MAC binding purpose, id and nonce.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

/// What a link token is for; part of the MAC, so one kind can never be used as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    Invite,
    PasswordReset,
    Reverify,
    /// Emailed two-step codes (never a link; the prefix only separates the MAC domain).
    LoginCode,
}

impl LinkPurpose {
    fn prefix(self) -> &'static str {
        match self {
            Self::Invite => "gpi_",
            Self::PasswordReset => "gpr_",
            Self::Reverify => "gpv_",
            Self::LoginCode => "gpc_",
        }
    }
}

const MAC_LEN: usize = 16;

impl LinkSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, purpose: LinkPurpose, id: Uuid, nonce: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.prefix().as_bytes());
        mac.update(id.as_bytes());
        mac.update(nonce);
        mac
    }

    pub fn sign(&self, purpose: LinkPurpose, id: Uuid, nonce: &[u8]) -> String {
        let tag = self.mac(purpose, id, nonce).finalize().into_bytes();
        format!(
            "{}{}{}",
            purpose.prefix(),
            id.simple(),
            hex::encode(&tag[..MAC_LEN])
        )
    }

    /// The id a token names, if it is well formed. The MAC is checked by [`LinkSigner::verify`]
    /// once the nonce is loaded.
    pub fn parse(purpose: LinkPurpose, token: &str) -> Option<(Uuid, Vec<u8>)> {
        let rest = token.strip_prefix(purpose.prefix())?;
        if rest.len() != 32 + MAC_LEN * 2 || !rest.is_ascii() {
            return None;
        }
        let id = Uuid::try_parse(&rest[..32]).ok()?;
        let tag = hex::decode(&rest[32..]).ok()?;
        Some((id, tag))
    }

    /// The anti-CSRF value a form carries: bound to the page's link token and the browser's cookie nonce.
    pub fn csrf_tag(&self, link_token: &str, cookie_nonce: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"csrf\0");
        mac.update(link_token.as_bytes());
        mac.update(b"\0");
        mac.update(cookie_nonce.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time comparison of a submitted CSRF value.
    pub fn csrf_ok(&self, link_token: &str, cookie_nonce: &str, submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.csrf_tag(link_token, cookie_nonce);
        expected.as_bytes().ct_eq(submitted.as_bytes()).into()
    }

    /// The 6-digit code of a two-step challenge, derived like a link token so it is never stored.
    pub fn code(&self, id: Uuid, nonce: &[u8]) -> String {
        let tag = self
            .mac(LinkPurpose::LoginCode, id, nonce)
            .finalize()
            .into_bytes();
        let n = u64::from_be_bytes(tag[..8].try_into().expect("8 bytes"));
        format!("{:06}", n % 1_000_000)
    }

    /// Constant-time comparison of a submitted code with the challenge's.
    pub fn code_ok(&self, id: Uuid, nonce: &[u8], submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.code(id, nonce);
        let submitted: String = submitted.chars().filter(|c| !c.is_whitespace()).collect();
        expected.as_bytes().ct_eq(submitted.as_bytes()).into()
    }

    /// Constant-time check of a parsed tag against the current nonce.
    pub fn verify(&self, purpose: LinkPurpose, id: Uuid, nonce: &[u8], tag: &[u8]) -> bool {
        self.mac(purpose, id, nonce)
            .verify_truncated_left(tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_long_prefixed_and_hashed() {
        let (t, h) = new_bearer(TokenKind::Session);
        assert!(t.starts_with("gps_") && t.len() == 4 + 64);
        assert_eq!(TokenKind::of(&t), Some(TokenKind::Session));
        assert_eq!(h, hash_token(&t));
        let (a, _) = new_bearer(TokenKind::Api);
        assert_eq!(TokenKind::of(&a), Some(TokenKind::Api));
        assert_ne!(new_bearer(TokenKind::Api).0, a);
    }

    #[test]
    fn link_tokens_verify_only_with_the_same_secret_and_nonce() {
        let s = LinkSigner::new("a secret that is long enough for tests");
        let id = Uuid::new_v4();
        let nonce = random_nonce();
        let token = s.sign(LinkPurpose::Invite, id, &nonce);
        let (pid, tag) = LinkSigner::parse(LinkPurpose::Invite, &token).unwrap();
        assert_eq!(pid, id);
        assert!(s.verify(LinkPurpose::Invite, id, &nonce, &tag));
        assert!(!s.verify(LinkPurpose::Invite, id, &random_nonce(), &tag));
        let other = LinkSigner::new("another secret that is long enough!!");
        assert!(!other.verify(LinkPurpose::Invite, id, &nonce, &tag));
        assert!(LinkSigner::parse(LinkPurpose::Invite, "gpi_nothex").is_none());
        assert!(LinkSigner::parse(LinkPurpose::PasswordReset, &token).is_none());
        let code = s.code(id, &nonce);
        assert_eq!(code.len(), 6);
        assert!(s.code_ok(id, &nonce, &format!(" {} {}", &code[..3], &code[3..])));
        assert!(!s.code_ok(id, &random_nonce(), &code));
        assert!(LinkSigner::parse(LinkPurpose::Invite, &token[..token.len() - 1]).is_none());
    }
}
