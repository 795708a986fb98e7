//! Passwords: the strength rule, and argon2id hashing on a bounded pool so a burst of sign-ins cannot
//! starve other requests (nor block the async runtime).

use crate::error::{AppError, AppResult};
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub const MIN_CHARS: usize = 10;
pub const MAX_CHARS: usize = 1024;

const COMMON: &str = include_str!("common-passwords.txt");

/// Why a password is refused, if it is.
pub fn check_strength(password: &str, email: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(format!("use at least {MIN_CHARS} characters"));
    }
    if n > MAX_CHARS {
        return Err(format!("use at most {MAX_CHARS} characters"));
    }
    let lower = password.to_lowercase();
    if COMMON.lines().any(|c| c == lower) {
        return Err("it is one of the most common passwords".into());
    }
    if !email.is_empty() && lower == email.to_lowercase() {
        return Err("it must not be your email address".into());
    }
    if password
        .chars()
        .all(|c| c == password.chars().next().unwrap_or(' '))
    {
        return Err("it repeats one character".into());
    }
    Ok(())
}

/// Runs argon2id with at most `permits` hashes at a time.
#[derive(Clone)]
pub struct PasswordPool {
    permits: Arc<Semaphore>,
}

/// A real hash of a random password: verifying against it costs what a real check costs, so unknown
/// accounts answer in about the same time as wrong passwords.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1G9MqLxTqWGZgYwqJ4nBv4Q0w4i1k3P7n0lFz6aKx2c";

impl PasswordPool {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _e = span.enter();
            f()
        })
        .await
        .map_err(AppError::internal)
    }

    pub async fn hash(&self, password: String) -> AppResult<String> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(AppError::internal)
        })
        .await?
    }

    /// Verifies `password` against `hash`; with no hash, does the same work and answers false.
    pub async fn verify(&self, hash: Option<String>, password: String) -> AppResult<bool> {
        self.run(move || {
            let (stored, real) = match &hash {
                Some(h) => (h.as_str(), true),
                None => (DUMMY_HASH, false),
            };
            let ok = PasswordHash::new(stored)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            ok && real
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rules() {
        assert!(check_strength("short", "").is_err());
        assert!(check_strength("password123", "").is_err());
        assert!(check_strength("PASSWORD123", "").is_err());
        assert!(check_strength("aaaaaaaaaaaa", "").is_err());
        assert!(check_strength("ada@example.com", "ada@example.com").is_err());
        assert!(check_strength(&"x".repeat(1025), "").is_err());
        assert!(check_strength("correct horse battery", "").is_ok());
    }

    #[tokio::test]
    async fn hashes_verify() {
        let pool = PasswordPool::new(2);
        let h = pool.hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            pool.verify(Some(h.clone()), "correct horse battery".into())
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(Some(h), "wrong horse battery".into())
                .await
                .unwrap()
        );
        assert!(!pool.verify(None, "anything at all".into()).await.unwrap());
    }
}
