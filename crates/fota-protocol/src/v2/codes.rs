//! Stable one-byte codes shared by check-ins and events: reason codes, event kinds, agent
//! states. Each code has a snake_case name, used in JSON by the server and the CLI. Codes and
//! names never change meaning; new ones are appended.

use core::fmt;

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $str:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[cfg_attr(feature = "serde", serde(rename = $str))]
                $variant = $code,
            )*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The code on the wire.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The value of a wire code, or `None` for a code this version does not know.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $str,)*
                }
            }

            /// The value with the snake_case name `name`.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($str => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum! {
    /// Why something happened (or failed): the last result in a check-in and the reason of an
    /// event.
    pub enum ReasonCode {
        /// No reason: success, or nothing to report.
        None = 0 => "none",
        /// A manifest signature (threshold) did not verify.
        SignatureInvalid = 1 => "signature_invalid",
        /// The manifest is for another vendor, class or device.
        WrongDeviceOrClass = 2 => "wrong_device_or_class",
        /// The sequence or security counter is lower than the installed one.
        Downgrade = 3 => "downgrade",
        /// The manifest (or statement) has expired.
        Expired = 4 => "expired",
        /// Payload format, component or record version not supported.
        UnsupportedFormat = 5 => "unsupported_format",
        /// The image does not fit the slot.
        TooLarge = 6 => "too_large",
        /// The hash list's header, table or a page failed its check.
        HashlistInvalid = 7 => "hashlist_invalid",
        /// A chunk did not match its hash.
        ChunkHashMismatch = 8 => "chunk_hash_mismatch",
        /// The whole image read back from flash did not match image_sha256.
        ImageHashMismatch = 9 => "image_hash_mismatch",
        /// The image is not a valid ESP32 app image.
        ImageInvalid = 10 => "image_invalid",
        /// The image's project name differs from the manifest's.
        ProjectMismatch = 11 => "project_mismatch",
        /// The image's version differs from the manifest's.
        VersionMismatch = 12 => "version_mismatch",
        /// A flash read, write or erase failed.
        FlashError = 13 => "flash_error",
        /// The network failed.
        Network = 14 => "network",
        /// The new image failed its health check.
        HealthCheckFailed = 15 => "health_check_failed",
        /// The bootloader rolled back an image that was never confirmed.
        NotConfirmed = 16 => "not_confirmed",
        /// A rollback was ordered but there is no valid image to roll back to.
        RollbackImpossible = 17 => "rollback_impossible",
        /// An operator ordered it.
        OperatorOrder = 18 => "operator_order",
        /// A newer assignment replaced the pending one.
        Superseded = 19 => "superseded",
        /// The manifest's fields failed their checks after a valid signature.
        ManifestInvalid = 20 => "manifest_invalid",
        /// The status statement failed its signature, nonce, device or expiry check.
        StatusInvalid = 21 => "status_invalid",
        /// The manifest delivered is not the one the statement assigns.
        AssignmentMismatch = 22 => "assignment_mismatch",
        /// A newer root record failed verification.
        RootInvalid = 23 => "root_invalid",
        /// No valid status statement for several check-ins (possible freeze attack).
        FreshnessUnavailable = 24 => "freshness_unavailable",
        /// A download was too slow or timed out.
        Timeout = 25 => "timeout",
        /// The server withdrew the assignment.
        Cancelled = 26 => "cancelled",
        /// An internal error of the agent.
        Internal = 27 => "internal",
        /// A cut inside the confirmation (otadata entry erased, not yet rewritten VALID) sent
        /// the device back to the previous image; the release passed its health check.
        ConfirmInterrupted = 28 => "confirm_interrupted",
        /// otadata cannot be switched to the new slot (its sequence is exhausted and could not
        /// be renormalised, e.g. while running the factory app); the release was refused
        /// before anything was written to the slot, or a staged one was abandoned.
        BootSwitchImpossible = 29 => "boot_switch_impossible",
        /// A rollback order was refused: the image it would activate belongs to a release
        /// whose security counter is below the committed one (an image whose release the
        /// device does not know counts as 0).
        RollbackBelowCounter = 30 => "rollback_below_counter",
        /// The manifest names another chip than the device's (format-3 manifests name one;
        /// a format-2 manifest is for an ESP32).
        WrongChip = 31 => "wrong_chip",
        /// No signature of the manifest is by a release key of the device's root record: the
        /// signer is unknown or was revoked by a root rotation.
        UnknownOrRevokedKey = 32 => "unknown_or_revoked_key",
        /// The device's newest root record has expired (against the time floor of
        /// offline-signed data); nothing is installed until a newer root arrives.
        RootExpired = 33 => "root_expired",
    }
}

code_enum! {
    /// What an event reports.
    pub enum EventKind {
        /// Download progress (bytes_done / bytes_total).
        Progress = 1 => "progress",
        /// The staged image matched image_sha256 when read back from flash.
        Verified = 2 => "verified",
        /// The boot slot is being switched to the new image.
        Installing = 3 => "installing",
        /// The new image booted and runs on trial (PENDING_VERIFY).
        BootedOnTrial = 4 => "booted_on_trial",
        /// The new image passed its health check and was marked valid.
        Confirmed = 5 => "confirmed",
        /// The device came back on the previous image.
        RolledBack = 6 => "rolled_back",
        /// The update failed; the reason says why.
        Failed = 7 => "failed",
        /// An operator-ordered rollback was carried out.
        RollbackDone = 8 => "rollback_done",
        /// An operator-ordered rollback was refused (the reason says why).
        RollbackRefused = 9 => "rollback_refused",
        /// A download interrupted by a reset continues from the journaled progress
        /// (bytes_done is where it continues). Event format 2.
        Resumed = 10 => "resumed",
    }
}

code_enum! {
    /// What the agent is doing, as reported in a check-in.
    pub enum AgentState {
        /// Nothing pending.
        Idle = 0 => "idle",
        /// Downloading chunks into the inactive slot.
        Downloading = 1 => "downloading",
        /// Reading the staged slot back and checking it.
        Verifying = 2 => "verifying",
        /// Verified and set to boot; waiting for the reboot.
        Staged = 3 => "staged",
        /// Running the new image on trial, not yet confirmed.
        Trial = 4 => "trial",
        /// Carrying out a rollback.
        RollingBack = 5 => "rolling_back",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for &r in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_code(r.code()), Some(r));
            assert_eq!(ReasonCode::from_name(r.as_str()), Some(r));
            #[cfg(feature = "std")]
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                std::format!("\"{}\"", r.as_str())
            );
        }
        for &k in EventKind::ALL {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
            assert_eq!(EventKind::from_name(k.as_str()), Some(k));
        }
        for &s in AgentState::ALL {
            assert_eq!(AgentState::from_code(s.code()), Some(s));
            assert_eq!(AgentState::from_name(s.as_str()), Some(s));
        }
        assert_eq!(EventKind::from_code(0), None);
        assert_eq!(ReasonCode::from_code(255), None);
        assert_eq!(ReasonCode::NotConfirmed.to_string(), "not_confirmed");
    }
}
