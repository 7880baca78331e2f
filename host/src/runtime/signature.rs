//! Minisign signatures of plugin files.
//!
//! A vendor signs its plugin with the stock `minisign` tool (`minisign -S -m plugin.wasm`) and
//! ships the detached signature as `plugin.wasm.minisig` beside it; a hardware profile lists the
//! vendor public keys it trusts (`signers = ["RW…"]`). Verification is `minisign-verify`'s (by
//! minisign's author): the Ed25519 signature over the file (its BLAKE2b-512 prehash, minisign's
//! default since 0.10, or the raw bytes of a legacy `-l` signature) and the global signature that
//! binds the trusted comment to it.
//!
//! Everything here works on bytes already read: it runs before a plugin is compiled, and a
//! refusal names the file and the key id (in hex, as `minisign -G` prints it), so the operator can tell an unsigned file, a stranger's key and a tampered file apart.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minisign_verify::{PublicKey, Signature};
use serde::{Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// What a detached signature's file name adds to the plugin's.
pub const SIGNATURE_SUFFIX: &str = ".minisig";

/// Signatures larger than this are refused unread: a real one is four lines, about 400 bytes
/// with a long trusted comment.
pub const MAX_SIGNATURE: u64 = 16 << 10;

/// The public key of the project's own release signing key, given at build time; `None` in
/// builds without one (developer and CI builds).
pub const RELEASE_PUBKEY: Option<&str> = option_env!("BMC_ROTATE_RELEASE_PUBKEY");

/// The release key, parsed. A release build given a malformed key is a broken build, caught by
/// `--version` and every profile load before any plugin is trusted.
pub fn release_key() -> Option<Result<SignerKey, String>> {
    RELEASE_PUBKEY.map(|text| {
        SignerKey::parse(text)
            .map_err(|e| format!("the release key built into this binary (BMC_ROTATE_RELEASE_PUBKEY): {e}"))
    })
}

/// A minisign key id: 8 bytes, shown as minisign shows it (the little-endian number in
/// upper-case hex, without leading zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", u64::from_le_bytes(self.0))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A minisign public key a profile trusts.
#[derive(Clone, Debug)]
pub struct SignerKey {
    key: PublicKey,
    id: KeyId,
    base64: String,
}

impl PartialEq for SignerKey {
    fn eq(&self, other: &Self) -> bool {
        self.base64 == other.base64
    }
}

impl Eq for SignerKey {}

impl Serialize for SignerKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.base64)
    }
}

impl fmt::Display for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.base64)
    }
}

/// The bytes after the 2-byte algorithm tag of a minisign key or signature line: the key id.
fn key_id_of(decoded: &[u8]) -> Option<KeyId> {
    decoded.get(2..10).map(|id| KeyId(id.try_into().expect("8 bytes")))
}

impl SignerKey {
    /// Parses a public key: the base64 line of a minisign `.pub` file (`RW…`, 56 characters), or
    /// the whole file (its `untrusted comment:` line is skipped).
    pub fn parse(text: &str) -> Result<SignerKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let expected = "expected a minisign public key: the `RW…` line of the vendor's .pub file (56 characters)";
        let decoded = STANDARD.decode(line).map_err(|_| format!("`{line}` is not base64; {expected}"))?;
        let key = PublicKey::from_base64(line).map_err(|e| format!("`{line}`: {e}; {expected}"))?;
        let id = key_id_of(&decoded).ok_or_else(|| format!("`{line}` is too short; {expected}"))?;
        Ok(SignerKey { key, id, base64: line.to_owned() })
    }

    /// Its key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key as a profile writes it.
    pub fn as_base64(&self) -> &str {
        &self.base64
    }
}

/// A signature that verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The key that made it.
    pub key_id: KeyId,
    /// That key, as a profile lists it.
    pub key: String,
    /// The signed comment (minisign's default: `timestamp:… file:…`).
    pub trusted_comment: String,
    /// Whether the signature covers the file's BLAKE2b prehash (minisign ≥ 0.10 default) rather
    /// than the raw bytes (legacy `-l`).
    pub prehashed: bool,
}

