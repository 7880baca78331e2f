//! WS-Management (MS-WSMV) for PowerShell remoting: the six shell operations as SOAP envelopes,
//! and the parts of the answers the PEP step reads (shell id, streams, command state, faults).

use crate::psrp::message::Guid;
use crate::xml::{self, Node, escape};
use std::time::Duration;

pub mod service;

/// The PEP's session configuration.
pub const PRIVILEGED_ENDPOINT: &str = "http://schemas.microsoft.com/powershell/PrivilegedEndpoint";
/// WS-Man's fault code for "no output within the operation timeout": poll again.
pub const TIMED_OUT: u32 = 2_150_858_793;
pub(crate) const SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
pub(crate) const TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// The signal that closes a pipeline.
pub const SIGNAL_TERMINATE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/Terminate";

/// Where and how envelopes are addressed.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://host:5985/wsman`.
    pub url: String,
    /// The session configuration URI (default [`PRIVILEGED_ENDPOINT`]).
    pub resource_uri: String,
    /// This client's WS-Man session id.
    pub session_id: Guid,
    /// `MaxEnvelopeSize` announced.
    pub max_envelope: u32,
    /// `OperationTimeout` (Receive long-poll length).
    pub operation_timeout: Duration,
}

/// A shell operation.
pub enum Operation<'a> {
    /// Opens the runspace pool: `creation_xml` is the base64 of the first fragments.
    Create {
        /// The runspace pool id (becomes the ShellId).
        shell: Guid,
        /// Base64 fragments of SESSION_CAPABILITY + INIT_RUNSPACEPOOL.
        creation_xml: &'a str,
    },
    /// Starts a pipeline.
    Command {
        /// The shell.
        shell: Guid,
        /// The pipeline id.
        command: Guid,
        /// Base64 of the first CREATE_PIPELINE fragment.
        arguments: &'a str,
    },
    /// Sends fragments on `stdin`.
    Send {
        /// The shell.
        shell: Guid,
        /// The pipeline, if the data is for one.
        command: Option<Guid>,
        /// Base64 fragments.
        stream: &'a str,
    },
    /// Long-polls for output.
    Receive {
        /// The shell.
        shell: Guid,
        /// The pipeline, if polling one.
        command: Option<Guid>,
    },
    /// Signals a pipeline.
    Signal {
        /// The shell.
        shell: Guid,
        /// The pipeline.
        command: Guid,
        /// The signal URI.
        code: &'a str,
    },
    /// Closes the shell (the runspace pool).
    Delete {
        /// The shell.
        shell: Guid,
    },
}

/// A GUID as WinRM writes it: upper case.
pub(crate) fn upper(g: Guid) -> String {
    g.to_string().to_uppercase()
}

/// Builds an envelope with a random MessageID; returns the id (the answer's RelatesTo must
/// match) and the XML.
pub fn envelope(endpoint: &Endpoint, op: &Operation<'_>) -> (Guid, String) {
    let message_id = Guid::random();
    (message_id, envelope_with_id(endpoint, op, message_id))
}

