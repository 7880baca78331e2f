//! WinRM message encryption (MS-WSMV 2.2.9.1): a SOAP body sealed with the NTLM session and
//! framed as `multipart/encrypted`. Only this framing ever crosses the network in HTTP mode:
//! SOAP bodies (which carry SecureStrings) are never sent or logged in clear.

use super::ntlm::{NtlmError, Sealer};

/// The HTTP `Content-Type` of a sealed request or response.
pub const CONTENT_TYPE: &str =
    r#"multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary""#;
const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
const SIGNATURE_LEN: usize = 16;

/// Seals a SOAP envelope into a `multipart/encrypted` body.
pub fn seal(sealer: &mut Sealer, soap: &[u8]) -> Vec<u8> {
    let mut sealed = soap.to_vec();
    let signature = sealer.seal(&mut sealed);
    let mut body = Vec::with_capacity(sealed.len() + 256);
    body.extend_from_slice(b"--Encrypted Boundary\r\n");
    body.extend_from_slice(format!("\tContent-Type: {PROTOCOL}\r\n").as_bytes());
    body.extend_from_slice(
        format!("\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n", soap.len()).as_bytes(),
    );
    body.extend_from_slice(b"--Encrypted Boundary\r\n");
    body.extend_from_slice(b"\tContent-Type: application/octet-stream\r\n");
    body.extend_from_slice(&(SIGNATURE_LEN as u32).to_le_bytes());
    body.extend_from_slice(&signature);
    body.extend_from_slice(&sealed);
    body.extend_from_slice(b"--Encrypted Boundary--\r\n");
    body
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// Opens a `multipart/encrypted` body. Lenient in what it accepts (a missing TAB, `-- Encrypted
/// Boundary`), strict in what it checks: the signature and the announced length.
pub fn unseal(sealer: &mut Sealer, body: &[u8]) -> Result<Vec<u8>, NtlmError> {
    let bad = |why: &str| NtlmError(format!("sealed WinRM message: {why}"));
    let length_at = find(body, b"Length=", 0).ok_or_else(|| bad("no OriginalContent length"))? + 7;
    let length_end = find(body, b"\r\n", length_at).ok_or_else(|| bad("unterminated OriginalContent"))?;
    let length: usize = std::str::from_utf8(&body[length_at..length_end])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad("OriginalContent length is not a number"))?;
    let marker = b"application/octet-stream";
    let data_at = find(body, marker, length_end).ok_or_else(|| bad("no octet-stream part"))? + marker.len();
    let data_at = find(body, b"\r\n", data_at).ok_or_else(|| bad("unterminated octet-stream header"))? + 2;
    let sig_len = body
        .get(data_at..data_at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("truncated"))?;
    if sig_len != SIGNATURE_LEN {
        return Err(bad(&format!("signature length {sig_len}, expected {SIGNATURE_LEN}")));
    }
    let signature = body.get(data_at + 4..data_at + 20).ok_or_else(|| bad("truncated signature"))?;
    // The sealed bytes run to the closing boundary (searched from the end: they are binary).
    let tail = [&b"--Encrypted Boundary--"[..], b"-- Encrypted Boundary--"]
        .iter()
        .filter_map(|marker| body.windows(marker.len()).rposition(|w| w == *marker))
        .max()
        .ok_or_else(|| bad("no closing boundary"))?;
    let sealed = body.get(data_at + 20..tail).ok_or_else(|| bad("truncated"))?;
    if sealed.len() != length {
        return Err(bad(&format!("{} sealed bytes, but the announced length is {length}", sealed.len())));
    }
    let mut plain = sealed.to_vec();
    sealer.unseal(&mut plain, signature)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlm::Side;

    #[test]
    fn a_sealed_envelope_round_trips_and_hides_the_soap() {
        let key = [0x42u8; 16];
        let (mut client, mut server) = (Sealer::new(&key, Side::Client), Sealer::new(&key, Side::Server));
        let soap =
            br#"<s:Envelope><s:Body><rsp:Send><rsp:Stream>c2VjcmV0</rsp:Stream></rsp:Send></s:Body></s:Envelope>"#;
        let body = seal(&mut client, soap);
        assert!(
            body.starts_with(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n")
        );
        assert!(body.ends_with(b"--Encrypted Boundary--\r\n"));
        assert!(find(&body, b"Envelope", 0).is_none() && find(&body, b"c2VjcmV0", 0).is_none());
        assert!(find(&body, format!("Length={}\r\n", soap.len()).as_bytes(), 0).is_some());
        assert_eq!(unseal(&mut server, &body).unwrap(), soap);
    }

    #[test]
    fn lenient_framing_strict_checks() {
        let key = [7u8; 16];
        let (mut client, mut server) = (Sealer::new(&key, Side::Client), Sealer::new(&key, Side::Server));
        let body = seal(&mut client, b"<x/>");
        // Without the TAB before the octet-stream header, as some servers write it.
        let mut rebuilt = body.clone();
        let at = find(&rebuilt, b"\tContent-Type: application/octet", 0).unwrap();
        rebuilt.remove(at);
        assert_eq!(unseal(&mut server, &rebuilt).unwrap(), b"<x/>");
        let mut client2 = Sealer::new(&key, Side::Client);
        let mut other = seal(&mut client2, b"<y/>");
        let at = find(&other, b"Length=4", 0).unwrap();
        other[at + 7] = b'9';
        let mut server2 = Sealer::new(&key, Side::Server);
        assert!(unseal(&mut server2, &other).unwrap_err().0.contains("announced length"));
    }
}
