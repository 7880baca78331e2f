//! The secret matchers' Aho-Corasick automata, built once per set of needles and shared.
//!
//! Every plugin call starts a job whose redactor and echo detector look for the same few
//! secrets: the run's passwords and the Basic credential built from them, job after job, BMC
//! after BMC. Building the automata was a fifth of a rotation's CPU (`perf`, 512 BMCs); a clone of
//! a built one is a reference count. So they are kept, by their exact needles, in a small
//! process-wide cache.
//!
//! A set holding a session token is built for its job alone and never kept: a token is new at
//! every login, so such sets would only push out the ones that repeat.
//!
//! Not an oracle: a guest chooses which secret handle and which user name go into a Basic
//! credential, so its timing can tell whether another job of the process used the same account
//! and the same secret, never anything about the secret's bytes (every BMC of a stamp shares one
//! password by design).

use aho_corasick::{AhoCorasick, AhoCorasickKind, BuildError, MatchKind};
use std::collections::VecDeque;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// What an automaton is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Replacing secrets: leftmost-longest, so a secret that contains another is replaced whole.
    Scrub,
    /// Finding any secret, byte for byte.
    Detect,
    /// Finding any secret, ASCII-case-insensitively.
    DetectFolded,
}

/// How many sets are kept: a stamp's jobs use a handful (old, new, both, each with its Basic
/// credential, per style); many stamps at once use a handful each.
const CAPACITY: usize = 64;

static SHARED: Mutex<Cache> = Mutex::new(Cache::new(CAPACITY));

/// The automaton for `needles` in `style`: the kept one if this set was built before, else built
/// now and, when `keep`, kept for the next job.
pub(crate) fn build(style: Style, needles: &[&[u8]], keep: bool) -> Result<AhoCorasick, BuildError> {
    if !keep {
        return compile(style, needles);
    }
    // A poisoned lock only means another thread panicked while holding it: the cache holds no
    // half-written entry (entries are pushed whole), so it is still sound to use.
    let cached = SHARED.lock().unwrap_or_else(|e| e.into_inner()).get(style, needles);
    if let Some(automaton) = cached {
        return Ok(automaton);
    }
    // Built without the lock: jobs on other threads keep finding their sets meanwhile.
    let automaton = compile(style, needles)?;
    SHARED.lock().unwrap_or_else(|e| e.into_inner()).insert(style, needles, automaton.clone());
    Ok(automaton)
}

/// A contiguous NFA: building the DFA the crate would pick for few needles takes time quadratic
/// in a needle's length (24 s for one of 64 KiB, measured); searching is linear for both.
fn compile(style: Style, needles: &[&[u8]]) -> Result<AhoCorasick, BuildError> {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .match_kind(if style == Style::Scrub { MatchKind::LeftmostLongest } else { MatchKind::Standard })
        .ascii_case_insensitive(style == Style::DetectFolded)
        .build(needles)
}

/// Automata by style and needles, the most recently used first.
struct Cache {
    entries: VecDeque<Entry>,
    capacity: usize,
}

struct Entry {
    style: Style,
    /// Zeroized when the entry is pushed out: they are the secrets' forms.
    needles: Vec<Zeroizing<Vec<u8>>>,
    automaton: AhoCorasick,
}

impl Entry {
    fn is(&self, style: Style, needles: &[&[u8]]) -> bool {
        self.style == style
            && self.needles.len() == needles.len()
            && self.needles.iter().zip(needles).all(|(kept, asked)| kept.as_slice() == *asked)
    }
}

impl Cache {
    const fn new(capacity: usize) -> Self {
        Cache { entries: VecDeque::new(), capacity }
    }

    fn get(&mut self, style: Style, needles: &[&[u8]]) -> Option<AhoCorasick> {
        let at = self.entries.iter().position(|e| e.is(style, needles))?;
        let entry = self.entries.remove(at)?;
        let automaton = entry.automaton.clone();
        self.entries.push_front(entry);
        Some(automaton)
    }

