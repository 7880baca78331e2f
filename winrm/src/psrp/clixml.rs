//! The CLIXML subset a `Set-BmcCredential` call needs (MS-PSRP 2.2.5): strings with PowerShell's
//! `_xHHHH_` escaping, SecureStrings, the pool-opening objects, a command pipeline with typed
//! arguments, and decoding of states, output, informational records and error records.

use super::crypto::SessionKey;
use super::{PipelineState, PsrpError, RunspaceState};
use std::fmt::Write as _;
use zeroize::Zeroizing;

/// Escapes a string for a CLIXML `<S>` element: `_x` → `_x005F_x`; control characters, C1 and
/// non-BMP characters → `_xHHHH_` per UTF-16 unit; then XML's `&`, `<`, `>`.
pub fn encode_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if matches!(chars.peek(), Some('x' | 'X')) => out.push_str("_x005F_"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{10000}'.. => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "_x{unit:04X}_");
                }
            }
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`encode_string`]'s `_xHHHH_` escapes (XML entities are resolved by the parser).
pub fn decode_string(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut units: Vec<u16> = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_'
            && bytes.get(i + 1).is_some_and(|b| *b == b'x' || *b == b'X')
            && bytes.get(i + 6) == Some(&b'_')
            && let Ok(unit) = u16::from_str_radix(&value[i + 2..i + 6], 16)
        {
            units.push(unit);
            i += 7;
            continue;
        }
        let c = value[i..].chars().next().expect("in bounds");
        let mut buffer = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buffer));
        i += c.len_utf8();
    }
    String::from_utf16_lossy(&units)
}

/// SESSION_CAPABILITY data: protocol 2.3 (the session-key exchange ERCS's PowerShell 5.1 speaks).
pub fn session_capability() -> String {
    concat!(
        r#"<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version><Version N="PSVersion">2.0</Version>"#,
        r#"<Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>"#
    )
    .to_owned()
}

const HOST_INFO_NULL: &str = concat!(
    r#"<MS><B N="_isHostNull">true</B><B N="_isHostUINull">true</B>"#,
    r#"<B N="_isHostRawUINull">true</B><B N="_useRunspaceHost">true</B></MS>"#
);

/// INIT_RUNSPACEPOOL data: one runspace, a null host (a prompt fails fast instead of hanging).
pub fn init_runspace_pool() -> String {
    format!(
        concat!(
            r#"<Obj RefId="0"><MS><I32 N="MinRunspaces">1</I32><I32 N="MaxRunspaces">1</I32>"#,
            r#"<Obj N="PSThreadOptions" RefId="1"><TN RefId="0"><T>System.Management.Automation.Runspaces.PSThreadOptions</T>"#,
            r#"<T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>Default</ToString><I32>0</I32></Obj>"#,
            r#"<Obj N="ApartmentState" RefId="2"><TN RefId="1"><T>System.Threading.ApartmentState</T>"#,
            r#"<T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>Unknown</ToString><I32>2</I32></Obj>"#,
            r#"<Obj N="HostInfo" RefId="3">{}</Obj><Nil N="ApplicationArguments" /></MS></Obj>"#
        ),
        HOST_INFO_NULL
    )
}

