//! Fail-closed detection of a job's secrets in what a BMC sends back.
//!
//! The BMC is honest but the plugin may be hostile: a plugin cannot read the secrets the host
//! splices into its requests, but it can aim them at a field the BMC echoes (a Redfish error
//! quoting the rejected value, a description it stores and returns, a debug page reflecting
//! headers) and read the answer. [`super::redact`] scrubs log lines; this module decides whether a
//! response may reach the plugin at all. If any secret shows up in any form the host recognises,
//! the host ends the plugin call instead of handing over a body it could only hope to clean.
//!
//! Rather than enumerate every encoding of every secret (percent-encoding alone has 2^n partial
//! forms), the detector searches a few *decoded views* of the data — JSON-unescaped,
//! percent-decoded, HTML-entity-decoded, and each of those layered once — for a small set of
//! needles: the raw secret, its JSON escapes, and the stable middle of its Base64 at every byte
//! alignment. Every view is at most as long as the data, is built in one pass, and is searched
//! by an Aho-Corasick automaton in linear time, so the work is the data's size times the number
//! of views whatever the needles.
//!
//! Not recognised: encodings layered more than once beyond the JSON cases (e.g. percent inside
//! HTML inside JSON inside percent), Base64 of an already encoded or case-changed secret, Base64
//! wrapped across lines, Unicode (non-ASCII) case folding, legacy charsets (`%FC` for `ü`),
//! named HTML references outside the decoder's table (ASCII punctuation, common Latin-1), and
//! ambiguous partial encodings that leave a literal `%` (or a literal `+` where `+` means space)
//! next to encoded characters.

use super::automata::{self, Style};
use super::redact::MIN_SCRUB_LEN;
use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;
use zeroize::Zeroizing;

/// Secrets of at least this many characters are also looked for case-folded (ASCII).
///
/// Shorter ones are not: an operator password such as `admin` would otherwise match
/// `Administrator` in every account listing and fail every job closed. Eight characters of a
/// secret, case-insensitively, do not turn up in a BMC's own vocabulary by chance.
pub const MIN_FOLD_LEN: usize = 8;

/// How many levels of JSON quoting get byte-level needles (the JSON views add more).
const MAX_ESCAPE_DEPTH: usize = 3;

/// How deep strings that are themselves JSON are parsed and walked.
const MAX_JSON_DEPTH: usize = 8;

/// Base64 alignments whose stable part is shorter than this are not searched: six characters
/// (36 bits) keep chance matches in long Base64 streams (certificates, firmware blobs) negligible.
const MIN_BASE64_STABLE: usize = 6;

/// One string to look for.
struct Needle {
    bytes: Zeroizing<Vec<u8>>,
    /// Also looked for ASCII-case-insensitively.
    fold: bool,
}

/// Detects a job's secrets in BMC responses, in every form listed on [`EchoDetector::add_secret`].
///
/// `found_in` is linear in the data's length: at most a fixed number of decoded views (each no
/// longer than the data, built only when the data holds the character its decoding starts at),
/// each searched by two Aho-Corasick automata (exact and case-folded).
#[derive(Default)]
pub struct EchoDetector {
    needles: Vec<Needle>,
    /// Needles looked for byte for byte.
    exact: Option<AhoCorasick>,
    /// Needles looked for ASCII-case-insensitively (secrets of [`MIN_FOLD_LEN`] or more).
    folded: Option<AhoCorasick>,
    /// An automaton could not be built: fail closed, every response counts as an echo.
    broken: bool,
    /// A session token is among the needles: the automata are this job's alone (see
    /// [`automata`]).
    private: bool,
    /// How many times the automata were built (a repeated form must build none).
    #[cfg(test)]
    builds: usize,
}

impl EchoDetector {
    /// A detector with no secrets: finds nothing.
    pub fn new() -> Self {
        EchoDetector::default()
    }

    /// A secret (password or session token) in every form below.
    ///
    /// Searched for raw; JSON-escaped one to three times at the byte level (and, through the
    /// decoded views, inside JSON strings at any depth up to eight); percent-encoded (either hex
    /// case, `+` as space, partially); HTML-entity-encoded (named, decimal, hex); those layered
    /// once; as standard or URL-safe Base64 at any alignment in a longer stream; and, for
    /// secrets of [`MIN_FOLD_LEN`] characters or more, ASCII-case-folded. Secrets shorter than
    /// [`MIN_SCRUB_LEN`] bytes are ignored.
    pub fn add_secret(&mut self, secret: &SecretString) {
        self.add_secrets([secret]);
    }

