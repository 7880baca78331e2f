//! The one password every BMC and Azure Stack Hub will accept: the intersection of every BMC's
//! live policy (tightened by its hardware profile) with Azure Stack's rules — at most 16
//! characters, and only characters that every vendor and a PowerShell SecureString round trip
//! take safely. Checks say what is wrong without quoting the password; the generator draws from
//! the operating system's random source.

use crate::pep::MAX_CREDENTIAL_CHARS;
use crate::runtime::PasswordPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use zeroize::Zeroizing;

/// Symbols safe for every vendor, in JSON, for IPMI and through PowerShell (no quotes, backtick,
/// `$ & < > %`, backslash or space). Microsoft documents no character rules for the BMC password
/// (only ≤ 16 characters, the same on every BMC); this set is a conservative inference.
pub const SAFE_SYMBOLS: &str = "-_.!+=";

/// Fewest characters of a generated password, whatever a BMC's policy (which a plugin reports)
/// says: a hostile plugin must not be able to make the fleet's password short. Within Azure
/// Stack's 16.
pub const GENERATED_MIN_LENGTH: u32 = 14;
/// Fewest character classes of a generated password (upper, lower and digits are always usable).
pub const GENERATED_MIN_CLASSES: u32 = 3;

/// The rules a fleet's new password must satisfy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FleetPolicy {
    /// Fewest characters.
    pub min_length: u32,
    /// Most characters (never above 16).
    pub max_length: u32,
    /// Character classes required (of upper, lower, digit, symbol).
    pub min_classes: u32,
    /// The symbols allowed.
    pub symbols: String,
    /// Longest run of one character; 0 without limit.
    pub max_repeated_chars: u32,
    /// The account name may not appear in the password.
    pub forbid_account_name: bool,
}

impl FleetPolicy {
    /// Azure Stack's rules alone.
    pub fn azure_stack() -> FleetPolicy {
        FleetPolicy {
            min_length: 8,
            max_length: MAX_CREDENTIAL_CHARS as u32,
            min_classes: 3,
            symbols: SAFE_SYMBOLS.into(),
            max_repeated_chars: 0,
            forbid_account_name: true,
        }
    }

    /// Tightens these rules with one BMC's policy.
    pub fn intersect(&mut self, policy: &PasswordPolicy) {
        self.min_length = self.min_length.max(policy.min_length);
        if policy.max_length > 0 {
            self.max_length = self.max_length.min(policy.max_length);
        }
        self.min_classes = self.min_classes.max(policy.min_classes);
        self.symbols.retain(|c| policy.allowed_symbols.contains(c));
        if policy.max_repeated_chars > 0 {
            self.max_repeated_chars = match self.max_repeated_chars {
                0 => policy.max_repeated_chars,
                n => n.min(policy.max_repeated_chars),
            };
        }
        self.forbid_account_name |= policy.forbid_account_name;
    }

    /// An error if no password can satisfy these rules.
    pub fn satisfiable(&self) -> Result<(), String> {
        let classes = if self.symbols.is_empty() { 3 } else { 4 };
        if self.min_length > self.max_length {
            return Err(format!(
                "no password fits every BMC: at least {} characters are required but at most {} are allowed",
                self.min_length, self.max_length
            ));
        }
        if self.min_classes > classes {
            return Err(format!(
                "no password fits every BMC: {} character classes are required but only {classes} are usable \
                 (no symbol is accepted by every BMC)",
                self.min_classes
            ));
        }
        Ok(())
    }

