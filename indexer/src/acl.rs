//! Access-control vocabulary shared by every index: who may read a chunk ([`ChunkAcl`]) and who is
//! asking ([`Reader`]). The indexes turn a `Reader` into a query-time filter; nothing filters results
//! after ranking.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, UserError};

macro_rules! parse_enum {
    ($ty:ident, $field:literal, { $($text:literal => $variant:ident),+ $(,)? }) => {
        impl $ty {
            /// The canonical lower-case name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($ty::$variant),)+
                    other => Err(UserError::InvalidValue {
                        field: $field,
                        reason: format!("unknown value '{other}' (expected one of: {})", [$($text),+].join(", ")),
                    }.into()),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> { s.parse() }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String { v.as_str().to_owned() }
        }
    };
}

/// Ordered sensitivity levels: a reader sees a chunk only if their clearance is at least the
/// chunk's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Restricted,
}

parse_enum!(Classification, "classification", {
    "public" => Public, "internal" => Internal, "confidential" => Confidential, "restricted" => Restricted,
});

impl Classification {
    /// The numeric rank stored in the index; higher is more sensitive.
    pub fn rank(self) -> u64 {
        self as u64
    }
}

/// Lifecycle state of a document's source. Only approved sources are retrievable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceStatus {
    Draft,
    Approved,
    Withdrawn,
}

parse_enum!(SourceStatus, "status", {
    "draft" => Draft, "approved" => Approved, "withdrawn" => Withdrawn,
});

/// A tenant identifier: lower-case letters, digits and dashes, 1-64 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// A group name, same alphabet as tenants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

fn parse_slug(field: &'static str, s: &str) -> Result<String, Error> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(UserError::InvalidValue {
            field,
            reason: format!("'{s}' must be 1-64 lower-case letters, digits, '-' or '_'"),
        }
        .into())
    }
}

macro_rules! slug_type {
    ($ty:ident, $field:literal) => {
        impl $ty {
            pub fn parse(s: &str) -> Result<Self, Error> {
                parse_slug($field, s).map($ty)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                $ty::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_type!(TenantId, "tenant");
slug_type!(GroupName, "group");

/// Who may read a chunk. Stored with every chunk in the database and in every index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkAcl {
    pub tenant: TenantId,
    pub owner: String,
    pub classification: Classification,
    /// A reader must belong to at least one of these groups. Never empty.
    pub allowed_groups: BTreeSet<GroupName>,
    pub status: SourceStatus,
    pub effective_from: NaiveDate,
    /// First day on which the document no longer applies; `None` means open-ended.
    pub expires_at: Option<NaiveDate>,
    pub retention_class: String,
}

/// The identity a search runs as: the only input from which the access filter is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub tenant: TenantId,
    pub groups: BTreeSet<GroupName>,
    pub clearance: Classification,
    /// Answer from documents in force on this date.
    pub as_of: NaiveDate,
    /// Search only these documents (by id); `None` searches every document the reader may
    /// read. Part of each index's filter like the rest, so other documents never reach ranking.
    pub documents: Option<BTreeSet<String>>,
}

impl ChunkAcl {
    /// The same rule the index filters enforce, for re-checks against the database and for tests.
    pub fn permits(&self, reader: &Reader) -> bool {
        self.tenant == reader.tenant
            && self.classification <= reader.clearance
            && self.status == SourceStatus::Approved
            && self.allowed_groups.iter().any(|g| reader.groups.contains(g))
            && self.effective_from <= reader.as_of
            && self.expires_at.is_none_or(|end| reader.as_of < end)
    }
}
