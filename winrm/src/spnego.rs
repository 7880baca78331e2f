//! SPNEGO (RFC 4178, MS-SPNG) as WinRM's `Authorization: Negotiate` carries it when the client
//! is Windows (`New-PSSession`'s default) or pyspnego: the NTLM messages wrapped in
//! `NegTokenInit`/`NegTokenResp`, and the `mechListMIC` that protects the list of mechanisms.
//! Only what an NTLM acceptor needs: parsing both token kinds and encoding `NegTokenResp`.
//!
//! The DER is read by hand rather than through an ASN.1 crate: four context tags, three
//! universal types (OID, OCTET STRING, ENUMERATED) and strict bounds checks are a few dozen
//! lines, where a general ASN.1 library would be the largest dependency of this crate.

/// `1.3.6.1.4.1.311.2.2.10`, NTLM (the OID's DER content octets).
pub const NTLM_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
/// `1.3.6.1.5.5.2`, SPNEGO itself (the GSS-API framing of the first token).
const SPNEGO_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const SEQUENCE: u8 = 0x30;
const GSS_APPLICATION_0: u8 = 0x60;
const NEG_TOKEN_INIT: u8 = 0xa0;
const NEG_TOKEN_RESP: u8 = 0xa1;

/// A malformed or unsupported SPNEGO token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SPNEGO: {0}")]
pub struct SpnegoError(pub String);

fn err(message: impl Into<String>) -> SpnegoError {
    SpnegoError(message.into())
}

/// `negState` (RFC 4178 4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegState {
    /// The context is established.
    AcceptCompleted,
    /// More tokens follow.
    AcceptIncomplete,
    /// Refused.
    Reject,
    /// The acceptor needs a mechListMIC (its choice was not the initiator's first).
    RequestMic,
}

impl NegState {
    fn code(self) -> u8 {
        match self {
            NegState::AcceptCompleted => 0,
            NegState::AcceptIncomplete => 1,
            NegState::Reject => 2,
            NegState::RequestMic => 3,
        }
    }

    fn from_code(code: u8) -> Result<NegState, SpnegoError> {
        Ok(match code {
            0 => NegState::AcceptCompleted,
            1 => NegState::AcceptIncomplete,
            2 => NegState::Reject,
            3 => NegState::RequestMic,
            other => return Err(err(format!("unknown negState {other}"))),
        })
    }
}

/// The initiator's first token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegTokenInit {
    /// The mechanisms offered, most preferred first (OID content octets).
    pub mech_types: Vec<Vec<u8>>,
    /// The `MechTypeList` exactly as received (its whole DER `SEQUENCE`): what a mechListMIC
    /// signs (RFC 4178 5).
    pub mech_types_der: Vec<u8>,
    /// The optimistic token of the first mechanism.
    pub mech_token: Option<Vec<u8>>,
    /// A mechListMIC (never sent by an NTLM initiator in its first token).
    pub mech_list_mic: Option<Vec<u8>>,
}

/// Every later token, both ways.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NegTokenResp {
    /// The acceptor's verdict (absent in the initiator's tokens).
    pub neg_state: Option<NegState>,
    /// The mechanism the acceptor chose (its first reply only).
    pub supported_mech: Option<Vec<u8>>,
    /// The inner mechanism's token.
    pub response_token: Option<Vec<u8>>,
    /// The signature over the initiator's `MechTypeList`.
    pub mech_list_mic: Option<Vec<u8>>,
}

/// A SPNEGO token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// `NegTokenInit`, in its GSS-API framing.
    Init(NegTokenInit),
    /// `NegTokenResp`.
    Resp(NegTokenResp),
}

/// Reads DER TLVs off a slice, refusing anything that runs past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

/// One TLV: the tag, the content and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn next(&mut self) -> Result<Tlv<'a>, SpnegoError> {
        let data = self.rest;
        let (&tag, after_tag) = data.split_first().ok_or_else(|| err("token truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(err("multi-byte tags do not occur in SPNEGO"));
        }
        let (&first, mut after) = after_tag.split_first().ok_or_else(|| err("token truncated"))?;
        let length = match first {
            0..=0x7f => usize::from(first),
            0x80 => return Err(err("indefinite length is not DER")),
            _ => {
                let octets = usize::from(first & 0x7f);
                if octets > 4 || after.len() < octets {
                    return Err(err("bad length"));
                }
                let (bytes, tail) = after.split_at(octets);
                after = tail;
                bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
            }
        };
        if after.len() < length {
            return Err(err("a field runs past the end of the token"));
        }
        let header = data.len() - after.len();
        let (content, rest) = after.split_at(length);
        self.rest = rest;
        Ok(Tlv { tag, content, whole: &data[..header + length] })
    }

    /// The next TLV, which must carry `tag`.
    fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, SpnegoError> {
        let tlv = self.next()?;
        if tlv.tag != tag {
            return Err(err(format!("{what}: tag {:#04x}, expected {tag:#04x}", tlv.tag)));
        }
        Ok(tlv)
    }
}

