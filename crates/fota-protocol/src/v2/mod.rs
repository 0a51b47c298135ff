//! v2 protocol records: signed envelopes (manifest, root record, status statement), the chunk
//! hash list, and the fixed-layout device API records (check-in, answer, event).
//!
//! Everything here is `no_std` and allocation-free except the signing and building helpers
//! behind the `alloc` feature and the UUID derivations behind `std`.
//!
//! Trust flows one way: a [`RootRecord`] is verified from bytes (self-signed on
//! provisioning, or as the next version of a trusted one); its release keys verify
//! [`Manifest`]s and its status keys verify [`StatusStatement`]s. None of the verified types
//! can be built any other way, and none of their fields is read before the signatures over
//! the raw bytes have met the role's threshold.
//!
//! All integers are little-endian; UUIDs are raw 16 bytes; each layout is a table in its
//! type's documentation.

pub mod answer;
pub mod checkin;
pub mod codes;
pub mod envelope;
mod error;
pub mod event;
pub mod hashlist;
#[cfg(feature = "std")]
pub mod ids;
pub mod keys;
pub mod manifest;
pub mod root;
pub mod status;
mod text;

pub use answer::{CheckInAnswer, RootList};
pub use checkin::CheckIn;
pub use codes::{AgentState, EventKind, ReasonCode};
pub use envelope::{Envelope, EnvelopeKind};
pub use error::{Error, FieldCheck};
pub use event::Event;
pub use hashlist::{HashListLayout, TableVerifier, VerifiedPage};
pub use keys::{KeyId, KeySet, Role, key_id};
pub use manifest::{
    Component, Manifest, ManifestBody, ManifestFormat, PayloadFormat, chip_ids, manifest_digest,
};
pub use root::{RootBody, RootRecord};
pub use status::{Action, StatusBody, StatusStatement};
pub use text::FixedStr;

#[cfg(feature = "alloc")]
pub use envelope::sign_envelope;
