//! Vendor personas: what distinguishes one BMC family's Redfish service from another's.
//!
//! Each rule here comes from the vendors' published material (Dell's iDRAC-Redfish-Scripting,
//! HPE's redfishdocs and iLO REST reference, Lenovo's XCC REST API pages), their message
//! registries and public issues; `lab/README.md` lists the sources. Where no vendor publishes a
//! fact, the persona follows the vendor's documented behaviour and the choice is noted at the
//! field.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The BMC families the lab simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Persona {
    /// Dell iDRAC9 (14G-16G PowerEdge).
    Idrac9,
    /// Dell iDRAC10 (17G PowerEdge).
    Idrac10,
    /// HPE iLO 5 (Gen10).
    Ilo5,
    /// HPE iLO 6 (Gen11).
    Ilo6,
    /// HPE iLO 7 (Gen12).
    Ilo7,
    /// Lenovo XCC, the first XClarity Controller (ThinkSystem SR650 and its generation).
    Xcc1,
    /// Lenovo XCC2 (ThinkSystem V3).
    Xcc2,
    /// Lenovo XCC3 (ThinkSystem V4).
    Xcc3,
    /// A BMC that does what DSP0266 and the DMTF schemas say and nothing else: no `Oem`, plain
    /// ids, strong ETags with optional `If-Match`, 204 on a PATCH, Base-registry messages only,
    /// and the whole password policy in `AccountService` (the generic plugin's BMC).
    DmtfGeneric,
}

impl Persona {
    /// Every persona, in a stable order.
    pub const ALL: [Persona; 9] = [
        Persona::Idrac9,
        Persona::Idrac10,
        Persona::Ilo5,
        Persona::Ilo6,
        Persona::Ilo7,
        Persona::Xcc1,
        Persona::Xcc2,
        Persona::Xcc3,
        Persona::DmtfGeneric,
    ];

    /// The persona's name in fleet specs and on the command line, e.g. `dell-idrac9`.
    pub fn name(self) -> &'static str {
        match self {
            Persona::Idrac9 => "dell-idrac9",
            Persona::Idrac10 => "dell-idrac10",
            Persona::Ilo5 => "hpe-ilo5",
            Persona::Ilo6 => "hpe-ilo6",
            Persona::Ilo7 => "hpe-ilo7",
            Persona::Xcc1 => "lenovo-xcc1",
            Persona::Xcc2 => "lenovo-xcc2",
            Persona::Xcc3 => "lenovo-xcc3",
            Persona::DmtfGeneric => "dmtf-generic",
        }
    }

    /// The vendor this persona belongs to.
    pub fn vendor(self) -> Vendor {
        match self {
            Persona::Idrac9 | Persona::Idrac10 => Vendor::Dell,
            Persona::Ilo5 | Persona::Ilo6 | Persona::Ilo7 => Vendor::Hpe,
            Persona::Xcc1 | Persona::Xcc2 | Persona::Xcc3 => Vendor::Lenovo,
            Persona::DmtfGeneric => Vendor::Generic,
        }
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Persona {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Persona::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Persona::ALL.iter().map(|p| p.name()).collect();
            format!("unknown persona `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

/// The three OEMs, and no OEM at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Dell.
    Dell,
    /// HPE.
    Hpe,
    /// Lenovo.
    Lenovo,
    /// None: the DMTF standard alone (`dmtf-generic`).
    Generic,
}

/// How accounts are identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountIds {
    /// Fixed slots `1..=n`; an empty slot has `UserName: ""` and `Enabled: false`.
    Slots(u32),
    /// Ids unrelated to the name (HPE: `1`, `12`, `65536`), created on POST.
    Variable,
}

/// How the service tags resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtagStyle {
    /// `W/"gen-N"` (iDRAC).
    DellWeak,
    /// `W/"8HEXDIGT"` (iLO).
    HpeWeak,
    /// A quoted hex string, with the documented trailing space inside the quotes (XCC).
    LenovoQuoted,
    /// A strong tag, a quoted hex string as RFC 7232 defines it (DSP0266's own examples).
    Strong,
}

/// Whether account PATCHes need `If-Match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMatchRule {
    /// Optional; a stale tag gets 412.
    Optional,
    /// Required: 428 without it, 412 when stale, `*` accepted (XCC).
    Required,
}

/// What a successful account PATCH returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuccessShape {
    /// 200 with a `Base.Success` message (iDRAC).
    Dell,
    /// 200 with the `error` envelope holding `AccountModified` (iLO).
    HpeEnvelope,
    /// 200 with the updated resource, `Password: null` (XCC).
    Resource,
    /// 204 without a body, which DSP0266 allows for a PATCH (`dmtf-generic`).
    NoContent,
}

