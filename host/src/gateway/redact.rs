//! Keeping secrets out of what guests and logs see.
//!
//! A BMC may echo what it was sent (a Redfish error quoting the rejected value, a debug endpoint
//! reflecting headers). The gateway is the only place that knows every secret of a job, so it
//! scrubs each response before a guest can read it: the raw secret, its JSON-escaped form and the
//! Basic credential it built are all replaced with [`REDACTED`].

use super::automata::{self, Style};
use aho_corasick::AhoCorasick;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// What a scrubbed secret becomes.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are not scrubbed: replacing every `a` in a body would destroy it,
/// and no BMC policy accepts such a password anyway.
pub const MIN_SCRUB_LEN: usize = 4;

/// How many levels of JSON quoting the byte-level scrub covers (JSON bodies are decoded fully).
const MAX_ESCAPE_DEPTH: usize = 3;

/// Header names whose values never reach a log line or a guest.
const SENSITIVE_HEADERS: &[&str] = &["authorization", "proxy-authorization", "x-auth-token", "cookie", "set-cookie"];

/// Whether a header's value is a credential.
pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// A header value as it may appear in a log.
pub fn header_for_log<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_header(name) { REDACTED } else { value }
}

/// The set of byte strings to scrub from everything a job's guest or log may see.
///
/// Searching is linear in the text whatever the needles (one Aho-Corasick automaton over all of
/// them), so no text a guest can have the host search — a log line, an echoed body — costs more
/// than its length, however the needles were chosen.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<Zeroizing<Vec<u8>>>,
    matcher: Option<AhoCorasick>,
    /// A session token is among the needles: the automaton is this job's alone (see
    /// [`automata`]).
    private: bool,
}

impl Redactor {
    /// An empty redactor.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds a secret in every form a BMC might echo it: raw, and JSON-escaped once, twice or
    /// three times (a BMC quoting a request body that quoted the secret).
    pub fn add_secret(&mut self, secret: &SecretString) {
        self.add_secrets([secret]);
    }