    /// [`EchoDetector::add_secret`] for several secrets, the automata built once for all of them.
    pub fn add_secrets<'a>(&mut self, secrets: impl IntoIterator<Item = &'a SecretString>) {
        let mut changed = false;
        for secret in secrets {
            let text = secret.expose_secret();
            if text.len() >= MIN_SCRUB_LEN {
                changed |= self.add_all_forms(text.as_bytes(), text.chars().count() >= MIN_FOLD_LEN);
            }
        }
        if changed {
            self.rebuild();
        }
    }

    /// A secret new to this job (a session token the BMC just issued): added like
    /// [`EchoDetector::add_secret`], but the automata holding it are never shared with another job.
    pub fn add_session_token(&mut self, token: &SecretString) {
        self.private = true;
        self.add_secret(token);
    }

    /// An exact byte string the host itself built (e.g. the Base64 of `user:password` it sent as
    /// Basic); also checked in every form below where it makes sense.
    ///
    /// The same forms as [`EchoDetector::add_secret`]: a raw `user:password` given here is also
    /// found Base64-encoded, and a Base64 credential given here is also found percent-encoded.
    /// Case-folding applies from [`MIN_FOLD_LEN`] bytes.
    pub fn add_form(&mut self, form: &[u8]) {
        if form.len() < MIN_SCRUB_LEN {
            return;
        }
        if self.add_all_forms(form, form.len() >= MIN_FOLD_LEN) {
            self.rebuild();
        }
    }

    /// Bytes held for needles (charged to the job's memory budget by the caller).
    ///
    /// The needles themselves plus the automata built from them (which hold their transitions).
    pub fn held_bytes(&self) -> usize {
        self.needles.iter().map(|n| n.bytes.len()).sum::<usize>()
            + self.exact.as_ref().map_or(0, |m| m.memory_usage())
            + self.folded.as_ref().map_or(0, |m| m.memory_usage())
    }

    /// Whether `data` (a response body or a header value) contains any secret in any recognised
    /// form.
    ///
    /// Holds at most three decoded views at a time, each no longer than `data` and zeroized when
    /// dropped (a view may hold a decoded secret). Fails closed: if the automata could not be
    /// built, every response counts as an echo.
    pub fn found_in(&self, data: &[u8]) -> bool {
        if self.broken {
            return true;
        }
        if self.exact.is_none() && self.folded.is_none() {
            return false;
        }
        self.in_views(data) || self.in_json(data, 1)
    }

    /// Needles for one secret or form: raw, JSON-escaped, Base64 at every alignment. Whether
    /// any needle is new (or newly case-folded): a form seen before (the same Basic credential
    /// on every request of a job) leaves the automata as they are, so they are not rebuilt.
    fn add_all_forms(&mut self, raw: &[u8], fold: bool) -> bool {
        let mut changed = self.push(raw, fold);
        let mut form = Zeroizing::new(raw.to_vec());
        for _ in 0..MAX_ESCAPE_DEPTH {
            form = json_escape(&form);
            changed |= self.push(&form, fold);
        }
        for needle in base64_forms(raw) {
            changed |= self.push(&needle, fold);
        }
        changed
    }

    /// Adds a needle; whether the set of needles changed.
    fn push(&mut self, bytes: &[u8], fold: bool) -> bool {
        match self.needles.iter_mut().find(|n| n.bytes.as_slice() == bytes) {
            Some(existing) => {
                let newly_folded = fold && !existing.fold;
                existing.fold |= fold;
                newly_folded
            }
            None => {
                self.needles.push(Needle { bytes: Zeroizing::new(bytes.to_vec()), fold });
                true
            }
        }
    }

    /// Rebuilds both automata, or finds them built for another job with the same needles.
    fn rebuild(&mut self) {
        #[cfg(test)]
        {
            self.builds += 1;
        }
        let build = |fold: bool| -> Result<Option<AhoCorasick>, aho_corasick::BuildError> {
            let needles: Vec<&[u8]> =
                self.needles.iter().filter(|n| n.fold == fold).map(|n| n.bytes.as_slice()).collect();
            if needles.is_empty() {
                return Ok(None);
            }
            let style = if fold { Style::DetectFolded } else { Style::Detect };
            automata::build(style, &needles, !self.private).map(Some)
        };
        match (build(false), build(true)) {
            (Ok(exact), Ok(folded)) => {
                self.exact = exact;
                self.folded = folded;
            }
            // Too large for the automaton's state ids: never let a response through unchecked.
            _ => self.broken = true,
        }
    }

    /// Whether one view holds a needle.
    fn hit(&self, view: &[u8]) -> bool {
        self.exact.as_ref().is_some_and(|m| m.is_match(view)) || self.folded.as_ref().is_some_and(|m| m.is_match(view))
    }

    /// The raw data and its decoded views: each decoding once, each pair of decodings (in either
    /// order, the same one twice included), and JSON unescaped three times.
    fn in_views(&self, data: &[u8]) -> bool {
        if self.hit(data) {
            return true;
        }
        for first in Decoding::ALL {
            let Some(once) = first.decode(data) else { continue };
            if self.hit(&once) {
                return true;
            }
            for second in Decoding::ALL {
                let Some(twice) = second.decode(&once) else { continue };
                if self.hit(&twice) {
                    return true;
                }
                if first == Decoding::Json
                    && second == Decoding::Json
                    && let Some(thrice) = Decoding::Json.decode(&twice)
                    && self.hit(&thrice)
                {
                    return true;
                }
            }
        }
        false
    }

    /// If `data` is JSON (or a prefix of JSON), every string and key in it, decoded, searched in
    /// all views, and strings that are JSON themselves walked in turn, `depth` levels deep at most.
    ///
    /// Streams through the document instead of building a tree: memory is one string at a time.
    fn in_json(&self, data: &[u8], depth: usize) -> bool {
        if depth > MAX_JSON_DEPTH || !looks_like_json(data) {
            return false;
        }
        let found = Cell::new(false);
        let mut de = serde_json::Deserializer::from_slice(data);
        // A syntax error ends the walk, but what was found before it still counts.
        let _ = Walk { detector: self, depth, found: &found }.deserialize(&mut de);
        found.get()
    }
}

/// Whether `data` may be a JSON document worth walking (an object, an array or a string).
fn looks_like_json(data: &[u8]) -> bool {
    matches!(data.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'[' | b'"'))
}

/// A serde visitor that checks every string and key of a JSON document as it streams past.
struct Walk<'a> {
    detector: &'a EchoDetector,
    depth: usize,
    found: &'a Cell<bool>,
}

