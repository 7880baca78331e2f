//! NTLMv2 (MS-NLMP) for WinRM: the three-message handshake with extended session security, key
//! exchange and MIC, and the sealing that encrypts every WinRM message. Both sides: the client
//! the PEP step uses, and the acceptor the PEP simulator uses.
//!
//! Written in-house rather than through the `sspi` crate, whose default build brings a second TLS
//! provider (aws-lc) and a Kerberos stack this tool does not need; the tests pin every step to the
//! protocol's published test vectors (MS-NLMP §4.2.4).

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use rc4::{KeyInit, Rc4, StreamCipher, consts::U16};
use zeroize::{Zeroize, Zeroizing};

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// Negotiate flags this implementation uses (MS-NLMP 2.2.2.5).
pub mod flags {
    /// Unicode strings.
    pub const UNICODE: u32 = 0x0000_0001;
    /// The server should send its target name.
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    /// Message integrity.
    pub const SIGN: u32 = 0x0000_0010;
    /// Message confidentiality.
    pub const SEAL: u32 = 0x0000_0020;
    /// NTLM authentication.
    pub const NTLM: u32 = 0x0000_0200;
    /// Always sign.
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    /// Extended session security (NTLM2 keys).
    pub const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
    /// Target info present.
    pub const TARGET_INFO: u32 = 0x0080_0000;
    /// Version field present.
    pub const VERSION: u32 = 0x0200_0000;
    /// 128-bit keys.
    pub const KEY_128: u32 = 0x2000_0000;
    /// Explicit key exchange.
    pub const KEY_EXCH: u32 = 0x4000_0000;
    /// 56-bit keys.
    pub const KEY_56: u32 = 0x8000_0000;
}

/// What the client asks for: everything WinRM message sealing needs.
pub const CLIENT_FLAGS: u32 = flags::UNICODE
    | flags::REQUEST_TARGET
    | flags::SIGN
    | flags::SEAL
    | flags::NTLM
    | flags::ALWAYS_SIGN
    | flags::EXTENDED_SESSION_SECURITY
    | flags::TARGET_INFO
    | flags::VERSION
    | flags::KEY_128
    | flags::KEY_EXCH
    | flags::KEY_56;

/// An NTLM protocol or authentication failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("NTLM: {0}")]
pub struct NtlmError(pub String);

fn err(message: impl Into<String>) -> NtlmError {
    NtlmError(message.into())
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2 (MS-NLMP 3.3.2): HMAC-MD5 keyed with MD4(UTF-16LE(password)) over
/// UTF-16LE(UPPERCASE(user) ‖ domain).
pub fn nt_owf_v2(user: &str, domain: &str, password: &str) -> Zeroizing<[u8; 16]> {
    let mut utf16_password = Zeroizing::new(utf16le(password));
    let nt_hash = Zeroizing::new(<[u8; 16]>::from(Md4::digest(&*utf16_password)));
    utf16_password.zeroize();
    let identity = utf16le(&format!("{}{domain}", user.to_uppercase()));
    Zeroizing::new(hmac_md5(&*nt_hash, &[&identity]))
}

/// The NTLMv2 computation (MS-NLMP 3.3.2): the NT response, the LM response and the session base key.
pub struct V2Response {
    /// `NTProofStr ‖ temp`.
    pub nt_response: Vec<u8>,
    /// `HMAC(ResponseKey, server ‖ client challenge) ‖ client challenge`.
    pub lm_response: Vec<u8>,
    /// `HMAC(ResponseKey, NTProofStr)`.
    pub session_base_key: Zeroizing<[u8; 16]>,
}

/// Computes the NTLMv2 responses for a challenge.
pub fn v2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    timestamp: &[u8; 8],
    target_info: &[u8],
) -> V2Response {
    let mut temp = vec![0x01, 0x01, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(timestamp);
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(response_key, &[server_challenge, &temp]);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&temp);
    let mut lm_response = hmac_md5(response_key, &[server_challenge, client_challenge]).to_vec();
    lm_response.extend_from_slice(client_challenge);
    V2Response { nt_response, lm_response, session_base_key: Zeroizing::new(hmac_md5(response_key, &[&proof])) }
}

fn rc4_once(key: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    Rc4::<U16>::new(key.into()).apply_keystream(&mut out);
    out
}

fn md5_concat(a: &[u8], b: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// Which side of the conversation a [`Sealer`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client.
    Client,
    /// The server.
    Server,
}

