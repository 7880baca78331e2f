//! The PSRP 2.3 session key (MS-PSRP 2.2.2.3–4, 3.1.5.4.3): the client sends an RSA-2048 public
//! key as a CAPI PUBLICKEYBLOB, the server answers with a 32-byte AES key wrapped in a SIMPLEBLOB,
//! and every `<SS>` SecureString is AES-256-CBC (zero IV, PKCS#7) over UTF-16LE text.

use super::PsrpError;
use aes::Aes256;
use base64::Engine as _;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use rsa::rand_core::CryptoRngCore;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use std::sync::{Arc, Mutex, PoisonError};
use zeroize::{Zeroize, Zeroizing};

const PUBLICKEYBLOB_HEADER: [u8; 8] = [0x06, 0x02, 0x00, 0x00, 0x00, 0xa4, 0x00, 0x00];
const RSA1: [u8; 4] = *b"RSA1";
const SIMPLEBLOB_HEADER: [u8; 12] = [0x01, 0x02, 0x00, 0x00, 0x10, 0x66, 0x00, 0x00, 0x00, 0xa4, 0x00, 0x00];
const BITS: usize = 2048;
const ZERO_IV: [u8; 16] = [0; 16];

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The key pair [`ClientKey::process_key`] hands out, once it was first needed.
static PROCESS_KEY: Mutex<Option<Arc<ClientKey>>> = Mutex::new(None);

/// The client's RSA key pair for the session-key exchange. It lives in memory only; the rsa
/// crate zeroizes the private exponent, primes and CRT values when it is dropped.
pub struct ClientKey {
    private: RsaPrivateKey,
}

impl ClientKey {
    /// The key pair of this process, shared by every runspace pool it opens: generated from the
    /// operating system's generator when the first pool needs it (an RSA-2048 key pair costs
    /// about 0.1 s of CPU), then reused.
    ///
    /// Reuse is sound because the key pair protects nothing but the session keys of the pools
    /// this process opens: for each pool the server draws a fresh AES-256 session key and wraps
    /// it under this public key, so every pool still has its own session key, and the private key
    /// never leaves this process, which would hold all the pools' keys in memory either way.
    /// Concurrent first callers wait for the one generation. The key is never dropped (a static
    /// outlives the last pool): it is not zeroized, and goes when the process's memory does.
    pub fn process_key() -> Result<Arc<ClientKey>, PsrpError> {
        let mut slot = PROCESS_KEY.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = slot.as_ref() {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(ClientKey::generate()?);
        *slot = Some(Arc::clone(&key));
        Ok(key)
    }

    /// Starts generating [`ClientKey::process_key`] on a thread of its own, for a caller that
    /// knows a pool will follow and has other work to do first (a rotation's inventory, plugins
    /// and preflight): the generation, a run's largest fixed cost, then runs on another core
    /// meanwhile instead of delaying the first pool. A pool that comes first waits for it or
    /// generates the key itself; either way the process has one key. The thread's handle is
    /// for tests: dropping it lets the thread run on. `None` when no thread could be started
    /// (resource limits): the first pool then generates the key, as without this call.
    pub fn prepare() -> Option<std::thread::JoinHandle<()>> {
        let spawned = std::thread::Builder::new().name("psrp-key".to_owned()).spawn(|| {
            // An error here is the first pool's to report: it tries again.
            let _ = ClientKey::process_key();
        });
        spawned.ok()
    }

    /// A fresh RSA-2048 key pair from the operating system's generator.
    pub fn generate() -> Result<ClientKey, PsrpError> {
        ClientKey::generate_with(&mut rsa::rand_core::OsRng)
    }

    /// A fresh RSA-2048 key pair from `rng` (a seeded generator makes it reproducible).
    pub fn generate_with<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Result<ClientKey, PsrpError> {
        let private =
            RsaPrivateKey::new(rng, BITS).map_err(|e| PsrpError::new(format!("cannot generate the RSA key: {e}")))?;
        Ok(ClientKey { private })
    }

    /// The PUBLICKEYBLOB (276 bytes) the PUBLIC_KEY message carries, base64 in `<S N="PublicKey">`.
    pub fn public_key_blob(&self) -> Vec<u8> {
        let public = RsaPublicKey::from(&self.private);
        let mut modulus = public.n().to_bytes_le();
        modulus.resize(BITS / 8, 0);
        let mut exponent = public.e().to_bytes_le();
        exponent.resize(4, 0);
        let mut blob = Vec::with_capacity(20 + modulus.len());
        blob.extend_from_slice(&PUBLICKEYBLOB_HEADER);
        blob.extend_from_slice(&RSA1);
        blob.extend_from_slice(&(BITS as u32).to_le_bytes());
        blob.extend_from_slice(&exponent);
        blob.extend_from_slice(&modulus);
        blob
    }

    /// Unwraps the SIMPLEBLOB of an ENCRYPTED_SESSION_KEY message.
    pub fn decrypt_session_key(&self, blob: &[u8]) -> Result<SessionKey, PsrpError> {
        let wrapped = blob
            .strip_prefix(&SIMPLEBLOB_HEADER[..])
            .ok_or_else(|| PsrpError::new("the encrypted session key is not an AES-256 SIMPLEBLOB wrapped with RSA"))?;
        let mut reversed = wrapped.to_vec();
        reversed.reverse();
        let key = Zeroizing::new(
            self.private
                .decrypt(Pkcs1v15Encrypt, &reversed)
                .map_err(|e| PsrpError::new(format!("cannot decrypt the session key: {e}")))?,
        );
        SessionKey::from_slice(&key)
    }
}

/// Parses a PUBLICKEYBLOB into an RSA public key (the server side of the exchange).
pub fn public_key_from_blob(blob: &[u8]) -> Result<RsaPublicKey, PsrpError> {
    let bad = |why: &str| PsrpError::new(format!("bad PUBLICKEYBLOB: {why}"));
    if blob.len() < 20 || blob[0..8] != PUBLICKEYBLOB_HEADER || blob[8..12] != RSA1 {
        return Err(bad("wrong header"));
    }
    let bits = u32::from_le_bytes(blob[12..16].try_into().expect("4 bytes")) as usize;
    let modulus = blob.get(20..20 + bits / 8).ok_or_else(|| bad("modulus truncated"))?;
    let exponent = BigUint::from_bytes_le(&blob[16..20]);
    RsaPublicKey::new(BigUint::from_bytes_le(modulus), exponent).map_err(|e| bad(&e.to_string()))
}

/// The AES-256 key that protects SecureStrings in one runspace pool.
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; 32]>);