    fn insert(&mut self, style: Style, needles: &[&[u8]], automaton: AhoCorasick) {
        // Two jobs may have built the same set at once; keep one.
        if self.entries.iter().any(|e| e.is(style, needles)) {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_back();
        }
        let needles = needles.iter().map(|n| Zeroizing::new(n.to_vec())).collect();
        self.entries.push_front(Entry { style, needles, automaton });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(style: Style, needles: &[&[u8]]) -> AhoCorasick {
        compile(style, needles).unwrap()
    }

    #[test]
    fn a_set_is_found_only_with_the_same_style_and_the_same_needles_in_order() {
        let mut cache = Cache::new(4);
        cache.insert(Style::Detect, &[b"Secret-1", b"Secret-2"], compiled(Style::Detect, &[b"Secret-1", b"Secret-2"]));
        assert!(cache.get(Style::Detect, &[b"Secret-1", b"Secret-2"]).is_some());
        assert!(cache.get(Style::DetectFolded, &[b"Secret-1", b"Secret-2"]).is_none());
        assert!(cache.get(Style::Scrub, &[b"Secret-1", b"Secret-2"]).is_none());
        assert!(cache.get(Style::Detect, &[b"Secret-1"]).is_none(), "a subset is another set");
        assert!(cache.get(Style::Detect, &[b"Secret-1", b"Secret-3"]).is_none());
        assert!(cache.get(Style::Detect, &[b"Secret-1", b"Secret-2", b"Secret-3"]).is_none());
    }

    #[test]
    fn the_least_recently_used_set_is_pushed_out_and_a_repeat_is_kept_once() {
        let mut cache = Cache::new(2);
        let a: &[&[u8]] = &[b"aaaa"];
        let b: &[&[u8]] = &[b"bbbb"];
        let c: &[&[u8]] = &[b"cccc"];
        cache.insert(Style::Detect, a, compiled(Style::Detect, a));
        cache.insert(Style::Detect, b, compiled(Style::Detect, b));
        cache.insert(Style::Detect, b, compiled(Style::Detect, b));
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.get(Style::Detect, a).is_some(), "a is now the most recently used");
        cache.insert(Style::Detect, c, compiled(Style::Detect, c));
        assert!(cache.get(Style::Detect, b).is_none(), "b was the least recently used");
        assert!(cache.get(Style::Detect, a).is_some() && cache.get(Style::Detect, c).is_some());
    }

    #[test]
    fn a_kept_automaton_searches_as_a_new_one_and_an_unkept_set_is_not_kept() {
        let needles: &[&[u8]] = &[b"kept-7f3e9a1c", b"KEPT-also"];
        let first = build(Style::DetectFolded, needles, true).unwrap();
        let again = build(Style::DetectFolded, needles, true).unwrap();
        for automaton in [&first, &again] {
            assert!(automaton.is_match("xx KEPT-7F3E9A1C yy") && automaton.is_match("kept-also"));
            assert!(!automaton.is_match("kept-7f3e9a1"));
        }
        let token: &[&[u8]] = &[b"session-token-5b2d90e4"];
        build(Style::Detect, token, false).unwrap();
        assert!(SHARED.lock().unwrap().get(Style::Detect, token).is_none());
        assert!(SHARED.lock().unwrap().get(Style::DetectFolded, needles).is_some());
    }

    #[test]
    fn scrub_replaces_the_longest_and_detect_finds_overlaps() {
        let scrub = compiled(Style::Scrub, &[b"Pass1", b"Pass1-and-more"]);
        assert_eq!(scrub.replace_all("x Pass1-and-more y", &["#", "#"]), "x # y");
        let detect = compiled(Style::Detect, &[b"abcd", b"bcdef"]);
        assert!(detect.is_match("zbcdefz"));
    }
}