    /// Every rule `password` breaks (empty when it is fit). Never quotes the password.
    pub fn violations(&self, password: &SecretString, account: &str) -> Vec<String> {
        let password = password.expose_secret();
        let mut out = Vec::new();
        let length = password.chars().count() as u32;
        if length < self.min_length || length > self.max_length {
            out.push(format!(
                "it has {length} characters; every BMC and Azure Stack Hub accept {} to {}",
                self.min_length, self.max_length
            ));
        }
        if password.chars().any(|c| !c.is_ascii_alphanumeric() && !self.symbols.contains(c)) {
            out.push(format!(
                "it has a character outside letters, digits and `{}` (safe on every BMC and in PowerShell)",
                self.symbols
            ));
        }
        let classes = classes(password);
        if classes < self.min_classes {
            out.push(format!(
                "it mixes {classes} character classes; at least {} of upper case, lower case, digits and symbols are required",
                self.min_classes
            ));
        }
        if self.max_repeated_chars > 0 && longest_run(password) > self.max_repeated_chars {
            out.push(format!("it repeats a character more than {} times in a row", self.max_repeated_chars));
        }
        if self.forbid_account_name && !account.is_empty() && password.to_lowercase().contains(&account.to_lowercase())
        {
            out.push(format!("it contains the account name `{account}`"));
        }
        out
    }

    /// Why a BMC with `policy` cannot take a generated password, if it cannot: its policy (as
    /// its plugin reports it) allows fewer than [`GENERATED_MIN_LENGTH`] characters.
    pub fn below_generation_floor(policy: &PasswordPolicy) -> Option<String> {
        (policy.max_length > 0 && policy.max_length < GENERATED_MIN_LENGTH).then(|| {
            format!(
                "its policy allows at most {} characters, and a generated password has at least \
                 {GENERATED_MIN_LENGTH}: raise the BMC's limit, or give a new password yourself",
                policy.max_length
            )
        })
    }

    /// A random password that satisfies these rules, as long as allowed, and never shorter than
    /// [`GENERATED_MIN_LENGTH`] nor with fewer than [`GENERATED_MIN_CLASSES`] classes, whatever
    /// the BMCs' policies say.
    pub fn generate(&self, account: &str) -> Result<SecretString, String> {
        self.satisfiable()?;
        if self.max_length < GENERATED_MIN_LENGTH {
            return Err(format!(
                "a generated password has at least {GENERATED_MIN_LENGTH} characters, but the fleet allows at most {}",
                self.max_length
            ));
        }
        let floor = FleetPolicy {
            min_length: self.min_length.max(GENERATED_MIN_LENGTH),
            min_classes: self.min_classes.max(GENERATED_MIN_CLASSES),
            ..self.clone()
        };
        let alphabet: Vec<char> = ('A'..='Z').chain('a'..='z').chain('0'..='9').chain(self.symbols.chars()).collect();
        let sets: Vec<Vec<char>> = [
            ('A'..='Z').collect::<Vec<_>>(),
            ('a'..='z').collect(),
            ('0'..='9').collect(),
            self.symbols.chars().collect(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
        let length = self.max_length as usize;
        for _ in 0..1000 {
            let mut chars = Zeroizing::new(Vec::with_capacity(length));
            // One of every usable class, then the rest from the whole alphabet, then shuffle.
            for set in &sets {
                chars.push(set[random_below(set.len())?]);
            }
            while chars.len() < length {
                chars.push(alphabet[random_below(alphabet.len())?]);
            }
            for i in (1..chars.len()).rev() {
                chars.swap(i, random_below(i + 1)?);
            }
            let candidate = SecretString::from(chars.iter().collect::<String>());
            if floor.violations(&candidate, account).is_empty() {
                return Ok(candidate);
            }
        }
        Err("could not generate a password that satisfies every BMC's policy".into())
    }
}

fn classes(password: &str) -> u32 {
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c)) as u32;
    has(char::is_ascii_uppercase)
        + has(char::is_ascii_lowercase)
        + has(char::is_ascii_digit)
        + has(|c| !c.is_ascii_alphanumeric())
}

fn longest_run(password: &str) -> u32 {
    let (mut best, mut run, mut last) = (0, 0, None);
    for c in password.chars() {
        run = if Some(c) == last { run + 1 } else { 1 };
        best = best.max(run);
        last = Some(c);
    }
    best
}

