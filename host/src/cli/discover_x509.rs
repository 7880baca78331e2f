//! Just enough X.509 to show the operator what a BMC's certificate claims — subject, issuer,
//! validity — so a pin learnt by `discover` can be checked out of band. A hand-written DER walk
//! of five fields instead of a parser crate: the production build would otherwise gain about ten
//! crates (x509-parser, nom, asn1-rs, time…) for three strings. Nothing here is trusted: the
//! certificate is whatever the network sent, so every string is escaped before it is shown.

use crate::runtime::contract::untrusted;
use serde::Serialize;

/// What a certificate claims, as text for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// The subject's distinguished name, e.g. `CN=idrac-01, O=Dell Inc.`.
    pub subject: String,
    /// The issuer's distinguished name (the subject again when self-signed).
    pub issuer: String,
    /// Start of validity, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// End of validity in seconds since the Unix epoch, to tell an expired certificate.
    #[serde(skip)]
    pub not_after_unix: i64,
}

/// Longest distinguished name shown; BMC certificates hold a handful of attributes.
const MAX_NAME: usize = 256;

/// Reads subject, issuer and validity from a DER certificate.
pub fn summarise(der: &[u8]) -> Result<CertSummary, String> {
    let (certificate, _) = expect(der, SEQUENCE, "certificate")?;
    let (tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // the explicit version
    }
    let (_serial, rest) = expect(rest, INTEGER, "serialNumber")?;
    let (_algorithm, rest) = expect(rest, SEQUENCE, "signature")?;
    let (issuer, rest) = expect(rest, SEQUENCE, "issuer")?;
    let (validity, rest) = expect(rest, SEQUENCE, "validity")?;
    let (subject, _) = expect(rest, SEQUENCE, "subject")?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    Ok(CertSummary {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_before: not_before.text(),
        not_after: not_after.text(),
        not_after_unix: not_after.unix(),
    })
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// One tag-length-value: the tag, its contents and what follows it.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let truncated = || "the certificate is truncated".to_owned();
    let (&tag, input) = input.split_first().ok_or_else(truncated)?;
    let (&first, mut input) = input.split_first().ok_or_else(truncated)?;
    let len = match first {
        0..=0x7f => first as usize,
        0x81..=0x84 => {
            let n = (first & 0x7f) as usize;
            let bytes = input.get(..n).ok_or_else(truncated)?;
            input = &input[n..];
            bytes.iter().fold(0usize, |len, b| (len << 8) | *b as usize)
        }
        _ => return Err(format!("unsupported DER length byte {first:#04x}")),
    };
    let contents = input.get(..len).ok_or_else(truncated)?;
    Ok((tag, contents, &input[len..]))
}

/// The contents of an element that must have `tag`, and what follows it.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    match tlv(input)? {
        (t, contents, rest) if t == tag => Ok((contents, rest)),
        (t, ..) => Err(format!("not an X.509 certificate: {what} has tag {t:#04x}, expected {tag:#04x}")),
    }
}

/// A distinguished name as `KEY=value, KEY=value`, in the certificate's order.
fn name(mut rdns: &[u8]) -> Result<String, String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET, "a name's attribute set")?;
        rdns = rest;
        while !set.is_empty() {
            let (attribute, rest) = expect(set, SEQUENCE, "a name attribute")?;
            set = rest;
            let (oid, value) = expect(attribute, OID, "an attribute type")?;
            let (tag, value, _) = tlv(value)?;
            parts.push(format!("{}={}", attribute_name(oid), string(tag, value)));
        }
    }
    Ok(untrusted(&parts.join(", "), MAX_NAME))
}

/// The usual short name of an attribute type, else its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    let dotted = dotted(oid);
    let short = match dotted.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return dotted,
    };
    short.to_owned()
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value = 0u64;
    for &b in oid {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.extend([first, value - first * 40]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// An attribute value as text: the string types certificates use, else hex.
fn string(tag: u8, value: &[u8]) -> String {
    match tag {
        // UTF8String, PrintableString, IA5String, VisibleString
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8_lossy(value).into_owned(),
        // TeletexString: in practice Latin-1
        0x14 => value.iter().map(|&b| b as char).collect(),
        // BMPString: UTF-16BE
        0x1e => char::decode_utf16(value.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
        _ => format!("#{}", hex::encode(value)),
    }
}

/// A calendar time in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Time {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Time {
    fn text(&self) -> String {
        let Time { year, month, day, hour, minute, second } = *self;
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
    }

    /// Seconds since 1970-01-01 (Howard Hinnant's days-from-civil).
    fn unix(&self) -> i64 {
        let y = if self.month <= 2 { self.year - 1 } else { self.year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + (self.hour * 3600 + self.minute * 60 + self.second) as i64
    }
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), and
/// what follows it.
fn time(input: &[u8]) -> Result<(Time, &[u8]), String> {
    let (tag, value, rest) = tlv(input)?;
    let text = std::str::from_utf8(value).map_err(|_| "a validity time is not text".to_owned())?;
    let digits = text.strip_suffix('Z').filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let bad = || format!("unsupported validity time `{}`", untrusted(text, 32));
    let digits = digits.ok_or_else(bad)?;
    let (year, rest_digits) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| bad())?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| bad())?, &digits[4..]),
        _ => return Err(bad()),
    };
    let field = |i: usize| rest_digits[i..i + 2].parse::<u32>().map_err(|_| bad());
    let time = Time { year, month: field(0)?, day: field(2)?, hour: field(4)?, minute: field(6)?, second: field(8)? };
    if !(1..=12).contains(&time.month) || !(1..=31).contains(&time.day) || time.hour > 23 {
        return Err(bad());
    }
    Ok((time, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_issuer_and_validity_are_read() {
        let mut params = rcgen::CertificateParams::new(vec!["bmc01.lab".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "US");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Dell Inc.");
        params.distinguished_name.push(rcgen::DnType::CommonName, "idrac-SVCTAG1");
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 3, 1); // past 2049: a GeneralizedTime
        let summary = summarise(&certificate(params)).unwrap();
        assert_eq!(summary.subject, "C=US, O=Dell Inc., CN=idrac-SVCTAG1");
        assert_eq!(summary.issuer, summary.subject, "self-signed");
        assert_eq!(summary.not_before, "2024-02-29 00:00:00 UTC");
        assert_eq!(summary.not_after, "2051-03-01 00:00:00 UTC");
        assert_eq!(summary.not_after_unix, 2_561_241_600);
    }

    #[test]
    fn names_cannot_forge_a_line_of_the_inventory() {
        let mut params = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "bmc\n[[bmc]]\nname = \"evil\"");
        let summary = summarise(&certificate(params)).unwrap();
        assert!(!summary.subject.contains('\n'), "{}", summary.subject);
        assert!(summary.subject.starts_with("CN=bmc\\u{a}[[bmc]]"), "{}", summary.subject);
    }

    #[test]
    fn junk_and_truncation_are_errors_not_panics() {
        let der = certificate(rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap());
        for cut in [0, 1, 5, 40, der.len() / 2] {
            assert!(summarise(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(summarise(b"\x04\x03abc").unwrap_err().contains("not an X.509 certificate"));
        assert!(summarise(&[0x30, 0x85, 1, 1, 1, 1, 1]).unwrap_err().contains("length"));
    }

    #[test]
    fn object_identifiers_are_dotted() {
        assert_eq!(dotted(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]), "1.2.840.113549.1.9.1");
        assert_eq!(attribute_name(&[0x55, 0x04, 0x2a]), "2.5.4.42");
    }
}
