//! Secrets as opaque handles.

use std::fmt;

/// A secret held by the host: a password or a session token. A plugin passes it to requests
/// (as Basic auth, a session token or a JSON string in the body) but can never read it.
pub struct Secret(pub(crate) Repr);

pub(crate) enum Repr {
    Host(crate::bindings::bmc::plugin::secrets::Secret),
    #[cfg(feature = "testing")]
    Mock(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<opaque>)")
    }
}
