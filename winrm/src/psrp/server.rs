//! The server's half of PSRP, as the PEP simulator needs it: reading a CREATE_PIPELINE back into
//! commands and typed arguments, and writing the state, output, informational and error records
//! a Windows PowerShell 5.1 endpoint sends.

use super::clixml::{self, Clixml, ErrorInfo, Node, encode_string};
use super::{PipelineState, PsrpError, RunspaceState};
use crate::xml::escape;

/// A parameter value as received. SecureStrings stay encrypted until the receiver asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `<S>`.
    Str(String),
    /// `<SS>`: base64 of the AES-encrypted UTF-16 text.
    Secure(String),
    /// `<B>`.
    Bool(bool),
    /// `<Nil>` (a switch given without a value).
    Nil,
    /// A PSCredential: user name and the encrypted password.
    Credential {
        /// `UserName`.
        user: String,
        /// `Password` (`<SS>` body).
        password: String,
    },
    /// Anything else, by tag (`I32`, `Obj`, ...).
    Other(String),
}

/// One command of a received pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `Cmd`: a command name, or script text when `is_script`.
    pub name: String,
    /// `IsScript`.
    pub is_script: bool,
    /// Arguments in order; positional ones have no name.
    pub args: Vec<(Option<String>, Value)>,
}

fn value(node: &Node) -> Value {
    match node.tag.as_str() {
        "S" => Value::Str(clixml::decode_string(&node.text)),
        "SS" => Value::Secure(node.text.trim().to_owned()),
        "B" => Value::Bool(node.text.trim().eq_ignore_ascii_case("true")),
        "Nil" => Value::Nil,
        "Obj" if node.find("T").is_some_and(|t| t.text == "System.Management.Automation.PSCredential") => {
            Value::Credential {
                user: node.string("UserName").unwrap_or_default(),
                password: node.prop("SS", Some("Password")).map(|p| p.text.trim().to_owned()).unwrap_or_default(),
            }
        }
        other => Value::Other(other.to_owned()),
    }
}

/// The commands of a CREATE_PIPELINE message's data.
pub fn pipeline(data: &str) -> Result<Vec<Invocation>, PsrpError> {
    let root = clixml::parse(data)?;
    let cmds = root
        .prop("Obj", Some("Cmds"))
        .and_then(|c| c.prop("LST", None))
        .ok_or_else(|| PsrpError::new("CREATE_PIPELINE without PowerShell.Cmds"))?;
    cmds.children
        .iter()
        .map(|cmd| {
            let ms = cmd.children.iter().find(|c| c.tag == "MS").ok_or_else(|| PsrpError::new("command without MS"))?;
            let direct = |tag: &str, name: &str| ms.children.iter().find(|c| c.tag == tag && c.attr("N") == Some(name));
            let name = direct("S", "Cmd").map(|n| clixml::decode_string(&n.text));
            let name = name.ok_or_else(|| PsrpError::new("command without Cmd"))?;
            let is_script = direct("B", "IsScript").is_some_and(|b| b.text.trim() == "true");
            let mut args = Vec::new();
            if let Some(list) = direct("Obj", "Args").and_then(|a| a.prop("LST", None)) {
                for arg in &list.children {
                    let Some(arg_ms) = arg.children.iter().find(|c| c.tag == "MS") else { continue };
                    let name = arg_ms
                        .children
                        .iter()
                        .find(|c| c.attr("N") == Some("N") && c.tag == "S")
                        .map(|n| clixml::decode_string(&n.text));
                    let v = arg_ms.children.iter().find(|c| c.attr("N") == Some("V")).map(value).unwrap_or(Value::Nil);
                    args.push((name, v));
                }
            }
            Ok(Invocation { name, is_script, args })
        })
        .collect()
}

