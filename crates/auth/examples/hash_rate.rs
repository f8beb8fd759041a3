//! Raw Argon2id verification rate of this machine with the production parameters, for `make bench`.
//!
//! Usage: `hash_rate [threads] [seconds]` (defaults: one thread per core, 10 s). Prints `verifications/s`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cybervpn_auth::{Password, PasswordHasher, Verification};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let threads = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism()?.get(),
    };
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);

    let hasher = Arc::new(PasswordHasher::owasp());
    let password = Password::for_login("bench password 1234")?;
    let hash = Arc::new(hasher.hash(&password)?);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (hasher, password, hash) =
                (Arc::clone(&hasher), password.clone(), Arc::clone(&hash));
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if matches!(
                        hasher.verify(&password, &hash),
                        Ok(Verification::Valid { .. })
                    ) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("{rate:.1}");
    Ok(())
}