/// A uniform random index below `n`, by rejection sampling from the OS's random source.
fn random_below(n: usize) -> Result<usize, String> {
    let n = n as u32;
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|e| format!("the system's random source failed: {e}"))?;
        let value = u32::from_le_bytes(bytes);
        if value < zone {
            return Ok((value % n) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, max: u32, classes: u32, symbols: &str, repeats: u32) -> PasswordPolicy {
        PasswordPolicy {
            min_length: min,
            max_length: max,
            min_classes: classes,
            allowed_symbols: symbols.into(),
            max_repeated_chars: repeats,
            ..PasswordPolicy::default()
        }
    }

    #[test]
    fn the_intersection_is_the_strictest_of_every_rule() {
        let mut fleet = FleetPolicy::azure_stack();
        fleet.intersect(&policy(8, 20, 3, "-_.!+=@#", 2)); // XCC-like
        fleet.intersect(&policy(10, 127, 2, "!+-_.", 0)); // iLO-like
        assert_eq!((fleet.min_length, fleet.max_length, fleet.min_classes), (10, 16, 3));
        assert_eq!(fleet.symbols, "-_.!+");
        assert_eq!(fleet.max_repeated_chars, 2);
        fleet.intersect(&policy(18, 40, 3, "", 0));
        assert!(fleet.satisfiable().unwrap_err().contains("at least 18 characters"));
        let mut no_symbols = FleetPolicy::azure_stack();
        no_symbols.intersect(&policy(8, 16, 4, "", 0));
        assert!(no_symbols.satisfiable().unwrap_err().contains("no symbol"));
    }

    #[test]
    fn violations_name_the_rule_never_the_password() {
        let fleet = FleetPolicy::azure_stack();
        let account = "azsbmc";
        for (password, rule) in [
            ("Short1!", "7 characters"),
            ("Much-Too-Long-Pw-1", "18 characters"),
            ("Quote'Pass1x", "outside letters, digits"),
            ("alllowercase1", "2 character classes"),
            ("My-azsbmc-Pw1", "account name"),
        ] {
            let violations = fleet.violations(&SecretString::from(password), account);
            assert!(violations.iter().any(|v| v.contains(rule)), "{password}: {violations:?}");
            assert!(violations.iter().all(|v| !v.contains(password)));
        }
        assert!(fleet.violations(&SecretString::from("Good-Pass_42"), account).is_empty());
    }

    #[test]
    fn generated_passwords_satisfy_the_rules_and_differ() {
        let mut fleet = FleetPolicy::azure_stack();
        fleet.intersect(&policy(12, 20, 4, "-_.!+=@", 2));
        let a = fleet.generate("azsbmc").unwrap();
        let b = fleet.generate("azsbmc").unwrap();
        for p in [&a, &b] {
            assert!(fleet.violations(p, "azsbmc").is_empty(), "{:?}", fleet.violations(p, "azsbmc"));
            assert_eq!(p.expose_secret().len(), 16);
        }
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn no_reported_policy_can_weaken_a_generated_password() {
        // A policy that would allow 1-character passwords with one class and no symbols.
        let weak = PasswordPolicy { min_length: 1, max_length: 15, min_classes: 1, ..PasswordPolicy::default() };
        assert!(FleetPolicy::below_generation_floor(&weak).is_none(), "15 characters are above the floor");
        let mut fleet = FleetPolicy::azure_stack();
        fleet.intersect(&weak);
        for _ in 0..50 {
            let p = fleet.generate("azsbmc").unwrap();
            assert!(p.expose_secret().len() >= GENERATED_MIN_LENGTH as usize);
            assert!(classes(p.expose_secret()) >= GENERATED_MIN_CLASSES);
        }
        // One that allows only 8 characters cannot take a generated password at all.
        let short = PasswordPolicy { max_length: 8, ..weak };
        let why = FleetPolicy::below_generation_floor(&short).expect("below the floor");
        assert!(why.contains("at most 8") && why.contains("at least 14"), "{why}");
        fleet.intersect(&short);
        assert!(fleet.generate("azsbmc").unwrap_err().contains("at least 14"));
    }
}