/// RUNSPACEPOOL_STATE data.
pub fn runspace_pool_state(state: RunspaceState) -> String {
    format!(r#"<Obj RefId="0"><MS><I32 N="RunspaceState">{}</I32></MS></Obj>"#, state.code())
}

/// APPLICATION_PRIVATE_DATA data: the PSVersionTable a 5.1 endpoint reports, trimmed.
pub fn application_private_data() -> String {
    concat!(
        r#"<Obj RefId="0"><MS><Obj N="ApplicationPrivateData" RefId="1"><TN RefId="0"><T>System.Management.Automation.PSPrimitiveDictionary</T>"#,
        r#"<T>System.Collections.Hashtable</T><T>System.Object</T></TN><DCT><En><S N="Key">PSVersionTable</S>"#,
        r#"<Obj N="Value" RefId="2"><TNRef RefId="0" /><DCT><En><S N="Key">PSVersion</S><Version N="Value">5.1.17763.1</Version></En>"#,
        r#"<En><S N="Key">PSEdition</S><S N="Value">Desktop</S></En>"#,
        r#"<En><S N="Key">PSRemotingProtocolVersion</S><Version N="Value">2.3</Version></En></DCT></Obj></En></DCT></Obj></MS></Obj>"#
    )
    .to_owned()
}

/// PIPELINE_OUTPUT data for a string.
pub fn output_string(text: &str) -> String {
    format!("<S>{}</S>", encode_string(text))
}

/// WARNING/VERBOSE/DEBUG record data (MS-PSRP 2.2.3.16).
pub fn informational(text: &str) -> String {
    format!(
        concat!(
            r#"<Obj RefId="0"><ToString>{0}</ToString><MS><S N="InformationalRecord_Message">{0}</S>"#,
            r#"<B N="InformationalRecord_SerializeInvocationInfo">false</B></MS></Obj>"#
        ),
        encode_string(text)
    )
}

/// The description of an error to send.
#[derive(Clone, Debug)]
pub struct ErrorSpec<'a> {
    /// Display text.
    pub message: &'a str,
    /// `FullyQualifiedErrorId`.
    pub error_id: &'a str,
    /// `ErrorCategory_Category` (e.g. 17 ParserError, 13 ObjectNotFound, 5 InvalidArgument).
    pub category: i32,
    /// `ErrorCategory_Reason` (the exception type's short name).
    pub reason: &'a str,
    /// `ErrorCategory_TargetName`.
    pub target: &'a str,
    /// The exception's .NET type.
    pub exception_type: &'a str,
}

