//! What travels on the wire: the request and answer types the state machine speaks, the headers
//! every Redfish answer carries, and the Redfish error envelope.
//!
//! Kept apart from the resources so every resource answers in the same shape: DSP0266 (the DMTF
//! Redfish specification) fixes the error envelope (`error` with `code`, `message` and
//! `@Message.ExtendedInfo`), the `OData-Version: 4.0` header, and the `Allow` / `Link` headers of a
//! successful read; the MessageIds come from the DMTF Base message registry. Resources build the
//! DMTF shape; [`Bmc::in_dialect`] then rewrites it where a vendor departs from it (iLO's bare
//! `iLO.0.10.ExtendedInfo` envelope and its slash-form echoes), so no resource needs to know.

use super::Bmc;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

/// A request as the state machine sees it.
#[derive(Clone, Debug)]
pub struct LabRequest {
    /// Method, upper case.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Query string (without `?`), possibly empty.
    pub query: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: IpAddr,
}

impl LabRequest {
    /// A request without headers or body from 127.0.0.1 (for tests).
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        LabRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: IpAddr::from([127, 0, 0, 1]),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.header("content-type", "application/json")
    }

    /// Adds HTTP Basic credentials.
    pub fn basic(self, user: &str, password: &str) -> Self {
        let token = base64(format!("{user}:{password}").as_bytes());
        self.header("authorization", &format!("Basic {token}"))
    }

    /// Adds a session token.
    pub fn token(self, token: &str) -> Self {
        self.header("x-auth-token", token)
    }

    pub(super) fn get_header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Clone, Debug)]
pub struct LabResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// JSON body (`Null`: none).
    pub body: Value,
    /// A non-JSON body with its content type (the OData `$metadata` document).
    pub text: Option<(&'static str, String)>,
    /// Hold the answer this long (iLO's login delay).
    pub delay: Duration,
}

impl LabResponse {
    pub(super) fn json(status: u16, body: Value) -> Self {
        LabResponse { status, headers: Vec::new(), body, text: None, delay: Duration::ZERO }
    }

    pub(super) fn empty(status: u16) -> Self {
        LabResponse::json(status, Value::Null)
    }

    pub(super) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The MessageIds in the body's `@Message.ExtendedInfo` (error envelope or top level).
    pub fn message_ids(&self) -> Vec<String> {
        let lists = [self.body.pointer("/error/@Message.ExtendedInfo"), self.body.get("@Message.ExtendedInfo")];
        lists
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|m| m.get("MessageId").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }
}

// ---- messages and the error envelope ----------------------------------------------------

/// The Base message registry the lab's standard messages come from (`Base.1.18.*`).
pub(super) const BASE_REGISTRY: &str = "Base.1.18";

/// A message of `@Message.ExtendedInfo`.
pub(super) fn message(id: &str, text: &str, args: &[&str], severity: &str, resolution: &str) -> Value {
    json!({"@odata.type": "#Message.v1_1_1.Message", "MessageId": id, "Message": text, "MessageArgs": args,
           "Severity": severity, "MessageSeverity": severity, "Resolution": resolution})
}

/// The Redfish error envelope.
pub(super) fn error(status: u16, code: &str, messages: Vec<Value>) -> LabResponse {
    LabResponse::json(
        status,
        json!({"error": {"code": code, "message": "A general error has occurred. See ExtendedInfo for more information.",
                         "@Message.ExtendedInfo": messages}}),
    )
}

/// The `Base.Success` body of answers that carry no resource.
pub(super) fn success_message() -> Value {
    json!({"@Message.ExtendedInfo": [message("Base.1.18.Success", "The request completed successfully.", &[], "OK", "None")]})
}

/// 500 `InternalError` (a fault; nothing applied).
pub fn internal_error() -> LabResponse {
    error(
        500,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.InternalError",
            "The request failed due to an internal service error.  The service is still operational.",
            &[],
            "Critical",
            "Resubmit the request.  If the problem persists, consider resetting the service.",
        )],
    )
}

/// 412 `PreconditionFailed`: a stale tag, or (as a fault) a current one refused anyway.
pub fn stale_etag() -> LabResponse {
    error(
        412,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.PreconditionFailed",
            "The ETag supplied did not match the ETag required to change this resource.",
            &[],
            "Critical",
            "Try the operation again using the appropriate ETag.",
        )],
    )
}

/// 412 `HeaderInvalid`: an `OData-Version` other than 4.0.
pub(super) fn unsupported_odata_version(version: &str) -> LabResponse {
    error(
        412,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.HeaderInvalid",
            &format!("The header value '{version}' for OData-Version is not supported."),
            &[version],
            "Critical",
            "Send OData-Version: 4.0.",
        )],
    )
}

/// 400 `MalformedJSON`.
pub(super) fn malformed() -> LabResponse {
    error(
        400,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.MalformedJSON",
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
            &[],
            "Critical",
            "Ensure that the request body is valid JSON and resubmit the request.",
        )],
    )
}