/// The single TLV inside a context tag's content, which must carry `tag`.
fn inner<'a>(content: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, SpnegoError> {
    let mut reader = Reader::new(content);
    let tlv = reader.expect(tag, what)?;
    if !reader.is_empty() {
        return Err(err(format!("{what}: trailing bytes")));
    }
    Ok(tlv)
}

/// The fields of a SEQUENCE of context-tagged fields, each tag at most once, in order.
fn fields<'a>(content: &'a [u8], what: &str) -> Result<Vec<Tlv<'a>>, SpnegoError> {
    let mut reader = Reader::new(inner(content, SEQUENCE, what)?.content);
    let mut out: Vec<Tlv<'a>> = Vec::new();
    while !reader.is_empty() {
        let tlv = reader.next()?;
        if tlv.tag & 0xe0 != 0xa0 || out.last().is_some_and(|last| last.tag >= tlv.tag) {
            return Err(err(format!("{what}: field {:#04x} out of order or repeated", tlv.tag)));
        }
        out.push(tlv);
    }
    Ok(out)
}

fn octets(tlv: &Tlv<'_>, what: &str) -> Result<Vec<u8>, SpnegoError> {
    Ok(inner(tlv.content, OCTET_STRING, what)?.content.to_vec())
}

/// Parses a token from `Authorization: Negotiate`.
pub fn parse(token: &[u8]) -> Result<Token, SpnegoError> {
    let mut reader = Reader::new(token);
    let outer = reader.next()?;
    if !reader.is_empty() {
        return Err(err("trailing bytes after the token"));
    }
    match outer.tag {
        GSS_APPLICATION_0 => {
            let mut framing = Reader::new(outer.content);
            if framing.expect(OID, "GSS-API framing")?.content != SPNEGO_OID {
                return Err(err("the GSS-API token is not SPNEGO (raw Kerberos?)"));
            }
            let choice = framing.expect(NEG_TOKEN_INIT, "NegotiationToken")?;
            if !framing.is_empty() {
                return Err(err("trailing bytes after NegTokenInit"));
            }
            parse_init(choice.content).map(Token::Init)
        }
        NEG_TOKEN_RESP => parse_resp(outer.content).map(Token::Resp),
        other => Err(err(format!("not a SPNEGO token (tag {other:#04x})"))),
    }
}

fn parse_init(content: &[u8]) -> Result<NegTokenInit, SpnegoError> {
    let mut init =
        NegTokenInit { mech_types: Vec::new(), mech_types_der: Vec::new(), mech_token: None, mech_list_mic: None };
    for field in fields(content, "NegTokenInit")? {
        match field.tag {
            0xa0 => {
                let list = inner(field.content, SEQUENCE, "mechTypes")?;
                init.mech_types_der = list.whole.to_vec();
                let mut oids = Reader::new(list.content);
                while !oids.is_empty() {
                    init.mech_types.push(oids.expect(OID, "mechTypes")?.content.to_vec());
                }
            }
            // reqFlags: ignored, as Windows does.
            0xa1 => {}
            0xa2 => init.mech_token = Some(octets(&field, "mechToken")?),
            // NegTokenInit's mechListMIC, or NegTokenInit2's negHints (a SEQUENCE) in the same slot.
            0xa3 if field.content.first() == Some(&OCTET_STRING) => {
                init.mech_list_mic = Some(octets(&field, "mechListMIC")?);
            }
            0xa3 => {}
            0xa4 => init.mech_list_mic = Some(octets(&field, "mechListMIC")?),
            other => return Err(err(format!("NegTokenInit: unknown field {other:#04x}"))),
        }
    }
    if init.mech_types.is_empty() {
        return Err(err("NegTokenInit offers no mechanism"));
    }
    Ok(init)
}

fn parse_resp(content: &[u8]) -> Result<NegTokenResp, SpnegoError> {
    let mut resp = NegTokenResp::default();
    for field in fields(content, "NegTokenResp")? {
        match field.tag {
            0xa0 => {
                let state = inner(field.content, ENUMERATED, "negState")?;
                let [code] = state.content else { return Err(err("negState: not one octet")) };
                resp.neg_state = Some(NegState::from_code(*code)?);
            }
            0xa1 => resp.supported_mech = Some(inner(field.content, OID, "supportedMech")?.content.to_vec()),
            0xa2 => resp.response_token = Some(octets(&field, "responseToken")?),
            0xa3 => resp.mech_list_mic = Some(octets(&field, "mechListMIC")?),
            other => return Err(err(format!("NegTokenResp: unknown field {other:#04x}"))),
        }
    }
    Ok(resp)
}

/// One DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    match len {
        0..=0x7f => out.push(len as u8),
        _ => {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(content);
    out
}

impl NegTokenResp {
    /// The DER encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        if let Some(state) = self.neg_state {
            body.extend(tlv(0xa0, &tlv(ENUMERATED, &[state.code()])));
        }
        if let Some(mech) = &self.supported_mech {
            body.extend(tlv(0xa1, &tlv(OID, mech)));
        }
        if let Some(token) = &self.response_token {
            body.extend(tlv(0xa2, &tlv(OCTET_STRING, token)));
        }
        if let Some(mic) = &self.mech_list_mic {
            body.extend(tlv(0xa3, &tlv(OCTET_STRING, mic)));
        }
        tlv(NEG_TOKEN_RESP, &tlv(SEQUENCE, &body))
    }
}

