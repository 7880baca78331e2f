//! Requests to the BMC under work. Paths only: the host decides scheme, address, port and TLS.

use crate::{PluginError, Secret};
use serde::Serialize;

/// Request methods Redfish uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PATCH`
    Patch,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Whether a lost answer leaves the request's effect unknown.
    pub fn changes_state(self) -> bool {
        !matches!(self, Method::Get)
    }
}

/// How a request authenticates; the host splices the credential in at send time.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// No credentials.
    None,
    /// HTTP Basic.
    Basic {
        /// The user name (not a secret: the inventory holds it in clear).
        user: &'a str,
        /// The password handle.
        password: &'a Secret,
    },
    /// A Redfish session token, sent as `X-Auth-Token`.
    Session(&'a Secret),
}

/// A piece of a request body; the host concatenates the parts.
#[derive(Debug)]
pub enum BodyPart<'a> {
    /// Bytes copied as they are.
    Text(String),
    /// A secret written as a JSON string literal (quoted and escaped by the host).
    SecretJsonString(&'a Secret),
}

/// A request to the BMC.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// Absolute path with optional query, e.g. `/redfish/v1/Managers`.
    pub path: String,
    /// Extra headers. Credentials go through [`Request::auth`], never here.
    pub headers: Vec<(String, String)>,
    /// How the request authenticates.
    pub auth: Auth<'a>,
    /// The body, in parts.
    pub body: Vec<BodyPart<'a>>,
}

impl<'a> Request<'a> {
    /// A request without headers, credentials or body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), headers: Vec::new(), auth: Auth::None, body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the credentials.
    pub fn auth(mut self, auth: Auth<'a>) -> Self {
        self.auth = auth;
        self
    }

    /// Sets a JSON body (which may hold secrets) and its content type.
    pub fn json(mut self, body: JsonBody<'a>) -> Self {
        self.headers.push(("Content-Type".into(), "application/json".into()));
        self.body = body.finish();
        self
    }

    /// Whether the request carries a body.
    pub fn has_body(&self) -> bool {
        !self.body.is_empty()
    }
}

/// Builds a JSON object whose members may be secrets, without the plugin ever holding one.
///
/// ```
/// # use bmc_plugin_sdk::http::JsonBody;
/// let body = JsonBody::object().field("UserName", "root");
/// assert_eq!(body.preview(), r#"{"UserName":"root"}"#);
/// let nested = JsonBody::object().nested("Attributes", |a| a.field("Users.2.Enable", true));
/// assert_eq!(nested.preview(), r#"{"Attributes":{"Users.2.Enable":true}}"#);
/// ```
#[derive(Debug, Default)]
pub struct JsonBody<'a> {
    parts: Vec<BodyPart<'a>>,
    text: String,
}

impl<'a> JsonBody<'a> {
    /// An empty JSON object.
    pub fn object() -> Self {
        JsonBody::default()
    }

    fn key(&mut self, name: &str) {
        self.text.push(if self.text.is_empty() && self.parts.is_empty() { '{' } else { ',' });
        // Serialising a &str cannot fail.
        self.text.push_str(&serde_json::to_string(name).unwrap_or_default());
        self.text.push(':');
    }

    /// Adds a plain member.
    pub fn field(mut self, name: &str, value: impl Serialize) -> Self {
        self.key(name);
        match serde_json::to_string(&value) {
            Ok(v) => self.text.push_str(&v),
            Err(_) => self.text.push_str("null"),
        }
        self
    }

    /// Adds a member whose value is a secret, written by the host as a JSON string.
    pub fn secret(mut self, name: &str, secret: &'a Secret) -> Self {
        self.key(name);
        self.parts.push(BodyPart::Text(std::mem::take(&mut self.text)));
        self.parts.push(BodyPart::SecretJsonString(secret));
        self
    }

    /// Adds a member whose value is an object built by `build` (which may hold secrets), e.g.
    /// Dell's `{"Attributes": {"Users.2.Password": <secret>}}`.
    pub fn nested(mut self, name: &str, build: impl FnOnce(JsonBody<'a>) -> JsonBody<'a>) -> Self {
        self.key(name);
        let inner = build(JsonBody::object()).finish();
        self.parts.push(BodyPart::Text(std::mem::take(&mut self.text)));
        self.parts.extend(inner);
        self
    }

    /// The body with each secret shown as `<secret>`.
    pub fn preview(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                BodyPart::Text(t) => out.push_str(t),
                BodyPart::SecretJsonString(_) => out.push_str("<secret>"),
            }
        }
        out.push_str(&self.text);
        out.push_str(if out.is_empty() { "{}" } else { "}" });
        out
    }

    /// The parts the host will concatenate.
    pub fn finish(mut self) -> Vec<BodyPart<'a>> {
        if self.text.is_empty() && self.parts.is_empty() {
            self.text.push('{');
        }
        self.text.push('}');
        self.parts.push(BodyPart::Text(self.text));
        self.parts
    }
}

/// The BMC's answer.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers with lower-case names (`X-Auth-Token` and `Set-Cookie` removed by the host).
    pub headers: Vec<(String, String)>,
    /// The body, as the BMC sent it. An answer holding a secret never reaches the plugin: the
    /// host ends the call instead (`secret-echoed`, or `policy-rejected` for a refused change).
    pub body: Vec<u8>,
    /// The session token the BMC returned, as a handle.
    pub session_token: Option<Secret>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<serde_json::Value, PluginError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| PluginError::Protocol(format!("HTTP {} body is not JSON: {e}", self.status)))
    }
}

/// Why a request produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused to send it.
    Denied(String),
    /// The plugin's capability manifest or the host's secret placement rules forbid the
    /// request; the text names the rule. Nothing was sent.
    Forbidden(String),
    /// No connection or TLS session could be made: the request was not sent.
    Connect(String),
    /// The request may have reached the BMC but no complete answer came back.
    NoResponse(String),
    /// The response exceeded the host's size limit.
    ResponseTooLarge(String),
}

impl HttpError {
    /// The plugin error for a `method` request that failed this way: a lost answer to a
    /// state-changing request is [`PluginError::Ambiguous`], never a plain failure.
    pub fn into_plugin_error(self, method: Method, path: &str) -> PluginError {
        match self {
            HttpError::Denied(m) => PluginError::Protocol(format!("host refused {} {path}: {m}", method.as_str())),
            HttpError::Forbidden(m) => PluginError::Protocol(format!("host forbade {} {path}: {m}", method.as_str())),
            HttpError::Connect(m) => PluginError::Unreachable(m),
            HttpError::NoResponse(m) if method.changes_state() => PluginError::Ambiguous(format!(
                "{} {path} was sent but no answer came back ({m}); it may have been applied",
                method.as_str()
            )),
            HttpError::NoResponse(m) => PluginError::Unreachable(format!("GET {path}: {m}")),
            HttpError::ResponseTooLarge(m) => PluginError::Protocol(m),
        }
    }
}
