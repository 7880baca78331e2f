//! `secrets`: names bound to secrets for one call, handed to the guest as opaque handles.

use secrecy::SecretString;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};

/// The secrets the host binds for a call. Their names are part of the contract; this is the one
/// place the host spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretName {
    /// The password of `target.login-account`.
    LoginPassword,
    /// The password `change-password` sets on `target.account`.
    NewPassword,
}

impl SecretName {
    /// Every name, in the contract's order.
    pub const ALL: [SecretName; 2] = [SecretName::LoginPassword, SecretName::NewPassword];

    /// The name as the contract spells it, e.g. `login-password`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretName::LoginPassword => "login-password",
            SecretName::NewPassword => "new-password",
        }
    }

    /// The name a guest asked for, if it is one of the contract's.
    pub fn parse(name: &str) -> Option<SecretName> {
        SecretName::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host side of a `secret` resource: a password or a session token.
pub struct SecretHandle(pub(crate) Arc<SecretString>);

/// Secrets bound to names for one call.
#[derive(Clone, Default)]
pub struct SecretBindings(BTreeMap<SecretName, Arc<SecretString>>);

impl SecretBindings {
    /// No secrets.
    pub fn new() -> Self {
        SecretBindings::default()
    }

    /// Binds `name` to a secret.
    pub fn bind(mut self, name: SecretName, secret: Arc<SecretString>) -> Self {
        self.0.insert(name, secret);
        self
    }

    /// The secret bound to `name`.
    pub fn get(&self, name: SecretName) -> Option<&Arc<SecretString>> {
        self.0.get(&name)
    }

    /// Every bound secret.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &Arc<SecretString>> {
        self.0.values()
    }
}

/// The `secrets` import over one job's bindings and resource table.
pub struct SecretsView<'a> {
    pub(crate) bound: &'a SecretBindings,
    pub(crate) table: &'a mut ResourceTable,
}

impl SecretsView<'_> {
    /// A handle to the secret bound to `name`; the error names what is bound instead.
    pub fn get(&mut self, name: &str) -> wasmtime::Result<Result<Resource<SecretHandle>, String>> {
        let Some(secret) = SecretName::parse(name).and_then(|n| self.bound.0.get(&n)) else {
            let bound: Vec<&str> = self.bound.0.keys().map(|n| n.as_str()).collect();
            return Ok(Err(format!(
                "`{}` is not bound for this call (bound: {})",
                crate::runtime::contract::untrusted(name, 64),
                if bound.is_empty() { "none".to_owned() } else { bound.join(", ") }
            )));
        };
        Ok(Ok(self.table.push(SecretHandle(secret.clone()))?))
    }

    /// Drops a handle the guest owns.
    pub fn drop(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

/// The secret behind a handle the guest passed back; an unknown or stale handle traps.
pub(crate) fn resolve(table: &ResourceTable, handle: &Resource<SecretHandle>) -> wasmtime::Result<Arc<SecretString>> {
    Ok(table.get(handle)?.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> SecretBindings {
        SecretBindings::new().bind(SecretName::LoginPassword, Arc::new(SecretString::from("Old-1".to_owned())))
    }

    #[test]
    fn names_round_trip() {
        for name in SecretName::ALL {
            assert_eq!(SecretName::parse(name.as_str()), Some(name));
        }
        assert_eq!(SecretName::parse("old-password"), None);
    }

    #[test]
    fn unbound_secrets_are_refused_by_name() {
        let (bound, mut table) = (bindings(), ResourceTable::new());
        let mut view = SecretsView { bound: &bound, table: &mut table };
        let err = view.get("new-password").unwrap().unwrap_err();
        assert_eq!(err, "`new-password` is not bound for this call (bound: login-password)");
        let err = view.get("admin-password").unwrap().unwrap_err();
        assert_eq!(err, "`admin-password` is not bound for this call (bound: login-password)");
        let handle = view.get("login-password").unwrap().unwrap();
        let rep = handle.rep();
        view.drop(handle).unwrap();
        assert!(resolve(&table, &Resource::new_borrow(rep)).is_err(), "a dropped handle is gone");
    }
}
