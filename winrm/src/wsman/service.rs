//! The service side of the WS-Man shell operations, as the PEP simulator needs it: reading a
//! request envelope, and writing the answers (and faults) a Windows WinRM service sends.

use super::{SHELL, TIMED_OUT, TRANSFER, upper};
use crate::psrp::message::Guid;
use crate::xml::{self, escape};
use base64::Engine as _;
use std::time::Duration;

/// The operation a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a shell (runspace pool).
    Create,
    /// Start a pipeline.
    Command,
    /// Input for the pool or a pipeline.
    Send,
    /// Poll for output.
    Receive,
    /// Signal a pipeline.
    Signal,
    /// Close the shell.
    Delete,
    /// Anything else (by URI).
    Other(String),
}

/// A parsed request envelope.
#[derive(Clone, Debug)]
pub struct Request {
    /// What to do.
    pub action: Action,
    /// `MessageID`, echoed as `RelatesTo`.
    pub message_id: String,
    /// `ResourceURI` (the session configuration).
    pub resource_uri: String,
    /// `Locale/@xml:lang`.
    pub locale: Option<String>,
    /// `DataLocale/@xml:lang`.
    pub data_locale: Option<String>,
    /// `OperationTimeout`, when given as `PT<n>S`/`PT<n.m>S`.
    pub operation_timeout: Option<Duration>,
    /// The ShellId selector (or, on Create, the requested ShellId).
    pub shell: Option<Guid>,
    /// The CommandId the body names, if any.
    pub command: Option<Guid>,
    /// The base64 payload: `creationXml`, `Arguments` or the `Stream` text, decoded.
    pub payload: Vec<u8>,
    /// The signal code URI of a Signal.
    pub signal: Option<String>,
}

fn duration(text: &str) -> Option<Duration> {
    let seconds = text.trim().strip_prefix("PT")?.strip_suffix('S')?;
    seconds.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

/// Parses a request envelope.
pub fn request(xml_text: &str) -> Result<Request, String> {
    let root = xml::parse(xml_text)?;
    let header = root.find("Header").ok_or("no SOAP Header")?;
    let body = root.find("Body").ok_or("no SOAP Body")?;
    let text = |tag: &str| header.find(tag).map(|n| n.text.trim().to_owned());
    let uri = text("Action").ok_or("no wsa:Action")?;
    let action = match uri.as_str() {
        u if u == format!("{TRANSFER}/Create") => Action::Create,
        u if u == format!("{TRANSFER}/Delete") => Action::Delete,
        u if u == format!("{SHELL}/Command") => Action::Command,
        u if u == format!("{SHELL}/Send") => Action::Send,
        u if u == format!("{SHELL}/Receive") => Action::Receive,
        u if u == format!("{SHELL}/Signal") => Action::Signal,
        _ => Action::Other(uri.clone()),
    };
    let guid = |s: &str| Guid::parse(s).ok_or_else(|| format!("`{s}` is not a GUID"));
    let selector = header.find_by("Selector", "Name", Some("ShellId")).map(|s| s.text.trim().to_owned());
    let shell = match (selector, body.find("Shell").and_then(|s| s.attr("ShellId"))) {
        (Some(s), _) => Some(guid(&s)?),
        (None, Some(s)) => Some(guid(s)?),
        (None, None) => None,
    };
    let command = ["CommandLine", "Stream", "DesiredStream", "Signal"]
        .iter()
        .find_map(|t| body.find(t).and_then(|n| n.attr("CommandId")))
        .map(guid)
        .transpose()?;
    let payload = ["creationXml", "Arguments", "Stream"].iter().find_map(|t| body.find(t)).map(|n| n.text.trim());
    let payload = base64::engine::general_purpose::STANDARD
        .decode(payload.unwrap_or(""))
        .map_err(|e| format!("the request's payload is not base64: {e}"))?;
    Ok(Request {
        action,
        message_id: text("MessageID").ok_or("no wsa:MessageID")?,
        resource_uri: text("ResourceURI").unwrap_or_default(),
        locale: header.find("Locale").and_then(|n| n.attr("lang")).map(str::to_owned),
        data_locale: header.find("DataLocale").and_then(|n| n.attr("lang")).map(str::to_owned),
        operation_timeout: text("OperationTimeout").as_deref().and_then(duration),
        shell,
        command,
        payload,
        signal: body.find("Code").map(|c| c.text.trim().to_owned()),
    })
}

const NAMESPACES: &str = concat!(
    r#"xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
    r#"xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" "#,
    r#"xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell""#
);

fn envelope(relates_to: &str, action: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<s:Envelope xml:lang="en-US" {ns}><s:Header><a:Action>{action}</a:Action>"#,
            r#"<a:MessageID>uuid:{id}</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"#,
            r#"<a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        ),
        ns = NAMESPACES,
        action = action,
        id = upper(Guid::random()),
        relates = escape(relates_to),
        body = body,
    )
}

/// The answer to Create: the selector to use from now on, and the shell's properties.
pub fn created(request: &Request, url: &str, shell: Guid) -> String {
    let body = format!(
        concat!(
            r#"<x:ResourceCreated><a:Address>{url}</a:Address><a:ReferenceParameters><w:ResourceURI>{uri}</w:ResourceURI>"#,
            r#"<w:SelectorSet><w:Selector Name="ShellId">{id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"#,
            r#"<rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><rsp:ShellId>{id}</rsp:ShellId>"#,
            r#"<rsp:ResourceUri>{uri}</rsp:ResourceUri><rsp:State>Connected</rsp:State><rsp:InputStreams>stdin pr</rsp:InputStreams>"#,
            r#"<rsp:OutputStreams>stdout</rsp:OutputStreams></rsp:Shell>"#
        ),
        url = escape(url),
        uri = escape(&request.resource_uri),
        id = upper(shell),
    );
    envelope(&request.message_id, &format!("{TRANSFER}/CreateResponse"), &body)
}