/// Message sealing (MS-NLMP 3.4.3 with extended session security and key exchange): each
/// direction has its own key and RC4 stream; every message gets a 16-byte signature.
pub struct Sealer {
    sign_out: Zeroizing<[u8; 16]>,
    sign_in: Zeroizing<[u8; 16]>,
    /// Kept to restart a direction's RC4 stream after SPNEGO's mechListMIC.
    seal_key_out: Zeroizing<[u8; 16]>,
    seal_key_in: Zeroizing<[u8; 16]>,
    seal_out: Rc4<U16>,
    seal_in: Rc4<U16>,
    seq_out: u32,
    seq_in: u32,
}

const C2S_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const S2C_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const C2S_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const S2C_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of debug output.
        write!(f, "Sealer {{ seq_out: {}, seq_in: {} }}", self.seq_out, self.seq_in)
    }
}

impl Sealer {
    /// Keys derived from the exported session key, for one side.
    pub fn new(exported_session_key: &[u8; 16], side: Side) -> Sealer {
        let key = |magic: &[u8]| Zeroizing::new(md5_concat(exported_session_key, magic));
        let (sign_out, sign_in, seal_out, seal_in) = match side {
            Side::Client => (key(C2S_SIGN), key(S2C_SIGN), key(C2S_SEAL), key(S2C_SEAL)),
            Side::Server => (key(S2C_SIGN), key(C2S_SIGN), key(S2C_SEAL), key(C2S_SEAL)),
        };
        Sealer {
            sign_out,
            sign_in,
            seal_out: Rc4::<U16>::new((&*seal_out).into()),
            seal_in: Rc4::<U16>::new((&*seal_in).into()),
            seal_key_out: seal_out,
            seal_key_in: seal_in,
            seq_out: 0,
            seq_in: 0,
        }
    }

    /// The signature of `data` without encrypting it (GSS_GetMIC, MS-NLMP 3.4.4.2): what
    /// SPNEGO's mechListMIC is. It uses the outgoing RC4 stream and sequence number.
    pub fn sign(&mut self, data: &[u8]) -> [u8; 16] {
        let seq = self.seq_out.to_le_bytes();
        let mut checksum = hmac_md5(&*self.sign_out, &[&seq, data]);
        self.seal_out.apply_keystream(&mut checksum[..8]);
        self.seq_out += 1;
        signature(&checksum, seq)
    }

    /// Checks a [`Sealer::sign`] signature from the other side (GSS_VerifyMIC).
    pub fn verify(&mut self, data: &[u8], signature: &[u8]) -> Result<(), NtlmError> {
        let seq = self.check_sequence(signature)?;
        let mut checksum = hmac_md5(&*self.sign_in, &[&seq, data]);
        self.seal_in.apply_keystream(&mut checksum[..8]);
        self.seq_in += 1;
        if checksum[..8] != signature[4..12] {
            return Err(err("the signature does not verify: tampered, or a different session key"));
        }
        Ok(())
    }

    /// Restarts the outgoing RC4 stream from its key; the sequence number goes on. SPNEGO does
    /// this after the mechListMIC (MS-SPNG 3.3.5.1), so the first sealed message after the
    /// handshake starts a fresh stream with sequence number 1.
    pub fn reset_outgoing(&mut self) {
        self.seal_out = Rc4::<U16>::new((&*self.seal_key_out).into());
    }

    /// [`Sealer::reset_outgoing`] for the incoming direction.
    pub fn reset_incoming(&mut self) {
        self.seal_in = Rc4::<U16>::new((&*self.seal_key_in).into());
    }

    fn check_sequence(&self, signature: &[u8]) -> Result<[u8; 4], NtlmError> {
        if signature.len() != 16 || signature[..4] != 1u32.to_le_bytes() {
            return Err(err("malformed message signature"));
        }
        let seq = self.seq_in.to_le_bytes();
        if signature[12..] != seq {
            return Err(err(format!("message out of sequence: {:?} expected {}", &signature[12..], self.seq_in)));
        }
        Ok(seq)
    }

    /// Encrypts `data` in place and returns its signature.
    pub fn seal(&mut self, data: &mut [u8]) -> [u8; 16] {
        let seq = self.seq_out.to_le_bytes();
        let mut checksum = hmac_md5(&*self.sign_out, &[&seq, data]);
        self.seal_out.apply_keystream(data);
        self.seal_out.apply_keystream(&mut checksum[..8]);
        self.seq_out += 1;
        signature(&checksum, seq)
    }