impl NegTokenInit {
    /// The DER encoding in its GSS-API framing, as an initiator sends it. `mech_types_der` is
    /// recomputed from `mech_types`.
    pub fn encode(mech_types: &[&[u8]], mech_token: Option<&[u8]>) -> Vec<u8> {
        let list: Vec<u8> = mech_types.iter().flat_map(|oid| tlv(OID, oid)).collect();
        let mut body = tlv(0xa0, &tlv(SEQUENCE, &list));
        if let Some(token) = mech_token {
            body.extend(tlv(0xa2, &tlv(OCTET_STRING, token)));
        }
        let framing = [tlv(OID, SPNEGO_OID), tlv(NEG_TOKEN_INIT, &tlv(SEQUENCE, &body))].concat();
        tlv(GSS_APPLICATION_0, &framing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// pyspnego 0.12 (`spnego.client(protocol="negotiate")`, NTLM only): its NegTokenInit with
    /// an NTLM NEGOTIATE, byte for byte.
    const PYSPNEGO_INIT: &str = "
        60 48 06 06 2b 06 01 05 05 02 a0 3e 30 3c a0 0e 30 0c 06 0a 2b 06 01 04 01 82 37 02 02 0a
        a2 2a 04 28 4e 54 4c 4d 53 53 50 00 01 00 00 00 37 82 08 e2 00 00 00 00 28 00 00 00 00 00
        00 00 28 00 00 00 00 0c 04 00 00 00 00 0f";

    #[test]
    fn a_pyspnego_neg_token_init_yields_the_ntlm_negotiate() {
        let Token::Init(init) = parse(&h(PYSPNEGO_INIT)).unwrap() else { panic!("not an init") };
        assert_eq!(init.mech_types, [NTLM_OID.to_vec()]);
        assert_eq!(init.mech_types_der, h("30 0c 06 0a 2b 06 01 04 01 82 37 02 02 0a"));
        let token = init.mech_token.unwrap();
        assert!(token.starts_with(b"NTLMSSP\0\x01\0\0\0") && token.len() == 40, "{token:02x?}");
        assert_eq!(init.mech_list_mic, None);
        // The encoder produces the same bytes.
        assert_eq!(NegTokenInit::encode(&[NTLM_OID], Some(&token)), h(PYSPNEGO_INIT));
    }

    #[test]
    fn neg_token_resp_round_trips_with_long_lengths() {
        let resp = NegTokenResp {
            neg_state: Some(NegState::AcceptIncomplete),
            supported_mech: Some(NTLM_OID.to_vec()),
            response_token: Some(vec![0x4e; 300]),
            mech_list_mic: Some(vec![1; 16]),
        };
        let der = resp.encode();
        assert_eq!(&der[..4], &[0xa1, 0x82, 0x01, 0x5f], "two-octet length");
        assert_eq!(parse(&der).unwrap(), Token::Resp(resp));
        // The shape pyspnego sends with the AUTHENTICATE: no negState, token and MIC only.
        let client = h("a1 1c 30 1a a2 06 04 04 4e 54 4c 4d a3 10 04 0e 01 00 00 00 aa aa aa aa aa aa aa aa 00 00");
        let Token::Resp(resp) = parse(&client).unwrap() else { panic!("not a resp") };
        assert_eq!((resp.neg_state, resp.response_token.as_deref()), (None, Some(&b"NTLM"[..])));
        assert_eq!(resp.mech_list_mic.unwrap().len(), 14);
    }

    #[test]
    fn malformed_tokens_are_refused_not_misread() {
        let good = h(PYSPNEGO_INIT);
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(parse(&extra).is_err(), "trailing byte");
        let mut kerberos = good.clone();
        kerberos[9] = 0x03; // 1.3.6.1.5.5.3: not SPNEGO
        assert!(parse(&kerberos).unwrap_err().0.contains("not SPNEGO"));
        for bad in [
            h("a1 80 30 00"),                                     // indefinite length
            h("a1 85 00 00 00 00 01 30"),                         // five length octets
            h("a1 04 30 02 a0 00"),                               // empty negState
            h("a1 07 30 05 a0 03 0a 01 07"),                      // unknown negState
            h("a1 0a 30 08 a2 02 04 00 a0 02 0a 00"),             // fields out of order
            h("60 0a 06 06 2b 06 01 05 05 02 a0 00"),             // no NegTokenInit body
            h("60 0e 06 06 2b 06 01 05 05 02 a0 04 30 02 a0 00"), // mechTypes not a SEQUENCE
            h("04 02 4e 54"),                                     // not SPNEGO at all
        ] {
            assert!(parse(&bad).is_err(), "{bad:02x?}");
        }
        let empty_list = h("60 10 06 06 2b 06 01 05 05 02 a0 06 30 04 a0 02 30 00");
        assert!(parse(&empty_list).unwrap_err().0.contains("no mechanism"));
    }
}