/// What repeated failed logins do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedLogins {
    /// The client address is blocked (iDRAC). Dell publishes no thresholds (an assumption):
    /// the persona blocks after `threshold` failures within `window` for `penalty`.
    BlockAddress {
        /// Failures that trigger a block.
        threshold: u32,
        /// Window in which failures are counted.
        window: Duration,
        /// How long the address stays blocked.
        penalty: Duration,
    },
    /// Logins after `after` failures are delayed by `delay` (iLO 5), never locked.
    Delay {
        /// Failures before the delay starts.
        after: u32,
        /// The delay.
        delay: Duration,
    },
    /// The account is locked after `threshold` failures for `duration` (iLO 6 when configured,
    /// XCC by default); the right password is refused while locked.
    Lockout {
        /// Failures that lock.
        threshold: u32,
        /// How long the lock lasts.
        duration: Duration,
    },
}

/// The password rules a persona enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRules {
    /// Fewest characters.
    pub min_length: u32,
    /// Most characters.
    pub max_length: u32,
    /// The complexity rule.
    pub complexity: Complexity,
    /// Previous passwords refused (0: no history).
    pub reuse_cycle: u32,
    /// Hours between two changes of one account (0: no limit).
    pub min_change_interval_hours: u32,
    /// Longest run of one character (0: no limit).
    pub max_repeated_chars: u32,
}

/// Complexity rules as each vendor documents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Complexity {
    /// None.
    None,
    /// iDRAC9 3.x UG: one upper, one lower, one digit, one special.
    AllFourClasses,
    /// iLO `EnforcePasswordComplexity`: three of upper, lower, digit, other.
    ThreeOfFour,
    /// XCC "complex password": a letter and a digit, two of {upper, lower, special}, no
    /// whitespace, and not the user name forward or reversed.
    Lenovo,
}