    /// Decrypts `data` in place and checks its signature.
    pub fn unseal(&mut self, data: &mut [u8], signature: &[u8]) -> Result<(), NtlmError> {
        let seq = self.check_sequence(signature)?;
        self.seal_in.apply_keystream(data);
        let mut checksum = hmac_md5(&*self.sign_in, &[&seq, data]);
        self.seal_in.apply_keystream(&mut checksum[..8]);
        self.seq_in += 1;
        if checksum[..8] != signature[4..12] {
            return Err(err("message signature does not verify: tampered, or a different session key"));
        }
        Ok(())
    }
}

/// `Version ‖ checksum[..8] ‖ seq` (MS-NLMP 2.2.2.9.1).
fn signature(checksum: &[u8; 16], seq: [u8; 4]) -> [u8; 16] {
    let mut signature = [0u8; 16];
    signature[..4].copy_from_slice(&1u32.to_le_bytes());
    signature[4..12].copy_from_slice(&checksum[..8]);
    signature[12..].copy_from_slice(&seq);
    signature
}

/// The MIC over the three handshake messages (MS-NLMP 3.1.5.1.2).
pub fn mic(exported_session_key: &[u8; 16], negotiate: &[u8], challenge: &[u8], authenticate: &[u8]) -> [u8; 16] {
    hmac_md5(exported_session_key, &[negotiate, challenge, authenticate])
}

// ---- handshake messages (MS-NLMP 2.2.1) ------------------------------------------------------

const NEGOTIATE: u32 = 1;
const CHALLENGE: u32 = 2;
const AUTHENTICATE: u32 = 3;
/// Windows 10/Server, NTLM revision 15: what Windows clients send in `Version`.
const VERSION: [u8; 8] = [0x0a, 0x00, 0x63, 0x45, 0x00, 0x00, 0x00, 0x0f];
const AV_EOL: u16 = 0;
const AV_NB_COMPUTER: u16 = 1;
const AV_NB_DOMAIN: u16 = 2;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
/// `MsvAvFlags` bit: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC: u32 = 0x2;
const MIC_OFFSET: usize = 72;

fn u16_at(b: &[u8], at: usize) -> Result<u16, NtlmError> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| err("message truncated"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, NtlmError> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| err("message truncated"))
}

/// The payload a `(len, maxlen, offset)` field points at.
fn field(b: &[u8], at: usize) -> Result<&[u8], NtlmError> {
    let len = u16_at(b, at)? as usize;
    let offset = u32_at(b, at + 4)? as usize;
    b.get(offset..offset + len).ok_or_else(|| err("a field points outside the message"))
}

fn check_header(b: &[u8], kind: u32) -> Result<(), NtlmError> {
    if b.get(..8) != Some(&SIGNATURE[..]) || u32_at(b, 8)? != kind {
        return Err(err(format!("not an NTLM message of type {kind}")));
    }
    Ok(())
}

/// AV pairs (MS-NLMP 2.2.2.1) as (id, value).
fn av_pairs(mut b: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, NtlmError> {
    let mut out = Vec::new();
    loop {
        let id = u16_at(b, 0)?;
        let len = u16_at(b, 2)? as usize;
        if id == AV_EOL {
            return Ok(out);
        }
        out.push((id, b.get(4..4 + len).ok_or_else(|| err("AV pair truncated"))?.to_vec()));
        b = &b[4 + len..];
    }
}

fn encode_av_pairs(pairs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, value) in pairs {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&[0; 4]);
    out
}

/// Builds a message from a fixed header and payload fields, filling in each field's descriptor.
struct Builder {
    header: Vec<u8>,
    payload: Vec<u8>,
    base: usize,
}

impl Builder {
    fn new(kind: u32, header_len: usize) -> Builder {
        let mut header = Vec::with_capacity(header_len);
        header.extend_from_slice(SIGNATURE);
        header.extend_from_slice(&kind.to_le_bytes());
        Builder { header, payload: Vec::new(), base: header_len }
    }

    fn field(&mut self, data: &[u8]) {
        let offset = (self.base + self.payload.len()) as u32;
        self.header.extend_from_slice(&(data.len() as u16).to_le_bytes());
        self.header.extend_from_slice(&(data.len() as u16).to_le_bytes());
        self.header.extend_from_slice(&offset.to_le_bytes());
        self.payload.extend_from_slice(data);
    }

