//! PowerShell Remoting Protocol 2.3 (MS-PSRP), the parts a `Set-BmcCredential` call needs.

pub mod clixml;
pub mod crypto;
pub mod fragment;
pub mod message;
pub mod server;

/// A PSRP decoding or protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PSRP: {0}")]
pub struct PsrpError(pub String);

impl PsrpError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        PsrpError(message.into())
    }
}
