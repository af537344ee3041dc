//! Identifier newtypes. Each id has one textual form; parsing rejects everything else so a
//! malformed id from a URL or a body is a clear 4xx, never a lookup with garbage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The installation's single account id: 32 lowercase hex characters, like Cloudflare's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId([u8; 16]);

impl AccountId {
    /// A fresh random account id.
    pub fn generate() -> Self {
        Self(*Uuid::new_v4().as_bytes())
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

/// Returned when a textual id does not have the required form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind} id")]
pub struct IdParseError {
    /// Which kind of id was expected.
    pub kind: &'static str,
}

impl FromStr for AccountId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = IdParseError { kind: "account" };
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(err);
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| err)?;
        Ok(Self(out))
    }
}

impl TryFrom<String> for AccountId {
    type Error = IdParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> Self {
        id.to_string()
    }
}

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn generate() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            /// Accepts only the hyphenated 36-character form.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err(IdParseError { kind: $kind });
                }
                Uuid::parse_str(s).map(Self).map_err(|_| IdParseError { kind: $kind })
            }
        }
    };
}

uuid_id!(
    /// Identity provider id (UUID, hyphenated).
    IdpId,
    "identity provider"
);
uuid_id!(
    /// Application id (UUID, hyphenated).
    AppId,
    "application"
);
uuid_id!(
    /// Admin API token id (UUID, hyphenated).
    TokenId,
    "token"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_round_trips_and_rejects_other_forms() {
        let id = AccountId::generate();
        let s = id.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(s.parse::<AccountId>(), Ok(id));
        assert!(s.to_uppercase().parse::<AccountId>().is_err());
        assert!("xyz".parse::<AccountId>().is_err());
        assert!(format!("{s}0").parse::<AccountId>().is_err());
    }

    #[test]
    fn uuid_ids_accept_only_hyphenated_form() {
        let id = IdpId::generate();
        assert_eq!(id.to_string().parse::<IdpId>(), Ok(id));
        assert!(id.0.simple().to_string().parse::<IdpId>().is_err());
        assert!("not-a-uuid".parse::<IdpId>().is_err());
        assert!(format!("{{{id}}}").parse::<IdpId>().is_err());
    }
}
