//! Credentials and tokens: Argon2id password hashing and policy, PASETO v4.public access tokens
//! with a rotating key ring, RFC 6238 TOTP (codes, QR enrolment, secrets sealed at rest, backup
//! codes), opaque refresh tokens and Telegram sign-in data (Mini App, Login Widget). No I/O beyond the OS
//! random source and tokio's blocking pool.

#![forbid(unsafe_code)]

pub mod password;
pub mod secret_token;
pub mod telegram;
pub mod token;
pub mod totp;

pub use password::{HashError, ParamsError, Password, PasswordError, PasswordHasher, Verification};
pub use secret_token::{constant_time_eq, generate_opaque_token, hash_opaque_token};
pub use telegram::{TelegramAuthError, TelegramUser, verify_init_data, verify_login_widget};
pub use token::{Audience, Claims, KeyError, TokenError, TokenKeys};
pub use totp::{SecretBox, TotpError, TotpSecret};