impl Walk<'_> {
    fn again(&self) -> Self {
        Walk { detector: self.detector, depth: self.depth, found: self.found }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        // Once found, the rest of the document is only parsed (serde_json wants it consumed).
        if !self.found.get()
            && (self.detector.in_views(s.as_bytes()) || self.detector.in_json(s.as_bytes(), self.depth + 1))
        {
            self.found.set(true);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.again())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(self.again())?.is_some() {
            map.next_value_seed(self.again())?;
        }
        Ok(())
    }
}

/// A decoding applied to the whole data to build a view.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Decoding {
    /// JSON string escapes (`\"`, `\\`, `\/`, `\n`…, `\uXXXX` with surrogate pairs).
    Json,
    /// `%XX`, either hex case; `+` stays `+` (RFC 3986 paths).
    Percent,
    /// `%XX` and `+` as space (forms and query strings).
    PercentPlus,
    /// HTML character references: named, `&#NN;`, `&#xHH;`.
    Html,
}

impl Decoding {
    const ALL: [Decoding; 4] = [Decoding::Json, Decoding::Percent, Decoding::PercentPlus, Decoding::Html];

    /// The decoded view, or `None` when the decoding changes nothing (then the view is the input,
    /// already searched). Never longer than `data`: every escape decodes to fewer bytes than it
    /// takes, so the buffer is never reallocated (no unzeroed copies left behind).
    fn decode(self, data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let trigger = match self {
            Decoding::Json => data.contains(&b'\\'),
            Decoding::Percent => data.contains(&b'%'),
            Decoding::PercentPlus => data.contains(&b'%') || data.contains(&b'+'),
            Decoding::Html => data.contains(&b'&'),
        };
        if !trigger {
            return None;
        }
        let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
        let changed = match self {
            Decoding::Json => json_unescape(data, &mut out),
            Decoding::Percent => percent_decode(data, false, &mut out),
            Decoding::PercentPlus => percent_decode(data, true, &mut out),
            Decoding::Html => html_decode(data, &mut out),
        };
        debug_assert!(out.len() <= data.len());
        changed.then_some(out)
    }
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// Four hex digits at `at`.
fn hex4(data: &[u8], at: usize) -> Option<u32> {
    let digits = data.get(at..at + 4)?;
    digits.iter().try_fold(0, |acc, &b| Some(acc * 16 + hex_value(b)?))
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Undoes one level of JSON string escaping wherever it appears; returns whether anything changed.
fn json_unescape(data: &[u8], out: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\\' && i + 1 < data.len() {
            let simple = match data[i + 1] {
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'/' => Some(b'/'),
                b'b' => Some(8),
                b'f' => Some(12),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
                i += 2;
                changed = true;
                continue;
            }
            if data[i + 1] == b'u'
                && let Some(high) = hex4(data, i + 2)
            {
                // A surrogate pair is one character in twelve bytes.
                if (0xD800..0xDC00).contains(&high)
                    && data.get(i + 6..i + 8) == Some(b"\\u")
                    && let Some(low) = hex4(data, i + 8)
                    && (0xDC00..0xE000).contains(&low)
                    && let Some(c) = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                {
                    push_char(out, c);
                    i += 12;
                    changed = true;
                    continue;
                }
                if let Some(c) = char::from_u32(high) {
                    push_char(out, c);
                    i += 6;
                    changed = true;
                    continue;
                }
            }
        }
        out.push(data[i]);
        i += 1;
    }
    changed
}

