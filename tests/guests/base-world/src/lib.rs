//! A plugin exactly as the SDK 0.2.0 built them, before the optional `snmp` export: the
//! `vendor-plugin` world's four exports and nothing else, its API version `0.2.0` and the
//! baseline manifest. Plain Redfish with Basic authentication (DSP0266 requires it): the host
//! must load it, report its SNMPv3 state as "not reported" and still rotate with it.

// The bindings are generated here, not by the SDK (whose world now carries `snmp`).
#![allow(missing_docs)]

wit_bindgen::generate!({ path: "../../../sdk/wit/v0.2", world: "vendor-plugin" });

use bmc::plugin::http::{self, Auth, BodyPart, Method, Request};
use bmc::plugin::secrets::{self, Secret};
use bmc::plugin::types::PasswordPolicy;
use serde_json::Value;

struct BaseWorld;

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";

fn policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 8,
        max_length: 20,
        min_classes: 3,
        allowed_symbols: "-_.".into(),
        reuse_cycle: 0,
        min_change_interval_hours: 0,
        max_repeated_chars: 0,
        forbid_account_name: false,
    }
}

fn secret(name: &str) -> Result<Secret, PluginError> {
    secrets::get(name).map_err(PluginError::Protocol)
}

/// One request, its JSON answer; any status but 2xx is an error of the matching kind.
fn send(
    method: Method,
    path: &str,
    user: &str,
    password: &Secret,
    body: Vec<BodyPart<'_>>,
) -> Result<Value, PluginError> {
    let request = Request {
        method,
        path: path.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        auth: Auth::Basic((user.into(), password)),
        body,
    };
    let response = http::send(&request).map_err(|e| PluginError::Unreachable(format!("{e:?}")))?;
    match response.status {
        200..=299 => Ok(serde_json::from_slice(&response.body).unwrap_or(Value::Null)),
        401 => Err(PluginError::AuthFailed(format!("{method:?} {path}: 401"))),
        status => Err(PluginError::Protocol(format!("{method:?} {path}: {status}"))),
    }
}

/// The URI of `target.account`, read as the login account (which shows the host the account).
fn find(target: &Target, password: &Secret) -> Result<String, PluginError> {
    let collection = send(Method::Get, ACCOUNTS, &target.login_account, password, vec![])?;
    let members = collection.get("Members").and_then(Value::as_array).cloned().unwrap_or_default();
    for member in members {
        let Some(uri) = member.get("@odata.id").and_then(Value::as_str) else { continue };
        let account = send(Method::Get, uri, &target.login_account, password, vec![])?;
        if account.get("UserName").and_then(Value::as_str) == Some(target.account.as_str()) {
            return Ok(uri.to_owned());
        }
    }
    Err(PluginError::AccountNotFound(target.account.clone()))
}

impl Guest for BaseWorld {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "base-world".into(),
            vendor: "Test".into(),
            product: "Standard Redfish".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            families: vec!["Redfish".into()],
            policy: policy(),
        }
    }

    fn probe(target: Target) -> Result<ProbeResult, PluginError> {
        let password = secret("login-password")?;
        let account_uri = find(&target, &password)?;
        Ok(ProbeResult { family: "Redfish".into(), firmware: String::new(), account_uri, policy: policy() })
    }

    fn verify(target: Target) -> Result<(), PluginError> {
        send(Method::Get, ACCOUNTS, &target.login_account, &secret("login-password")?, vec![]).map(drop)
    }

    fn change_password(target: Target) -> Result<(), PluginError> {
        let password = secret("login-password")?;
        let uri = find(&target, &password)?;
        let new = secret("new-password")?;
        let body =
            vec![BodyPart::Text("{\"Password\":".into()), BodyPart::SecretJsonString(&new), BodyPart::Text("}".into())];
        send(Method::Patch, &uri, &target.login_account, &password, body)?;
        if target.account == target.login_account {
            send(Method::Get, ACCOUNTS, &target.account, &new, vec![])?;
        }
        Ok(())
    }
}

export!(BaseWorld);

#[cfg(target_arch = "wasm32")]
#[unsafe(link_section = "bmc:api-version")]
#[used]
static API_VERSION: [u8; 5] = *b"0.2.0";

#[cfg(target_arch = "wasm32")]
#[unsafe(link_section = "bmc:capabilities")]
#[used]
static CAPABILITIES: [u8; BASELINE.len()] = *BASELINE;

#[cfg(target_arch = "wasm32")]
const BASELINE: &[u8; 112] =
    b"GET /redfish/v1/**\nPOST /redfish/v1/SessionService/Sessions\nDELETE {session}\nPATCH {account} password=/Password\n";
