//! The privileged-endpoint (PEP) step: telling Azure Stack Hub the new BMC credential with
//! `Set-BmcCredential` over WinRM + PSRP.
//!
//! This first layer is the PowerShell Remoting Protocol core — fragments, messages, the CLIXML
//! subset and the session-key cryptography — shared by the native client and the PEP simulator.

pub mod ntlm;
pub mod psrp;
pub mod sealing;
pub mod wsman;
pub mod xml;