/// 404 `ResourceNotFound`, with the Base registry's two arguments: the resource's type and the
/// name (the last URI segment) that matched nothing.
pub fn not_found(path: &str) -> LabResponse {
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let name = segments.next().unwrap_or("");
    let kind = resource_type(segments.next().unwrap_or(""));
    error(
        404,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.ResourceNotFound",
            &format!("The requested resource of type {kind} named '{name}' was not found."),
            &[kind, name],
            "Critical",
            "Provide a valid resource identifier and resubmit the request.",
        )],
    )
}

/// The schema of a collection's members, named by the collection's URI segment.
fn resource_type(collection: &str) -> &'static str {
    match collection {
        "Accounts" => "ManagerAccount",
        "Sessions" => "Session",
        "Roles" => "Role",
        "Systems" => "ComputerSystem",
        "Chassis" => "Chassis",
        "Managers" => "Manager",
        "Registries" => "MessageRegistryFile",
        "JsonSchemas" => "JsonSchemaFile",
        _ => "Resource",
    }
}

/// 405 `OperationNotAllowed`, with the `Allow` header DSP0266 requires.
pub(super) fn method_not_allowed(path: &str) -> LabResponse {
    error(
        405,
        "Base.1.18.GeneralError",
        vec![message(
            "Base.1.18.OperationNotAllowed",
            "The HTTP method is not allowed on this resource.",
            &[],
            "Critical",
            "None.",
        )],
    )
    .with_header("Allow", allowed_methods(path))
}

// ---- headers ----------------------------------------------------------------------------

/// Headers every Redfish answer carries (DSP0266 "Response headers").
pub(super) fn standard_headers(request: &LabRequest, mut response: LabResponse) -> LabResponse {
    response.headers.push(("OData-Version".into(), "4.0".into()));
    response.headers.push(("Cache-Control".into(), "no-cache".into()));
    let read = request.method == "GET" || request.method == "HEAD";
    if read && (200..300).contains(&response.status) {
        if response.header("allow").is_none() {
            response.headers.push(("Allow".into(), allowed_methods(request.path.trim_end_matches('/')).into()));
        }
        if let Some(kind) = response.body.get("@odata.type").and_then(Value::as_str) {
            let schema = kind.trim_start_matches('#').split('.').next().unwrap_or("");
            response.headers.push(("Link".into(), format!("</redfish/v1/Schemas/{schema}.json>; rel=describedby")));
        }
    }
    response
}

/// The methods a resource supports, for `Allow`.
fn allowed_methods(path: &str) -> &'static str {
    if path.contains("/Accounts/") && !path.ends_with("/Accounts") {
        "GET, HEAD, PATCH, DELETE"
    } else if path.ends_with("/Accounts") || path.ends_with("/Sessions") {
        "GET, HEAD, POST"
    } else if path.contains("/Sessions/") {
        "GET, HEAD, DELETE"
    } else if path.ends_with("/AccountService") {
        "GET, HEAD, PATCH"
    } else {
        "GET, HEAD"
    }
}

pub(super) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

pub(super) fn unbase64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

// ---- the vendor's dialect ------------------------------------------------------------

/// iLO's error envelope: the fixed `iLO.0.10.ExtendedInfo` code and pointer text, and messages
/// that carry only `MessageId` and, when there are any, `MessageArgs` (HPE's error captures in
/// redfishdocs: no `Message`, `Severity` or `Resolution` text).
fn hpe_error_envelope(body: &mut Value) {
    let Some(error) = body.get_mut("error") else {
        return;
    };
    let messages: Vec<Value> = error
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let mut bare = json!({"MessageId": m["MessageId"]});
            if let Some(args) = m.get("MessageArgs").filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
                bare["MessageArgs"] = args.clone();
            }
            bare
        })
        .collect();
    *error = json!({"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
                    "@Message.ExtendedInfo": messages});
}

impl Bmc {
    /// Puts an answer into the persona's dialect. iLO rewrites its error envelopes, and echoes a
    /// resource's `@odata.id` in the trailing-slash form the request used (links to other
    /// resources keep the persona's form).
    pub fn in_dialect(&self, request: &LabRequest, mut response: LabResponse) -> LabResponse {
        if self.profile.persona.vendor() != crate::persona::Vendor::Hpe {
            return response;
        }
        hpe_error_envelope(&mut response.body);
        let asked = request.path.as_str();
        if let Some(id) = response.body.get_mut("@odata.id")
            && id.as_str().is_some_and(|id| id != asked && id.trim_end_matches('/') == asked.trim_end_matches('/'))
        {
            *id = Value::String(asked.to_owned());
        }
        response
    }
}

// ---- URIs ---------------------------------------------------------------------

impl Bmc {
    /// A URI in the persona's style (iLO 5 ends resource URIs with `/`).
    pub(super) fn slash(&self, uri: String) -> String {
        if self.profile.trailing_slash { uri + "/" } else { uri }
    }
}
