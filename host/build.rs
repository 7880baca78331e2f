//! Checks what a release build is given: a release key (`BMC_ROTATE_RELEASE_PUBKEY`) must be a
//! minisign public key, so a mistyped key fails the build instead of the binary's first run.

fn main() {
    println!("cargo:rerun-if-env-changed=BMC_ROTATE_RELEASE_PUBKEY");
    if let Ok(key) = std::env::var("BMC_ROTATE_RELEASE_PUBKEY") {
        let base64 = key.len() == 56 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        let ed25519 = ["RWQ", "RWR", "RWS", "RWT"].iter().any(|p| key.starts_with(p));
        assert!(
            base64 && ed25519,
            "BMC_ROTATE_RELEASE_PUBKEY must be a minisign public key: the `RW…` line (56 characters) of the \
             release key's .pub file; got `{key}`"
        );
    }
}