/// Builds an envelope whose MessageID the caller chose.
pub fn envelope_with_id(endpoint: &Endpoint, op: &Operation<'_>, message_id: Guid) -> String {
    let (action, options, shell, body) = match op {
        Operation::Create { shell, creation_xml } => (
            format!("{TRANSFER}/Create"),
            r#"<w:OptionSet s:mustUnderstand="true"><w:Option MustComply="true" Name="protocolversion">2.3</w:Option></w:OptionSet>"#.to_owned(),
            None,
            format!(
                r#"<rsp:Shell ShellId="{}"><rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams><creationXml xmlns="http://schemas.microsoft.com/powershell">{creation_xml}</creationXml></rsp:Shell>"#,
                upper(*shell)
            ),
        ),
        Operation::Command { shell, command, arguments } => (
            format!("{SHELL}/Command"),
            r#"<w:OptionSet s:mustUnderstand="true"><w:Option Name="WINRS_SKIP_CMD_SHELL">False</w:Option></w:OptionSet>"#.to_owned(),
            Some(*shell),
            format!(
                r#"<rsp:CommandLine CommandId="{}"><rsp:Command></rsp:Command><rsp:Arguments>{arguments}</rsp:Arguments></rsp:CommandLine>"#,
                upper(*command)
            ),
        ),
        Operation::Send { shell, command, stream } => (
            format!("{SHELL}/Send"),
            String::new(),
            Some(*shell),
            format!(
                r#"<rsp:Send><rsp:Stream Name="stdin"{}>{stream}</rsp:Stream></rsp:Send>"#,
                command.map(|c| format!(r#" CommandId="{}""#, upper(c))).unwrap_or_default()
            ),
        ),
        Operation::Receive { shell, command } => (
            format!("{SHELL}/Receive"),
            r#"<w:OptionSet s:mustUnderstand="true"><w:Option Name="WSMAN_CMDSHELL_OPTION_KEEPALIVE">True</w:Option></w:OptionSet>"#.to_owned(),
            Some(*shell),
            format!(
                r#"<rsp:Receive><rsp:DesiredStream{}>stdout</rsp:DesiredStream></rsp:Receive>"#,
                command.map(|c| format!(r#" CommandId="{}""#, upper(c))).unwrap_or_default()
            ),
        ),
        Operation::Signal { shell, command, code } => (
            format!("{SHELL}/Signal"),
            String::new(),
            Some(*shell),
            format!(r#"<rsp:Signal CommandId="{}"><rsp:Code>{}</rsp:Code></rsp:Signal>"#, upper(*command), escape(code)),
        ),
        Operation::Delete { shell } => (format!("{TRANSFER}/Delete"), String::new(), Some(*shell), String::new()),
    };
    let selector = shell
        .map(|s| format!(r#"<w:SelectorSet><w:Selector Name="ShellId">{}</w:Selector></w:SelectorSet>"#, upper(s)))
        .unwrap_or_default();
    format!(
        concat!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
            r#"xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" "#,
            r#"xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header>"#,
            r#"<a:Action s:mustUnderstand="true">{action}</a:Action>"#,
            r#"<w:Locale xml:lang="en-US" s:mustUnderstand="false" /><p:DataLocale xml:lang="en-US" s:mustUnderstand="false" />"#,
            r#"<w:MaxEnvelopeSize s:mustUnderstand="true">{max}</w:MaxEnvelopeSize>"#,
            r#"<a:MessageID>uuid:{message}</a:MessageID>"#,
            r#"<w:OperationTimeout>PT{timeout}S</w:OperationTimeout>"#,
            r#"<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"#,
            r#"<w:ResourceURI s:mustUnderstand="true">{resource}</w:ResourceURI>"#,
            r#"<p:SessionId s:mustUnderstand="false">uuid:{session}</p:SessionId>"#,
            r#"<a:To>{to}</a:To>{options}{selector}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        ),
        action = action,
        max = endpoint.max_envelope,
        message = upper(message_id),
        timeout = endpoint.operation_timeout.as_secs(),
        resource = escape(&endpoint.resource_uri),
        session = upper(endpoint.session_id),
        to = escape(&endpoint.url),
        options = options,
        selector = selector,
        body = body,
    )
}

/// A SOAP fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `WSManFault/@Code`, if present.
    pub code: Option<u32>,
    /// `Subcode/Value` (e.g. `w:TimedOut`).
    pub subcode: String,
    /// `Reason/Text` or the WSManFault message.
    pub reason: String,
}

impl Fault {
    /// "No output yet": the Receive should be re-issued.
    pub fn is_timeout(&self) -> bool {
        self.code == Some(TIMED_OUT) || self.subcode.ends_with("TimedOut")
    }
}

/// What a Receive returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Decoded `stdout` stream bytes, concatenated in order.
    pub stdout: Vec<u8>,
    /// `CommandState/Done` seen.
    pub done: bool,
}

/// Parses an answer: a fault, or the tree of a success.
pub fn answer(xml_text: &str) -> Result<Result<Node, Fault>, String> {
    let root = xml::parse(xml_text)?;
    let Some(fault) = root.find("Fault") else { return Ok(Ok(root)) };
    let code = fault.find("WSManFault").and_then(|f| f.attr("Code")).and_then(|c| c.parse().ok());
    let subcode =
        fault.find("Subcode").and_then(|s| s.find("Value")).map(|v| v.text.trim().to_owned()).unwrap_or_default();
    let reason = fault
        .find("Message")
        .map(|m| m.text.trim().to_owned())
        .filter(|m| !m.is_empty())
        .or_else(|| fault.find("Text").map(|t| t.text.trim().to_owned()))
        .unwrap_or_default();
    Ok(Err(Fault { code, subcode, reason }))
}

/// The ShellId of a Create answer.
pub fn created_shell(root: &Node) -> Option<String> {
    root.find_by("Selector", "Name", Some("ShellId")).or_else(|| root.find("ShellId")).map(|n| n.text.trim().to_owned())
}

/// The streams and state of a Receive answer.
pub fn received(root: &Node) -> Result<Received, String> {
    use base64::Engine as _;
    let mut streams = Vec::new();
    root.find_all("Stream", &mut streams);
    let mut out = Received::default();
    for stream in streams.into_iter().filter(|s| s.attr("Name") == Some("stdout")) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stream.text.trim())
            .map_err(|e| format!("a stdout stream is not base64: {e}"))?;
        out.stdout.extend_from_slice(&bytes);
    }
    out.done = root.find("CommandState").and_then(|c| c.attr("State")).is_some_and(|s| s.ends_with("/Done"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            url: "http://10.0.0.4:5985/wsman".into(),
            resource_uri: PRIVILEGED_ENDPOINT.into(),
            session_id: Guid::random(),
            max_envelope: 153_600,
            operation_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn a_create_envelope_addresses_the_privileged_endpoint() {
        let shell = Guid::random();
        let (id, xml) = envelope(&endpoint(), &Operation::Create { shell, creation_xml: "AAAA" });
        let root = xml::parse(&xml).unwrap();
        assert_eq!(root.find("ResourceURI").unwrap().text, PRIVILEGED_ENDPOINT);
        assert_eq!(root.find("Action").unwrap().text, "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create");
        assert_eq!(root.find("MessageID").unwrap().text, format!("uuid:{}", upper(id)));
        assert_eq!(root.find_by("Option", "Name", Some("protocolversion")).unwrap().text, "2.3");
        assert_eq!(root.find("Shell").unwrap().attr("ShellId"), Some(upper(shell).as_str()));
        assert_eq!(root.find("creationXml").unwrap().text, "AAAA");
        assert_eq!(root.find("Locale").unwrap().attr("lang"), Some("en-US"));
        assert_eq!(root.find("OperationTimeout").unwrap().text, "PT20S");
        assert!(root.find("SelectorSet").is_none());
    }

    #[test]
    fn later_operations_select_the_shell_and_name_the_pipeline() {
        let (shell, command) = (Guid::random(), Guid::random());
        let e = endpoint();
        for op in [
            Operation::Command { shell, command, arguments: "QQ==" },
            Operation::Send { shell, command: Some(command), stream: "QQ==" },
            Operation::Receive { shell, command: Some(command) },
            Operation::Signal { shell, command, code: SIGNAL_TERMINATE },
        ] {
            let (_, xml) = envelope(&e, &op);
            let root = xml::parse(&xml).unwrap();
            assert_eq!(root.find_by("Selector", "Name", Some("ShellId")).unwrap().text, upper(shell));
            let named = ["CommandLine", "Stream", "DesiredStream", "Signal"]
                .iter()
                .filter_map(|t| root.find(t))
                .any(|n| n.attr("CommandId") == Some(upper(command).as_str()));
            assert!(named, "{xml}");
        }
        let (_, delete) = envelope(&e, &Operation::Delete { shell });
        assert!(xml::parse(&delete).unwrap().find("Body").unwrap().children.is_empty());
    }

    #[test]
    fn receive_answers_and_faults_parse() {
        let ok = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="X">QUJD</rsp:Stream><rsp:Stream Name="stdout" CommandId="X">REVG</rsp:Stream><rsp:CommandState CommandId="X" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"/></rsp:ReceiveResponse></s:Body></s:Envelope>"#;
        let root = answer(ok).unwrap().unwrap();
        assert_eq!(received(&root).unwrap(), Received { stdout: b"ABCDEF".to_vec(), done: true });
        let fault = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within the time specified in OperationTimeout.</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" Machine="ercs01"><f:Message></f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#;
        let f = answer(fault).unwrap().unwrap_err();
        assert!(f.is_timeout());
        assert!(f.reason.contains("OperationTimeout"), "{f:?}");
        let created = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x:ResourceCreated xmlns:x="t"><a:ReferenceParameters xmlns:a="a"><w:SelectorSet xmlns:w="w"><w:Selector Name="ShellId">ABC-1</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated></s:Body></s:Envelope>"#;
        assert_eq!(created_shell(&answer(created).unwrap().unwrap()).as_deref(), Some("ABC-1"));
    }
}