    fn raw(&mut self, data: &[u8]) {
        self.header.extend_from_slice(data);
    }

    fn finish(mut self) -> Vec<u8> {
        debug_assert_eq!(self.header.len(), self.base);
        self.header.extend_from_slice(&self.payload);
        self.header
    }
}

fn filetime_now() -> [u8; 8] {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ((unix.as_nanos() / 100) as u64 + 116_444_736_000_000_000).to_le_bytes()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut b);
    b
}

/// The client side of the handshake.
pub struct Client {
    user: String,
    domain: String,
    password: Zeroizing<String>,
    workstation: String,
    negotiate: Vec<u8>,
}

impl Client {
    /// A client for `DOMAIN\user` (the domain may be empty for a local account).
    pub fn new(user: &str, domain: &str, password: Zeroizing<String>, workstation: &str) -> Client {
        Client {
            user: user.into(),
            domain: domain.into(),
            password,
            workstation: workstation.into(),
            negotiate: Vec::new(),
        }
    }

    /// The NEGOTIATE message.
    pub fn negotiate(&mut self) -> Vec<u8> {
        let mut b = Builder::new(NEGOTIATE, 40);
        b.raw(&CLIENT_FLAGS.to_le_bytes());
        b.field(&[]);
        b.field(&[]);
        b.raw(&VERSION);
        self.negotiate = b.finish();
        self.negotiate.clone()
    }

    /// The AUTHENTICATE message for a CHALLENGE, and the sealer for the session.
    pub fn authenticate(&self, challenge: &[u8]) -> Result<(Vec<u8>, Sealer), NtlmError> {
        self.authenticate_with(challenge, random(), random(), None)
    }

    fn authenticate_with(
        &self,
        challenge: &[u8],
        client_challenge: [u8; 8],
        random_session_key: [u8; 16],
        version: Option<[u8; 8]>,
    ) -> Result<(Vec<u8>, Sealer), NtlmError> {
        check_header(challenge, CHALLENGE)?;
        let server_flags = u32_at(challenge, 20)?;
        let server_challenge: [u8; 8] = challenge[24..32].try_into().map_err(|_| err("message truncated"))?;
        let mut pairs = av_pairs(field(challenge, 40)?)?;
        for needed in [flags::EXTENDED_SESSION_SECURITY, flags::KEY_EXCH, flags::SEAL] {
            if server_flags & needed == 0 {
                return Err(err(format!("the server refused flag {needed:#x}; WinRM sealing needs it")));
            }
        }
        // With a server timestamp: use it, send a MIC, and an empty LM response (MS-NLMP 3.1.5.1.2).
        let server_time = pairs.iter().find(|(id, _)| *id == AV_TIMESTAMP).map(|(_, v)| v.clone());
        let with_mic = server_time.is_some();
        let timestamp: [u8; 8] = match &server_time {
            Some(t) => t.as_slice().try_into().map_err(|_| err("bad MsvAvTimestamp"))?,
            None => {
                if version.is_some() {
                    [0; 8]
                } else {
                    filetime_now()
                }
            }
        };
        if with_mic {
            pairs.retain(|(id, _)| *id != AV_FLAGS);
            pairs.push((AV_FLAGS, AV_FLAG_MIC.to_le_bytes().to_vec()));
        }
        let key = nt_owf_v2(&self.user, &self.domain, &self.password);
        let target_info = if with_mic { encode_av_pairs(&pairs) } else { field(challenge, 40)?.to_vec() };
        let r = v2_response(&key, &server_challenge, &client_challenge, &timestamp, &target_info);
        let lm = if with_mic { vec![0; 24] } else { r.lm_response.clone() };
        let exported = Zeroizing::new(random_session_key);
        let encrypted_key = rc4_once(&r.session_base_key, &*exported);
        // The client states its own flags (as Windows does); the ones sealing needs were checked above.
        let flags = CLIENT_FLAGS;

        let mut b = Builder::new(AUTHENTICATE, if with_mic { 88 } else { 72 });
        let (domain, user, workstation) = (utf16le(&self.domain), utf16le(&self.user), utf16le(&self.workstation));
        // Field descriptors in header order, payload in the order Windows writes it.
        let header_order: [&[u8]; 6] = [&lm, &r.nt_response, &domain, &user, &workstation, &encrypted_key];
        let payload_order = [2usize, 3, 4, 0, 1, 5];
        let mut offsets = [0usize; 6];
        let mut cursor = b.base;
        for i in payload_order {
            offsets[i] = cursor;
            cursor += header_order[i].len();
        }
        for (i, data) in header_order.iter().enumerate() {
            b.raw(&(data.len() as u16).to_le_bytes());
            b.raw(&(data.len() as u16).to_le_bytes());
            b.raw(&(offsets[i] as u32).to_le_bytes());
        }
        b.raw(&flags.to_le_bytes());
        b.raw(&version.unwrap_or(VERSION));
        if with_mic {
            b.raw(&[0; 16]);
        }
        for i in payload_order {
            b.payload.extend_from_slice(header_order[i]);
        }
        let mut message = b.finish();
        if with_mic {
            let code = mic(&exported, &self.negotiate, challenge, &message);
            message[MIC_OFFSET..MIC_OFFSET + 16].copy_from_slice(&code);
        }
        Ok((message, Sealer::new(&exported, Side::Client)))
    }
}

