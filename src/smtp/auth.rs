//! SASL PLAIN (RFC 4616) and LOGIN for `AUTH` (RFC 4954), offered only over TLS; passwords
//! are checked against argon2 PHC hashes off the async threads.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::reply::Reply;
use crate::config::SmtpUser;

/// Where an AUTH exchange is.
#[derive(Debug)]
pub struct AuthExchange {
    state: State,
}

#[derive(Debug)]
enum State {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

/// What the session does next.
#[derive(Debug)]
pub enum AuthStep {
    /// Send `334 <challenge>` and read a response line.
    Challenge(String),
    Failed(Reply),
    Credentials {
        user: String,
        password: String,
    },
}

impl AuthExchange {
    /// Starts an exchange for `mechanism` (smtp-proto's AUTH bit) with the optional initial
    /// response; `Err` for mechanisms we do not offer.
    pub fn start(mechanism: u64, initial: &str) -> Result<(AuthExchange, AuthStep), Reply> {
        let initial = initial.trim();
        if mechanism == smtp_proto::AUTH_PLAIN {
            let mut ex = AuthExchange {
                state: State::Plain,
            };
            let step = if initial.is_empty() {
                AuthStep::Challenge(String::new())
            } else {
                ex.respond(initial.as_bytes())
            };
            Ok((ex, step))
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            let mut ex = AuthExchange {
                state: State::LoginUser,
            };
            let step = if initial.is_empty() {
                AuthStep::Challenge(B64.encode("Username:"))
            } else {
                ex.respond(initial.as_bytes())
            };
            Ok((ex, step))
        } else {
            Err(Reply::auth_mechanism_unsupported())
        }
    }

    /// Handles one client response line (base64, or `*` to cancel).
    pub fn respond(&mut self, line: &[u8]) -> AuthStep {
        let line = line.trim_ascii();
        if line == b"*" {
            return AuthStep::Failed(Reply::auth_cancelled());
        }
        let decoded = if line == b"=" {
            Vec::new()
        } else {
            match B64.decode(line) {
                Ok(d) => d,
                Err(_) => return AuthStep::Failed(Reply::auth_malformed()),
            }
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return AuthStep::Failed(Reply::auth_malformed());
        };
        match std::mem::replace(&mut self.state, State::Plain) {
            State::Plain => {
                // authzid NUL authcid NUL passwd
                let mut parts = text.splitn(3, '\0');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(_), Some(user), Some(password)) => AuthStep::Credentials {
                        user: user.to_string(),
                        password: password.to_string(),
                    },
                    _ => AuthStep::Failed(Reply::auth_malformed()),
                }
            }
            State::LoginUser => {
                self.state = State::LoginPassword { user: text };
                AuthStep::Challenge(B64.encode("Password:"))
            }
            State::LoginPassword { user } => AuthStep::Credentials {
                user,
                password: text,
            },
        }
    }
}

/// A valid hash to verify against when the user is unknown, so both cases take as long.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Qv3Ojb6Kq8z1kQvYxB5d3tY6rH3fLrTqXn1cY4cQmWk";

/// Whether `password` is `user`'s, by argon2 verification on the blocking pool.
pub async fn verify(users: &[SmtpUser], user: &str, password: &str) -> bool {
    let found = users
        .iter()
        .find(|u| u.name == user)
        .map(|u| u.password_hash.expose().clone());
    let known = found.is_some();
    let hash = found.unwrap_or_else(|| DUMMY_HASH.to_string());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    ok && known
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    #[test]
    fn plain_and_login_exchanges() {
        let (_, step) =
            AuthExchange::start(smtp_proto::AUTH_PLAIN, &B64.encode("\0bob\0pw")).unwrap();
        assert!(
            matches!(step, AuthStep::Credentials { user, password } if user == "bob" && password == "pw")
        );

        let (mut ex, step) = AuthExchange::start(smtp_proto::AUTH_LOGIN, "").unwrap();
        assert!(matches!(step, AuthStep::Challenge(c) if c == B64.encode("Username:")));
        assert!(matches!(
            ex.respond(B64.encode("bob").as_bytes()),
            AuthStep::Challenge(_)
        ));
        assert!(
            matches!(ex.respond(B64.encode("pw").as_bytes()), AuthStep::Credentials { user, password } if user == "bob" && password == "pw")
        );

        let (mut ex, _) = AuthExchange::start(smtp_proto::AUTH_PLAIN, "").unwrap();
        assert!(matches!(ex.respond(b"*"), AuthStep::Failed(r) if r.code == 501));
        assert!(AuthExchange::start(smtp_proto::AUTH_CRAM_MD5, "").is_err());
    }

    #[tokio::test]
    async fn verifies_argon2_hashes() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let hash = Argon2::default()
            .hash_password(b"secret", &salt)
            .unwrap()
            .to_string();
        let users = vec![SmtpUser {
            name: "app".into(),
            password_hash: hash.into(),
        }];
        assert!(verify(&users, "app", "secret").await);
        assert!(!verify(&users, "app", "wrong").await);
        assert!(!verify(&users, "nobody", "secret").await);
    }
}