fn error_object(spec: &ErrorSpec<'_>, name: Option<&str>, ref_base: u32) -> String {
    let name = name.map(|n| format!(r#" N="{}""#, escape(n))).unwrap_or_default();
    let message = encode_string(spec.message);
    format!(
        concat!(
            r#"<Obj{name} RefId="{r0}"><TN RefId="{r0}"><T>System.Management.Automation.ErrorRecord</T><T>System.Object</T></TN>"#,
            r#"<ToString>{message}</ToString><MS>"#,
            r#"<Obj N="Exception" RefId="{r1}"><TN RefId="{r1}"><T>{exception}</T><T>System.Exception</T><T>System.Object</T></TN>"#,
            r#"<ToString>{message}</ToString><Props><S N="Message">{message}</S></Props></Obj>"#,
            r#"<Nil N="TargetObject" /><S N="FullyQualifiedErrorId">{id}</S><Nil N="InvocationInfo" />"#,
            r#"<I32 N="ErrorCategory_Category">{category}</I32><S N="ErrorCategory_Activity"></S>"#,
            r#"<S N="ErrorCategory_Reason">{reason}</S><S N="ErrorCategory_TargetName">{target}</S>"#,
            r#"<S N="ErrorCategory_TargetType">String</S><S N="ErrorCategory_Message">{message}</S>"#,
            r#"<B N="SerializeExtendedInfo">false</B></MS></Obj>"#
        ),
        name = name,
        r0 = ref_base,
        r1 = ref_base + 1,
        message = message,
        exception = escape(spec.exception_type),
        id = encode_string(spec.error_id),
        category = spec.category,
        reason = encode_string(spec.reason),
        target = encode_string(spec.target),
    )
}

/// ERROR_RECORD data.
pub fn error_record(spec: &ErrorSpec<'_>) -> String {
    error_object(spec, None, 0)
}

/// PIPELINE_STATE data, with the error that ended the pipeline when it failed.
pub fn pipeline_state(state: PipelineState, error: Option<&ErrorSpec<'_>>) -> String {
    let error = error.map(|e| error_object(e, Some("ExceptionAsErrorRecord"), 1)).unwrap_or_default();
    format!(r#"<Obj RefId="0"><MS><I32 N="PipelineState">{}</I32>{error}</MS></Obj>"#, state.code())
}

/// Reads back what [`error_record`] wrote (used by tests on both sides).
pub fn decode_error(data: &str) -> Result<ErrorInfo, PsrpError> {
    let root = clixml::parse(data)?;
    let record = root.children.first().ok_or_else(|| PsrpError::new("empty error record"))?;
    Ok(clixml::error_info(record))
}

#[cfg(test)]
mod tests {
    use super::super::clixml::{Arg, Command, create_pipeline};
    use super::super::crypto::SessionKey;
    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn a_client_pipeline_reads_back_with_every_argument_type() {
        let key = SessionKey::from_slice(&[9; 32]).unwrap();
        let command = Command {
            name: "Close-PrivilegedEndpoint".into(),
            args: vec![
                ("TranscriptsPathDestination".into(), Arg::Str(r"\\share\_x\logs".into())),
                (
                    "Credential".into(),
                    Arg::Credential { user: r"CONTOSO\ops".into(), password: Zeroizing::new("S3cret!".into()) },
                ),
                ("BmcPassword".into(), Arg::Secure(Zeroizing::new("pw".into()))),
                ("AsJob".into(), Arg::Bool(false)),
            ],
        };
        let got = pipeline(&create_pipeline(&command, Some(&key)).unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "Close-PrivilegedEndpoint");
        assert!(!got[0].is_script);
        let args = &got[0].args;
        assert_eq!(args[0], (Some("TranscriptsPathDestination".into()), Value::Str(r"\\share\_x\logs".into())));
        let Value::Credential { user, password } = &args[1].1 else { panic!("{:?}", args[1]) };
        assert_eq!(user, r"CONTOSO\ops");
        assert_eq!(key.decrypt_secure_string(password).unwrap().as_str(), "S3cret!");
        let Value::Secure(pw) = &args[2].1 else { panic!() };
        assert_eq!(key.decrypt_secure_string(pw).unwrap().as_str(), "pw");
        assert_eq!(args[3].1, Value::Bool(false));
    }

    #[test]
    fn error_records_round_trip_through_the_client_decoder() {
        let spec = ErrorSpec {
            message: "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
            error_id: "ScriptsNotAllowed",
            category: 17,
            reason: "ParseException",
            target: "Get-Process; whoami",
            exception_type: "System.Management.Automation.ParseException",
        };
        let info = decode_error(&error_record(&spec)).unwrap();
        assert!(info.message.contains("no-language mode"));
        assert_eq!(info.error_id, "ScriptsNotAllowed");
        let (state, error) =
            clixml::state(&pipeline_state(PipelineState::Failed, Some(&spec)), "PipelineState").unwrap();
        assert_eq!(state, 5);
        assert_eq!(error.unwrap().target, "Get-Process; whoami");
        assert_eq!(clixml::state(&runspace_pool_state(RunspaceState::Opened), "RunspaceState").unwrap(), (2, None));
        assert!(clixml::parse(&application_private_data()).is_ok());
        assert_eq!(
            clixml::parse(&informational("line\none")).unwrap().string("InformationalRecord_Message").as_deref(),
            Some("line\none")
        );
    }
}