/// PUBLIC_KEY data.
pub fn public_key(blob: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        r#"<Obj RefId="0"><MS><S N="PublicKey">{}</S></MS></Obj>"#,
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// ENCRYPTED_SESSION_KEY data (the server side).
pub fn encrypted_session_key(blob: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        r#"<Obj RefId="0"><MS><S N="EncryptedSessionKey">{}</S></MS></Obj>"#,
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// A parameter value.
pub enum Arg {
    /// `<S>`.
    Str(String),
    /// `<SS>`, encrypted with the session key at serialisation; the plaintext is zeroized.
    Secure(Zeroizing<String>),
    /// `<B>` (also binds `[switch]` parameters).
    Bool(bool),
    /// A PSCredential (MS-PSRP 2.2.3.25): the user in clear, the password as a SecureString.
    Credential {
        /// `DOMAIN\user`.
        user: String,
        /// The password; zeroized.
        password: Zeroizing<String>,
    },
}

/// One command with named parameters: never script text (the PEP's JEA endpoint forbids it).
pub struct Command {
    /// The cmdlet, e.g. `Set-BmcCredential`.
    pub name: String,
    /// Named parameters, in order.
    pub args: Vec<(String, Arg)>,
}

const PIPELINE_RESULT_TYPES: &str = concat!(
    "<T>System.Management.Automation.Runspaces.PipelineResultTypes</T>",
    "<T>System.Enum</T><T>System.ValueType</T><T>System.Object</T>"
);
const PSOBJECT_LIST: &str = "<T>System.Collections.Generic.List`1[[System.Management.Automation.PSObject, System.Management.Automation, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]</T><T>System.Object</T>";

/// CREATE_PIPELINE data for one command. SecureString arguments need the session key.
pub fn create_pipeline(command: &Command, key: Option<&SessionKey>) -> Result<String, PsrpError> {
    let mut refs = 4u32..;
    let mut next = || refs.next().expect("unbounded");
    let mut out = String::new();
    out.push_str(r#"<Obj RefId="0"><MS><B N="NoInput">true</B>"#);
    out.push_str(r#"<Obj N="ApartmentState" RefId="1"><TN RefId="0"><T>System.Threading.ApartmentState</T><T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>Unknown</ToString><I32>2</I32></Obj>"#);
    out.push_str(r#"<Obj N="RemoteStreamOptions" RefId="2"><TN RefId="1"><T>System.Management.Automation.RemoteStreamOptions</T><T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>None</ToString><I32>0</I32></Obj>"#);
    out.push_str(r#"<B N="AddToHistory">false</B>"#);
    let _ = write!(out, r#"<Obj N="HostInfo" RefId="3">{HOST_INFO_NULL}</Obj>"#);
    let _ = write!(out, r#"<Obj N="PowerShell" RefId="{}"><MS><B N="IsNested">false</B><Nil N="ExtraCmds" />"#, next());
    let _ = write!(out, r#"<Obj N="Cmds" RefId="{}"><TN RefId="2">{PSOBJECT_LIST}</TN><LST>"#, next());
    let _ = write!(
        out,
        r#"<Obj RefId="{}"><MS><S N="Cmd">{}</S><B N="IsScript">false</B><B N="UseLocalScope">false</B>"#,
        next(),
        encode_string(&command.name)
    );
    let merges = [
        "MergeMyResult",
        "MergeToResult",
        "MergePreviousResults",
        "MergeError",
        "MergeWarning",
        "MergeVerbose",
        "MergeDebug",
        "MergeInformation",
    ];
    for (i, merge) in merges.iter().enumerate() {
        let types = if i == 0 {
            format!(r#"<TN RefId="3">{PIPELINE_RESULT_TYPES}</TN>"#)
        } else {
            r#"<TNRef RefId="3" />"#.to_owned()
        };
        let _ =
            write!(out, r#"<Obj N="{merge}" RefId="{}">{types}<ToString>None</ToString><I32>0</I32></Obj>"#, next());
    }
    let _ = write!(out, r#"<Obj N="Args" RefId="{}"><TNRef RefId="2" /><LST>"#, next());
    for (name, value) in &command.args {
        let value = match value {
            Arg::Str(s) => format!(r#"<S N="V">{}</S>"#, encode_string(s)),
            Arg::Bool(b) => format!(r#"<B N="V">{b}</B>"#),
            Arg::Secure(plain) => {
                let key = key.ok_or_else(|| {
                    PsrpError::new(format!("parameter -{name} is a SecureString but no session key was exchanged"))
                })?;
                format!(r#"<SS N="V">{}</SS>"#, key.encrypt_secure_string(plain))
            }
            Arg::Credential { user, password } => {
                let key = key.ok_or_else(|| {
                    PsrpError::new(format!("parameter -{name} holds a credential but no session key was exchanged"))
                })?;
                format!(
                    concat!(
                        r#"<Obj N="V" RefId="{}"><TN RefId="4"><T>System.Management.Automation.PSCredential</T><T>System.Object</T></TN>"#,
                        r#"<ToString>System.Management.Automation.PSCredential</ToString><Props><S N="UserName">{}</S>"#,
                        r#"<SS N="Password">{}</SS></Props></Obj>"#
                    ),
                    next(),
                    encode_string(user),
                    key.encrypt_secure_string(password)
                )
            }
        };
        let _ = write!(out, r#"<Obj RefId="{}"><MS><S N="N">{}</S>{value}</MS></Obj>"#, next(), encode_string(name));
    }
    out.push_str(r#"</LST></Obj></MS></Obj></LST></Obj><Nil N="History" /><B N="RedirectShellErrorOutputPipe">false</B></MS></Obj>"#);
    out.push_str(r#"<B N="IsNested">false</B></MS></Obj>"#);
    Ok(out)
}

pub use crate::xml::Node;

/// CLIXML accessors on the shared XML tree (`N` is the property-name attribute).
pub trait Clixml {
    /// The first descendant with this tag and, if given, this `N`.
    fn prop(&self, tag: &str, name: Option<&str>) -> Option<&Node>;
    /// The text of the first descendant `<S N="name">`, decoded.
    fn string(&self, name: &str) -> Option<String>;
    /// The value of the first descendant `<I32 N="name">`.
    fn i32(&self, name: &str) -> Option<i32>;
}

impl Clixml for Node {
    fn prop(&self, tag: &str, name: Option<&str>) -> Option<&Node> {
        self.find_by(tag, "N", name)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.prop("S", Some(name)).map(|n| decode_string(&n.text))
    }

    fn i32(&self, name: &str) -> Option<i32> {
        self.prop("I32", Some(name)).and_then(|n| n.text.trim().parse().ok())
    }
}

/// Parses CLIXML into a tree.
pub fn parse(xml: &str) -> Result<Node, PsrpError> {
    crate::xml::parse(xml).map_err(|e| PsrpError::new(format!("CLIXML: {e}")))
}

/// The readable parts of an ErrorRecord (MS-PSRP 2.2.3.15).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The display text (`ToString`, else the exception's message).
    pub message: String,
    /// `FullyQualifiedErrorId`, e.g. `CommandNotFoundException`.
    pub error_id: String,
    /// `ErrorCategory_Reason`.
    pub reason: String,
    /// `ErrorCategory_TargetName`.
    pub target: String,
    /// `ErrorDetails_RecommendedAction`.
    pub recommended_action: String,
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if !self.error_id.is_empty() {
            write!(f, " ({})", self.error_id)?;
        }
        if !self.recommended_action.is_empty() {
            write!(f, "; {}", self.recommended_action)?;
        }
        Ok(())
    }
}

/// Decodes an error record object (an ERROR_RECORD message, or `ExceptionAsErrorRecord`).
pub fn error_info(record: &Node) -> ErrorInfo {
    let direct = record.children.iter().find(|c| c.tag == "ToString").map(|n| decode_string(&n.text));
    let exception = record.prop("Obj", Some("Exception")).and_then(|e| e.string("Message"));
    let message = direct
        .filter(|m| !m.is_empty())
        .or(exception)
        .or_else(|| record.string("ErrorDetails_Message"))
        .unwrap_or_else(|| "an error record without a message".into());
    ErrorInfo {
        message,
        error_id: record.string("FullyQualifiedErrorId").unwrap_or_default(),
        reason: record.string("ErrorCategory_Reason").unwrap_or_default(),
        target: record.string("ErrorCategory_TargetName").unwrap_or_default(),
        recommended_action: record.string("ErrorDetails_RecommendedAction").unwrap_or_default(),
    }
}

/// A PIPELINE_STATE or RUNSPACEPOOL_STATE: the state number and the error that ended it, if any.
pub fn state(data: &str, property: &str) -> Result<(i32, Option<ErrorInfo>), PsrpError> {
    let root = parse(data)?;
    let state = root.i32(property).ok_or_else(|| PsrpError::new(format!("state message without {property}")))?;
    let error = root.prop("Obj", Some("ExceptionAsErrorRecord")).map(error_info);
    Ok((state, error))
}

/// A RUNSPACEPOOL_STATE's state and the error that ended the pool, if any.
pub fn runspace_state(data: &str) -> Result<(RunspaceState, Option<ErrorInfo>), PsrpError> {
    state(data, "RunspaceState").map(|(code, error)| (RunspaceState::from_code(code), error))
}

/// A PIPELINE_STATE's state and the error that ended the pipeline, if any.
pub fn pipeline_state(data: &str) -> Result<(PipelineState, Option<ErrorInfo>), PsrpError> {
    state(data, "PipelineState").map(|(code, error)| (PipelineState::from_code(code), error))
}

#[cfg(test)]
mod tests {
    use super::super::crypto::SessionKey;
    use super::*;

    #[test]
    fn strings_escape_like_powershell() {
        assert_eq!(encode_string("plain"), "plain");
        assert_eq!(encode_string("a\nb\tc"), "a_x000A_b_x0009_c");
        assert_eq!(encode_string("_x00 _X"), "_x005F_x00 _x005F_X");
        assert_eq!(encode_string("😀"), "_xD83D__xDE00_");
        assert_eq!(encode_string("\u{85}<&>"), "_x0085_&lt;&amp;&gt;");
        for s in ["a\nb", "_x005F_", "😀 x_y", "\u{1}\u{9f}", "Ünïcödé"] {
            assert_eq!(
                decode_string(&encode_string(s).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")),
                s
            );
        }
    }

    #[test]
    fn pool_opening_objects_match_ms_psrp() {
        assert_eq!(
            session_capability(),
            r#"<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version><Version N="PSVersion">2.0</Version><Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>"#
        );
        let init = parse(&init_runspace_pool()).unwrap();
        assert_eq!(init.i32("MinRunspaces"), Some(1));
        assert_eq!(init.prop("B", Some("_isHostNull")).unwrap().text, "true");
        assert!(init.prop("Nil", Some("ApplicationArguments")).is_some());
    }

    #[test]
    fn a_pipeline_carries_a_command_object_with_typed_arguments() {
        let key = SessionKey::from_slice(&[7; 32]).unwrap();
        let command = Command {
            name: "Set-BmcCredential".into(),
            args: vec![
                ("BmcPassword".into(), Arg::Secure(Zeroizing::new("New<Pass>&1".into()))),
                ("BmcUser".into(), Arg::Str("bmc_x_admin".into())),
                ("BypassBMCUpdate".into(), Arg::Bool(true)),
            ],
        };
        let xml = create_pipeline(&command, Some(&key)).unwrap();
        assert!(!xml.contains("New<Pass>") && !xml.contains("New&lt;Pass"), "the password is only in the SecureString");
        assert!(!xml.contains("IsScript\">true"), "never script text");
        let root = parse(&xml).unwrap();
        assert_eq!(root.string("Cmd").as_deref(), Some("Set-BmcCredential"));
        let args = root.prop("Obj", Some("Args")).unwrap().prop("LST", None).unwrap();
        assert_eq!(args.children.len(), 3);
        let ss = args.children[0].prop("SS", Some("V")).unwrap();
        assert_eq!(key.decrypt_secure_string(&ss.text).unwrap().as_str(), "New<Pass>&1");
        assert_eq!(args.children[1].string("V").as_deref(), Some("bmc_x_admin"));
        assert_eq!(args.children[2].prop("B", Some("V")).unwrap().text, "true");
        let merges =
            ["MergeMyResult", "MergeInformation"].iter().filter(|m| root.prop("Obj", Some(m)).is_some()).count();
        assert_eq!(merges, 2);
        assert!(create_pipeline(&command, None).unwrap_err().0.contains("-BmcPassword is a SecureString"));
    }

    #[test]
    fn states_and_error_records_decode() {
        let completed = r#"<Obj RefId="0"><MS><I32 N="PipelineState">4</I32></MS></Obj>"#;
        assert_eq!(state(completed, "PipelineState").unwrap(), (4, None));
        let failed = r#"<Obj RefId="0"><MS><I32 N="PipelineState">5</I32><Obj N="ExceptionAsErrorRecord" RefId="1"><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T></TN><ToString>The term 'Invoke-Expression' is not recognized as the name of a cmdlet_x002C_ function.</ToString><MS><S N="FullyQualifiedErrorId">CommandNotFoundException</S><S N="ErrorCategory_Reason">CommandNotFoundException</S><S N="ErrorCategory_TargetName">Invoke-Expression</S><Obj N="Exception" RefId="2"><Props><S N="Message">ignored &amp; shadowed</S></Props></Obj></MS></Obj></MS></Obj>"#;
        let (s, error) = state(failed, "PipelineState").unwrap();
        let error = error.unwrap();
        assert_eq!(s, 5);
        assert_eq!(error.message, "The term 'Invoke-Expression' is not recognized as the name of a cmdlet, function.");
        assert_eq!((error.error_id.as_str(), error.target.as_str()), ("CommandNotFoundException", "Invoke-Expression"));
        let bare = parse(r#"<Obj RefId="0"><MS><Obj N="Exception"><Props><S N="Message">Password &lt; 17 chars</S></Props></Obj></MS></Obj>"#).unwrap();
        assert_eq!(error_info(&bare).message, "Password < 17 chars");
        assert!(state("<Obj><MS></MS></Obj>", "RunspaceState").is_err());
        assert!(parse("<Obj><S>").is_err());
    }
}
