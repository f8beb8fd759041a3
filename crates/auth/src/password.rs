//! Passwords: the sign-up policy, and Argon2id hashing with transparent rehash and an equal-cost
//! dummy verification for unknown accounts.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use argon2::password_hash::{Error as PhcError, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

/// Fewest characters a new password may have.
const SIGNUP_MIN_CHARS: usize = 10;
/// Most characters any password may have; longer input is refused before hashing.
const MAX_CHARS: usize = 128;

/// Stored hashes asking for more than this are refused rather than run (a tampered row must
/// not be able to make one login allocate gigabytes or spin for minutes).
const MAX_STORED_M_KIB: u32 = 1024 * 1024;
/// Upper bound on the time cost accepted from a stored hash.
const MAX_STORED_T: u32 = 64;
/// Upper bound on the parallelism accepted from a stored hash.
const MAX_STORED_P: u32 = 64;

/// The bundled list of passwords too common to allow, lowercase.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Why a password was refused; the messages are safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer characters than allowed.
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The minimum number of characters.
        min: usize,
    },
    /// More characters than allowed.
    #[error("password must be at most {max} characters")]
    TooLong {
        /// The maximum number of characters.
        max: usize,
    },
    /// On the list of common passwords, or one character repeated.
    #[error("password is too common; choose one that is harder to guess")]
    TooCommon,
}