/// Everything that makes a persona behave like its vendor's firmware.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Which persona.
    pub persona: Persona,
    /// Service root `Vendor`.
    pub vendor: &'static str,
    /// Service root `Product`.
    pub product: &'static str,
    /// The `Oem` key on the service root and accounts (`Dell`, `Hpe`, `Lenovo`; empty: no `Oem`).
    pub oem: &'static str,
    /// `RedfishVersion`.
    pub redfish_version: &'static str,
    /// The manager's id (`iDRAC.Embedded.1`, `1`).
    pub manager_id: &'static str,
    /// The manager's `Model` (drives Dell's generation detection).
    pub manager_model: &'static str,
    /// Manager `FirmwareVersion`.
    pub firmware: &'static str,
    /// How accounts are identified.
    pub account_ids: AccountIds,
    /// Account collections the service serves, the first being `AccountService.Accounts`.
    pub account_collections: &'static [&'static str],
    /// Whether `@odata.id` values end with `/` (iLO 5).
    pub trailing_slash: bool,
    /// The tag format.
    pub etag: EtagStyle,
    /// Whether If-Match is required.
    pub if_match: IfMatchRule,
    /// Success body of an account PATCH.
    pub success: SuccessShape,
    /// Failed-login handling.
    pub failed_logins: FailedLogins,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Status and MessageId when sessions are exhausted.
    pub session_limit: (u16, &'static str),
    /// MessageId of a refused credential.
    pub unauthorized: &'static str,
    /// Status of a session DELETE.
    pub logout_status: u16,
    /// Password rules.
    pub policy: PolicyRules,
    /// The account a fresh BMC has: (id, user name).
    pub default_account: (u32, &'static str),
    /// Whether an account's sessions die when its password changes.
    pub password_change_ends_sessions: bool,
    /// Registry prefix for vendor messages (`IDRAC.2.9`, `iLO.2.34`, `Lenovo.1.0`).
    pub registry: &'static str,
    /// `Content-Type` of JSON answers (iDRAC names the OData metadata level).
    pub json_media_type: &'static str,
}

const HOUR: Duration = Duration::from_secs(3600);

impl Persona {
    /// The persona's behaviour.
    pub fn profile(self) -> Profile {
        let dell = |persona, model, firmware, slots, collections: &'static [&'static str], version| Profile {
            persona,
            vendor: "Dell",
            product: "Integrated Dell Remote Access Controller",
            oem: "Dell",
            redfish_version: version,
            manager_id: "iDRAC.Embedded.1",
            manager_model: model,
            firmware,
            account_ids: AccountIds::Slots(slots),
            account_collections: collections,
            trailing_slash: false,
            etag: EtagStyle::DellWeak,
            if_match: IfMatchRule::Optional,
            success: SuccessShape::Dell,
            failed_logins: FailedLogins::BlockAddress {
                threshold: 5,
                window: Duration::from_secs(60),
                penalty: Duration::from_secs(300),
            },
            max_sessions: 8,
            session_limit: (503, "Base.1.18.SessionLimitExceeded"),
            unauthorized: "Base.1.18.AccessDenied",
            logout_status: 200,
            policy: PolicyRules {
                min_length: 1,
                max_length: 20,
                complexity: Complexity::AllFourClasses,
                reuse_cycle: 0,
                min_change_interval_hours: 0,
                max_repeated_chars: 0,
            },
            default_account: (2, "root"),
            password_change_ends_sessions: true,
            registry: "IDRAC.2.9",
            json_media_type: "application/json;odata.metadata=minimal;charset=utf-8",
        };
        let hpe = |persona, product, model, firmware, trailing_slash, failed_logins, redfish_version| Profile {
            persona,
            vendor: "HPE",
            product,
            oem: "Hpe",
            redfish_version,
            manager_id: "1",
            manager_model: model,
            firmware,
            account_ids: AccountIds::Variable,
            account_collections: &["/redfish/v1/AccountService/Accounts"],
            trailing_slash,
            etag: EtagStyle::HpeWeak,
            if_match: IfMatchRule::Optional,
            success: SuccessShape::HpeEnvelope,
            failed_logins,
            max_sessions: 10,
            session_limit: (403, "iLO.2.34.CreateLimitReachedForResource"),
            unauthorized: "iLO.2.34.UnauthorizedLoginAttempt",
            logout_status: 200,
            policy: PolicyRules {
                min_length: 8,
                max_length: 39,
                // iLO ships with `EnforcePasswordComplexity` off (HPE AccountService capture);
                // switched on, it is three of four classes.
                complexity: Complexity::None,
                reuse_cycle: 0,
                min_change_interval_hours: 0,
                max_repeated_chars: 0,
            },
            default_account: (1, "Administrator"),
            // HPE does not document it; the persona follows the standard and
            // ends the sessions, so plugins must re-authenticate after a self-change.
            password_change_ends_sessions: true,
            registry: "iLO.2.34",
            json_media_type: "application/json; charset=utf-8",
        };
        let lenovo = |persona, model, firmware, slots, session_limit, unauthorized| Profile {
            persona,
            vendor: "Lenovo",
            product: "ThinkSystem",
            oem: "Lenovo",
            redfish_version: "1.17.0",
            manager_id: "1",
            manager_model: model,
            firmware,
            account_ids: AccountIds::Slots(slots),
            account_collections: &["/redfish/v1/AccountService/Accounts"],
            trailing_slash: false,
            etag: EtagStyle::LenovoQuoted,
            if_match: IfMatchRule::Required,
            success: SuccessShape::Resource,
            failed_logins: FailedLogins::Lockout { threshold: 5, duration: Duration::from_secs(60) },
            max_sessions: 16,
            session_limit,
            unauthorized,
            logout_status: 204,
            policy: PolicyRules {
                min_length: 8,
                max_length: 20, // 255, but 20 for accounts with IPMI access (the lab default)
                complexity: Complexity::Lenovo,
                reuse_cycle: 5,
                min_change_interval_hours: 0,
                max_repeated_chars: 2,
            },
            default_account: (1, "USERID"),
            password_change_ends_sessions: true,
            registry: "Lenovo.1.0",
            json_media_type: "application/json; charset=utf-8",
        };
        match self {
            Persona::Idrac9 => dell(
                self,
                "14G Monolithic",
                "7.00.00.00",
                16,
                &["/redfish/v1/AccountService/Accounts", "/redfish/v1/Managers/iDRAC.Embedded.1/Accounts"],
                "1.18.0",
            ),
            Persona::Idrac10 => {
                dell(self, "17G Monolithic", "1.20.00.00", 32, &["/redfish/v1/AccountService/Accounts"], "1.20.0")
            }
            Persona::Ilo5 => hpe(
                self,
                "ProLiant DL380 Gen10",
                "iLO 5",
                "iLO 5 v3.10",
                true,
                // The captured defaults: `AuthFailuresBeforeDelay` 1, `AuthFailureDelayTimeSeconds` 10.
                FailedLogins::Delay { after: 1, delay: Duration::from_secs(10) },
                "1.13.0",
            ),
            Persona::Ilo6 => hpe(
                self,
                "ProLiant DL380 Gen11",
                "iLO 6",
                "iLO 6 v1.62",
                false,
                FailedLogins::Lockout { threshold: 5, duration: Duration::from_secs(300) },
                "1.13.0",
            ),
            // HPE's "Adapting from iLO 6": the version is `Major.Minor.Patch date` with no
            // `iLO 7 v` prefix (the generation is only in `ManagerType`), Redfish 1.20.0
            // (the iLO 7 changelog). The rest is iLO 6's behaviour, an assumption (lab/README).
            Persona::Ilo7 => hpe(
                self,
                "ProLiant DL380 Gen12",
                "iLO 7",
                "1.12.00 Mar 28 2025",
                false,
                FailedLogins::Lockout { threshold: 5, duration: Duration::from_secs(300) },
                "1.20.0",
            ),
            // The first XCC (ThinkSystem SR650, firmware builds `CDI3…`): the 428 on a PATCH
            // without `If-Match` was first reported against it (ansible/ansible#56050, 2019,
            // before XCC2 shipped). Its limits and messages are XCC2's, an assumption (lab/README).
            Persona::Xcc1 => lenovo(
                self,
                "XCC",
                "CDI3B2Z 9.95",
                12,
                (403, "Base.1.17.SessionLimitExceeded"),
                "Base.1.17.NoValidSession",
            ),
            Persona::Xcc2 => lenovo(
                self,
                "XCC2",
                "ESE122T 3.10",
                12,
                (403, "Base.1.17.SessionLimitExceeded"),
                "Base.1.17.NoValidSession",
            ),
            Persona::Xcc3 => lenovo(
                self,
                "XCC3",
                "CDI3A6N 1.20",
                14,
                (503, "Base.1.17.SessionLimitExceeded"),
                "Base.1.17.AccessDenied",
            ),
            Persona::DmtfGeneric => generic(),
        }
    }
}

