//! The status statement: the server's signed, nonce-bound answer to one check-in.
//!
//! The server signs it with its online status key. It gives freshness (server time, expiry,
//! the device's own nonce echoed) and tells the device what to do, but it can never make a
//! device install anything a release key did not sign: an install action only names the
//! digest of a manifest that must verify on its own.

use subtle::ConstantTimeEq;

use crate::codec::{Reader, Writer};
use crate::v2::envelope::{self, Envelope, HEADER_LEN, MAX_SIGNATURES, SIGNATURE_ENTRY_LEN};
use crate::v2::manifest::Manifest;
use crate::v2::root::RootRecord;
use crate::v2::{Error, FieldCheck};

/// Length of a version-1 statement body.
pub const BODY_LEN: usize = 104;
/// Longest statement envelope.
pub const MAX_LEN: usize = HEADER_LEN + BODY_LEN + 1 + MAX_SIGNATURES * SIGNATURE_ENTRY_LEN;

/// What the server tells the device to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Nothing to do.
    None,
    /// Install the manifest with this [`manifest_digest`](crate::v2::manifest::manifest_digest),
    /// delivered in the same answer.
    Install {
        /// Digest of the assigned manifest envelope.
        manifest_digest: [u8; 32],
    },
    /// Roll back to the previous image on the operator's order.
    Rollback {
        /// The order being carried out, ≠ 0; the device acknowledges it by id.
        order_id: u64,
    },
}

impl Action {
    /// The action code on the wire.
    pub const fn code(&self) -> u8 {
        match self {
            Self::None => 0,
            Self::Install { .. } => 1,
            Self::Rollback { .. } => 2,
        }
    }
}

/// The fields of a status statement.
///
/// Body layout (inside a `FOTS` version 1 envelope, domain `"FOTA-STATUS-v1\0"`, signed by the
/// status role), 104 bytes:
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 16 | device_id | the device the statement answers |
/// | 16 | 16 | nonce | the device's check-in nonce, echoed |
/// | 32 | 8 | server_time | unix seconds |
/// | 40 | 8 | expires_at | unix seconds, > server_time |
/// | 48 | 1 | action | 0 none, 1 install, 2 rollback |
/// | 49 | 3 | reserved | zero |
/// | 52 | 4 | poll_interval_s | u32, seconds until the next check-in |
/// | 56 | 32 | assigned_manifest_digest | install: digest of the manifest (≠ 0); else zero |
/// | 88 | 8 | rollback_order_id | rollback: order id (≠ 0); else zero |
/// | 96 | 4 | root_version | u32 ≥ 1, the newest root record the server knows |
/// | 100 | 4 | assignment_generation | u32: bumped by the server each time an operator assigns a release to the device (or its class) again; 0 = not tracked |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBody {
    /// Device the statement answers.
    pub device_id: [u8; 16],
    /// The check-in nonce it answers.
    pub nonce: [u8; 16],
    /// Server time (unix seconds).
    pub server_time: u64,
    /// Expiry (unix seconds), after server_time.
    pub expires_at: u64,
    /// What to do.
    pub action: Action,
    /// Seconds until the next check-in.
    pub poll_interval_s: u32,
    /// The newest root version the server knows.
    pub root_version: u32,
    /// Generation of the assignment this statement carries: the server bumps it whenever an
    /// operator assigns a release again. A device that rejected a release (it failed its
    /// trial, or was rolled back from) installs it again only under a higher generation, so
    /// an explicit re-assignment is honoured while the same assignment never loops. 0 = the
    /// server does not track generations.
    pub assignment_generation: u32,
}

impl StatusBody {
    /// Runs the field checks a verifier runs after the signature.
    pub fn check(&self) -> Result<(), Error> {
        if self.expires_at <= self.server_time {
            return Err(Error::field("expires_at", 40, FieldCheck::Inconsistent));
        }
        match self.action {
            Action::None => {}
            Action::Install { manifest_digest } => {
                if manifest_digest == [0; 32] {
                    return Err(Error::field(
                        "assigned_manifest_digest",
                        56,
                        FieldCheck::Zero,
                    ));
                }
            }
            Action::Rollback { order_id } => {
                if order_id == 0 {
                    return Err(Error::field("rollback_order_id", 88, FieldCheck::Zero));
                }
            }
        }
        if self.root_version == 0 {
            return Err(Error::field("root_version", 96, FieldCheck::Zero));
        }
        Ok(())
    }

