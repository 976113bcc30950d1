//! Rebuilds faena-core when a migration is added or changed: `embed_migrations!` reads
//! `migrations/` at compile time, and cargo does not watch that folder by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