/// Why a plugin's signature was not accepted. Each names the plugin file and, where there is
/// one, the key id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature file beside it.
    #[error("{file} is not signed: there is no {signature} beside it")]
    Unsigned {
        /// The plugin file.
        file: String,
        /// Where its signature was looked for.
        signature: String,
    },
    /// The signature file is not a minisign signature.
    #[error("{signature} (the signature of {file}) is not a minisign signature: {reason}")]
    Malformed {
        /// The plugin file.
        file: String,
        /// The signature file.
        signature: String,
        /// What is wrong.
        reason: String,
    },
    /// Signed by a key not among those trusted: it cannot be verified, and it does not matter
    /// whether it would.
    #[error("{file} is signed by key {key_id}, which is not trusted here")]
    UntrustedKey {
        /// The plugin file.
        file: String,
        /// The key that signed it.
        key_id: KeyId,
    },
    /// The signature does not verify under the trusted key of its id: the file or its trusted
    /// comment changed after signing, or the signature is another file's.
    #[error(
        "{file}: BAD signature by key {key_id} in {signature}: the file is not what that key signed (it was \
         changed after signing, or the signature belongs to another file); refusing to use it"
    )]
    Bad {
        /// The plugin file.
        file: String,
        /// The signature file.
        signature: String,
        /// The key it claims.
        key_id: KeyId,
    },
}

impl SignatureError {
    /// The key id the signature names, if it got that far.
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            SignatureError::UntrustedKey { key_id, .. } | SignatureError::Bad { key_id, .. } => Some(*key_id),
            SignatureError::Unsigned { .. } | SignatureError::Malformed { .. } => None,
        }
    }
}

/// Where a plugin's detached signature lives: `FILE.wasm.minisig`.
pub fn signature_path(plugin: &Path) -> PathBuf {
    let mut name = plugin.as_os_str().to_owned();
    name.push(SIGNATURE_SUFFIX);
    PathBuf::from(name)
}

/// Reads a signature file (bounded, regular files only); `Ok(None)` when there is none.
pub fn read_signature(path: &Path) -> Result<Option<String>, String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    crate::files::read_bounded_string(path, "the plugin signature", MAX_SIGNATURE).map(Some).map_err(|e| e.to_string())
}

/// A parsed signature, before it is checked against any key.
pub struct Detached {
    signature: Signature,
    key_id: KeyId,
    prehashed: bool,
}

impl Detached {
    /// Parses the text of a `.minisig` file.
    pub fn parse(text: &str) -> Result<Detached, String> {
        let line = text.lines().nth(1).map(str::trim).ok_or("expected four lines, found fewer")?;
        let decoded = STANDARD.decode(line).map_err(|_| "its second line is not base64".to_owned())?;
        let signature = Signature::decode(text).map_err(|e| e.to_string())?;
        let key_id = key_id_of(&decoded).ok_or("its second line is too short")?;
        Ok(Detached { signature, key_id, prehashed: decoded.starts_with(b"ED") })
    }

    /// The key id it claims.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Its trusted comment, as signed (unverified until [`Detached::verify`] says so).
    pub fn trusted_comment(&self) -> &str {
        self.signature.trusted_comment()
    }

    /// Checks it over `bytes` under `key`, which must have its key id.
    fn verify(&self, bytes: &[u8], key: &SignerKey) -> bool {
        // Legacy (non-prehashed) signatures are Ed25519 over the whole file: as sound, only slower.
        key.key.verify(bytes, &self.signature, true).is_ok()
    }
}