    /// The 104-byte body; fails when a field check fails.
    pub fn encode(&self) -> Result<[u8; BODY_LEN], Error> {
        self.check()?;
        let (digest, order_id) = match self.action {
            Action::None => ([0; 32], 0),
            Action::Install { manifest_digest } => (manifest_digest, 0),
            Action::Rollback { order_id } => ([0; 32], order_id),
        };
        let mut out = [0u8; BODY_LEN];
        let mut w = Writer::new(&mut out);
        w.bytes(&self.device_id)?;
        w.bytes(&self.nonce)?;
        w.u64(self.server_time)?;
        w.u64(self.expires_at)?;
        w.u8(self.action.code())?;
        w.bytes(&[0; 3])?;
        w.u32(self.poll_interval_s)?;
        w.bytes(&digest)?;
        w.u64(order_id)?;
        w.u32(self.root_version)?;
        w.u32(self.assignment_generation)?;
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != BODY_LEN {
            return Err(Error::BodyLength {
                expected: BODY_LEN,
                found: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes);
        let device_id = r.array()?;
        let nonce = r.array()?;
        let server_time = r.u64()?;
        let expires_at = r.u64()?;
        let action = r.u8()?;
        if r.array::<3>()? != [0; 3] {
            return Err(Error::field("reserved", 49, FieldCheck::ReservedNotZero));
        }
        let poll_interval_s = r.u32()?;
        let digest: [u8; 32] = r.array()?;
        let order_id = r.u64()?;
        let root_version = r.u32()?;
        let assignment_generation = r.u32()?;
        r.finish()?;
        let action = match action {
            0 => Action::None,
            1 => Action::Install {
                manifest_digest: digest,
            },
            2 => Action::Rollback { order_id },
            _ => return Err(Error::field("action", 48, FieldCheck::UnknownCode)),
        };
        if !matches!(action, Action::Install { .. }) && digest != [0; 32] {
            return Err(Error::field(
                "assigned_manifest_digest",
                56,
                FieldCheck::Inconsistent,
            ));
        }
        if !matches!(action, Action::Rollback { .. }) && order_id != 0 {
            return Err(Error::field(
                "rollback_order_id",
                88,
                FieldCheck::Inconsistent,
            ));
        }
        let body = Self {
            device_id,
            nonce,
            server_time,
            expires_at,
            action,
            poll_interval_s,
            root_version,
            assignment_generation,
        };
        body.check()?;
        Ok(body)
    }

    /// Encodes and signs the statement with `keys` (status keys) into an envelope.
    #[cfg(feature = "alloc")]
    pub fn sign(&self, keys: &[&ed25519_dalek::SigningKey]) -> Result<alloc::vec::Vec<u8>, Error> {
        envelope::STATUS.sign(&self.encode()?, keys)
    }
}

/// A status statement whose status-role signatures verified against a trusted root and whose
/// fields are consistent. Only the `verify` functions create one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStatement {
    body: StatusBody,
}

impl StatusStatement {
    /// Verifies a statement envelope: framing, status-role threshold of `root` over the raw
    /// bytes, then field consistency (action vs. digest and order id, expiry after server
    /// time, reserved bytes zero).
    pub fn verify(root: &RootRecord, bytes: &[u8]) -> Result<Self, Error> {
        let envelope = Envelope::parse(&envelope::STATUS, bytes)?;
        let body = envelope.verify(root.keys(envelope::STATUS.role))?;
        Ok(Self {
            body: StatusBody::decode(body)?,
        })
    }

    /// [`verify`](Self::verify), then the device's own checks: the statement is for
    /// `device_id` and echoes the `nonce` of the check-in it answers.
    pub fn verify_for_device(
        root: &RootRecord,
        bytes: &[u8],
        device_id: &[u8; 16],
        nonce: &[u8; 16],
    ) -> Result<Self, Error> {
        let statement = Self::verify(root, bytes)?;
        statement.check_for_device(device_id, nonce)?;
        Ok(statement)
    }

    /// Checks that the statement is for `device_id` and echoes `nonce`.
    pub fn check_for_device(&self, device_id: &[u8; 16], nonce: &[u8; 16]) -> Result<(), Error> {
        if !bool::from(self.body.nonce.ct_eq(nonce)) {
            return Err(Error::NonceMismatch);
        }
        if self.body.device_id != *device_id {
            return Err(Error::DeviceMismatch);
        }
        Ok(())
    }

    /// The verified fields.
    pub const fn body(&self) -> &StatusBody {
        &self.body
    }

    /// The action.
    pub const fn action(&self) -> Action {
        self.body.action
    }

    /// Whether the statement assigns exactly `manifest` (by digest).
    pub fn assigns(&self, manifest: &Manifest) -> bool {
        match &self.body.action {
            Action::Install { manifest_digest } => manifest_digest.ct_eq(manifest.digest()).into(),
            _ => false,
        }
    }

    /// The rollback order id, when the statement orders a rollback.
    pub const fn rollback_order(&self) -> Option<u64> {
        match self.body.action {
            Action::Rollback { order_id } => Some(order_id),
            _ => None,
        }
    }
}