/// A client the [`Acceptor`] let in.
#[derive(Debug)]
pub struct Accepted {
    /// The domain the client named.
    pub domain: String,
    /// The user name.
    pub user: String,
    /// Sealing for the rest of the connection.
    pub sealer: Sealer,
    /// The AUTHENTICATE message carried a MIC (it verified). SPNEGO then requires a mechListMIC.
    pub mic: bool,
}

/// The server side of the handshake (the PEP simulator).
pub struct Acceptor {
    negotiate: Vec<u8>,
    challenge: Vec<u8>,
    server_challenge: [u8; 8],
}

impl Acceptor {
    /// Answers a NEGOTIATE with a CHALLENGE naming `computer` in `domain`.
    pub fn challenge(negotiate: &[u8], domain: &str, computer: &str) -> Result<(Acceptor, Vec<u8>), NtlmError> {
        check_header(negotiate, NEGOTIATE)?;
        let client_flags = u32_at(negotiate, 12)?;
        let server_challenge: [u8; 8] = random();
        let pairs = [
            (AV_NB_DOMAIN, utf16le(domain)),
            (AV_NB_COMPUTER, utf16le(computer)),
            (AV_TIMESTAMP, filetime_now().to_vec()),
        ];
        let mut b = Builder::new(CHALLENGE, 56);
        b.field(&utf16le(domain));
        b.raw(&((client_flags & CLIENT_FLAGS) | flags::TARGET_INFO).to_le_bytes());
        b.raw(&server_challenge);
        b.raw(&[0; 8]);
        b.field(&encode_av_pairs(&pairs));
        b.raw(&VERSION);
        let challenge = b.finish();
        Ok((Acceptor { negotiate: negotiate.to_vec(), challenge: challenge.clone(), server_challenge }, challenge))
    }

    /// Checks an AUTHENTICATE against the account's password. `password_of` answers `None` for
    /// an unknown account.
    pub fn accept(
        &self,
        authenticate: &[u8],
        password_of: impl Fn(&str, &str) -> Option<Zeroizing<String>>,
    ) -> Result<Accepted, NtlmError> {
        check_header(authenticate, AUTHENTICATE)?;
        let text = |at| {
            field(authenticate, at).map(|b| {
                String::from_utf16_lossy(
                    &b.chunks(2).map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect::<Vec<_>>(),
                )
            })
        };
        let (domain, user) = (text(28)?, text(36)?);
        let nt = field(authenticate, 20)?;
        if nt.len() < 16 + 28 {
            return Err(err("not an NTLMv2 response (NTLMv1 is refused)"));
        }
        let refused = || err(format!("logon failure for {domain}\\{user}: unknown user name or bad password"));
        let password = password_of(&domain, &user).ok_or_else(refused)?;
        let key = nt_owf_v2(&user, &domain, &password);
        let (proof, temp) = nt.split_at(16);
        let expected = hmac_md5(&*key, &[&self.server_challenge, temp]);
        if expected != proof {
            return Err(refused());
        }
        let session_base_key = Zeroizing::new(hmac_md5(&*key, &[proof]));
        let flags = u32_at(authenticate, 60)?;
        let exported: Zeroizing<[u8; 16]> = if flags & flags::KEY_EXCH != 0 {
            let encrypted = field(authenticate, 52)?;
            let key: [u8; 16] =
                rc4_once(&session_base_key, encrypted).try_into().map_err(|_| err("bad session key length"))?;
            Zeroizing::new(key)
        } else {
            session_base_key
        };
        let pairs = av_pairs(temp.get(28..).ok_or_else(|| err("NTLMv2 response truncated"))?)?;
        let mic_present = pairs.iter().any(|(id, v)| {
            *id == AV_FLAGS && v.len() == 4 && u32::from_le_bytes([v[0], v[1], v[2], v[3]]) & AV_FLAG_MIC != 0
        });
        if mic_present {
            let mut zeroed = authenticate.to_vec();
            let sent: [u8; 16] = zeroed
                .get(MIC_OFFSET..MIC_OFFSET + 16)
                .ok_or_else(|| err("MIC missing"))?
                .try_into()
                .expect("16 bytes");
            zeroed[MIC_OFFSET..MIC_OFFSET + 16].fill(0);
            if mic(&exported, &self.negotiate, &self.challenge, &zeroed) != sent {
                return Err(err("the MIC does not verify: the handshake was tampered with"));
            }
        }
        Ok(Accepted { domain, user, sealer: Sealer::new(&exported, Side::Server), mic: mic_present })
    }
}

