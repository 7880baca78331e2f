//! A guest's request, checked and assembled: the path must stay on the BMC, headers must not
//! carry credentials, and secrets are spliced in only here, at send time.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Request methods a guest may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.to_http().as_str())
    }
}

impl Method {
    pub(crate) fn to_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Patch => http::Method::PATCH,
            Method::Put => http::Method::PUT,
            Method::Delete => http::Method::DELETE,
        }
    }
}

/// Credentials of a request, as secrets the guest never saw.
#[derive(Clone)]
pub enum Auth {
    /// None.
    None,
    /// HTTP Basic.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Arc<SecretString>,
    },
    /// `X-Auth-Token`.
    Session(Arc<SecretString>),
}

/// A piece of a body.
#[derive(Clone)]
pub enum Part {
    /// Text as the guest wrote it.
    Text(String),
    /// A secret, written as a JSON string literal.
    SecretJson(Arc<SecretString>),
}

/// A request on its way to the BMC.
#[derive(Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Absolute path (with optional query).
    pub path: String,
    /// The guest's own headers.
    pub headers: Vec<(String, String)>,
    /// Credentials.
    pub auth: Auth,
    /// The body, in parts.
    pub body: Vec<Part>,
}

/// Headers a guest may not set: credentials travel only through `auth`, and the transport
/// headers belong to the host.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-auth-token",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "proxy-connection",
    // Side channels: a compressed or partial answer would let a guest learn the length or the
    // bytes of an echoed secret the host cannot recognise; `Expect` would split the exchange.
    "accept-encoding",
    "content-encoding",
    "range",
    "if-range",
    "expect",
];

/// Response headers a guest never sees: they describe the bytes on the wire, so after the host
/// has rewritten or refused a body they would tell the guest what was there.
pub const HIDDEN_RESPONSE_HEADERS: &[&str] =
    &["content-length", "content-range", "content-encoding", "transfer-encoding", "x-auth-token", "set-cookie"];

/// Most headers a guest may add to one request.
pub const MAX_HEADERS: usize = 32;
/// Longest header name or value a guest may send.
pub const MAX_HEADER_LEN: usize = 8 << 10;
/// Longest path (with query) a guest may send.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest Basic user name (Redfish account names are at most a few dozen characters).
pub const MAX_USER_LEN: usize = 256;
/// Largest request body (Redfish requests are a few hundred bytes).
pub const MAX_BODY_LEN: usize = 64 << 10;

/// Checks every guest-chosen size of a request before the host does anything else with it: what
/// a guest sends must never cost the host more than these bounds, in memory or in time.
pub fn check_sizes(request: &Request) -> Result<(), String> {
    if request.path.len() > MAX_PATH_LEN {
        return Err(format!("path is {} bytes long; the limit is {MAX_PATH_LEN}", request.path.len()));
    }
    if request.headers.len() > MAX_HEADERS {
        return Err(format!("{} headers; the limit is {MAX_HEADERS}", request.headers.len()));
    }
    if let Some((name, value)) =
        request.headers.iter().find(|(n, v)| n.len() > MAX_HEADER_LEN || v.len() > MAX_HEADER_LEN)
    {
        return Err(format!(
            "header `{}` is {} bytes long; the limit is {MAX_HEADER_LEN} for a name or a value",
            shorten(name),
            name.len().max(value.len())
        ));
    }
    if let Auth::Basic { user, .. } = &request.auth {
        if user.len() > MAX_USER_LEN {
            return Err(format!("the Basic user name is {} bytes long; the limit is {MAX_USER_LEN}", user.len()));
        }
        // RFC 7617: a user-id containing a colon cannot be told apart from the password.
        if let Some(c) = user.chars().find(|c| c.is_control() || *c == ':') {
            return Err(format!("the Basic user name contains {c:?}, which is not allowed"));
        }
    }
    let body: usize = request.body.iter().map(|p| if let Part::Text(t) = p { t.len() } else { 0 }).sum();
    if body > MAX_BODY_LEN {
        return Err(format!("the body is {body} bytes long; the limit is {MAX_BODY_LEN}"));
    }
    Ok(())
}

