//! Messages (MS-PSRP 2.2.1): destination, type, runspace-pool and pipeline ids, CLIXML data.
//! Little-endian, GUIDs in Microsoft byte order.

use super::PsrpError;
use std::fmt;

/// Who a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The client.
    Client = 1,
    /// The server.
    Server = 2,
}

/// A message type (MS-PSRP 2.2.1); unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageType(pub u32);

impl MessageType {
    /// Capability negotiation.
    pub const SESSION_CAPABILITY: MessageType = MessageType(0x0001_0002);
    /// Opens the runspace pool.
    pub const INIT_RUNSPACEPOOL: MessageType = MessageType(0x0001_0004);
    /// The client's RSA public key.
    pub const PUBLIC_KEY: MessageType = MessageType(0x0001_0005);
    /// The session key, encrypted to the client's public key.
    pub const ENCRYPTED_SESSION_KEY: MessageType = MessageType(0x0001_0006);
    /// A server asking for the client's public key (PowerShell v2 servers).
    pub const PUBLIC_KEY_REQUEST: MessageType = MessageType(0x0001_0007);
    /// Runspace pool state.
    pub const RUNSPACEPOOL_STATE: MessageType = MessageType(0x0002_1005);
    /// Runs a pipeline.
    pub const CREATE_PIPELINE: MessageType = MessageType(0x0002_1006);
    /// Server information (ignored).
    pub const APPLICATION_PRIVATE_DATA: MessageType = MessageType(0x0002_1009);
    /// A host call on the pool (a prompt: never expected with a null host).
    pub const RUNSPACEPOOL_HOST_CALL: MessageType = MessageType(0x0002_1100);
    /// An output object.
    pub const PIPELINE_OUTPUT: MessageType = MessageType(0x0004_1004);
    /// An error record.
    pub const ERROR_RECORD: MessageType = MessageType(0x0004_1005);
    /// Pipeline state.
    pub const PIPELINE_STATE: MessageType = MessageType(0x0004_1006);
    /// Debug stream.
    pub const DEBUG_RECORD: MessageType = MessageType(0x0004_1007);
    /// Verbose stream.
    pub const VERBOSE_RECORD: MessageType = MessageType(0x0004_1008);
    /// Warning stream.
    pub const WARNING_RECORD: MessageType = MessageType(0x0004_1009);
    /// Progress stream.
    pub const PROGRESS_RECORD: MessageType = MessageType(0x0004_1010);
    /// Information stream.
    pub const INFORMATION_RECORD: MessageType = MessageType(0x0004_1011);
    /// A host call in a pipeline (never expected with a null host).
    pub const PIPELINE_HOST_CALL: MessageType = MessageType(0x0004_1100);
}

/// A GUID, held in RFC 4122 (display) byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID (pool-level messages carry it as the pipeline id).
    pub const NIL: Guid = Guid([0; 16]);

    /// A random (version 4) GUID from the operating system's generator.
    pub fn random() -> Guid {
        let mut b = [0u8; 16];
        rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut b);
        Guid::from_random_bytes(b)
    }

    /// A version 4 GUID from 16 random bytes (the version and variant bits are overwritten).
    pub fn from_random_bytes(mut b: [u8; 16]) -> Guid {
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }

    /// Parses the display form (`8-4-4-4-12` hex digits, either case, optional braces).
    pub fn parse(text: &str) -> Option<Guid> {
        let hex: String = text.trim().trim_start_matches('{').trim_end_matches('}').split('-').collect();
        let bytes = hex::decode(hex).ok()?;
        Some(Guid(bytes.try_into().ok()?))
    }

    /// Microsoft byte order: the first three fields little-endian.
    pub fn to_bytes_le(self) -> [u8; 16] {
        let mut b = self.0;
        b[0..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
        b
    }

    /// From Microsoft byte order.
    pub fn from_bytes_le(mut b: [u8; 16]) -> Guid {
        b[0..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
        Guid(b)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}

/// One PSRP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Recipient.
    pub destination: Destination,
    /// Type.
    pub kind: MessageType,
    /// Runspace pool id.
    pub rpid: Guid,
    /// Pipeline id ([`Guid::NIL`] for pool messages).
    pub pid: Guid,
    /// CLIXML (UTF-8).
    pub data: Vec<u8>,
}

const HEADER_LEN: usize = 40;
const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

impl Message {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.data.len());
        out.extend_from_slice(&(self.destination as u32).to_le_bytes());
        out.extend_from_slice(&self.kind.0.to_le_bytes());
        out.extend_from_slice(&self.rpid.to_bytes_le());
        out.extend_from_slice(&self.pid.to_bytes_le());
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses the wire form; a UTF-8 byte-order mark before the data is dropped.
    pub fn decode(bytes: &[u8]) -> Result<Message, PsrpError> {
        if bytes.len() < HEADER_LEN {
            return Err(PsrpError::new(format!("message of {} bytes is shorter than its header", bytes.len())));
        }
        let destination = match u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) {
            1 => Destination::Client,
            2 => Destination::Server,
            other => return Err(PsrpError::new(format!("unknown destination {other}"))),
        };
        let kind = MessageType(u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")));
        let rpid = Guid::from_bytes_le(bytes[8..24].try_into().expect("16 bytes"));
        let pid = Guid::from_bytes_le(bytes[24..40].try_into().expect("16 bytes"));
        let data = bytes[40..].strip_prefix(BOM).unwrap_or(&bytes[40..]).to_vec();
        Ok(Message { destination, kind, rpid, pid, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_little_endian_with_microsoft_guids() {
        let rpid =
            Guid([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        assert_eq!(rpid.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        let m = Message {
            destination: Destination::Server,
            kind: MessageType::SESSION_CAPABILITY,
            rpid,
            pid: Guid::NIL,
            data: b"<Obj/>".to_vec(),
        };
        let wire = m.encode();
        assert_eq!(&wire[0..8], &[2, 0, 0, 0, 0x02, 0x00, 0x01, 0x00]);
        assert_eq!(
            &wire[8..24],
            &[0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        );
        assert_eq!(Message::decode(&wire).unwrap(), m);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_junk_refused() {
        let mut wire = Message {
            destination: Destination::Client,
            kind: MessageType(7),
            rpid: Guid::random(),
            pid: Guid::NIL,
            data: vec![],
        }
        .encode();
        wire.extend_from_slice(&[0xEF, 0xBB, 0xBF, b'<']);
        assert_eq!(Message::decode(&wire).unwrap().data, b"<");
        assert!(Message::decode(&wire[..30]).is_err());
        wire[0] = 9;
        assert!(Message::decode(&wire).unwrap_err().0.contains("destination 9"));
        let g = Guid::random();
        assert_eq!(g.0[6] >> 4, 4);
        assert_eq!(Guid::from_bytes_le(g.to_bytes_le()), g);
    }
}