/// The `dmtf-generic` persona: every value is the standard's (DSP0266, the `AccountService` and
/// `ManagerAccount` schemas, the Base registry) or, where the standard leaves a choice, the plain
/// one, so a plugin that passes here relies on nothing a vendor added.
fn generic() -> Profile {
    Profile {
        persona: Persona::DmtfGeneric,
        // No vendor claims it: `discover` matches no profile to it, so the generic profile is
        // only ever used where an inventory names it.
        vendor: "Generic",
        product: "Redfish Service",
        oem: "",
        redfish_version: "1.18.0",
        manager_id: "1",
        manager_model: "Redfish BMC",
        firmware: "1.0.0",
        // `Accounts/{n}`, ids handed out in order as accounts are created.
        account_ids: AccountIds::Variable,
        account_collections: &["/redfish/v1/AccountService/Accounts"],
        trailing_slash: false,
        etag: EtagStyle::Strong,
        if_match: IfMatchRule::Optional,
        success: SuccessShape::NoContent,
        // `AccountLockoutThreshold` and `AccountLockoutDuration`, published in AccountService.
        failed_logins: FailedLogins::Lockout { threshold: 5, duration: Duration::from_secs(60) },
        max_sessions: 16,
        session_limit: (503, "Base.1.18.SessionLimitExceeded"),
        unauthorized: "Base.1.18.AccessDenied",
        logout_status: 204,
        // What `MinPasswordLength` and `MaxPasswordLength` say is the whole policy: the standard
        // has no complexity, history or interval properties to publish.
        policy: PolicyRules {
            min_length: 8,
            max_length: 64,
            complexity: Complexity::None,
            reuse_cycle: 0,
            min_change_interval_hours: 0,
            max_repeated_chars: 0,
        },
        default_account: (1, "admin"),
        password_change_ends_sessions: true,
        registry: "Base.1.18",
        json_media_type: "application/json; charset=utf-8",
    }
}

impl Profile {
    /// The lockout period of a persona that locks accounts.
    pub fn lockout_duration(&self) -> Option<Duration> {
        match self.failed_logins {
            FailedLogins::Lockout { duration, .. } => Some(duration),
            _ => None,
        }
    }

    /// The minimum change interval as a duration.
    pub fn min_change_interval(&self) -> Duration {
        HOUR * self.policy.min_change_interval_hours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for p in Persona::ALL {
            assert_eq!(p.name().parse::<Persona>(), Ok(p));
        }
        let err = "dell-idrac7".parse::<Persona>().unwrap_err();
        assert!(err.contains("dell-idrac9") && err.contains("lenovo-xcc3"), "{err}");
    }
}