impl SessionKey {
    /// A random key (the server side).
    pub fn generate() -> SessionKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, key.as_mut());
        SessionKey(key)
    }

    /// A key from 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<SessionKey, PsrpError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| PsrpError::new(format!("the session key has {} bytes, not 32", bytes.len())))?;
        Ok(SessionKey(Zeroizing::new(array)))
    }

    /// Wraps this key for `public` as the SIMPLEBLOB of an ENCRYPTED_SESSION_KEY message.
    pub fn wrap_for(&self, public: &RsaPublicKey) -> Result<Vec<u8>, PsrpError> {
        let mut wrapped = public
            .encrypt(&mut rsa::rand_core::OsRng, Pkcs1v15Encrypt, self.0.as_ref())
            .map_err(|e| PsrpError::new(format!("cannot wrap the session key: {e}")))?;
        wrapped.reverse();
        let mut blob = SIMPLEBLOB_HEADER.to_vec();
        blob.extend_from_slice(&wrapped);
        Ok(blob)
    }

    /// The base64 body of an `<SS>` element for `plaintext`.
    pub fn encrypt_secure_string(&self, plaintext: &str) -> String {
        let mut utf16: Vec<u8> = plaintext.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let sealed = cbc::Encryptor::<Aes256>::new(self.0.as_ref().into(), &ZERO_IV.into())
            .encrypt_padded_vec_mut::<Pkcs7>(&utf16);
        utf16.zeroize();
        b64().encode(sealed)
    }

    /// The plaintext of an `<SS>` element's base64 body.
    pub fn decrypt_secure_string(&self, body: &str) -> Result<Zeroizing<String>, PsrpError> {
        let sealed =
            b64().decode(body.trim()).map_err(|e| PsrpError::new(format!("SecureString is not base64: {e}")))?;
        let utf16 = Zeroizing::new(
            cbc::Decryptor::<Aes256>::new(self.0.as_ref().into(), &ZERO_IV.into())
                .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
                .map_err(|_| PsrpError::new("SecureString does not decrypt with the session key"))?,
        );
        if utf16.len() % 2 != 0 {
            return Err(PsrpError::new("SecureString plaintext is not UTF-16"));
        }
        let units: Zeroizing<Vec<u16>> =
            Zeroizing::new(utf16.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect());
        String::from_utf16(&units)
            .map(Zeroizing::new)
            .map_err(|_| PsrpError::new("SecureString plaintext is not valid UTF-16"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_strings_match_known_vectors() {
        // `printf 'P\0a\0s\0s\0' | openssl enc -aes-256-cbc -K <key> -iv 0…0 | base64`
        let zero = SessionKey::from_slice(&[0; 32]).unwrap();
        assert_eq!(zero.encrypt_secure_string("Pass"), "foJV8UEq9KcJFFJICJMuSA==");
        let counting: Vec<u8> = (0..32).collect();
        let key = SessionKey::from_slice(&counting).unwrap();
        assert_eq!(key.encrypt_secure_string("Pass"), "Vt566dOpJSyMT+MoAH1bOg==");
        assert_eq!(key.decrypt_secure_string("Vt566dOpJSyMT+MoAH1bOg==").unwrap().as_str(), "Pass");
        let tricky = "Pä\"ss\\wörd😀";
        assert_eq!(key.decrypt_secure_string(&key.encrypt_secure_string(tricky)).unwrap().as_str(), tricky);
        assert!(zero.decrypt_secure_string("Vt566dOpJSyMT+MoAH1bOg==").is_err(), "wrong key");
    }

    #[test]
    fn a_prepared_key_is_the_one_every_pool_of_the_process_gets() {
        ClientKey::prepare().expect("a thread").join().unwrap();
        let prepared = PROCESS_KEY.lock().unwrap().clone().expect("generated by the thread");
        ClientKey::prepare().expect("a thread").join().unwrap();
        assert!(Arc::ptr_eq(&prepared, &ClientKey::process_key().unwrap()));
        assert!(Arc::ptr_eq(&prepared, PROCESS_KEY.lock().unwrap().as_ref().unwrap()), "not generated again");
    }

    #[test]
    fn the_key_exchange_round_trips_through_the_capi_blobs() {
        let client = ClientKey::generate().unwrap();
        let blob = client.public_key_blob();
        assert_eq!(blob.len(), 276);
        assert_eq!(&blob[0..20], &[0x06, 0x02, 0, 0, 0, 0xa4, 0, 0, b'R', b'S', b'A', b'1', 0, 8, 0, 0, 1, 0, 1, 0]);
        let server_key = SessionKey::generate();
        let wrapped = server_key.wrap_for(&public_key_from_blob(&blob).unwrap()).unwrap();
        assert_eq!(wrapped.len(), 268);
        assert_eq!(&wrapped[0..12], &SIMPLEBLOB_HEADER);
        let client_key = client.decrypt_session_key(&wrapped).unwrap();
        let sealed = server_key.encrypt_secure_string("Bmc-Pass-16chars");
        assert_eq!(client_key.decrypt_secure_string(&sealed).unwrap().as_str(), "Bmc-Pass-16chars");
        assert!(client.decrypt_session_key(&wrapped[4..]).is_err());
        assert!(public_key_from_blob(&blob[..10]).is_err());
    }

    #[test]
    fn the_process_generates_one_key_pair_and_reuses_it() {
        let first = ClientKey::process_key().unwrap();
        let second = std::thread::spawn(|| ClientKey::process_key().unwrap()).join().unwrap();
        assert!(Arc::ptr_eq(&first, &second), "one key pair per process, whichever thread asks");
        assert_eq!(first.public_key_blob(), second.public_key_blob());
        let fresh = ClientKey::generate().unwrap();
        assert_ne!(fresh.public_key_blob(), first.public_key_blob(), "generate still draws a new pair");
    }
}