/// Checks that a path can only address the BMC the job is bound to.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!("path is {} bytes long; the limit is {MAX_PATH_LEN}", path.len()));
    }
    if !path.starts_with('/') {
        return Err(format!("`{}` is not an absolute path: the host decides scheme, address and port", shorten(path)));
    }
    if path.starts_with("//") {
        return Err(format!("`{}` names an authority; only paths on the job's BMC are allowed", shorten(path)));
    }
    if let Some(c) = path.chars().find(|c| c.is_control() || c.is_whitespace() || *c == '\\' || *c == '#') {
        return Err(format!("path `{}` contains {c:?}, which is not allowed", shorten(path)));
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Checks and converts a guest's headers.
pub fn check_headers(headers: &[(String, String)]) -> Result<http::HeaderMap, String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("{} headers; the limit is {MAX_HEADERS}", headers.len()));
    }
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(format!("header `{name}` may not be set by a plugin; credentials go through `auth`"));
        }
        let name = http::HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let value =
            http::HeaderValue::from_str(value).map_err(|_| format!("the value of header `{name}` is not valid"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Whether any part of a body is a secret (such bodies are never logged).
pub fn has_secret(body: &[Part]) -> bool {
    body.iter().any(|p| matches!(p, Part::SecretJson(_)))
}

/// Concatenates a body, writing each secret as a JSON string literal. The buffer zeroizes itself
/// when the transport drops it.
pub fn splice(body: &[Part]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for part in body {
        match part {
            Part::Text(t) => out.extend_from_slice(t.as_bytes()),
            Part::SecretJson(s) => {
                let literal = Zeroizing::new(serde_json::to_string(s.expose_secret()).unwrap_or_default());
                out.extend_from_slice(literal.as_bytes());
            }
        }
    }
    out
}

/// The Base64 `user:password` of a Basic credential (what a BMC could echo back).
pub fn basic_token(user: &str, password: &SecretString) -> Zeroizing<String> {
    let secret = password.expose_secret().as_bytes();
    let mut plain = Zeroizing::new(Vec::with_capacity(user.len() + 1 + secret.len()));
    plain.extend_from_slice(user.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(secret);
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Arc<SecretString> {
        Arc::new(SecretString::from(s.to_owned()))
    }

    #[test]
    fn paths_stay_on_the_bmc() {
        assert!(check_path("/redfish/v1/AccountService/Accounts/2").is_ok());
        assert!(check_path("/redfish/v1/Accounts?$expand=.").is_ok());
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "redfish/v1",
            "",
            "/a b",
            "/a\r\nHost: x",
            "/a\\b",
            "/a#frag",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_path(&format!("/{}", "a".repeat(MAX_PATH_LEN))).unwrap_err().contains("limit"));
    }

    #[test]
    fn credentials_cannot_be_smuggled_in_headers() {
        for name in [
            "Authorization",
            "x-auth-token",
            "Cookie",
            "Host",
            "Proxy-Authorization",
            "Transfer-Encoding",
            "Proxy-Foo",
            "Accept-Encoding",
            "Range",
            "Expect",
            "TE",
            "Connection",
        ] {
            let err = check_headers(&[(name.into(), "v".into())]).unwrap_err();
            assert!(err.contains("may not be set"), "{name}: {err}");
        }
        assert!(check_headers(&[("If-Match".into(), "W/\"1\"".into())]).is_ok());
        assert!(check_headers(&[("bad name".into(), "v".into())]).is_err());
        assert!(check_headers(&[("x".into(), "a\nb".into())]).is_err());
        let many: Vec<_> = (0..=MAX_HEADERS).map(|i| (format!("x-{i}"), "v".to_string())).collect();
        assert!(check_headers(&many).is_err());
    }

    #[test]
    fn guest_chosen_sizes_are_bounded() {
        let get = |auth: Auth| Request { method: Method::Get, path: "/x".into(), headers: vec![], auth, body: vec![] };
        let basic = |user: String| get(Auth::Basic { user, password: secret("Pw-12345") });
        assert!(check_sizes(&basic("root".into())).is_ok());
        assert!(check_sizes(&basic("a".repeat(MAX_USER_LEN + 1))).unwrap_err().contains("limit is 256"));
        assert!(check_sizes(&basic("ro:ot".into())).unwrap_err().contains("':'"));
        assert!(check_sizes(&basic("ro\rot".into())).is_err());
        let header = Request { headers: vec![("x-big".into(), "v".repeat(MAX_HEADER_LEN + 1))], ..get(Auth::None) };
        assert!(check_sizes(&header).unwrap_err().contains("x-big"));
        let body = Request { body: vec![Part::Text("x".repeat(MAX_BODY_LEN + 1))], ..get(Auth::None) };
        assert!(check_sizes(&body).unwrap_err().contains("body"));
    }

    #[test]
    fn secrets_are_spliced_as_escaped_json_strings() {
        let tricky = r#"a"b\c/ü€😀 	"#;
        let body = [Part::Text(r#"{"Password":"#.into()), Part::SecretJson(secret(tricky)), Part::Text("}".into())];
        let spliced = splice(&body);
        let value: serde_json::Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(value["Password"], tricky);
        assert!(std::str::from_utf8(&spliced).unwrap().contains(r#"a\"b\\c"#));
        assert!(has_secret(&body));
        assert!(!has_secret(&[Part::Text("{}".into())]));
    }

    #[test]
    fn basic_token_is_standard_base64() {
        assert_eq!(basic_token("root", &SecretString::from("calvin".to_owned())).as_str(), "cm9vdDpjYWx2aW4=");
    }
}
