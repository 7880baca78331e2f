//! Keeping secrets out of what guests and logs see.
//!
//! A BMC may echo what it was sent (a Redfish error quoting the rejected value, a debug endpoint
//! reflecting headers). The gateway is the only place that knows every secret of a job, so it
//! scrubs each response before a guest can read it: the raw secret, its JSON-escaped form and the
//! Basic credential it built are all replaced with [`REDACTED`].

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// What a scrubbed secret becomes.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are not scrubbed: replacing every `a` in a body would destroy it,
/// and no BMC policy accepts such a password anyway.
pub const MIN_SCRUB_LEN: usize = 4;

/// Header names whose values never reach a log line or a guest.
const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-auth-token",
    "cookie",
    "set-cookie",
];

/// Whether a header's value is a credential.
pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// A header value as it may appear in a log.
pub fn header_for_log<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_header(name) {
        REDACTED
    } else {
        value
    }
}

/// The set of byte strings to scrub from everything a job's guest or log may see.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<Zeroizing<Vec<u8>>>,
}

impl Redactor {
    /// An empty redactor.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds a secret in every form a BMC might echo it: raw and JSON-escaped.
    pub fn add_secret(&mut self, secret: &SecretString) {
        let raw = secret.expose_secret();
        self.add_form(raw.as_bytes());
        let quoted = Zeroizing::new(serde_json::to_string(raw).unwrap_or_default());
        if quoted.len() >= 2 {
            self.add_form(&quoted.as_bytes()[1..quoted.len() - 1]);
        }
    }

    /// Adds one exact byte string (e.g. the Base64 Basic credential the gateway built).
    pub fn add_form(&mut self, form: &[u8]) {
        if form.len() >= MIN_SCRUB_LEN && !self.needles.iter().any(|n| n.as_slice() == form) {
            self.needles.push(Zeroizing::new(form.to_vec()));
            // Longest first, so a secret that contains another is replaced whole.
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    /// Replaces every occurrence of every secret; returns whether anything was replaced.
    pub fn scrub(&self, data: &mut Vec<u8>) -> bool {
        let mut changed = false;
        for needle in &self.needles {
            if let Some(out) = replace_all(data, needle) {
                *data = out;
                changed = true;
            }
        }
        changed
    }

    /// [`Redactor::scrub`] on text.
    pub fn scrub_str(&self, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        if self.scrub(&mut bytes) {
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            text.to_owned()
        }
    }
}

fn replace_all(haystack: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let first = find(haystack, needle, 0)?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut start = 0;
    let mut at = Some(first);
    while let Some(i) = at {
        out.extend_from_slice(&haystack[start..i]);
        out.extend_from_slice(REDACTED.as_bytes());
        start = i + needle.len();
        at = find(haystack, needle, start);
    }
    out.extend_from_slice(&haystack[start..]);
    Some(out)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn scrubs_raw_and_json_escaped_forms() {
        let mut r = Redactor::new();
        r.add_secret(&secret(r#"Pa"ss\wörd1"#));
        let body = r#"{"raw":"Pa"ss\wörd1","json":"Pa\"ss\\wörd1"}"#;
        let scrubbed = r.scrub_str(body);
        assert_eq!(scrubbed, r#"{"raw":"<redacted>","json":"<redacted>"}"#);
    }

    #[test]
    fn longest_secret_wins_and_short_ones_are_ignored() {
        let mut r = Redactor::new();
        r.add_secret(&secret("abcd"));
        r.add_secret(&secret("abcdefgh"));
        r.add_secret(&secret("ab"));
        assert_eq!(
            r.scrub_str("xx abcdefgh abcd ab"),
            "xx <redacted> <redacted> ab"
        );
    }

    #[test]
    fn untouched_text_is_returned_as_is() {
        let mut r = Redactor::new();
        r.add_secret(&secret("Secret123!"));
        let mut data = b"nothing here".to_vec();
        assert!(!r.scrub(&mut data));
        assert_eq!(data, b"nothing here");
    }

    #[test]
    fn sensitive_headers_are_hidden_in_logs() {
        assert_eq!(header_for_log("Authorization", "Basic abc"), REDACTED);
        assert_eq!(header_for_log("X-Auth-Token", "t"), REDACTED);
        assert_eq!(header_for_log("Set-Cookie", "s=1"), REDACTED);
        assert_eq!(header_for_log("If-Match", "\"1\""), "\"1\"");
    }
}
