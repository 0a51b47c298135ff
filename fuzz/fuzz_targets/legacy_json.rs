//! Legacy (seed) JSON answers as the device parses them (serde-json-core, no allocation), then
//! the replay MAC and the chunk MAC checks; and the upload request as the server validates it.
#![no_main]

use fota_protocol::legacy::{ChunkAnswer, ManifestAnswer, RollbackStatusAnswer, UploadRequest};
use libfuzzer_sys::fuzz_target;

const PSK: &[u8] = b"your-32-byte-secret-key-here!!";

fuzz_target!(|data: &[u8]| {
    if let Ok((m, _)) = serde_json_core::from_slice::<ManifestAnswer<&str>>(data) {
        let _ = m.verify_replay(PSK, "/api/inverter/fota/manifest", "dev", 0);
    }
    if let Ok((r, _)) = serde_json_core::from_slice::<RollbackStatusAnswer<&str>>(data) {
        let _ = r.verify_replay(PSK, "/api/inverter/fota/rollback-status", "dev", 0);
    }
    if let Ok((c, _)) = serde_json_core::from_slice::<ChunkAnswer<&str>>(data) {
        let mut buf = [0u8; 4096];
        let _ = c.decode_verified(PSK, &mut buf);
    }
    if let Ok(u) = serde_json::from_slice::<UploadRequest<String>>(data) {
        let _ = u.validate();
    }
});
