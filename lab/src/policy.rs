//! Password rule checks, with the refusal each vendor sends.

use crate::persona::{Complexity, PolicyRules};

/// Why a password was refused, in the persona's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Too short or too long.
    Length {
        /// Minimum.
        min: u32,
        /// Maximum.
        max: u32,
    },
    /// Not complex enough.
    Complexity(&'static str),
    /// Too many identical characters in a row.
    Repeats(u32),
    /// Contains the user name (forward or reversed).
    ContainsUserName,
    /// Used within the reuse cycle.
    Reused(u32),
    /// Changed too recently.
    TooSoon(u32),
}

fn classes(password: &str) -> (bool, bool, bool, bool) {
    let upper = password.chars().any(|c| c.is_ascii_uppercase());
    let lower = password.chars().any(|c| c.is_ascii_lowercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let other = password.chars().any(|c| !c.is_ascii_alphanumeric());
    (upper, lower, digit, other)
}

/// Checks length, complexity, repeats and the user-name rule (history and interval are checked
/// by the account, which keeps them).
pub fn check(rules: &PolicyRules, user: &str, password: &str) -> Result<(), Violation> {
    let len = password.chars().count() as u32;
    if len < rules.min_length || len > rules.max_length {
        return Err(Violation::Length { min: rules.min_length, max: rules.max_length });
    }
    let (upper, lower, digit, other) = classes(password);
    match rules.complexity {
        Complexity::None => {}
        Complexity::AllFourClasses if !(upper && lower && digit && other) => {
            return Err(Violation::Complexity(
                "at least one uppercase letter, one lowercase letter, one digit and one special character",
            ));
        }
        Complexity::ThreeOfFour if [upper, lower, digit, other].iter().filter(|c| **c).count() < 3 => {
            return Err(Violation::Complexity("three of the following: uppercase, lowercase, numerals, and other"));
        }
        Complexity::Lenovo => {
            let letter = upper || lower;
            let two_of = [upper, lower, other].iter().filter(|c| **c).count() >= 2;
            if !letter || !digit || !two_of || password.chars().any(char::is_whitespace) {
                return Err(Violation::Complexity(
                    "at least one letter and one digit, two of uppercase, lowercase and special characters, and no whitespace",
                ));
            }
            let lowered = password.to_lowercase();
            let name = user.to_lowercase();
            let reversed: String = name.chars().rev().collect();
            if !name.is_empty() && (lowered.contains(&name) || lowered.contains(&reversed)) {
                return Err(Violation::ContainsUserName);
            }
        }
        _ => {}
    }
    if rules.max_repeated_chars > 0 {
        let mut run = 0;
        let mut last = None;
        for c in password.chars() {
            run = if Some(c) == last { run + 1 } else { 1 };
            last = Some(c);
            if run > rules.max_repeated_chars {
                return Err(Violation::Repeats(rules.max_repeated_chars));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::Persona;

    fn rules(p: Persona) -> PolicyRules {
        p.profile().policy
    }

    #[test]
    fn dell_wants_all_four_classes_and_at_most_20() {
        let r = rules(Persona::Idrac9);
        assert_eq!(check(&r, "root", "Calvin-2024"), Ok(()));
        assert!(matches!(check(&r, "root", "calvin-2024"), Err(Violation::Complexity(_))));
        assert_eq!(check(&r, "root", &"Aa1-".repeat(6)), Err(Violation::Length { min: 1, max: 20 }));
    }

    #[test]
    fn hpe_wants_8_to_39_and_three_of_four_once_complexity_is_on() {
        let mut r = rules(Persona::Ilo5);
        assert_eq!(check(&r, "admin", "password1"), Ok(()), "complexity ships off");
        r.complexity = Complexity::ThreeOfFour;
        assert_eq!(check(&r, "admin", "Password1"), Ok(()));
        assert!(matches!(check(&r, "admin", "password1"), Err(Violation::Complexity(_))));
        assert_eq!(check(&r, "admin", "Pass1"), Err(Violation::Length { min: 8, max: 39 }));
        assert_eq!(check(&r, "admin", &"Pa1".repeat(14)), Err(Violation::Length { min: 8, max: 39 }));
    }

    #[test]
    fn lenovo_complexity_repeats_and_user_name() {
        let r = rules(Persona::Xcc2);
        assert_eq!(check(&r, "USERID", "Passw0rd-x"), Ok(()));
        assert!(matches!(check(&r, "USERID", "passw0rdxx"), Err(Violation::Complexity(_))));
        assert!(matches!(check(&r, "USERID", "Pass w0rd1"), Err(Violation::Complexity(_))));
        assert_eq!(check(&r, "USERID", "Paaassw0rd"), Err(Violation::Repeats(2)));
        assert_eq!(check(&r, "USERID", "Xuserid-9"), Err(Violation::ContainsUserName));
        assert_eq!(check(&r, "USERID", "Xdiresu-9"), Err(Violation::ContainsUserName));
    }
}