    /// [`Redactor::add_secret`] for several secrets, the automaton built once for all of them
    /// (a job starts with the run's passwords; one build instead of one per form).
    pub fn add_secrets<'a>(&mut self, secrets: impl IntoIterator<Item = &'a SecretString>) {
        let mut changed = false;
        for secret in secrets {
            let mut form = Zeroizing::new(secret.expose_secret().to_owned());
            changed |= self.push(form.as_bytes());
            for _ in 0..MAX_ESCAPE_DEPTH {
                let quoted = Zeroizing::new(serde_json::to_string(form.as_str()).unwrap_or_default());
                form = Zeroizing::new(quoted[1..quoted.len() - 1].to_owned());
                changed |= self.push(form.as_bytes());
            }
        }
        if changed {
            self.rebuild();
        }
    }

    /// A secret new to this job (a session token the BMC just issued): added like
    /// [`Redactor::add_secret`], but the automaton holding it is never shared with another job.
    pub fn add_session_token(&mut self, token: &SecretString) {
        self.private = true;
        self.add_secret(token);
    }

    /// Adds one exact byte string (e.g. the Base64 Basic credential the gateway built).
    pub fn add_form(&mut self, form: &[u8]) {
        if self.push(form) {
            self.rebuild();
        }
    }

    /// Keeps a needle; whether it is new.
    fn push(&mut self, form: &[u8]) -> bool {
        let new = form.len() >= MIN_SCRUB_LEN && !self.needles.iter().any(|n| n.as_slice() == form);
        if new {
            self.needles.push(Zeroizing::new(form.to_vec()));
        }
        new
    }

    fn rebuild(&mut self) {
        let needles: Vec<&[u8]> = self.needles.iter().map(|n| n.as_slice()).collect();
        self.matcher = automata::build(Style::Scrub, &needles, !self.private).ok();
    }

    /// The bytes a caller must keep past a cut for a secret straddling it to be found whole.
    pub fn longest(&self) -> usize {
        self.needles.iter().map(|n| n.len()).max().unwrap_or(0)
    }

    /// Bytes held for the needles (what the job's memory budget is charged).
    pub fn held_bytes(&self) -> usize {
        self.needles.iter().map(|n| n.len()).sum()
    }

    /// Replaces every occurrence of every secret; returns whether anything was replaced.
    ///
    /// A JSON body is also walked string by string, decoding strings that are themselves JSON,
    /// so a secret nested at any depth of quoting is found; such a string is replaced whole.
    pub fn scrub(&self, data: &mut Vec<u8>) -> bool {
        if self.needles.is_empty() {
            return false;
        }
        let mut changed = false;
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(data)
            && self.scrub_json(&mut value)
        {
            *data = serde_json::to_vec(&value).unwrap_or_default();
            changed = true;
        }
        if let Some(matcher) = &self.matcher
            && matcher.is_match(data.as_slice())
        {
            let replacements = vec![REDACTED.as_bytes(); self.needles.len()];
            *data = matcher.replace_all_bytes(data, &replacements);
            changed = true;
        }
        changed
    }

    fn contains_secret(&self, text: &str) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.is_match(text))
    }

    fn scrub_json(&self, value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if self.contains_secret(s) {
                    *s = REDACTED.to_owned();
                    return true;
                }
                // A string that is itself JSON (a quoted request body): look inside it.
                let Ok(mut inner) = serde_json::from_str::<Value>(s) else {
                    return false;
                };
                if matches!(inner, Value::Object(_) | Value::Array(_) | Value::String(_)) && self.scrub_json(&mut inner)
                {
                    *s = inner.to_string();
                    return true;
                }
                false
            }
            Value::Array(items) => items.iter_mut().fold(false, |acc, v| self.scrub_json(v) | acc),
            Value::Object(map) => {
                let mut changed = false;
                let keys: Vec<String> = map.keys().filter(|k| self.contains_secret(k)).cloned().collect();
                for key in keys {
                    if let Some(v) = map.remove(&key) {
                        map.insert(REDACTED.to_owned(), v);
                        changed = true;
                    }
                }
                map.values_mut().fold(changed, |acc, v| self.scrub_json(v) | acc)
            }
            _ => false,
        }
    }

    /// [`Redactor::scrub`] on text.
    pub fn scrub_str(&self, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        if self.scrub(&mut bytes) { String::from_utf8_lossy(&bytes).into_owned() } else { text.to_owned() }
    }
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
    fn secrets_added_together_are_each_scrubbed_and_a_repeat_adds_nothing() {
        let mut r = Redactor::new();
        // One contains the other: leftmost-longest replaces the longer whole.
        r.add_secrets([&secret("Old-Pass1"), &secret("Old-Pass1-and-more"), &secret("abc")]);
        assert_eq!(r.scrub_str("a Old-Pass1 b Old-Pass1-and-more c abc"), "a <redacted> b <redacted> c abc");
        let held = r.held_bytes();
        r.add_secrets([&secret("Old-Pass1")]);
        r.add_form(b"Old-Pass1");
        assert_eq!(r.held_bytes(), held);
    }

    #[test]
    fn secrets_nested_in_json_strings_are_found_at_any_depth() {
        let mut r = Redactor::new();
        r.add_secret(&secret(r#"Xq"Zk\7w"#));
        let once = serde_json::json!({"Password": r#"Xq"Zk\7w"#}).to_string();
        let twice = serde_json::json!({"body": once}).to_string();
        let thrice = serde_json::json!({"wrapped": twice, "n": 1}).to_string();
        for body in [once, twice, thrice] {
            let scrubbed = r.scrub_str(&body);
            assert!(scrubbed.contains(REDACTED), "{scrubbed}");
            assert!(!scrubbed.contains("Xq") && !scrubbed.contains("Zk"), "{scrubbed}");
        }
        // Not JSON: the byte-level forms still apply, up to three levels of quoting.
        let text =
            format!("raw {} end", serde_json::to_string(&serde_json::to_string(r#"Xq"Zk\7w"#).unwrap()).unwrap());
        assert!(!r.scrub_str(&text).contains("Zk"), "{}", r.scrub_str(&text));
    }

    #[test]
    fn longest_secret_wins_and_short_ones_are_ignored() {
        let mut r = Redactor::new();
        r.add_secret(&secret("abcd"));
        r.add_secret(&secret("abcdefgh"));
        r.add_secret(&secret("ab"));
        assert_eq!(r.scrub_str("xx abcdefgh abcd ab"), "xx <redacted> <redacted> ab");
    }

    #[test]
    fn search_time_is_linear_whatever_the_needles() {
        // A needle and a text built to make a naive search quadratic: the text is the needle's
        // prefix over and over. Linear search reads the megabyte once per needle at most.
        let mut r = Redactor::new();
        let needle = format!("{}b", "a".repeat(64 << 10));
        r.add_form(needle.as_bytes());
        let text = "a".repeat(4 << 20);
        assert_eq!(r.scrub_str(&text).len(), text.len(), "nothing to replace");
        assert_eq!(r.longest(), needle.len());
        assert_eq!(r.held_bytes(), needle.len());
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