/// The answer to Command.
pub fn command_started(request: &Request, command: Guid) -> String {
    let body = format!("<rsp:CommandResponse><rsp:CommandId>{}</rsp:CommandId></rsp:CommandResponse>", upper(command));
    envelope(&request.message_id, &format!("{SHELL}/CommandResponse"), &body)
}

/// The empty answer to Send, Signal or Delete.
pub fn acknowledged(request: &Request) -> String {
    let (action, body) = match request.action {
        Action::Send => (format!("{SHELL}/SendResponse"), "<rsp:SendResponse />"),
        Action::Signal => (format!("{SHELL}/SignalResponse"), "<rsp:SignalResponse />"),
        _ => (format!("{TRANSFER}/DeleteResponse"), ""),
    };
    envelope(&request.message_id, &action, body)
}

/// The answer to Receive: each blob (fragments) as one `stdout` stream element, then the
/// command's state (`Done` once its last output is in this answer).
pub fn received(request: &Request, blobs: &[Vec<u8>], done: bool) -> String {
    let command = request.command.map(|c| format!(r#" CommandId="{}""#, upper(c))).unwrap_or_default();
    let mut body = String::from("<rsp:ReceiveResponse>");
    for blob in blobs {
        body.push_str(&format!(
            r#"<rsp:Stream Name="stdout"{command}>{}</rsp:Stream>"#,
            base64::engine::general_purpose::STANDARD.encode(blob)
        ));
    }
    if request.command.is_some() {
        let state = if done { "Done" } else { "Running" };
        body.push_str(&format!(r#"<rsp:CommandState{command} State="{SHELL}/CommandState/{state}" />"#));
    }
    body.push_str("</rsp:ReceiveResponse>");
    envelope(&request.message_id, &format!("{SHELL}/ReceiveResponse"), &body)
}

/// A SOAP fault with a WSManFault detail.
pub fn fault(relates_to: &str, subcode: &str, code: u32, reason: &str) -> String {
    let body = format!(
        concat!(
            r#"<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"#,
            r#"<s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason><s:Detail>"#,
            r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}" Machine="localhost">"#,
            r#"<f:Message>{reason}</f:Message></f:WSManFault></s:Detail></s:Fault>"#
        ),
        subcode = escape(subcode),
        reason = escape(reason),
        code = code,
    );
    envelope(relates_to, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", &body)
}

/// The fault for a Receive that saw no output within its OperationTimeout.
pub fn timed_out(request: &Request) -> String {
    fault(
        &request.message_id,
        "w:TimedOut",
        TIMED_OUT,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Endpoint, Operation, PRIVILEGED_ENDPOINT, SIGNAL_TERMINATE, answer, created_shell, envelope};
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            url: "http://127.0.0.1:5985/wsman".into(),
            resource_uri: PRIVILEGED_ENDPOINT.into(),
            session_id: Guid::random(),
            max_envelope: 153_600,
            operation_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn client_envelopes_parse_on_the_service_side() {
        let (shell, command) = (Guid::random(), Guid::random());
        let (id, xml) = envelope(&endpoint(), &Operation::Create { shell, creation_xml: "AAEC" });
        let req = request(&xml).unwrap();
        assert_eq!(req.action, Action::Create);
        assert_eq!(req.message_id, format!("uuid:{}", upper(id)));
        assert_eq!((req.shell, req.payload.as_slice()), (Some(shell), &[0u8, 1, 2][..]));
        assert_eq!((req.locale.as_deref(), req.data_locale.as_deref()), (Some("en-US"), Some("en-US")));
        assert_eq!(req.operation_timeout, Some(Duration::from_secs(20)));
        assert_eq!(req.resource_uri, PRIVILEGED_ENDPOINT);
        let (_, xml) = envelope(&endpoint(), &Operation::Signal { shell, command, code: SIGNAL_TERMINATE });
        let req = request(&xml).unwrap();
        assert_eq!(
            (req.action, req.command, req.signal.as_deref()),
            (Action::Signal, Some(command), Some(SIGNAL_TERMINATE))
        );
        assert!(request("<s:Envelope><s:Body/></s:Envelope>").is_err());
    }

    #[test]
    fn service_answers_parse_on_the_client_side() {
        let shell = Guid::random();
        let (_, xml) = envelope(&endpoint(), &Operation::Receive { shell, command: Some(shell) });
        let req = request(&xml).unwrap();
        let root = answer(&received(&req, &[b"AB".to_vec(), b"C".to_vec()], true)).unwrap().unwrap();
        let got = super::super::received(&root).unwrap();
        assert_eq!((got.stdout.as_slice(), got.done), (&b"ABC"[..], true));
        assert_eq!(root.find("RelatesTo").unwrap().text, req.message_id);
        let created = answer(&created(&req, "http://x/wsman", shell)).unwrap().unwrap();
        assert_eq!(created_shell(&created), Some(upper(shell)));
        assert!(answer(&timed_out(&req)).unwrap().unwrap_err().is_timeout());
    }
}