/// Decodes `%XX` (either case) and, with `plus`, `+` as a space; returns whether anything changed.
fn percent_decode(data: &[u8], plus: bool, out: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'%' if i + 2 < data.len() => match (hex_value(data[i + 1]), hex_value(data[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    changed = true;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus => {
                out.push(b' ');
                i += 1;
                changed = true;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed
}

/// Named character references decoded (HTML is case-sensitive here: `&Uuml;` is not `&uuml;`).
/// The ones an escaper emits for ASCII punctuation, plus common Latin-1 letters and signs.
const ENTITIES: &[(&str, &str)] = &[
    ("quot", "\""),
    ("QUOT", "\""),
    ("amp", "&"),
    ("AMP", "&"),
    ("lt", "<"),
    ("LT", "<"),
    ("gt", ">"),
    ("GT", ">"),
    ("apos", "'"),
    ("nbsp", "\u{a0}"),
    ("Tab", "\t"),
    ("NewLine", "\n"),
    ("excl", "!"),
    ("num", "#"),
    ("dollar", "$"),
    ("percnt", "%"),
    ("lpar", "("),
    ("rpar", ")"),
    ("ast", "*"),
    ("midast", "*"),
    ("plus", "+"),
    ("comma", ","),
    ("period", "."),
    ("sol", "/"),
    ("colon", ":"),
    ("semi", ";"),
    ("equals", "="),
    ("quest", "?"),
    ("commat", "@"),
    ("lsqb", "["),
    ("lbrack", "["),
    ("bsol", "\\"),
    ("rsqb", "]"),
    ("rbrack", "]"),
    ("Hat", "^"),
    ("lowbar", "_"),
    ("UnderBar", "_"),
    ("grave", "`"),
    ("DiacriticalGrave", "`"),
    ("lcub", "{"),
    ("lbrace", "{"),
    ("verbar", "|"),
    ("vert", "|"),
    ("VerticalLine", "|"),
    ("rcub", "}"),
    ("rbrace", "}"),
    ("auml", "ä"),
    ("Auml", "Ä"),
    ("ouml", "ö"),
    ("Ouml", "Ö"),
    ("uuml", "ü"),
    ("Uuml", "Ü"),
    ("szlig", "ß"),
    ("aacute", "á"),
    ("eacute", "é"),
    ("Eacute", "É"),
    ("egrave", "è"),
    ("agrave", "à"),
    ("ccedil", "ç"),
    ("ntilde", "ñ"),
    ("aring", "å"),
    ("oslash", "ø"),
    ("aelig", "æ"),
    ("euro", "€"),
    ("pound", "£"),
    ("yen", "¥"),
    ("cent", "¢"),
    ("copy", "©"),
    ("reg", "®"),
    ("deg", "°"),
    ("sect", "§"),
    ("para", "¶"),
    ("micro", "µ"),
    ("middot", "·"),
    ("acute", "´"),
    ("uml", "¨"),
    ("laquo", "«"),
    ("raquo", "»"),
    ("iexcl", "¡"),
    ("iquest", "¿"),
    ("times", "×"),
    ("divide", "÷"),
];

/// Longest name in [`ENTITIES`]: how far past `&` a name is read.
const MAX_ENTITY_NAME: usize = 16;

/// Decodes HTML character references; returns whether anything changed.
///
/// Numeric ones (`&#39;`, `&#x27;`, `&#X27;`, leading zeros allowed) may omit the `;`, as HTML
/// parsers accept; named ones are matched on their whole alphanumeric run.
fn html_decode(data: &[u8], out: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'&'
            && let Some((c, len)) = html_reference(&data[i + 1..])
        {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            i += 1 + len;
            changed = true;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    changed
}

/// The character a reference starting just after `&` stands for, and how many bytes it takes
/// after the `&`. Reads at most the reference's digits or name (each byte at most once more when
/// it turns out not to be one), so decoding stays linear.
fn html_reference(rest: &[u8]) -> Option<(char, usize)> {
    let semicolon = |at: usize| usize::from(rest.get(at) == Some(&b';'));
    if rest.first() == Some(&b'#') {
        let (radix, start) = match rest.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest[start..].iter().take_while(|b| (**b as char).is_digit(radix)).count();
        if digits == 0 {
            return None;
        }
        let value = rest[start..start + digits]
            .iter()
            .try_fold(0u32, |acc, &b| acc.checked_mul(radix)?.checked_add((b as char).to_digit(radix)?))?;
        let c = char::from_u32(value).filter(|&c| c != '\0')?;
        let end = start + digits;
        // `&#9;` is four bytes for one; the shortest decimal form never outgrows its reference.
        return Some((c, end + semicolon(end)));
    }
    let name_len = rest.iter().take(MAX_ENTITY_NAME + 1).take_while(|b| b.is_ascii_alphanumeric()).count();
    let name = &rest[..name_len];
    let (_, value) = ENTITIES.iter().find(|(n, _)| n.as_bytes() == name)?;
    let c = value.chars().next()?;
    Some((c, name_len + semicolon(name_len)))
}

/// JSON string escaping of arbitrary bytes, as serde_json does it (only `"`, `\` and control
/// characters), sized up front so the buffer holding a secret is never reallocated.
fn json_escape(raw: &[u8]) -> Zeroizing<Vec<u8>> {
    let escaped_len = |b: u8| match b {
        b'"' | b'\\' | 8 | 12 | b'\n' | b'\r' | b'\t' => 2,
        0..=0x1f => 6,
        _ => 1,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(raw.iter().map(|&b| escaped_len(b)).sum()));
    for &b in raw {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            _ => out.push(b),
        }
    }
    out
}

/// Base64 needles for `raw`: its whole encoding (padded or not), and, for each of the three byte
/// alignments it can have inside a longer stream, the characters that depend on its bytes alone;
/// each in the standard and the URL-safe alphabet.
fn base64_forms(raw: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = Vec::new();
    let padded = Zeroizing::new(STANDARD.encode(raw));
    forms.push(Zeroizing::new(padded.as_bytes().to_vec()));
    forms.push(Zeroizing::new(padded.trim_end_matches('=').as_bytes().to_vec()));
    for align in 0..3 {
        // `align` filler bytes before the secret put it where it would start in the stream.
        let mut shifted = Zeroizing::new(Vec::with_capacity(align + raw.len()));
        shifted.resize(align, 0);
        shifted.extend_from_slice(raw);
        let encoded = Zeroizing::new(STANDARD_NO_PAD.encode(&*shifted));
        // The first characters mix in filler bits: 0, 2 or 3 of them for alignment 0, 1, 2.
        let start = [0, 2, 3][align];
        // The last group: its final character mixes in the bytes that follow, unless it is full.
        let len = shifted.len();
        let end = 4 * (len / 3) + [0, 1, 2][len % 3];
        if end >= start + MIN_BASE64_STABLE {
            forms.push(Zeroizing::new(encoded.as_bytes()[start..end].to_vec()));
        }
    }
    let url_safe: Vec<_> = forms
        .iter()
        .map(|f| {
            Zeroizing::new(
                f.iter()
                    .map(|&b| match b {
                        b'+' => b'-',
                        b'/' => b'_',
                        b => b,
                    })
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    forms.extend(url_safe);
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};
    use std::fmt::Write as _;

    /// JSON-, HTML- and URL-special characters, and a non-ASCII one.
    const SPECIAL: &str = "Pa\"s\\<&%+ /ü9xZ";

    fn detector(secret: &str) -> EchoDetector {
        let mut d = EchoDetector::new();
        d.add_secret(&SecretString::from(secret.to_owned()));
        d
    }

    fn found(d: &EchoDetector, data: &str) -> bool {
        d.found_in(data.as_bytes())
    }

    /// The secret JSON-escaped as serde_json does it (no quotes).
    fn json_serde(s: &str) -> String {
        let quoted = serde_json::to_string(s).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    }

    /// The secret JSON-escaped the way `ensure_ascii` / Go encoders do: `\uXXXX` for non-ASCII
    /// (surrogate pairs above the BMP) and, at random, for `<>&'`; `\/` at random.
    fn json_ascii(s: &str, rng: &mut Rng) -> String {
        let mut out = String::new();
        for c in s.chars() {
            let escape = |out: &mut String, unit: u16, rng: &mut Rng| {
                if rng.chance(50) {
                    write!(out, "\\u{unit:04x}").unwrap();
                } else {
                    write!(out, "\\u{unit:04X}").unwrap();
                }
            };
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' if rng.chance(50) => out.push_str("\\/"),
                '<' | '>' | '&' | '\'' if rng.chance(50) => escape(&mut out, c as u16, rng),
                c if !c.is_ascii() => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        escape(&mut out, *unit, rng);
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    /// Percent-encoding, partial: `%` (and `+` when `+` means space) always encoded, other
    /// characters at random, either hex case.
    fn percent(s: &str, plus: bool, rng: &mut Rng) -> String {
        let upper = rng.chance(50);
        let mut out = String::new();
        for c in s.chars() {
            if plus && c == ' ' && rng.chance(70) {
                out.push('+');
                continue;
            }
            let unreserved = c.is_ascii_alphanumeric() || "-._~".contains(c);
            let encode = c == '%' || (plus && c == '+') || rng.chance(if unreserved { 20 } else { 80 });
            if !encode {
                out.push(c);
                continue;
            }
            for b in c.to_string().bytes() {
                if upper {
                    write!(out, "%{b:02X}").unwrap();
                } else {
                    write!(out, "%{b:02x}").unwrap();
                }
            }
        }
        out
    }

    /// HTML character references, partial: `&` always encoded, others at random, named, decimal
    /// (leading zeros at random) or hex (`x` or `X`, either digit case).
    fn html(s: &str, rng: &mut Rng) -> String {
        const NAMED: &[(char, &str)] =
            &[('"', "quot"), ('&', "amp"), ('<', "lt"), ('>', "gt"), ('\'', "apos"), ('ü', "uuml"), ('/', "sol")];
        let mut out = String::new();
        for c in s.chars() {
            if c != '&' && !rng.chance(if c.is_ascii_alphanumeric() { 15 } else { 80 }) {
                out.push(c);
                continue;
            }
            let form = rng.below(5);
            let code = c as u32;
            if form == 0
                && let Some((_, name)) = NAMED.iter().find(|(k, _)| *k == c)
            {
                write!(out, "&{name};").unwrap();
            } else if form <= 1 {
                write!(out, "&#{code};").unwrap();
            } else if form == 2 {
                write!(out, "&#000{code};").unwrap();
            } else if form == 3 {
                write!(out, "&#x{code:x};").unwrap();
            } else {
                write!(out, "&#X{code:X};").unwrap();
            }
        }
        out
    }

    /// ASCII letters upper-cased, or their case flipped at random.
    fn case(s: &str, rng: &mut Rng) -> String {
        if rng.chance(50) {
            return s.to_ascii_uppercase();
        }
        s.chars().map(|c| if rng.chance(50) { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    }

    fn base64_engines() -> [base64::engine::GeneralPurpose; 4] {
        use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
    }

    /// The secret inside a longer Base64 stream: random bytes before and after it.
    fn base64_stream(s: &str, rng: &mut Rng) -> String {
        let mut bytes: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
        bytes.extend_from_slice(s.as_bytes());
        bytes.extend((0..rng.below(12)).map(|_| rng.next() as u8));
        rng.pick(&base64_engines()).encode(&bytes)
    }

    // --- One test per form -------------------------------------------------------------------

    #[test]
    fn raw_form_is_found() {
        let d = detector(SPECIAL);
        assert!(found(&d, &format!("prefix{SPECIAL}suffix")));
        assert!(!found(&d, "Pa\"s\\<&%+ /ü9x"), "a prefix is not the secret");
        assert!(!found(&d, r#"{"UserName":"root","RoleId":"Administrator"}"#));
    }

    #[test]
    fn json_escapes_are_found_at_the_byte_level_up_to_three_levels() {
        let d = detector(SPECIAL);
        let mut form = SPECIAL.to_owned();
        for level in 1..=3 {
            form = json_serde(&form);
            // Not a JSON document: only the byte-level needles and views can see it.
            assert!(found(&d, &format!("error: value {form} rejected (")), "level {level}: {form}");
        }
        // Deeper, still in plain text: the JSON views undo three levels more.
        for level in 4..=6 {
            form = json_serde(&form);
            assert!(found(&d, &format!("error: value {form} rejected (")), "level {level}: {form}");
        }
        // `ensure_ascii` style: `\u00fc`, `\u003c`, `\/`.
        let ascii = r#"Pa\"s\\\u003c\u0026%+ \/\u00FC9xZ"#;
        assert!(found(&d, &format!("x {ascii} y")));
        // Twice, with `\uXXXX` escapes inside the second level.
        assert!(found(&d, &format!("x {} y", json_serde(ascii))));
    }

    #[test]
    fn json_strings_are_walked_at_any_depth() {
        let d = detector(SPECIAL);
        let mut body = json!({ "Password": SPECIAL }).to_string();
        for depth in 1..=6 {
            body = json!({ "Message": "The value is invalid.", "Args": [body, 1, null] }).to_string();
            assert!(found(&d, &body), "depth {depth}");
        }
        // As an object key too.
        let keyed = json!({ "Oem": { SPECIAL: true } }).to_string();
        assert!(found(&d, &keyed));
        assert!(found(&d, &json!({ "Body": keyed }).to_string()));
    }

    #[test]
    fn percent_encoding_is_decoded() {
        let d = detector(SPECIAL);
        let full_upper = "Pa%22s%5C%3C%26%25%2B%20%2F%C3%BC9xZ";
        for encoded in [
            full_upper.to_owned(),
            full_upper.to_lowercase().replace("pa", "Pa").replace("9xz", "9xZ"),
            // `+` as space (a form body); `+` itself encoded.
            "Pa%22s%5c%3c%26%25%2b+%2f%c3%bc9xZ".to_owned(),
            // Partial: only what a path encoder must encode.
            "Pa%22s%5C%3C&%25+%20/ü9xZ".to_owned(),
            // Unreserved characters needlessly encoded.
            "%50%61%22s%5C%3C%26%25%2B%20%2F%C3%BC%39%78%5A".to_owned(),
        ] {
            assert!(found(&d, &format!("/redfish/v1/x?user=root&pw={encoded}&next=1")), "{encoded}");
        }
    }

    #[test]
    fn html_entities_are_decoded() {
        let d = detector(SPECIAL);
        for encoded in [
            "Pa&quot;s\\&lt;&amp;%+ /&uuml;9xZ",
            "Pa&#34;s&#92;&#60;&#38;&#37;&#43;&#32;&#47;&#252;9xZ",
            "Pa&#x22;s&#X5c;&#x3C;&#X26;&#x25;&#x2b;&#x20;&#x2F;&#xFC;9xZ",
            // No `;` after numeric references, leading zeros, named punctuation.
            "Pa&#0034s&bsol;&LT;&AMP;&percnt;&plus; &sol;ü9xZ",
            "P&#97;&quot;s\\&lt;&amp;%+ /ü9xZ",
        ] {
            assert!(found(&d, &format!("<td>{encoded}</td>")), "{encoded}");
        }
        // `&apos;` and `&#39;` for a quote.
        let d = detector("it's-a-secret");
        assert!(found(&d, "<p>it&apos;s-a-secret</p>"));
        assert!(found(&d, "<p>it&#39;s-a-secret</p>"));
    }

    #[test]
    fn layered_encodings_are_decoded() {
        let d = detector(SPECIAL);
        let mut rng = Rng(7);
        // Percent-encoded inside a JSON string, in a document and in text.
        let pct = percent(SPECIAL, true, &mut rng);
        assert!(found(&d, &json!({ "Location": format!("/x?pw={pct}") }).to_string()));
        assert!(found(&d, &format!("msg: {}", json_serde(&pct))));
        // HTML entities inside a JSON string, whose `&` the JSON encoder escaped as `\u0026`.
        let entities = html(SPECIAL, &mut rng);
        assert!(found(&d, &json!({ "Html": format!("<b>{entities}</b>") }).to_string()));
        assert!(found(&d, &format!("x {} y", json_ascii(&entities, &mut rng).replace('&', "\\u0026"))));
        // JSON-escaped, then percent-encoded (a JSON body quoted in a query string).
        let quoted = percent(&json_serde(SPECIAL), false, &mut rng);
        assert!(found(&d, &format!("GET /echo?body=%7B%22pw%22%3A%22{quoted}%22%7D")));
        // HTML entities then percent-encoded, and the other way round.
        assert!(found(&d, &percent(&html(SPECIAL, &mut rng), false, &mut rng)));
        assert!(found(&d, &html(&percent(SPECIAL, false, &mut rng), &mut rng)));
    }

    #[test]
    fn base64_is_found_at_every_alignment_and_alphabet() {
        let d = detector(SPECIAL);
        for engine in base64_engines() {
            // Alone, then after 0..=5 bytes of other data and before some more.
            assert!(found(&d, &engine.encode(SPECIAL)));
            for before in 0..6 {
                let mut stream = b"\xfb\xff\xfe\x00\x01\x02".to_vec()[..before].to_vec();
                stream.extend_from_slice(SPECIAL.as_bytes());
                stream.extend_from_slice(b"\xff\xfe");
                let encoded = engine.encode(&stream);
                assert!(found(&d, &format!("blob: {encoded}")), "{before} bytes before: {encoded}");
            }
        }
        // Only the stable middle is searched: another secret sharing the encoding's first
        // characters is not the secret.
        assert!(!found(&d, &STANDARD.encode("Pa\"s\\<&%+ /ü9")));
    }

    #[test]
    fn basic_credentials_given_as_forms_are_found() {
        // The host gives the Base64 it sent, or the `user:password` it encoded: both work.
        let basic = STANDARD.encode(format!("root:{SPECIAL}"));
        let mut sent = EchoDetector::new();
        sent.add_form(basic.as_bytes());
        assert!(sent.found_in(format!("Authorization: Basic {basic}").as_bytes()));
        // Percent-encoded, as a debug page putting headers in a link would.
        let escaped = basic.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
        assert!(sent.found_in(format!("href=\"/h?a=Basic%20{escaped}\"").as_bytes()));

        let mut plain = EchoDetector::new();
        plain.add_form(format!("root:{SPECIAL}").as_bytes());
        assert!(plain.found_in(basic.as_bytes()));
        assert!(plain.found_in(format!("x{}", URL_SAFE_NO_PAD_ENGINE.encode(format!("xxroot:{SPECIAL}"))).as_bytes()));
        assert!(!plain.found_in(STANDARD.encode("root:other-password").as_bytes()));
    }

    const URL_SAFE_NO_PAD_ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn case_folded_forms_are_found_for_long_secrets_only() {
        let d = detector(SPECIAL);
        assert!(found(&d, &format!("[{}]", SPECIAL.to_ascii_uppercase())));
        assert!(found(&d, &format!("[{}]", SPECIAL.to_ascii_lowercase())));
        // Case-folded, then encoded.
        assert!(found(&d, &percent(&SPECIAL.to_ascii_uppercase(), true, &mut Rng(3))));
        // Eight characters: folded.
        let d = detector("Secret12");
        assert!(found(&d, "ERROR: SECRET12 is not allowed"));
        // Five: only exact. `admin` must not match `Administrator` in an account listing.
        let d = detector("admin");
        assert!(found(&d, r#"{"UserName":"admin"}"#));
        assert!(!found(&d, r#"{"UserName":"Admin","RoleId":"Administrator"}"#));
        assert!(!found(&d, "ADMIN"));
        // Seven non-ASCII-heavy characters (more than eight bytes): still not folded.
        let d = detector("üüüabcd");
        assert!(found(&d, "üüüabcd"));
        assert!(!found(&d, "üüüABCD"));
    }

    #[test]
    fn a_form_seen_before_leaves_the_automata_as_they_are() {
        // Every Basic request of a job keeps the same credential: built once, found every time.
        let basic = STANDARD.encode(format!("root:{SPECIAL}"));
        let mut d = EchoDetector::new();
        d.add_form(basic.as_bytes());
        let (builds, held) = (d.builds, d.held_bytes());
        assert_eq!(builds, 1);
        for _ in 0..3 {
            d.add_form(basic.as_bytes());
        }
        assert_eq!((d.builds, d.held_bytes()), (builds, held));
        assert!(d.found_in(format!("Authorization: Basic {basic}").as_bytes()));
        // A new secret builds again, and both are found.
        d.add_secret(&SecretString::from(SPECIAL.to_owned()));
        assert_eq!(d.builds, builds + 1);
        assert!(found(&d, SPECIAL) && d.found_in(basic.as_bytes()));
        d.add_secret(&SecretString::from(SPECIAL.to_owned()));
        assert_eq!(d.builds, builds + 1);
        // A job's passwords together: one build for both, each found.
        let mut d = EchoDetector::new();
        let (old, new) = (SecretString::from("Old-Passw0rd".to_owned()), SecretString::from("New-Passw0rd".to_owned()));
        d.add_secrets([&old, &new]);
        assert_eq!(d.builds, 1);
        assert!(found(&d, "x Old-Passw0rd x") && found(&d, "x NEW-PASSW0RD x"));
        // The same bytes now to be found case-folded too (a secret of seven characters, given
        // again as a form of more than eight bytes) is a change: rebuilt, and folded from then on.
        let mut d = detector("üüüabcd");
        assert!(!found(&d, "üüüABCD"));
        d.add_form("üüüabcd".as_bytes());
        assert_eq!(d.builds, 2);
        assert!(found(&d, "üüüABCD"));
    }

    #[test]
    fn short_secrets_and_forms_are_ignored() {
        let mut d = EchoDetector::new();
        d.add_secret(&SecretString::from("abc".to_owned()));
        d.add_form(b"xyz");
        assert_eq!(d.held_bytes(), 0);
        assert!(!d.found_in(b"abc xyz YWJj"));
        // Four bytes is enough.
        d.add_secret(&SecretString::from("abcd".to_owned()));
        assert!(d.found_in(b"xabcdx"));
        assert!(d.held_bytes() >= 4);
    }

    #[test]
    fn empty_detector_finds_nothing() {
        let d = EchoDetector::new();
        assert!(!d.found_in(b""));
        assert!(!d.found_in(SPECIAL.as_bytes()));
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn search_time_is_linear_whatever_the_needles() {
        // A needle and a text built to make a naive search quadratic: the text is the needle's
        // prefix over and over, in every view.
        let mut d = EchoDetector::new();
        let needle = format!("{}b", "a".repeat(64 << 10));
        d.add_form(needle.as_bytes());
        assert!(d.held_bytes() >= needle.len());
        let text = "a".repeat(4 << 20);
        assert!(!found(&d, &text));
        // Every decoding turns this into the needle's prefix; as a JSON string it is walked too.
        let escapes = format!("\"{}\"", r"%61&#97;\u0061&amp;a+".repeat(1 << 15));
        assert!(!found(&d, &escapes));
        // Strings that are JSON inside JSON, as deep as a megabyte allows.
        let mut nested = json!(["a".repeat(1 << 16)]).to_string();
        for _ in 0..12 {
            nested = json!([nested]).to_string();
        }
        assert!(!found(&d, &nested));
        assert!(found(&d, &format!("{nested}{needle}")));
    }

    #[test]
    fn deep_nesting_at_every_level_is_walked_without_exhausting_the_stack() {
        // serde_json refuses more than 128 nested containers; each of the eight levels of JSON in
        // a string gets that many, the worst a body can make the walk recurse.
        let d = detector(SPECIAL);
        let nest = |inner: Value| (0..120).fold(inner, |v, _| json!([v]));
        let mut body = nest(json!({ "Password": SPECIAL })).to_string();
        for _ in 1..MAX_JSON_DEPTH {
            body = nest(Value::String(body)).to_string();
        }
        assert!(found(&d, &body));
    }

    // --- Property test -----------------------------------------------------------------------

    /// SplitMix64: a seeded PRNG, enough for test data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    const EXTRA_CHARS: &[char] = &['ü', 'é', 'ß', '€', '😀'];

    fn random_secret(rng: &mut Rng) -> String {
        (0..8 + rng.below(17))
            .map(|_| if rng.chance(10) { *rng.pick(EXTRA_CHARS) } else { (b' ' + rng.below(95) as u8) as char })
            .collect()
    }

    /// Printable ASCII without spaces (words of a text body; JSON strings), `min..min + spread`
    /// characters.
    fn random_word(rng: &mut Rng, min: usize, spread: usize) -> String {
        let len = min + rng.below(spread);
        (0..len).map(|_| (b'!' + rng.below(94) as u8) as char).collect()
    }

    /// The first encoding, applied to the secret.
    const FIRST: &[&str] =
        &["raw", "case", "json1", "json2", "json3", "json-ascii", "pct", "pct-plus", "html", "base64"];
    /// The optional second encoding, applied to the first one's output.
    const SECOND: &[&str] = &["none", "json", "json-ascii", "pct", "pct-plus", "html"];

    fn encode(layer: &str, s: &str, rng: &mut Rng) -> String {
        match layer {
            "raw" | "none" => s.to_owned(),
            "case" => case(s, rng),
            "json" | "json1" => json_serde(s),
            "json2" => json_serde(&json_serde(s)),
            "json3" => json_serde(&json_serde(&json_serde(s))),
            "json-ascii" => json_ascii(s, rng),
            "pct" => percent(s, false, rng),
            "pct-plus" => percent(s, true, rng),
            "html" => html(s, rng),
            "base64" => base64_stream(s, rng),
            other => unreachable!("{other}"),
        }
    }

    fn random_json(rng: &mut Rng, depth: usize, payload: &mut Option<String>) -> Value {
        match rng.below(if depth >= 3 { 4 } else { 6 }) {
            0 => Value::from(rng.next() % 100_000),
            1 => Value::Bool(rng.chance(50)),
            2 => Value::Null,
            3 => Value::String(match payload.take_if(|_| rng.chance(30)) {
                Some(p) => p,
                None => random_word(rng, 0, 20),
            }),
            4 => Value::Array((0..rng.below(5)).map(|_| random_json(rng, depth + 1, payload)).collect()),
            _ => {
                let mut map = Map::new();
                for _ in 0..rng.below(5) {
                    let key = match payload.take_if(|_| rng.chance(10)) {
                        Some(p) => p,
                        None => random_word(rng, 1, 8),
                    };
                    let value = random_json(rng, depth + 1, payload);
                    insert_unique(&mut map, key, value);
                }
                Value::Object(map)
            }
        }
    }

    /// Inserts without replacing an earlier entry (which may hold the payload).
    fn insert_unique(map: &mut Map<String, Value>, mut key: String, value: Value) {
        while map.contains_key(&key) {
            key.push('_');
        }
        map.insert(key, value);
    }

    /// A random JSON document or text holding `payload` (when given) somewhere.
    fn random_body(rng: &mut Rng, payload: Option<String>) -> String {
        let mut payload = payload;
        if rng.chance(50) {
            let mut top = Map::new();
            for _ in 0..rng.below(6) {
                let (key, value) = (random_word(rng, 1, 8), random_json(rng, 1, &mut payload));
                insert_unique(&mut top, key, value);
            }
            if let Some(p) = payload {
                let key = random_word(rng, 1, 8);
                insert_unique(&mut top, key, Value::String(p));
            }
            Value::Object(top).to_string()
        } else {
            let mut words: Vec<String> = (0..rng.below(30)).map(|_| random_word(rng, 1, 10)).collect();
            if let Some(p) = payload {
                let at = rng.below(words.len() + 1);
                words.insert(at, p);
            }
            words.join(" ")
        }
    }

    #[test]
    fn random_encodings_are_found_and_random_bodies_are_not() {
        let base: u64 = std::env::var("ECHO_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EC2_E7EC);
        let mut combos = std::collections::BTreeSet::new();
        for case in 0..2500u64 {
            let seed = base.wrapping_add(case);
            let mut rng = Rng(seed);
            let secret = random_secret(&mut rng);
            let d = detector(&secret);
            let (first, second) = (*rng.pick(FIRST), *rng.pick(SECOND));
            combos.insert((first, second));
            let encoded = encode(second, &encode(first, &secret, &mut rng), &mut rng);
            let body = random_body(&mut rng, Some(encoded));
            assert!(
                d.found_in(body.as_bytes()),
                "missed: seed {seed} (ECHO_SEED={base}), {first} then {second}, secret {secret:?}, body {body}"
            );

            // The same kind of body without the secret: another secret's encoding, or none.
            let decoy = random_secret(&mut rng);
            let clean = if rng.chance(50) {
                let inner = encode(first, &decoy, &mut rng);
                let outer = encode(second, &inner, &mut rng);
                random_body(&mut rng, Some(outer))
            } else {
                random_body(&mut rng, None)
            };
            assert!(
                !d.found_in(clean.as_bytes()),
                "false positive: seed {seed} (ECHO_SEED={base}), secret {secret:?}, body {clean}"
            );
        }
        assert_eq!(combos.len(), FIRST.len() * SECOND.len(), "every combination was tried");
    }
}