#[cfg(test)]
mod tests {
    //! MS-NLMP §4.2.4 (NTLMv2 authentication) test vectors.
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const TARGET_INFO: &str =
        "02 00 0c 00 44 00 6f 00 6d 00 61 00 69 00 6e 00 01 00 0c 00 53 00 65 00 72 00 76 00 65 00 72 00 00 00 00 00";

    #[test]
    fn ntowfv2_and_responses_match_the_specification() {
        let key = nt_owf_v2("User", "Domain", "Password");
        assert_eq!(key.to_vec(), h("0c868a403bfd7a93a3001ef22ef02e3f"));
        let r =
            v2_response(&key, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef], &[0xaa; 8], &[0; 8], &h(TARGET_INFO));
        assert_eq!(r.nt_response[..16], h("68cd0ab851e51c96aabc927bebef6a1c")[..]);
        assert_eq!(r.lm_response, h("86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa"));
        assert_eq!(r.session_base_key.to_vec(), h("8de40ccadbc14a82f15cb0ad0de95ca3"));
        // Key exchange: the random session key, RC4-encrypted with the key-exchange key.
        let encrypted = rc4_once(&r.session_base_key, &[0x55; 16]);
        assert_eq!(encrypted, h("c5dad2544fc9799094ce1ce90bc9d03e"));
    }

    #[test]
    fn the_authenticate_message_matches_the_specification() {
        let challenge = h(concat!(
            "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef",
            "00000000000000002400240044000000060070170000000f5300650072007600",
            "6500720002000c0044006f006d00610069006e0001000c005300650072007600",
            "6500720000000000"
        ));
        let client = Client::new("User", "Domain", Zeroizing::new("Password".into()), "COMPUTER");
        let (message, _) = client
            .authenticate_with(&challenge, [0xaa; 8], [0x55; 16], Some(h("0501280a0000000f").try_into().unwrap()))
            .unwrap();
        let expected = h(concat!(
            "4e544c4d5353500003000000180018006c00000054005400840000000c000c00",
            "480000000800080054000000100010005c00000010001000d8000000358288e2",
            "0501280a0000000f44006f006d00610069006e00550073006500720043004f00",
            "4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa",
            "aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c01010000000000000000000000",
            "000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00",
            "01000c005300650072007600650072000000000000000000c5dad2544fc97990",
            "94ce1ce90bc9d03e"
        ));
        assert_eq!(hex::encode(&message), hex::encode(&expected));
    }

    #[test]
    fn client_and_acceptor_agree_and_refuse_a_wrong_password() {
        let mut client = Client::new("CloudAdmin", "AZS", Zeroizing::new("Cloud-Pass-1".into()), "JUMPHOST");
        let negotiate = client.negotiate();
        let (acceptor, challenge) = Acceptor::challenge(&negotiate, "AZS", "ERCS01").unwrap();
        let (authenticate, mut client_sealer) = client.authenticate(&challenge).unwrap();
        let lookup = |_: &str, user: &str| (user == "CloudAdmin").then(|| Zeroizing::new("Cloud-Pass-1".to_owned()));
        let accepted = acceptor.accept(&authenticate, lookup).unwrap();
        assert_eq!((accepted.domain.as_str(), accepted.user.as_str(), accepted.mic), ("AZS", "CloudAdmin", true));
        let mut server_sealer = accepted.sealer;
        let mut soap = b"<s:Envelope>Set-BmcCredential</s:Envelope>".to_vec();
        let sig = client_sealer.seal(&mut soap);
        assert!(!soap.windows(6).any(|w| w == b"Envelo"), "sealed");
        server_sealer.unseal(&mut soap, &sig).unwrap();
        assert!(soap.starts_with(b"<s:Envelope>"));

        let wrong = Client::new("CloudAdmin", "AZS", Zeroizing::new("Wrong-Pass-1".into()), "JUMPHOST");
        let (bad, _) = wrong.authenticate(&challenge).unwrap();
        assert!(acceptor.accept(&bad, lookup).unwrap_err().0.contains("logon failure for AZS\\CloudAdmin"));
        let mut tampered = authenticate.clone();
        tampered[MIC_OFFSET] ^= 1;
        assert!(acceptor.accept(&tampered, lookup).unwrap_err().0.contains("MIC"));
    }

    #[test]
    fn sealing_matches_the_specification_and_round_trips() {
        let exported = [0x55u8; 16];
        assert_eq!(md5_concat(&exported, C2S_SEAL).to_vec(), h("59f600973cc4960a25480a7c196e4c58"));
        assert_eq!(md5_concat(&exported, C2S_SIGN).to_vec(), h("4788dc861b4782f35d43fd98fe1a2d39"));
        let mut client = Sealer::new(&exported, Side::Client);
        let mut data = utf16le("Plaintext");
        let signature = client.seal(&mut data);
        assert_eq!(data, h("54e50165bf1936dc996020c1811b0f06fb5f"));
        assert_eq!(signature.to_vec(), h("01000000 7fb38ec5c55d4976 00000000"));

        let mut server = Sealer::new(&exported, Side::Server);
        server.unseal(&mut data, &signature).unwrap();
        assert_eq!(data, utf16le("Plaintext"));
        // The reply direction, then tampering and replay.
        let mut reply = b"<s:Envelope/>".to_vec();
        let sig = server.seal(&mut reply);
        let mut tampered = reply.clone();
        tampered[0] ^= 1;
        let mut fresh_client = Sealer::new(&exported, Side::Client);
        assert!(fresh_client.unseal(&mut tampered, &sig).is_err());
        client.unseal(&mut reply, &sig).unwrap();
        assert_eq!(reply, b"<s:Envelope/>");
        let mut again = b"x".to_vec();
        assert!(client.unseal(&mut again, &sig).unwrap_err().0.contains("out of sequence"));
    }

    #[test]
    fn spnego_mic_signs_without_sealing_and_the_reset_restarts_the_stream() {
        let exported = [0x55u8; 16];
        let (mut client, mut server) = (Sealer::new(&exported, Side::Client), Sealer::new(&exported, Side::Server));
        let mech_list = h("300c060a2b06010401823702020a");
        let mic = client.sign(&mech_list);
        assert_eq!((&mic[..4], &mic[12..]), (&[1, 0, 0, 0][..], &[0, 0, 0, 0][..]));
        let mut tampered = mech_list.clone();
        tampered[2] ^= 1;
        let mut other = Sealer::new(&exported, Side::Server);
        assert!(other.verify(&tampered, &mic).is_err(), "a changed mech list is caught");
        server.verify(&mech_list, &mic).unwrap();
        let reply = server.sign(&mech_list);
        client.verify(&mech_list, &reply).unwrap();
        // Both sides reset after the MIC (MS-SPNG 3.3.5.1): sealing goes on with sequence 1 on a
        // fresh RC4 stream.
        client.reset_outgoing();
        client.reset_incoming();
        server.reset_outgoing();
        let mut body = b"<s:Envelope/>".to_vec();
        let signature = client.seal(&mut body);
        assert_eq!(signature[12..], 1u32.to_le_bytes());
        let mut stale = body.clone();
        assert!(server.unseal(&mut stale, &signature).is_err(), "a side that forgets the reset cannot read it");
        let mut server = Sealer::new(&exported, Side::Server);
        server.verify(&mech_list, &mic).unwrap();
        server.reset_incoming();
        server.unseal(&mut body, &signature).unwrap();
        assert_eq!(body, b"<s:Envelope/>");
    }
}
