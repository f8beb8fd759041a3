//! Fingerprints the migration sources so test templates are rebuilt whenever a migration changes.

use std::{fs, hash::Hasher, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=src");
    let mut files: Vec<_> = fs::read_dir(Path::new("src"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    for file in files {
        hash.write(file.to_string_lossy().as_bytes());
        hash.write(&fs::read(&file).unwrap_or_default());
    }
    println!(
        "cargo:rustc-env=CYBERVPN_MIGRATIONS_FINGERPRINT={:016x}",
        hash.finish()
    );
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