/// Verifies `bytes` (the plugin `file`) against its signature (`signature_text`, read from
/// `signature_file`; `None` when there is none) under whichever of `trusted` has the signature's
/// key id.
pub fn verify(
    file: &str,
    bytes: &[u8],
    signature_file: &str,
    signature_text: Option<&str>,
    trusted: &[SignerKey],
) -> Result<Signer, SignatureError> {
    let Some(text) = signature_text else {
        return Err(SignatureError::Unsigned { file: file.to_owned(), signature: signature_file.to_owned() });
    };
    let detached = Detached::parse(text).map_err(|reason| SignatureError::Malformed {
        file: file.to_owned(),
        signature: signature_file.to_owned(),
        reason,
    })?;
    let key_id = detached.key_id;
    // Every trusted key with the signature's id is tried: an id is chosen by its key's maker, so
    // two keys (two profiles' vendors) may share one.
    let mut candidates = trusted.iter().filter(|k| k.id == key_id).peekable();
    if candidates.peek().is_none() {
        return Err(SignatureError::UntrustedKey { file: file.to_owned(), key_id });
    }
    let Some(key) = candidates.find(|k| detached.verify(bytes, k)) else {
        return Err(SignatureError::Bad { file: file.to_owned(), signature: signature_file.to_owned(), key_id });
    };
    Ok(Signer {
        key_id,
        key: key.base64.clone(),
        trusted_comment: detached.trusted_comment().to_owned(),
        prehashed: detached.prehashed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made once with minisign 0.11: `minisign -G -W`, then `minisign -S -t "acme 1.0"` and
    // `minisign -S -l` over the 3 bytes "hi\n".
    const PUBLIC: &str = "RWR3qUZg6MMoFSS4h7v8YVqjMpRZvszmN9XEwhsbQOl+Uar4vbbCsaVV";
    const OTHER_PUBLIC: &str = "RWQYE2RrXy+sKlagHt+Smy6yH12NIA2UaS+RfSAHpjOLxzSA9oU9H+7A";
    const MESSAGE: &[u8] = b"hi\n";
    const PREHASHED: &str = "untrusted comment: signature from minisign secret key\n\
        RUR3qUZg6MMoFdkyKOXJETF1vFS8L2e+CNDSZp499wFVbHBqfc7WP80Ng9cqyeb2D2I0BadTwU84G6gxjbD3WMlC2OLXuLulXwg=\n\
        trusted comment: vendor X 1.0\n\
        5SveZpVQCTOT2wYfBJHePRdctGp6RQ18C2uvBMJsqs/3s/RDnEj5ED98YF3gaWVo8ZuafdTAxL247NzBtNDXCg==\n";
    const LEGACY: &str = "untrusted comment: signature from minisign secret key\n\
        RWR3qUZg6MMoFcQ9RYogEJFqNsVV5mnT2rKxV/1ZjAwHLaxMY5eIUJDPBDYKVCNzYtfKleDzs8vb8JdZr92CX0wMZRiYR2TW6Ao=\n\
        trusted comment: timestamp:1796017527\tfile:f\n\
        3E3mfC7kNfTnvEixUJGTK2ewplwSVljkTjtSCGNXAUpMeOdS6b13BtbDnP+bNNRTDflkRyirH/tD8L9d5C/VAg==\n";

    fn key(text: &str) -> SignerKey {
        SignerKey::parse(text).unwrap()
    }

    fn check(bytes: &[u8], sig: Option<&str>, trusted: &[SignerKey]) -> Result<Signer, SignatureError> {
        verify("p.wasm", bytes, "p.wasm.minisig", sig, trusted)
    }

    #[test]
    fn key_ids_read_as_minisign_prints_them() {
        assert_eq!(key(PUBLIC).id().to_string(), "1528C3E86046A977");
        // `minisign -G` wrote this one's id as 2F7235BE93CEAA1: no leading zero.
        assert_eq!(key("RWSh6jzpWyP3AsPZpyR8Sx4ehQ1qnPclJPk9y2pTa1fWOmDsmnm9rIoc").id().to_string(), "2F7235BE93CEAA1");
        let file = format!("untrusted comment: minisign public key 1528C3E86046A977\n{PUBLIC}\n");
        assert_eq!(key(&file), key(PUBLIC));
        assert_eq!(Detached::parse(PREHASHED).unwrap().key_id(), key(PUBLIC).id());
    }

    #[test]
    fn a_good_prehashed_signature_verifies_and_reports_its_comment() {
        let signer = check(MESSAGE, Some(PREHASHED), &[key(OTHER_PUBLIC), key(PUBLIC)]).unwrap();
        assert_eq!(signer.key_id.to_string(), "1528C3E86046A977");
        assert_eq!(signer.trusted_comment, "vendor X 1.0");
        assert!(signer.prehashed);
        assert_eq!(signer.key, PUBLIC);
    }

    /// `key_text` with `id_from`'s key id: anyone can make such a key.
    fn with_id_of(key_text: &str, id_from: &str) -> String {
        let mut bytes = STANDARD.decode(key_text).unwrap();
        bytes[2..10].copy_from_slice(&STANDARD.decode(id_from).unwrap()[2..10]);
        STANDARD.encode(bytes)
    }

    #[test]
    fn keys_sharing_an_id_are_each_tried_and_only_the_signing_one_verifies() {
        let forged = with_id_of(OTHER_PUBLIC, PUBLIC);
        assert_eq!(key(&forged).id(), key(PUBLIC).id());
        let signer = check(MESSAGE, Some(PREHASHED), &[key(&forged), key(PUBLIC)]).unwrap();
        assert_eq!(signer.key, PUBLIC, "the key that verified, not the first with the id");
        let bad = check(MESSAGE, Some(PREHASHED), &[key(&forged)]).unwrap_err();
        assert!(matches!(bad, SignatureError::Bad { .. }), "{bad}");
    }

    #[test]
    fn a_legacy_signature_verifies_too() {
        let signer = check(MESSAGE, Some(LEGACY), &[key(PUBLIC)]).unwrap();
        assert!(!signer.prehashed);
        assert_eq!(signer.trusted_comment, "timestamp:1796017527\tfile:f");
    }

    #[test]
    fn unsigned_untrusted_and_bad_are_told_apart_and_name_file_and_key() {
        let unsigned = check(MESSAGE, None, &[key(PUBLIC)]).unwrap_err();
        assert!(matches!(unsigned, SignatureError::Unsigned { .. }));
        assert!(
            unsigned.to_string().contains("p.wasm is not signed") && unsigned.to_string().contains("p.wasm.minisig")
        );

        let untrusted = check(MESSAGE, Some(PREHASHED), &[key(OTHER_PUBLIC)]).unwrap_err();
        assert_eq!(untrusted.key_id().unwrap().to_string(), "1528C3E86046A977");
        assert!(untrusted.to_string().contains("signed by key 1528C3E86046A977, which is not trusted"), "{untrusted}");

        let tampered = check(b"hI\n", Some(PREHASHED), &[key(PUBLIC)]).unwrap_err();
        assert!(matches!(tampered, SignatureError::Bad { .. }));
        assert!(tampered.to_string().contains("p.wasm: BAD signature by key 1528C3E86046A977"), "{tampered}");
        let legacy_tampered = check(b"hi!", Some(LEGACY), &[key(PUBLIC)]).unwrap_err();
        assert!(matches!(legacy_tampered, SignatureError::Bad { .. }));
    }

    #[test]
    fn a_changed_trusted_comment_breaks_the_signature() {
        let forged = PREHASHED.replace("vendor X 1.0", "vendor X 9.9");
        assert!(matches!(check(MESSAGE, Some(&forged), &[key(PUBLIC)]), Err(SignatureError::Bad { .. })));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for text in ["", "one line\n", "a\nnot base64!\nc\nd\n", "a\nRWQ=\ntrusted comment: x\nAAAA\n"] {
            let err = check(MESSAGE, Some(text), &[key(PUBLIC)]).unwrap_err();
            assert!(matches!(err, SignatureError::Malformed { .. }), "{text:?}: {err}");
            assert!(err.to_string().contains("p.wasm.minisig (the signature of p.wasm)"), "{err}");
        }
        for text in ["", "RWQ", "not base64!", &PUBLIC[..40]] {
            let err = SignerKey::parse(text).unwrap_err();
            assert!(err.contains("expected a minisign public key"), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_signature_sits_beside_the_plugin() {
        assert_eq!(signature_path(Path::new("/p/dell_idrac.wasm")), Path::new("/p/dell_idrac.wasm.minisig"));
    }
}