/// A password as typed by the user; `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Accepts a new password at sign-up or change: 10 to 128 characters, not a common password
    /// (compared case-insensitively) and not one character repeated.
    pub fn new_for_signup(raw: &str) -> Result<Password, PasswordError> {
        let chars = raw.chars().count();
        if chars < SIGNUP_MIN_CHARS {
            return Err(PasswordError::TooShort {
                min: SIGNUP_MIN_CHARS,
            });
        }
        if chars > MAX_CHARS {
            return Err(PasswordError::TooLong { max: MAX_CHARS });
        }
        if COMMON_PASSWORDS.contains(raw.to_lowercase().as_str()) {
            return Err(PasswordError::TooCommon);
        }
        let mut it = raw.chars();
        if let Some(first) = it.next()
            && it.all(|c| c == first)
        {
            return Err(PasswordError::TooCommon);
        }
        Ok(Password(raw.to_owned()))
    }

    /// Accepts a password at login: only non-empty and at most 128 characters, so that
    /// oversized input is never hashed (policies may have changed since the account was made).
    pub fn for_login(raw: &str) -> Result<Password, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::TooShort { min: 1 });
        }
        if raw.chars().count() > MAX_CHARS {
            return Err(PasswordError::TooLong { max: MAX_CHARS });
        }
        Ok(Password(raw.to_owned()))
    }

    /// The password's bytes, for the hash function only.
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A failure to hash or verify (not a wrong password: that is [`Verification::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The stored hash is not a PHC string this hasher can check.
    #[error("stored password hash is malformed")]
    Malformed,
    /// Hashing itself failed, or the blocking task did not complete.
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Argon2 parameters were out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Argon2 parameters: {0}")]
pub struct ParamsError(String);

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches.
    Valid {
        /// The stored hash uses other parameters than this hasher: store a fresh [`PasswordHasher::hash`].
        needs_rehash: bool,
    },
    /// The password does not match.
    Invalid,
}

/// Argon2id hashing with one fixed set of parameters (share it behind an `Arc`).
pub struct PasswordHasher {
    /// Memory, time and parallelism costs used for new hashes.
    params: Params,
    /// A hash of a fixed password with `params`, made on first use by [`Self::verify_dummy`].
    dummy_phc: OnceLock<Option<String>>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_kib", &self.params.m_cost())
            .field("t", &self.params.t_cost())
            .field("p", &self.params.p_cost())
            .finish()
    }
}

impl PasswordHasher {
    /// OWASP's recommendation: Argon2id, 19 MiB of memory, 2 passes, 1 lane.
    pub fn owasp() -> Self {
        Self::from_params(Params::DEFAULT)
    }

    /// Argon2id with custom costs (memory in KiB, passes, lanes); tests use cheap ones.
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Result<Self, ParamsError> {
        let params = Params::new(m_kib, t, p, None).map_err(|e| ParamsError(e.to_string()))?;
        Ok(Self::from_params(params))
    }

    /// Wraps validated parameters.
    fn from_params(params: Params) -> Self {
        Self {
            params,
            dummy_phc: OnceLock::new(),
        }
    }

    /// The Argon2id context for new hashes.
    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes the password with a fresh random salt, as a PHC string (`$argon2id$v=19$…`).
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        self.hash_bytes(password.as_bytes())
    }

    /// Hashes raw bytes with a fresh random salt.
    fn hash_bytes(&self, password: &[u8]) -> Result<String, HashError> {
        self.argon2()
            .hash_password(password)
            .map(|hash| hash.to_string())
            .map_err(|e| HashError::Internal(e.to_string()))
    }

    /// Checks the password against a stored PHC string, and says whether the hash should be
    /// replaced because it was made with other parameters.
    pub fn verify(&self, password: &Password, phc: &str) -> Result<Verification, HashError> {
        let parsed = PasswordHash::new(phc).map_err(|_| HashError::Malformed)?;
        let algorithm =
            Algorithm::new(parsed.algorithm.as_str()).map_err(|_| HashError::Malformed)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|_| HashError::Malformed)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|_| HashError::Malformed)?;
        if parsed.salt.is_none()
            || parsed.hash.is_none()
            || params.m_cost() > MAX_STORED_M_KIB
            || params.t_cost() > MAX_STORED_T
            || params.p_cost() > MAX_STORED_P
        {
            return Err(HashError::Malformed);
        }

        let needs_rehash = algorithm != Algorithm::Argon2id
            || version != Version::V0x13
            || params.m_cost() != self.params.m_cost()
            || params.t_cost() != self.params.t_cost()
            || params.p_cost() != self.params.p_cost()
            || params.output_len() != Some(Params::DEFAULT_OUTPUT_LEN)
            || !params.keyid().is_empty()
            || !params.data().is_empty();

        match Argon2::new(algorithm, version, params).verify_password(password.as_bytes(), &parsed)
        {
            Ok(()) => Ok(Verification::Valid { needs_rehash }),
            Err(PhcError::PasswordInvalid) => Ok(Verification::Invalid),
            Err(_) => Err(HashError::Malformed),
        }
    }

    /// Runs one full verification against a fixed hash made with this hasher's parameters and
    /// throws the result away, so that a login for an unknown account takes as long as one for
    /// a known account. The fixed hash is made on the first call.
    pub fn verify_dummy(&self, password: &Password) {
        let dummy = self
            .dummy_phc
            .get_or_init(|| self.hash_bytes(b"cybervpn dummy password").ok());
        match dummy {
            Some(phc) => {
                let _ = self.verify(password, phc);
            }
            // Hashing is what costs; without a dummy hash, spend the same effort making one.
            None => {
                let _ = self.hash(password);
            }
        }
    }

    /// [`Self::hash`] on the hashing pool.
    pub async fn hash_blocking(self: &Arc<Self>, password: Password) -> Result<String, HashError> {
        let hasher = Arc::clone(self);
        pool::run(move || hasher.hash(&password)).await?
    }

    /// [`Self::verify`] on the hashing pool.
    pub async fn verify_blocking(
        self: &Arc<Self>,
        password: Password,
        phc: String,
    ) -> Result<Verification, HashError> {
        let hasher = Arc::clone(self);
        pool::run(move || hasher.verify(&password, &phc)).await?
    }

    /// [`Self::verify_dummy`] on the hashing pool.
    pub async fn verify_dummy_blocking(self: &Arc<Self>, password: Password) {
        let hasher = Arc::clone(self);
        // Nothing to report: the call exists only to spend the time.
        let _ = pool::run(move || hasher.verify_dummy(&password)).await;
    }
}

/// The threads that hash passwords: one per core, at the lowest scheduling priority, so a sign-in flood uses
/// idle CPU but never delays request handling (which runs at normal priority on its own threads).
mod pool {
    use std::sync::{
        LazyLock, Mutex, PoisonError,
        mpsc::{Receiver, Sender, channel},
    };

    use super::HashError;

    type Job = Box<dyn FnOnce() + Send>;

    static POOL: LazyLock<Sender<Job>> = LazyLock::new(|| {
        let (jobs, queue) = channel::<Job>();
        let queue = std::sync::Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        for index in 0..threads {
            let queue = std::sync::Arc::clone(&queue);
            // A pool that cannot start a thread runs with fewer; `run` fails only if it has none.
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&queue));
        }
        jobs
    });

    fn work(queue: &Mutex<Receiver<Job>>) {
        // Lowering one's own priority needs no privilege; if the OS refuses, hash at normal priority.
        let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
        loop {
            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
            match job {
                Ok(job) => job(),
                Err(_) => return,
            }
        }
    }

    /// Runs `f` on a pool thread and waits for its result without blocking the async runtime.
    pub(super) async fn run<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        POOL.send(Box::new(move || {
            let _ = done.send(f());
        }))
        .map_err(|_| HashError::Internal("the hashing pool has stopped".to_owned()))?;
        result
            .await
            .map_err(|_| HashError::Internal("a hashing job was dropped".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(64, 1, 1).unwrap()
    }

    fn pw(s: &str) -> Password {
        Password::for_login(s).unwrap()
    }

    #[tokio::test]
    async fn pool_runs_jobs_on_low_priority_hashing_threads() {
        let hasher = Arc::new(cheap());
        let hash = hasher.hash_blocking(pw("correct horse")).await.unwrap();
        assert!(matches!(
            hasher
                .verify_blocking(pw("correct horse"), hash)
                .await
                .unwrap(),
            Verification::Valid { .. }
        ));
        let thread = pool::run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(thread.is_some_and(|name| name.starts_with("argon2-")));
        #[cfg(target_os = "linux")]
        {
            // Field 19 of /proc/thread-self/stat is the thread's nice value.
            let stat = pool::run(|| std::fs::read_to_string("/proc/thread-self/stat"))
                .await
                .unwrap()
                .unwrap();
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            let nice: i32 = after_name.split(' ').nth(16).unwrap().parse().unwrap();
            assert_eq!(nice, 19, "hashing yields to request handling");
        }
    }

    #[test]
    fn round_trip() {
        let hasher = cheap();
        let phc = hasher.hash(&pw("correct horse battery")).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), &phc).unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn salts_differ() {
        let hasher = cheap();
        let a = hasher.hash(&pw("same password")).unwrap();
        let b = hasher.hash(&pw("same password")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_password_is_invalid() {
        let hasher = cheap();
        let phc = hasher.hash(&pw("correct horse battery")).unwrap();
        assert_eq!(
            hasher.verify(&pw("correct horse batterz"), &phc).unwrap(),
            Verification::Invalid
        );
    }

    #[test]
    fn needs_rehash_when_params_change() {
        let old = cheap();
        let phc = old.hash(&pw("correct horse battery")).unwrap();
        for new in [
            PasswordHasher::with_params(128, 1, 1).unwrap(),
            PasswordHasher::with_params(64, 2, 1).unwrap(),
            PasswordHasher::with_params(64, 1, 2).unwrap(),
        ] {
            assert_eq!(
                new.verify(&pw("correct horse battery"), &phc).unwrap(),
                Verification::Valid { needs_rehash: true }
            );
            assert_eq!(
                new.verify(&pw("wrong"), &phc).unwrap(),
                Verification::Invalid
            );
        }
    }

    #[test]
    fn needs_rehash_for_other_argon2_variants() {
        let params = Params::new(64, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone())
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        let v10 = Argon2::new(Algorithm::Argon2id, Version::V0x10, params)
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        for phc in [argon2i, v10] {
            assert_eq!(
                cheap().verify(&pw("correct horse battery"), &phc).unwrap(),
                Verification::Valid { needs_rehash: true },
                "{phc}"
            );
        }
    }

    #[test]
    fn malformed_phc_is_an_error_not_a_panic() {
        let hasher = cheap();
        let good = hasher.hash(&pw("correct horse battery")).unwrap();
        let without_hash = good.rsplit_once('$').unwrap().0.to_owned();
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=64,t=4294967295,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            &without_hash,
        ] {
            assert_eq!(
                hasher.verify(&pw("correct horse battery"), phc),
                Err(HashError::Malformed),
                "{phc:?}"
            );
        }
    }

    #[test]
    fn owasp_params() {
        let hasher = PasswordHasher::owasp();
        assert_eq!(hasher.params.m_cost(), 19_456);
        assert_eq!(hasher.params.t_cost(), 2);
        assert_eq!(hasher.params.p_cost(), 1);
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(PasswordHasher::with_params(1, 1, 1).is_err());
        assert!(PasswordHasher::with_params(64, 0, 1).is_err());
        assert!(PasswordHasher::with_params(64, 1, 0).is_err());
    }

    #[test]
    fn dummy_verify_runs_and_caches_its_hash() {
        let hasher = cheap();
        hasher.verify_dummy(&pw("anything at all"));
        let first = hasher.dummy_phc.get().cloned().flatten().unwrap();
        assert!(first.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        hasher.verify_dummy(&pw("something else"));
        assert_eq!(hasher.dummy_phc.get().cloned().flatten().unwrap(), first);
    }

    #[tokio::test]
    async fn blocking_wrappers() {
        let hasher = Arc::new(cheap());
        let phc = hasher
            .hash_blocking(pw("correct horse battery"))
            .await
            .unwrap();
        assert_eq!(
            hasher
                .verify_blocking(pw("correct horse battery"), phc.clone())
                .await
                .unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher.verify_blocking(pw("nope"), phc).await.unwrap(),
            Verification::Invalid
        );
        hasher.verify_dummy_blocking(pw("unknown user")).await;
    }

    #[test]
    fn signup_policy() {
        assert_eq!(
            Password::new_for_signup("short").err(),
            Some(PasswordError::TooShort { min: 10 })
        );
        assert_eq!(
            Password::new_for_signup("nine char").err(),
            Some(PasswordError::TooShort { min: 10 })
        );
        assert!(Password::new_for_signup("ten chars!").is_ok());
        assert!(Password::new_for_signup(&"ab".repeat(64)).is_ok());
        assert_eq!(
            Password::new_for_signup(&"ab".repeat(64).replacen('a', "aa", 1)).err(),
            Some(PasswordError::TooLong { max: 128 })
        );
        // Length counts characters, not bytes.
        assert!(Password::new_for_signup("пароль-мой").is_ok());
        assert_eq!(
            Password::new_for_signup("пароль").err(),
            Some(PasswordError::TooShort { min: 10 })
        );
    }

    #[test]
    fn common_passwords_are_refused_case_insensitively() {
        for raw in [
            "password123",
            "PASSWORD123",
            "Password123",
            "1234567890",
            "qwertyuiop",
            "QwErTyUiOp",
            "iloveyou12",
            "ytrewq12345",
            "zaq12wsxcde",
        ] {
            assert_eq!(
                Password::new_for_signup(raw).err(),
                Some(PasswordError::TooCommon),
                "{raw}"
            );
        }
    }

    #[test]
    fn common_list_is_loaded_and_lowercase() {
        assert!(COMMON_PASSWORDS.len() >= 200, "{}", COMMON_PASSWORDS.len());
        for entry in COMMON_PASSWORDS.iter() {
            assert_eq!(*entry, entry.to_lowercase(), "{entry}");
            assert!(entry.chars().count() >= SIGNUP_MIN_CHARS, "{entry}");
        }
    }

    #[test]
    fn one_repeated_character_is_refused() {
        assert_eq!(
            Password::new_for_signup("zzzzzzzzzzzz").err(),
            Some(PasswordError::TooCommon)
        );
        assert_eq!(
            Password::new_for_signup("яяяяяяяяяяяя").err(),
            Some(PasswordError::TooCommon)
        );
    }

    #[test]
    fn login_only_caps_length() {
        assert_eq!(
            Password::for_login("").err(),
            Some(PasswordError::TooShort { min: 1 })
        );
        assert!(Password::for_login("x").is_ok());
        assert!(Password::for_login("password123").is_ok());
        assert!(Password::for_login(&"x".repeat(128)).is_ok());
        assert_eq!(
            Password::for_login(&"x".repeat(129)).err(),
            Some(PasswordError::TooLong { max: 128 })
        );
    }

    #[test]
    fn debug_is_redacted() {
        let password = pw("hunter2hunter2");
        assert_eq!(format!("{password:?}"), "Password([redacted])");
        assert!(!format!("{:?}", PasswordError::TooCommon).contains("hunter"));
    }

    #[test]
    fn messages_are_user_facing() {
        assert_eq!(
            PasswordError::TooShort { min: 10 }.to_string(),
            "password must be at least 10 characters"
        );
        assert_eq!(
            PasswordError::TooLong { max: 128 }.to_string(),
            "password must be at most 128 characters"
        );
    }
}
